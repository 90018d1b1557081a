//! The Kafka log sink: shipped log lines as records on one topic (go-game's `gogame-log`),
//! the JSON line as the value and no key. It lives here rather than beside the
//! Elasticsearch sink in the toolkit because this crate already builds rdkafka.
//!
//! Failing fast is the point: a record not acknowledged within [`MESSAGE_TIMEOUT`] fails
//! its batch, and the toolkit's sender retries with its own backoff while holding a bounded
//! queue, instead of librdkafka buffering without end while the broker is away. librdkafka's
//! own complaints (one per reconnect attempt when the broker is down) go to this module's log
//! target, at most one warning per [`WARN_EVERY`], and are never shipped themselves.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rsgame_kit::config::{LogConfig, LogKafkaConfig};
use rsgame_kit::telemetry::ship::{Line, LogSink, SendFuture, SinkError};

use crate::db::StoreError;

/// How long librdkafka may try to deliver one record before its batch fails.
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long creating the topic may take (once, on the first send).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(3);
/// Shortest interval between two warnings from librdkafka about the log producer.
pub const WARN_EVERY: Duration = Duration::from_secs(30);

/// The Kafka sinks `log.kafka.*` asks for: one when `log.kafka.brokers` is set, none
/// otherwise. What the binary hands to `rsgame_kit::telemetry::init_with_sinks`.
pub fn sinks(cfg: &LogConfig) -> Result<Vec<Arc<dyn LogSink>>, StoreError> {
    if cfg.kafka.brokers.trim().is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![Arc::new(KafkaLogSink::new(&cfg.kafka)?)])
}

/// Ships log lines to a Kafka topic.
pub struct KafkaLogSink {
    producer: FutureProducer<QuietContext>,
    admin: AdminClient<QuietContext>,
    topic: String,
    /// The topic is known to exist (created, or found).
    topic_ready: AtomicBool,
}

impl KafkaLogSink {
    /// A sink for `cfg.brokers` and `cfg.topic`. Connects in the background: a broker that
    /// is down does not stop start-up, its sends fail and are retried.
    pub fn new(cfg: &LogKafkaConfig) -> Result<KafkaLogSink, StoreError> {
        let brokers = cfg.brokers.trim();
        if cfg.topic.is_empty() {
            return Err(StoreError::Config("log.kafka.topic: must not be empty".into()));
        }
        let bad = |e: KafkaError| StoreError::Config(format!("log.kafka.brokers {brokers:?}: {e}"));
        let producer: FutureProducer<QuietContext> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            // A log line is worth one acknowledgement, not every replica's.
            .set("acks", "1")
            .set("message.timeout.ms", MESSAGE_TIMEOUT.as_millis().to_string())
            .set("linger.ms", "5")
            .set("retry.backoff.ms", "100")
            .set("reconnect.backoff.max.ms", "2000")
            // Brokers close idle connections; that is not worth a log line.
            .set("log.connection.close", "false")
            .set_log_level(RDKafkaLogLevel::Warning)
            .create_with_context(QuietContext::default())
            .map_err(bad)?;
        let admin: AdminClient<QuietContext> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("log.connection.close", "false")
            .set_log_level(RDKafkaLogLevel::Warning)
            .create_with_context(QuietContext::default())
            .map_err(bad)?;
        Ok(KafkaLogSink { producer, admin, topic: cfg.topic.clone(), topic_ready: AtomicBool::new(false) })
    }

    /// Creates the topic unless it exists, until that has worked once. Best effort: without
    /// the right to create topics the sends themselves say whether the topic is there.
    async fn ensure_topic(&self) {
        if self.topic_ready.load(Ordering::Relaxed) {
            return;
        }
        // Partitions and replication are the broker's defaults (-1), as an operator's own
        // `kafka-topics --create` without them would give.
        let topic = NewTopic::new(&self.topic, -1, TopicReplication::Fixed(-1));
        let opts = AdminOptions::new().request_timeout(Some(ADMIN_TIMEOUT)).operation_timeout(Some(ADMIN_TIMEOUT));
        match self.admin.create_topics([&topic], &opts).await {
            Ok(results) => {
                let ok = results.iter().all(|r| matches!(r, Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists))));
                if ok {
                    self.topic_ready.store(true, Ordering::Relaxed);
                } else {
                    tracing::debug!(topic = %self.topic, ?results, "could not create the log topic");
                }
            }
            Err(e) => tracing::debug!(topic = %self.topic, error = %e, "could not create the log topic"),
        }
    }

    async fn produce(&self, lines: &[Line]) -> Result<(), SinkError> {
        self.ensure_topic().await;
        let mut retry = Vec::new();
        let mut rejected = 0;
        let mut reason: Option<String> = None;
        let mut sort = |i: usize, e: &KafkaError| {
            reason.get_or_insert_with(|| format!("topic {}: {e}", self.topic));
            if refused_for_good(e) {
                rejected += 1;
            } else {
                retry.push(i);
            }
        };
        // Everything is queued first and awaited together: librdkafka batches the records,
        // and the batch takes one round trip rather than one per line.
        let mut pending = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            let record = FutureRecord::<(), [u8]>::to(&self.topic).payload(line.as_bytes());
            match self.producer.send_result(record) {
                Ok(delivery) => pending.push((i, delivery)),
                Err((e, _)) => sort(i, &e),
            }
        }
        let results =
            futures_util::future::join_all(pending.into_iter().map(|(i, d)| async move { (i, d.await) })).await;
        for (i, result) in results {
            match result {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => sort(i, &e),
                // The producer dropped the record without an answer: send it again.
                Err(_) => sort(i, &KafkaError::Canceled),
            }
        }
        let Some(reason) = reason else { return Ok(()) };
        if rejected == 0 && retry.len() == lines.len() {
            Err(SinkError::Failed(reason))
        } else {
            retry.sort_unstable();
            Err(SinkError::Partial { reason, retry, rejected })
        }
    }
}

/// Errors that sending the same record again would meet again.
fn refused_for_good(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}

impl LogSink for KafkaLogSink {
    fn name(&self) -> &str {
        "kafka"
    }

    fn send<'a>(&'a self, lines: &'a [Line]) -> SendFuture<'a> {
        Box::pin(self.produce(lines))
    }

    fn log_targets(&self) -> Vec<String> {
        vec![module_path!().to_owned()]
    }
}

/// librdkafka's log and error callbacks for the log producer: under this module's target
/// (left out of shipping), warnings at most once per [`WARN_EVERY`], the rest at debug. The
/// default context logs every failed reconnect as an error, under rdkafka's targets.
#[derive(Default)]
struct QuietContext {
    last_warn: Mutex<Option<Instant>>,
}

impl QuietContext {
    /// Whether a warning may be logged now (and if so, counts it as logged).
    fn may_warn(&self) -> bool {
        let Ok(mut last) = self.last_warn.lock() else { return false };
        if last.is_some_and(|t| t.elapsed() < WARN_EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        let serious = matches!(
            level,
            RDKafkaLogLevel::Emerg
                | RDKafkaLogLevel::Alert
                | RDKafkaLogLevel::Critical
                | RDKafkaLogLevel::Error
                | RDKafkaLogLevel::Warning
        );
        if serious && self.may_warn() {
            tracing::warn!(facility = fac, "kafka log producer: {message}");
        } else {
            tracing::debug!(facility = fac, "kafka log producer: {message}");
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if self.may_warn() {
            tracing::warn!(error = %error, "kafka log producer: {reason}");
        } else {
            tracing::debug!(error = %error, "kafka log producer: {reason}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unsendable_records_are_refused_for_good() {
        assert!(refused_for_good(&KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)));
        assert!(!refused_for_good(&KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)));
        assert!(!refused_for_good(&KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)));
        assert!(!refused_for_good(&KafkaError::Canceled));
    }

    #[test]
    fn no_brokers_no_sink() {
        let cfg = LogConfig::default();
        assert!(sinks(&cfg).expect("nothing to build").is_empty());
    }

    #[test]
    fn warnings_are_rate_limited() {
        let c = QuietContext::default();
        assert!(c.may_warn());
        assert!(!c.may_warn());
    }
}
