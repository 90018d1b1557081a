//! A zinx-compatible server: Ping (1000) is answered with PingResp (2000), and a ChatMsg sent
//! as message 1 comes back as message 100001. `cargo run --example echo`, then connect a zinx
//! client to 127.0.0.1:8999.
use rsgame_gate::{Gate, Router};
use rsgame_proto::pb::ChatMsg;

rsgame_kit::config_root! {
    /// What this server reads: `gate.*` and `tls.*`, from defaults, the file `RSGAME_CONFIG`
    /// names, then `RSGAME_*` variables.
    struct Settings {
        gate: rsgame_gate::config::GateConfig,
        tls: rsgame_kit::config::TlsConfig,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut cfg: Settings = rsgame_kit::config::from_process(None)?;
    cfg.gate.login_timeout_secs = 0; // this protocol has no login to wait for
    let mut routes = Router::builder(); // Ping is built in
    routes.route(1, |session, msg: ChatMsg| async move { Ok(session.send(100_001, &msg)?) })?;
    let shutdown = rsgame_kit::Shutdown::new();
    let gate = Gate::builder(&cfg.gate, &cfg.tls, routes.build()).start(&shutdown).await?;
    println!("echo listening on {}", gate.tcp_addr().map(|a| a.to_string()).unwrap_or_default());
    rsgame_kit::shutdown::signal().await;
    shutdown.trigger();
    Ok(())
}
