//! KCP over one UDP socket, with our own listener in front of the `kcp` protocol engine: a
//! session costs nothing until its client has proven that it receives at its address.
//!
//! UDP sources can be forged, so a KCP-looking packet proves nothing. Before a session exists
//! the client asks for a conversation id (like QUIC's Retry or DTLS's HelloVerifyRequest):
//!
//! - client → server, 24 bytes: `RSGKHELO` and 16 zero bytes;
//! - server → client, 12 bytes: `RSGKCONV` and the conversation id (u32, little-endian).
//!
//! The id is a keyed hash of the client's address and the current minute: the server keeps
//! nothing for a hello, its answer is smaller than the question (no amplification), and a
//! session is made only for a KCP segment whose conversation id matches its source address
//! (this minute's or the last one's), within `gate.kcp.max_sessions` and
//! `max_sessions_per_ip`. A forger never sees the answer, so it cannot open sessions.
//!
//! Nor is an empty or half-sent stream worth a session: the datagram that opens one must
//! carry the client's whole first frame (segments 0, 1, … of its stream, which KCP packs
//! into one datagram up to the MTU), and the gate must route that frame's id — in practice
//! a `GameLogin` or a `Ping`. Anything else is dropped before any state is kept; the
//! client's KCP sends it again with what follows, so a real client loses nothing.
//! `gate.kcp.cookie: false` accepts any conversation id, for clients (kcp-go, zinx) that
//! cannot ask first.
//!
//! Each session is a `KcpStream` (stream mode, like TCP: zinx frames work unchanged) that
//! the gate serves like any connection; one task per session drives KCP's clock.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc};

/// The hello a client sends first: this magic, then zeros up to [`HELLO_LEN`].
pub const HELLO_MAGIC: &[u8; 8] = b"RSGKHELO";
/// A hello's length: as long as a KCP header, so the answer is never the larger.
pub const HELLO_LEN: usize = 24;
/// The answer's magic, followed by the conversation id (u32 LE).
pub const CONV_MAGIC: &[u8; 8] = b"RSGKCONV";
/// The answer's length.
pub const CONV_LEN: usize = 12;
/// The KCP segment header.
const KCP_HEADER: usize = 24;
/// KCP's command for a segment that carries data.
const CMD_PUSH: u8 = 81;

/// The server's side of the handshake: conversation ids for addresses.
pub(crate) struct Cookies {
    key: [u8; 32],
}

impl Cookies {
    pub(crate) fn new() -> Cookies {
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        Cookies { key }
    }

    fn at(&self, peer: SocketAddr, minute: u64) -> u32 {
        let ip = match peer.ip() {
            std::net::IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
            std::net::IpAddr::V6(a) => a.octets(),
        };
        let mac = rsgame_kit::auth::hmac_sha256(
            &self.key,
            &[&b"kcp conv"[..], &ip[..], &peer.port().to_be_bytes()[..], &minute.to_be_bytes()[..]],
        );
        // Never 0: some clients read 0 as "let the server choose".
        u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]).max(1)
    }

    fn minute() -> u64 {
        rsgame_kit::time::unix_secs().max(0) as u64 / 60
    }

    /// The id a client at `peer` is given now.
    pub(crate) fn issue(&self, peer: SocketAddr) -> u32 {
        self.at(peer, Self::minute())
    }

    /// Whether `conv` was given to `peer` this minute or the last.
    pub(crate) fn valid(&self, peer: SocketAddr, conv: u32) -> bool {
        let now = Self::minute();
        conv == self.at(peer, now) || conv == self.at(peer, now.saturating_sub(1))
    }
}

/// What a datagram to the KCP port is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Datagram {
    /// A client asks for a conversation id.
    Hello,
    /// A KCP segment of conversation `conv`.
    Segment { conv: u32 },
    /// Too short, or neither.
    Junk,
}

pub(crate) fn classify(packet: &[u8]) -> Datagram {
    if packet.len() == HELLO_LEN && packet.starts_with(HELLO_MAGIC) {
        return Datagram::Hello;
    }
    if packet.len() < KCP_HEADER {
        return Datagram::Junk;
    }
    Datagram::Segment { conv: u32::from_le_bytes([packet[0], packet[1], packet[2], packet[3]]) }
}

/// The start of the stream that `datagram`, the first of conversation `conv`, carries: the
/// data of its PUSH segments numbered 0, 1, 2, … in order, into `out` (cleared first).
/// Anything after a segment that breaks the sequence, or a truncated one, is left out.
pub(crate) fn opening(datagram: &[u8], conv: u32, out: &mut Vec<u8>) {
    out.clear();
    let mut rest = datagram;
    let mut next = 0u32;
    while rest.len() >= KCP_HEADER {
        let word = |at: usize| u32::from_le_bytes([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]]);
        let (seg_conv, cmd, sn, len) = (word(0), rest[4], word(12), word(20) as usize);
        if seg_conv != conv || rest.len() - KCP_HEADER < len {
            break;
        }
        if cmd == CMD_PUSH && sn == next {
            out.extend_from_slice(&rest[KCP_HEADER..KCP_HEADER + len]);
            next += 1;
        }
        rest = &rest[KCP_HEADER + len..];
    }
}

/// The answer to a hello from `peer`.
pub(crate) fn conv_reply(conv: u32) -> [u8; CONV_LEN] {
    let mut out = [0u8; CONV_LEN];
    out[..8].copy_from_slice(CONV_MAGIC);
    out[8..].copy_from_slice(&conv.to_le_bytes());
    out
}

/// The client's side of the handshake: asks the server at `server` for a conversation id
/// over `udp` (the socket the session will then use: the id belongs to its address). Tries
/// a few times, as UDP may lose either datagram.
pub async fn ask_conv(udp: &UdpSocket, server: SocketAddr, within: Duration) -> io::Result<u32> {
    let mut hello = [0u8; HELLO_LEN];
    hello[..8].copy_from_slice(HELLO_MAGIC);
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 64];
    while tokio::time::Instant::now() < deadline {
        udp.send_to(&hello, server).await?;
        let wait = tokio::time::sleep(Duration::from_millis(300));
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => break,
                r = udp.recv_from(&mut buf) => {
                    let (n, from) = r?;
                    if from == server && n == CONV_LEN && buf.starts_with(CONV_MAGIC) {
                        return Ok(u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]));
                    }
                }
            }
        }
    }
    Err(io::Error::new(io::ErrorKind::TimedOut, "no KCP conversation id from the server"))
}

/// Where a session's segments go: the shared socket, without waiting (a datagram the socket
/// cannot take now is lost, and KCP sends it again).
struct Output {
    udp: Arc<UdpSocket>,
    peer: SocketAddr,
}

impl io::Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.udp.try_send_to(buf, self.peer) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(buf.len()),
            Err(e) => Err(e),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct State {
    kcp: kcp::Kcp<Output>,
    /// What a read had no room for (a segment is read whole), served first next time.
    leftover: Vec<u8>,
    reader: Option<Waker>,
    writer: Option<Waker>,
    closed: bool,
    last_input: Instant,
}

/// One session's state, shared by its stream, its clock task and the listener.
struct Conn {
    state: Mutex<State>,
    /// Wakes the clock task early: input arrived or data was written.
    tick: Notify,
    epoch: Instant,
}

impl Conn {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now_ms(&self) -> u32 {
        self.epoch.elapsed().as_millis() as u32
    }

    /// A segment from the peer.
    fn input(&self, packet: &[u8]) {
        let mut st = self.lock();
        if st.closed {
            return;
        }
        st.last_input = Instant::now();
        if st.kcp.input(packet).is_err() {
            // A malformed segment: dropped, as UDP noise; the session's budgets still apply
            // to what it carries when whole.
            return;
        }
        // Acknowledge at once rather than at the next tick: the peer's window moves sooner.
        let _ = st.kcp.flush_ack();
        if let Some(w) = st.reader.take() {
            w.wake();
        }
        drop(st);
        self.tick.notify_one();
    }

    fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        for w in [st.reader.take(), st.writer.take()].into_iter().flatten() {
            w.wake();
        }
        drop(st);
        self.tick.notify_one();
    }
}

/// A KCP session as a byte stream, served by the gate like a TCP connection.
pub(crate) struct KcpStream {
    conn: Arc<Conn>,
}

impl Drop for KcpStream {
    fn drop(&mut self) {
        self.conn.close();
    }
}

impl AsyncRead for KcpStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut st = self.conn.lock();
        if st.closed {
            return Poll::Ready(Ok(()));
        }
        if !st.leftover.is_empty() {
            let n = st.leftover.len().min(buf.remaining());
            buf.put_slice(&st.leftover[..n]);
            st.leftover.drain(..n);
            return Poll::Ready(Ok(()));
        }
        let got = loop {
            match st.kcp.recv(buf.initialize_unfilled()) {
                // An empty segment: a read of 0 bytes would mean the end of the stream.
                Ok(0) => continue,
                other => break other,
            }
        };
        match got {
            Ok(n) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Err(kcp::Error::UserBufTooSmall) => {
                let mut whole = vec![0u8; st.kcp.peeksize().unwrap_or(0)];
                let got = st.kcp.recv(&mut whole).map_err(io::Error::other)?;
                whole.truncate(got);
                let n = whole.len().min(buf.remaining());
                buf.put_slice(&whole[..n]);
                st.leftover = whole.split_off(n);
                Poll::Ready(Ok(()))
            }
            Err(kcp::Error::RecvQueueEmpty | kcp::Error::ExpectingFragment) => {
                st.reader = Some(cx.waker().clone());
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(io::Error::other(e))),
        }
    }
}

impl AsyncWrite for KcpStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut st = self.conn.lock();
        if st.closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        // Back-pressure: more than two windows waiting to go out, and the writer waits.
        if st.kcp.wait_snd() >= 2 * usize::from(st.kcp.snd_wnd()) {
            st.writer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        // Whole MTU-sized pieces: KCP refuses a single send over its window of fragments.
        let n = buf.len().min(st.kcp.mss() * 64);
        match st.kcp.send(&buf[..n]) {
            Ok(n) => {
                let _ = st.kcp.flush();
                drop(st);
                self.conn.tick.notify_one();
                Poll::Ready(Ok(n))
            }
            Err(e) => Poll::Ready(Err(io::Error::other(e))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.conn.close();
        Poll::Ready(Ok(()))
    }
}

/// Drives one session's clock until it closes or goes silent for `expire`; then tells the
/// listener its address is free. It ticks at KCP's pace only while data waits to be sent or
/// acknowledged; an idle session sleeps until input, a write or its expiry.
async fn clock(conn: Arc<Conn>, peer: SocketAddr, expire: Duration, closed: mpsc::UnboundedSender<SocketAddr>) {
    loop {
        let next = {
            let mut st = conn.lock();
            if !st.closed && st.last_input.elapsed() >= expire {
                st.closed = true;
                for w in [st.reader.take(), st.writer.take()].into_iter().flatten() {
                    w.wake();
                }
            }
            if st.closed {
                break;
            }
            let now = conn.now_ms();
            let _ = st.kcp.update(now);
            // Room in the send window again: a waiting writer may go on.
            if st.kcp.wait_snd() < 2 * usize::from(st.kcp.snd_wnd())
                && let Some(w) = st.writer.take()
            {
                w.wake();
            }
            if st.kcp.wait_snd() == 0 {
                // Nothing in flight: no timer until input or a write wakes the task, or the
                // session would expire. Idle sessions cost no CPU (KCP's window probes are
                // only needed while data waits).
                let left = expire.saturating_sub(st.last_input.elapsed());
                left.as_millis().min(u128::from(u32::MAX)) as u32
            } else {
                st.kcp.check(now).wrapping_sub(now).min(1000)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(u64::from(next.max(1)))) => {}
            () = conn.tick.notified() => {}
        }
    }
    let _ = closed.send(peer);
}

/// The settings a session starts with (`gate.kcp.*`).
fn engine(k: &crate::config::KcpConfig, conv: u32, out: Output) -> kcp::Kcp<Output> {
    let mut e = kcp::Kcp::new_stream(conv, out);
    e.set_nodelay(k.nodelay, k.interval_ms as i32, k.resend as i32, k.no_congestion);
    e.set_wndsize(k.send_window, k.recv_window);
    let _ = e.set_mtu(k.mtu);
    e
}

/// A new session, handed to the gate with what admitted it.
pub(crate) struct Accepted<P> {
    pub stream: KcpStream,
    pub peer: SocketAddr,
    pub permit: P,
}

/// Reads the socket until `stop`: answers hellos, feeds segments to their sessions, and
/// makes a session for a datagram with a valid conversation id whose [`opening`] bytes
/// `opens` accepts (a whole first frame the gate routes), when `admit` lets it in (`admit`
/// returns its permit, or None to refuse: it counts and logs). New sessions go to
/// `accepted`.
pub(crate) async fn listen<P>(
    udp: Arc<UdpSocket>,
    cfg: crate::config::KcpConfig,
    opens: impl Fn(&[u8]) -> bool,
    mut admit: impl FnMut(SocketAddr) -> Option<P>,
    accepted: mpsc::Sender<Accepted<P>>,
    stop: impl std::future::Future<Output = ()>,
) {
    let cookies = Cookies::new();
    let expire = Duration::from_secs(cfg.session_expire_secs.max(1));
    let mut sessions: HashMap<SocketAddr, (u32, Arc<Conn>)> = HashMap::new();
    let (closed_tx, mut closed_rx) = mpsc::unbounded_channel();
    let mut buf = vec![0u8; 64 * 1024];
    let mut first = Vec::new();
    tokio::pin!(stop);
    loop {
        let (n, peer) = tokio::select! {
            () = &mut stop => break,
            Some(peer) = closed_rx.recv() => {
                // Only if it is still the session that closed (not a newer one at that address).
                if sessions.get(&peer).is_some_and(|(_, c)| c.lock().closed) {
                    sessions.remove(&peer);
                }
                continue;
            }
            r = udp.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "kcp socket read failed");
                    continue;
                }
            },
        };
        let packet = &buf[..n];
        match classify(packet) {
            Datagram::Hello => {
                if cfg.cookie {
                    let _ = udp.try_send_to(&conv_reply(cookies.issue(peer)), peer);
                }
            }
            Datagram::Junk => metrics::counter!(crate::metrics::KCP_DROPPED, "reason" => "junk").increment(1),
            Datagram::Segment { conv } => {
                if let Some((c, conn)) = sessions.get(&peer) {
                    if *c == conv {
                        conn.input(packet);
                    }
                    continue;
                }
                if cfg.cookie && !cookies.valid(peer, conv) {
                    metrics::counter!(crate::metrics::KCP_DROPPED, "reason" => "no_cookie").increment(1);
                    continue;
                }
                opening(packet, conv, &mut first);
                if !opens(&first) {
                    metrics::counter!(crate::metrics::KCP_DROPPED, "reason" => "no_first_frame").increment(1);
                    continue;
                }
                let Some(permit) = admit(peer) else { continue };
                let out = Output { udp: udp.clone(), peer };
                let conn = Arc::new(Conn {
                    state: Mutex::new(State {
                        kcp: engine(&cfg, conv, out),
                        leftover: Vec::new(),
                        reader: None,
                        writer: None,
                        closed: false,
                        last_input: Instant::now(),
                    }),
                    tick: Notify::new(),
                    epoch: Instant::now(),
                });
                conn.input(packet);
                tokio::spawn(clock(conn.clone(), peer, expire, closed_tx.clone()));
                sessions.insert(peer, (conv, conn.clone()));
                if accepted.try_send(Accepted { stream: KcpStream { conn }, peer, permit }).is_err() {
                    // The gate is not taking sessions (shutting down): dropping the stream
                    // closes it, and its clock frees the address.
                    continue;
                }
            }
        }
    }
    for (_, conn) in sessions.values() {
        conn.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hellos_segments_and_junk_are_told_apart() {
        let mut hello = [0u8; HELLO_LEN];
        hello[..8].copy_from_slice(HELLO_MAGIC);
        assert_eq!(classify(&hello), Datagram::Hello);
        assert_eq!(classify(&hello[..20]), Datagram::Junk);
        let mut seg = [0u8; 24];
        seg[..4].copy_from_slice(&7u32.to_le_bytes());
        assert_eq!(classify(&seg), Datagram::Segment { conv: 7 });
        assert_eq!(classify(&[1, 2, 3]), Datagram::Junk);
    }

    /// A KCP segment of `conv`: command, number and data.
    fn segment(conv: u32, cmd: u8, sn: u32, data: &[u8]) -> Vec<u8> {
        let mut p = conv.to_le_bytes().to_vec();
        p.extend_from_slice(&[cmd, 0]);
        p.extend_from_slice(&32u16.to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes()); // ts
        p.extend_from_slice(&sn.to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes()); // una
        p.extend_from_slice(&(data.len() as u32).to_le_bytes());
        p.extend_from_slice(data);
        p
    }

    #[test]
    fn the_opening_is_the_stream_from_segment_zero_in_order() {
        let mut out = Vec::new();
        let one = [segment(9, CMD_PUSH, 0, b"abc"), segment(9, CMD_PUSH, 1, b"de")].concat();
        opening(&one, 9, &mut out);
        assert_eq!(out, b"abcde");
        // An ack (cmd 82) between them is skipped; segment 2 before 1 ends the sequence.
        let mixed = [segment(9, 82, 0, b""), segment(9, CMD_PUSH, 0, b"ab"), segment(9, CMD_PUSH, 2, b"x")].concat();
        opening(&mixed, 9, &mut out);
        assert_eq!(out, b"ab");
        opening(&segment(9, CMD_PUSH, 1, b"late"), 9, &mut out);
        assert!(out.is_empty(), "no segment 0");
        opening(&segment(8, CMD_PUSH, 0, b"other"), 9, &mut out);
        assert!(out.is_empty(), "another conversation");
        let mut cut = segment(9, CMD_PUSH, 0, b"abcdef");
        cut.truncate(26);
        opening(&cut, 9, &mut out);
        assert!(out.is_empty(), "a segment shorter than its length says");
    }

    #[test]
    fn a_conversation_id_belongs_to_one_address_and_lasts_about_two_minutes() {
        let c = Cookies::new();
        let a: SocketAddr = "10.0.0.1:4000".parse().expect("addr");
        let b: SocketAddr = "10.0.0.1:4001".parse().expect("addr");
        let conv = c.issue(a);
        assert!(c.valid(a, conv));
        assert!(!c.valid(b, conv), "another port");
        assert!(!c.valid(a, conv ^ 1));
        let minute = Cookies::minute();
        assert!(c.valid(a, c.at(a, minute.saturating_sub(1))), "last minute's");
        assert!(!c.valid(a, c.at(a, minute.saturating_sub(2))), "older");
        assert!(!Cookies::new().valid(a, conv), "another server's key");
    }
}
