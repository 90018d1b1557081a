//! The real client address behind trusted reverse proxies (`http.trusted_proxies`).
//!
//! Behind compose's nginx or a Kubernetes Ingress every connection comes from the proxy, so
//! per-address limits and lock-outs would treat all players as one. When the connection's
//! peer is inside a trusted range, the client is read from `X-Forwarded-For`: walking from
//! the right (the entry the nearest proxy appended), the first address that is not itself a
//! trusted proxy. Anything left of it was written by the client and is never believed. From
//! a peer outside the ranges the header is ignored, so a stranger cannot choose its address.
//!
//! [`layer`] rewrites the request's [`Peer`] before anything reads it: logs, rate limits,
//! login counters and the WebSocket gate's per-address limits all see the real client.

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::http::Peer;

/// An address range, `10.0.0.0/8`, `fd00::/8` or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, bits) = match s.trim().split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s.trim(), None),
        };
        let net: IpAddr = addr.parse().map_err(|_| format!("{s:?} is not an address or a CIDR range"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(b) => b.parse::<u8>().ok().filter(|b| *b <= max).ok_or_else(|| format!("{s:?}: bad prefix length"))?,
            None => max,
        };
        Ok(Cidr { net, bits })
    }
}

impl Cidr {
    /// Whether `ip` is in the range (an IPv4 address inside `::ffff:0:0/96` counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.bits),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (whole, rest) = (usize::from(bits / 8), bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || (a[whole] ^ b[whole]) >> (8 - rest) == 0
}

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Parses `http.trusted_proxies` (checked by configuration validation already).
    pub fn parse(list: &[String]) -> Result<TrustedProxies, String> {
        list.iter().map(|s| s.parse()).collect::<Result<Vec<Cidr>, String>>().map(TrustedProxies)
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client behind `peer`, given the `X-Forwarded-For` values in order.
    pub fn client<'a>(&self, peer: IpAddr, forwarded: impl DoubleEndedIterator<Item = &'a str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for entry in forwarded.rev().flat_map(|v| v.rsplit(',')) {
            match parse_entry(entry) {
                Some(ip) => {
                    client = ip;
                    if !self.trusts(ip) {
                        break;
                    }
                }
                // Garbage where an address should be: stop at the last proxy that handed it
                // on rather than believe anything further left.
                None => break,
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: `203.0.113.7`, `2001:db8::1`, `[2001:db8::1]:4711` or
/// `203.0.113.7:4711`.
fn parse_entry(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.parse::<IpAddr>().ok().or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// Wraps `router` so every request's [`Peer`] is the real client when the connection comes
/// from a trusted proxy. With no trusted proxies the router is returned as it is.
pub fn layer(router: Router, proxies: TrustedProxies) -> Router {
    if proxies.0.is_empty() {
        return router;
    }
    let proxies = std::sync::Arc::new(proxies);
    router.layer(axum::middleware::from_fn(move |mut req: Request, next: Next| {
        let proxies = proxies.clone();
        async move {
            if let Some(ConnectInfo(Peer(peer))) = req.extensions().get::<ConnectInfo<Peer>>().copied() {
                let values = req.headers().get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
                let values: Vec<&str> = values.collect();
                let client = proxies.client(peer.ip(), values.iter().copied());
                if client != peer.ip() {
                    req.extensions_mut().insert(ConnectInfo(Peer(SocketAddr::new(client, 0))));
                }
            }
            let resp: Response = next.run(req).await;
            resp
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("parse")
    }

    #[test]
    fn ranges_hold_what_they_should() {
        let c: Cidr = "10.1.0.0/16".parse().expect("cidr");
        assert!(c.contains(ip("10.1.255.3")) && !c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped addresses count as IPv4");
        let one: Cidr = "192.0.2.7".parse().expect("one");
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: Cidr = "fd00::/8".parse().expect("v6");
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")) && !v6.contains(ip("10.0.0.1")));
        let odd: Cidr = "172.16.0.0/12".parse().expect("odd");
        assert!(odd.contains(ip("172.31.9.9")) && !odd.contains(ip("172.32.0.1")));
        let all: Cidr = "0.0.0.0/0".parse().expect("all");
        assert!(all.contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "nonsense", "10.0.0/8", "::/129", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_right() {
        let p = proxies(&["10.0.0.0/8"]);
        // Through one proxy: the address it appended.
        assert_eq!(p.client(ip("10.0.0.2"), ["198.51.100.9"].into_iter()), ip("198.51.100.9"));
        // A client that writes its own header cannot choose its address.
        assert_eq!(p.client(ip("10.0.0.2"), ["1.2.3.4, 198.51.100.9"].into_iter()), ip("198.51.100.9"));
        // Through two trusted proxies, and headers split over several lines.
        assert_eq!(p.client(ip("10.0.0.2"), ["6.6.6.6, 198.51.100.9", "10.0.0.5"].into_iter()), ip("198.51.100.9"));
        // Ports and brackets are tolerated.
        assert_eq!(p.client(ip("10.0.0.2"), ["[2001:db8::1]:4711"].into_iter()), ip("2001:db8::1"));
        // Garbage stops the walk at the last proxy.
        assert_eq!(p.client(ip("10.0.0.2"), ["198.51.100.9, junk, 10.0.0.5"].into_iter()), ip("10.0.0.5"));
        // No header: the proxy itself.
        assert_eq!(p.client(ip("10.0.0.2"), std::iter::empty()), ip("10.0.0.2"));
        // A stranger's header is ignored.
        assert_eq!(p.client(ip("203.0.113.5"), ["198.51.100.9"].into_iter()), ip("203.0.113.5"));
    }
}
