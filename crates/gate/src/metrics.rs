//! The gate's Prometheus metrics. Hot-path handles (frames and bytes) are looked up once per
//! connection, so counting a frame is one atomic add.

use rsgame_kit::telemetry::metrics::Def;

use crate::session::{CloseReason, Transport};

/// Open connections, by transport.
pub const CONNECTIONS: &str = "gate_connections";
/// Connections accepted, by transport.
pub const ACCEPTED: &str = "gate_connections_accepted_total";
/// Frames received, by transport.
pub const FRAMES_IN: &str = "gate_frames_in_total";
/// Frames sent, by transport.
pub const FRAMES_OUT: &str = "gate_frames_out_total";
/// Bytes received, by transport.
pub const BYTES_IN: &str = "gate_bytes_in_total";
/// Bytes sent, by transport.
pub const BYTES_OUT: &str = "gate_bytes_out_total";
/// Handler latency, by message id.
pub const HANDLER_SECONDS: &str = "gate_handler_duration_seconds";
/// Sessions closed, by reason.
pub const CLOSES: &str = "gate_closes_total";
/// Sessions closed because their outbound queue was full.
pub const SLOW_CONSUMERS: &str = "gate_slow_consumer_drops_total";
/// Messages with an id nobody handles.
pub const UNKNOWN_IDS: &str = "gate_unknown_message_ids_total";
/// Messages whose body did not decode.
pub const BAD_BODIES: &str = "gate_bad_bodies_total";
/// KCP datagrams dropped before they reached a session, by reason.
pub const KCP_DROPPED: &str = "gate_kcp_dropped_total";
/// The help line of [`HANDLER_SECONDS`], a fast histogram registered per route.
pub(crate) const HANDLER_HELP: &str =
    "Message handler latency, by message id: from the frame's arrival to the handler's return.";

/// The metrics the gate records.
pub const METRICS: &[Def] = &[
    Def::gauge(CONNECTIONS, "Open game connections, by transport."),
    Def::counter(ACCEPTED, "Game connections accepted, by transport."),
    Def::counter(FRAMES_IN, "Frames received, by transport."),
    Def::counter(FRAMES_OUT, "Frames sent, by transport."),
    Def::counter(BYTES_IN, "Bytes received, by transport."),
    Def::counter(BYTES_OUT, "Bytes sent, by transport."),
    Def::histogram(HANDLER_SECONDS, HANDLER_HELP),
    Def::counter(CLOSES, "Sessions closed, by reason."),
    Def::counter(SLOW_CONSUMERS, "Sessions closed because their outbound queue was full."),
    Def::counter(UNKNOWN_IDS, "Messages with an id that has no handler."),
    Def::counter(BAD_BODIES, "Messages whose body did not decode."),
    Def::counter(KCP_DROPPED, "KCP datagrams dropped before a session (junk, no cookie, no first frame), by reason."),
];

/// Describes the metrics once, for the HELP lines.
pub fn describe() {
    rsgame_kit::telemetry::metrics::describe(METRICS);
}

/// Per-connection counts, added to the shared counters in batches: a shared counter is
/// touched by every connection, and four atomic adds per message showed in profiles.
pub(crate) struct ConnMetrics {
    frames_in: metrics::Counter,
    bytes_in: metrics::Counter,
    frames_out: metrics::Counter,
    bytes_out: metrics::Counter,
    pending: [u64; 4],
}

impl ConnMetrics {
    pub fn new(t: Transport) -> Self {
        let t = t.as_str();
        ConnMetrics {
            frames_in: metrics::counter!(FRAMES_IN, "transport" => t),
            bytes_in: metrics::counter!(BYTES_IN, "transport" => t),
            frames_out: metrics::counter!(FRAMES_OUT, "transport" => t),
            bytes_out: metrics::counter!(BYTES_OUT, "transport" => t),
            pending: [0; 4],
        }
    }

    pub fn received(&mut self, frames: u64, bytes: u64) {
        self.pending[0] += frames;
        self.pending[1] += bytes;
    }

    pub fn sent(&mut self, frames: u64, bytes: u64) {
        self.pending[2] += frames;
        self.pending[3] += bytes;
        // Every 64 frames out; and on the heartbeat timer and at close (`flush`).
        if self.pending[2] >= 64 {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        let [fi, bi, fo, bo] = std::mem::take(&mut self.pending);
        if fi + bi > 0 {
            self.frames_in.increment(fi);
            self.bytes_in.increment(bi);
        }
        if fo + bo > 0 {
            self.frames_out.increment(fo);
            self.bytes_out.increment(bo);
        }
    }
}

impl Drop for ConnMetrics {
    fn drop(&mut self) {
        self.flush();
    }
}

pub(crate) fn opened(t: Transport) {
    metrics::counter!(ACCEPTED, "transport" => t.as_str()).increment(1);
    metrics::gauge!(CONNECTIONS, "transport" => t.as_str()).increment(1.0);
}

pub(crate) fn closed(t: Transport, reason: CloseReason) {
    metrics::gauge!(CONNECTIONS, "transport" => t.as_str()).decrement(1.0);
    metrics::counter!(CLOSES, "reason" => reason.as_str()).increment(1);
}

pub(crate) fn refused(reason: CloseReason) {
    metrics::counter!(CLOSES, "reason" => reason.as_str()).increment(1);
}

pub(crate) fn slow_consumer() {
    metrics::counter!(SLOW_CONSUMERS).increment(1);
}

pub(crate) fn unknown_id() {
    metrics::counter!(UNKNOWN_IDS).increment(1);
}

pub(crate) fn bad_body() {
    metrics::counter!(BAD_BODIES).increment(1);
}
