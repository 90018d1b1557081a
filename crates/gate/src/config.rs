//! The gate's configuration section: `gate.*` (listeners, codecs, limits) and `gate.kcp.*`.
//!
//! A process puts [`GateConfig`] at `gate` in the tree it loads with `rsgame_kit::config`;
//! the loader calls [`Section::check`], so a value the gate cannot run with stops start-up
//! with the key's name.

use rsgame_kit::config::{Invalid, Section};
use serde::{Deserialize, Serialize};

/// `gate.*` — long-lived game connections (zinx's role).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GateConfig {
    /// Address the TCP and KCP listeners bind.
    pub host: String,
    /// Accept raw TCP connections.
    pub tcp_enabled: bool,
    /// Raw TCP game connections (go-game's port).
    pub tcp_port: u16,
    /// Body codec on TCP: `protobuf` or `json`.
    pub tcp_codec: BodyCodec,
    /// Accept WebSocket connections on the HTTP listener at `/ws` and `/wss`.
    pub ws_enabled: bool,
    /// Body codec of binary WebSocket frames, unless the client asks for another with
    /// `?codec=`; text messages are always JSON.
    pub ws_codec: BodyCodec,
    /// Accept KCP connections (reliable UDP).
    pub kcp_enabled: bool,
    /// KCP game connections over UDP (zinx's port).
    pub kcp_port: u16,
    /// Body codec on KCP.
    pub kcp_codec: BodyCodec,
    /// KCP tuning; defaults are zinx's "turbo" settings.
    pub kcp: KcpConfig,
    /// `zinx`: id u32 BE, length u32 BE (zinx ≥ 1.2, go-game). `legacy`: length u32 LE, id u32 LE.
    pub frame_layout: FrameLayoutName,
    /// Largest body accepted, bytes. A larger frame closes the connection before its body is read.
    pub max_body: u32,
    /// A session with no inbound traffic for this long is closed (go-game: 20 s).
    pub heartbeat_timeout_secs: u64,
    /// A connection that has not sent one whole frame within this time is closed (slowloris).
    pub first_frame_timeout_secs: u64,
    /// A session that has not logged in (nothing bound a user to it) within this time is
    /// closed, whatever it sends: a stranger cannot keep one open with pings. 0 = no limit
    /// (a gate whose protocol has no login).
    pub login_timeout_secs: u64,
    /// Frames queued for one session; when full the session is closed as a slow consumer.
    pub outbound_queue: usize,
    /// Most TCP, TLS and WebSocket connections at once; 0 = no limit. KCP sessions have
    /// their own (`gate.kcp.max_sessions`): UDP sources can be forged.
    pub max_connections: usize,
    /// Most TCP, TLS and WebSocket connections from one IP address; 0 = no limit.
    pub max_connections_per_ip: usize,
    /// Messages per second one session may send, sustained.
    pub rate_per_sec: u32,
    /// Messages one session may send in a burst above the rate.
    pub rate_burst: u32,
    /// Bad messages (unknown id, undecodable body) a session may send before it is closed.
    pub max_bad_messages: u32,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            host: "0.0.0.0".into(),
            tcp_enabled: true,
            tcp_port: 8999,
            tcp_codec: BodyCodec::Protobuf,
            ws_enabled: true,
            ws_codec: BodyCodec::Protobuf,
            kcp_enabled: true,
            kcp_port: 9001,
            kcp_codec: BodyCodec::Protobuf,
            kcp: KcpConfig::default(),
            frame_layout: FrameLayoutName::Zinx,
            max_body: 64 * 1024,
            heartbeat_timeout_secs: 20,
            first_frame_timeout_secs: 10,
            login_timeout_secs: 15,
            outbound_queue: 256,
            max_connections: 100_000,
            max_connections_per_ip: 1000,
            rate_per_sec: 200,
            rate_burst: 400,
            max_bad_messages: 10,
        }
    }
}

/// How a message body is encoded.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum BodyCodec {
    /// Protocol Buffers (go-game's default).
    #[default]
    Protobuf,
    /// JSON with the protobuf field names in camelCase.
    Json,
}

/// Which of zinx's frame headers is on the wire.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum FrameLayoutName {
    /// id u32 big-endian, then body length u32 big-endian (zinx ≥ 1.2).
    #[default]
    Zinx,
    /// body length u32 little-endian, then id u32 little-endian (older zinx).
    Legacy,
}

/// `gate.kcp.*`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KcpConfig {
    /// No-delay mode: faster retransmission.
    pub nodelay: bool,
    /// Internal update interval, milliseconds.
    pub interval_ms: u32,
    /// Fast resend after this many duplicate ACKs (0 = off).
    pub resend: u32,
    /// Turn congestion control off.
    pub no_congestion: bool,
    /// Send window, packets.
    pub send_window: u16,
    /// Receive window, packets.
    pub recv_window: u16,
    /// Largest UDP payload, bytes (64–1500).
    pub mtu: usize,
    /// A KCP session with no packets for this long is dropped by the transport.
    pub session_expire_secs: u64,
    /// Sessions only for clients that asked for a conversation id first (a stateless
    /// cookie: forged UDP sources cannot open sessions; docs/protocol.md). Off: any
    /// conversation id opens one, for clients that cannot ask (kcp-go, zinx).
    pub cookie: bool,
    /// Most KCP sessions at once; 0 = no limit. Counted apart from TCP and WebSocket: a
    /// flood of forged UDP sources fills this one, never the others.
    pub max_sessions: usize,
    /// Most KCP sessions from one IP address; 0 = no limit.
    pub max_sessions_per_ip: usize,
}

impl Default for KcpConfig {
    fn default() -> Self {
        // zinx's "turbo" profile: nodelay 1, interval 10, resend 2, nc 1, windows 32/32.
        KcpConfig {
            nodelay: true,
            interval_ms: 10,
            resend: 2,
            no_congestion: true,
            send_window: 32,
            recv_window: 32,
            mtu: 1400,
            session_expire_secs: 90,
            cookie: true,
            max_sessions: 10_000,
            max_sessions_per_ip: 64,
        }
    }
}

impl Section for GateConfig {
    fn check(&self) -> Result<(), Invalid> {
        if self.max_body == 0 || self.max_body > 64 * 1024 * 1024 {
            return Err(Invalid::new("max_body", "must be between 1 and 67108864 bytes"));
        }
        for (key, value) in [
            ("heartbeat_timeout_secs", self.heartbeat_timeout_secs),
            ("first_frame_timeout_secs", self.first_frame_timeout_secs),
            ("outbound_queue", self.outbound_queue as u64),
            ("rate_per_sec", u64::from(self.rate_per_sec)),
            ("rate_burst", u64::from(self.rate_burst)),
        ] {
            if value == 0 {
                return Err(Invalid::new(key, "must be at least 1"));
            }
        }
        self.kcp.check().map_err(|e| e.under("kcp"))
    }
}

impl Section for KcpConfig {
    fn check(&self) -> Result<(), Invalid> {
        if !(64..=1500).contains(&self.mtu) {
            return Err(Invalid::new("mtu", format!("must be between 64 and 1500, got {}", self.mtu)));
        }
        if self.interval_ms == 0 || self.interval_ms > 5000 {
            return Err(Invalid::new("interval_ms", "must be between 1 and 5000"));
        }
        if self.send_window == 0 || self.recv_window == 0 {
            return Err(Invalid::new("send_window", "windows must be at least 1"));
        }
        Ok(())
    }
}
