//! Helpers shared by the storage tests.
#![allow(dead_code)]

use std::time::Duration;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port")
}

/// A server process the test owns: started, waited for until its port answers, killed
/// when dropped.
pub struct OwnServer {
    child: std::process::Child,
}

impl OwnServer {
    /// Runs `cmd` (output discarded) and waits up to 5 s for `port` to accept connections.
    pub fn start(mut cmd: std::process::Command, port: u16) -> Option<OwnServer> {
        let child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().ok()?;
        let server = OwnServer { child };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private redis-server on a free port, so it can be stopped and started.
pub struct OwnRedis {
    pub port: u16,
    _server: OwnServer,
}

impl OwnRedis {
    pub fn start(port: u16) -> Option<OwnRedis> {
        OwnRedis::spawn(port, &["--port", &port.to_string()])
    }

    /// TLS only, on `port`, with a fresh self-signed certificate for 127.0.0.1 written to
    /// `dir`; returns the server and the certificate's PEM file (the client's CA).
    pub fn start_tls(port: u16, dir: &std::path::Path) -> Option<(OwnRedis, std::path::PathBuf)> {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).ok()?;
        let (c, k) = (dir.join("redis.crt"), dir.join("redis.key"));
        std::fs::write(&c, cert.cert.pem()).ok()?;
        std::fs::write(&k, cert.signing_key.serialize_pem()).ok()?;
        let (cs, ks) = (c.display().to_string(), k.display().to_string());
        let args = ["--port", "0", "--tls-port", &port.to_string(), "--tls-cert-file", &cs, "--tls-key-file", &ks];
        let args = [&args[..], &["--tls-ca-cert-file", &cs, "--tls-auth-clients", "no"]].concat();
        Some((OwnRedis::spawn(port, &args)?, c))
    }

    fn spawn(port: u16, args: &[&str]) -> Option<OwnRedis> {
        let mut cmd = std::process::Command::new("redis-server");
        cmd.args(args).args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        Some(OwnRedis { port, _server: OwnServer::start(cmd, port)? })
    }
}
