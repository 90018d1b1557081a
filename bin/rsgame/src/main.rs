//! The `rsgame` binary: the command line, and the wiring of one process from its roles.
//!
//! # Layout
//!
//! - `main.rs`: the commands (`serve`, `migrate`, `check`, `admin`, `config`, `bot`,
//!   `version`) and exit codes.
//! - `config.rs`: the configuration tree: every crate's section, and the checks across them.
//! - `admin.rs`: operator actions on accounts (ban, unban), the console's first operator.
//! - `roles.rs`: the role names a process can take.
//! - `serve.rs`: start-up and graceful shutdown of a serving process.
//! - `directory.rs`: the world's view of accounts, read from usercenter (in process or gRPC).
//! - `nodes.rs`: game nodes in etcd, and sending each player to its node.
//! - `web.rs`: the browser client, built into the binary.
//! - `console_web.rs`: the operator console's pages, built into the binary.

mod admin;
mod config;
mod console_web;
mod directory;
mod nodes;
mod roles;
mod serve;
mod web;

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;
use clap::{Parser, Subcommand};

/// rsgame: a game server framework. One binary: the whole server in one process by default,
/// or one role per process when a studio outgrows one machine.
#[derive(Parser, Debug)]
#[command(name = "rsgame", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// YAML configuration file (defaults, then this file, then RSGAME_* variables).
    #[arg(long, short = 'c', global = true, env = "RSGAME_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server: every role in one process (the monolith) unless --role says otherwise.
    Serve {
        /// Roles to run, comma-separated: usercenter-api, usercenter-rpc, basic-api,
        /// basic-rpc, game-api, game-node, or all.
        #[arg(long, value_delimiter = ',', value_name = "ROLE[,ROLE]")]
        role: Vec<String>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Consistency checks. `rsgame check ledger`: every player's coins, score, exp and item
    /// counts equal the sum of their ledger rows; exits 1 and lists what does not.
    Check {
        /// What to check: ledger.
        #[arg(value_parser = ["ledger"])]
        what: String,
    },
    /// Operator actions on accounts, through the database, cache and bus the servers share.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// The configuration. Alone: print the effective one (defaults, file, environment) with
    /// secrets masked.
    Config {
        #[command(subcommand)]
        action: Option<ConfigAction>,
    },
    /// Run N simulated players against a server (register or log in over REST, connect over
    /// TCP, WebSocket or KCP, play a scenario), with live progress and a JSON report; exits 1
    /// when not every bot was connected at the end.
    Bot(Box<rsgame_bot::bot::Args>),
    /// Print the OpenAPI document of the routes a player's client calls (usercenter, basic,
    /// game, guilds, inbox; not the operator console) with the error codes: what the SDKs
    /// generate their REST layer from (`docs/openapi.json`).
    Openapi,
    /// Print the version.
    Version,
}

#[derive(Subcommand, Debug)]
enum ConfigAction {
    /// Check a configuration as a deployment would start with it: defaults, then FILE, then
    /// the RSGAME_* variables of each --env-file and --env (never this process's own
    /// environment), and the roles of --role. Exits 1 naming the first bad key and where it
    /// was set; with --print, prints the effective configuration (secrets masked).
    Check {
        /// A YAML configuration file.
        file: Option<PathBuf>,
        /// A file of NAME=VALUE lines (# comments, blank lines and `export ` allowed), as a
        /// container's environment or a systemd EnvironmentFile; may be repeated.
        #[arg(long = "env-file", value_name = "FILE")]
        env_files: Vec<PathBuf>,
        /// One variable, NAME=VALUE; may be repeated (after the env files).
        #[arg(long = "env", value_name = "NAME=VALUE")]
        env: Vec<String>,
        /// The roles the process would run, comma-separated (as `serve --role`).
        #[arg(long, value_name = "ROLE[,ROLE]")]
        role: Option<String>,
        /// Print the effective configuration when it is valid.
        #[arg(long)]
        print: bool,
    },
    /// The role names `serve --role` takes, one per line.
    Roles,
    /// Every Prometheus metric rsgame records, one per line: name, kind (counter, gauge,
    /// histogram) and what it measures, tab-separated. What dashboards and alerts can use.
    Metrics,
}

#[derive(Subcommand, Debug)]
enum AdminAction {
    /// Ban an account: no more logins, and its sessions end on every server (its tokens are
    /// refused, its game connections close). Needs the servers' shared cache and bus (Redis,
    /// NATS…): with the embedded defaults it is refused.
    Ban {
        /// The account's id.
        user_id: i64,
        /// How long: `30m`, `12h`, `7d` (seconds, minutes, hours or days). Without it the ban
        /// has no end.
        #[arg(long = "for", value_parser = admin::parse_duration)]
        duration: Option<std::time::Duration>,
        /// Why, shown to the player when a login is refused (at most 255 bytes).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Lift a ban.
    Unban {
        /// The account's id.
        user_id: i64,
    },
    /// Create an operator of the console (the first one comes from here; admins create the
    /// others in the console). The password is read from OPERATOR_PASSWORD (not an
    /// RSGAME_ name: those are configuration), else from the first line of standard input:
    /// never from the command line, where other users and the shell's history would see it.
    CreateOperator {
        /// Login name: 3 to 32 letters, digits, `_`, `-` or `.`.
        username: String,
        /// `viewer`, `gm` or `admin`.
        #[arg(long, default_value = "admin")]
        role: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Version = cli.command {
        println!("rsgame {}", version());
        return ExitCode::SUCCESS;
    }
    if let Command::Openapi = cli.command {
        println!("{}", serve::client_openapi());
        return ExitCode::SUCCESS;
    }
    // The bots are a client: no server configuration applies to them.
    if let Command::Bot(args) = cli.command {
        let mut all_in = true;
        let code = run(async {
            let report = rsgame_bot::bot::run(*args).await;
            println!("{report}");
            all_in = report["connected"].as_u64() >= report["bots"].as_u64();
            Ok(())
        });
        // A bot that never got in (or was dropped) fails the run, so scripts can rely on it.
        if code == ExitCode::SUCCESS && !all_in {
            eprintln!("error: not every bot was connected at the end");
            return ExitCode::FAILURE;
        }
        return code;
    }
    // A check reads only what it is given: never this process's environment.
    let command = match cli.command {
        Command::Config { action: Some(action) } => return config_action(action),
        other => other,
    };
    let cfg = match Config::from_process(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Config { .. } => {
            print!("{}", cfg.to_masked_yaml());
            ExitCode::SUCCESS
        }
        Command::Serve { role } => {
            let roles = match roles::parse_roles(&role) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: --role: {e}");
                    return ExitCode::from(2);
                }
            };
            run(serve::serve(cfg, roles))
        }
        Command::Migrate => run(serve::migrate(cfg)),
        Command::Check { .. } => run(serve::check_ledger(cfg)),
        Command::Admin { action: AdminAction::Ban { user_id, duration, reason } } => {
            run(admin::set_banned(cfg, user_id, Some(admin::ban(duration, reason))))
        }
        Command::Admin { action: AdminAction::Unban { user_id } } => run(admin::set_banned(cfg, user_id, None)),
        Command::Admin { action: AdminAction::CreateOperator { username, role } } => {
            run(admin::create_operator(cfg, username, role))
        }
        Command::Version | Command::Openapi | Command::Bot(_) => ExitCode::SUCCESS,
    }
}

fn config_action(action: ConfigAction) -> ExitCode {
    match action {
        ConfigAction::Roles => {
            for r in roles::Role::ALL {
                println!("{r}");
            }
            ExitCode::SUCCESS
        }
        ConfigAction::Metrics => {
            let mut out = std::io::stdout().lock();
            for d in serve::METRICS.iter().flat_map(|t| t.iter()) {
                // A reader that stopped (`| head`) ends the listing; it is not an error.
                if std::io::Write::write_fmt(&mut out, format_args!("{}\t{}\t{}\n", d.name, d.kind.as_str(), d.help))
                    .is_err()
                {
                    break;
                }
            }
            ExitCode::SUCCESS
        }
        ConfigAction::Check { file, env_files, env, role, print } => {
            let mut vars = Vec::new();
            for f in &env_files {
                match std::fs::read_to_string(f) {
                    Ok(text) => match env_lines(&text) {
                        Ok(v) => vars.extend(v),
                        Err(e) => {
                            eprintln!("error: {}: {e}", f.display());
                            return ExitCode::FAILURE;
                        }
                    },
                    Err(e) => {
                        eprintln!("error: {}: {e}", f.display());
                        return ExitCode::FAILURE;
                    }
                }
            }
            for pair in &env {
                match pair.split_once('=') {
                    Some((k, v)) => vars.push((k.to_owned(), v.to_owned())),
                    None => {
                        eprintln!("error: --env {pair}: NAME=VALUE");
                        return ExitCode::FAILURE;
                    }
                }
            }
            // The file a deployment names in its variables, when none is given here.
            let file = file.or_else(|| vars.iter().rev().find(|(k, _)| k == "RSGAME_CONFIG").map(|(_, v)| v.into()));
            let cfg = match Config::load(file.as_deref(), vars) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if let Some(r) = role.as_deref() {
                let list: Vec<String> = r.split(',').map(str::to_owned).collect();
                if let Err(e) = roles::parse_roles(&list) {
                    eprintln!("error: --role: {e}");
                    return ExitCode::FAILURE;
                }
            }
            if print {
                print!("{}", cfg.to_masked_yaml());
            } else {
                println!("ok");
            }
            ExitCode::SUCCESS
        }
    }
}

/// NAME=VALUE lines of an environment file: blank lines and `#` comments skipped, an
/// `export ` prefix and one pair of matching quotes around the value removed.
fn env_lines(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (k, v) = line.split_once('=').ok_or_else(|| format!("line {}: not NAME=VALUE", n + 1))?;
        let v = v.trim();
        let v = [('"', '"'), ('\'', '\'')]
            .iter()
            .find_map(|(a, b)| v.strip_prefix(*a).and_then(|r| r.strip_suffix(*b)))
            .unwrap_or(v);
        out.push((k.trim().to_owned(), v.to_owned()));
    }
    Ok(out)
}

fn run(fut: impl std::future::Future<Output = Result<(), serve::ServeError>>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("rsgame").build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Telemetry may not be up (or already flushed): stderr always reaches the operator.
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The crate version, plus the commit when the build recorded one (`RSGAME_GIT_SHA`, set by
/// the release build and the Dockerfile).
fn version() -> String {
    match option_env!("RSGAME_GIT_SHA") {
        Some(sha) if !sha.is_empty() => format!("{} ({sha})", env!("CARGO_PKG_VERSION")),
        _ => env!("CARGO_PKG_VERSION").to_owned(),
    }
}
