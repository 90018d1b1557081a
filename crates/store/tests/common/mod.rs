//! Helpers shared by the storage tests.
#![allow(dead_code)]

use std::time::Duration;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port")
}

/// A private redis-server on a free port, so it can be stopped and started.
pub struct OwnRedis {
    pub port: u16,
    child: std::process::Child,
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
        let child = std::process::Command::new("redis-server")
            .args(args)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(OwnRedis { port, child });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
