//! `rsgame-bot`: the bots of `rsgame bot` as a binary of their own (no server in it).

use clap::Parser;

#[derive(Parser)]
#[command(name = "rsgame-bot", about = "Simulated players for rsgame: a scenario, live progress, a report")]
struct Cli {
    #[command(flatten)]
    args: rsgame_bot::bot::Args,
}

#[tokio::main]
async fn main() {
    let report = rsgame_bot::bot::run(Cli::parse().args).await;
    println!("{report}");
}
