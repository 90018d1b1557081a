//! The bus on Kafka (rdkafka): one Kafka topic per bus topic, one Kafka consumer group per bus
//! group. Records are keyed by topic, so a topic keeps its order as on the other backends.
//! Offsets are committed after handling: a member commits only the contiguous run of
//! acknowledged offsets, so a message acknowledged out of order never lets an earlier,
//! unhandled one be skipped after a crash (at-least-once).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::{Ack, BusOptions, Delivery};
use crate::db::StoreError;

/// Blocking metadata and offset calls made while joining a group.
const META_TIMEOUT: Duration = Duration::from_secs(5);

/// Kafka names allow letters, digits, `.`, `_` and `-`, at most 249 of them.
pub(super) fn kafka_name(s: &str) -> String {
    let mut n: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect();
    n.truncate(249);
    n
}

fn kerr(what: &str, e: KafkaError) -> StoreError {
    StoreError::Cache(format!("bus: {what}: {e}"))
}

pub(super) struct Kafka {
    brokers: String,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    /// Topics known to exist, so only the first publish or subscribe asks the broker.
    known: Mutex<HashSet<String>>,
    opts: BusOptions,
}

impl Kafka {
    /// Connects to `brokers` (`host:port[,host:port…]`) and checks that one answers.
    pub(super) async fn connect(brokers: &str, opts: BusOptions) -> Result<Kafka, StoreError> {
        let timeout_ms = opts.publish_timeout.as_millis().max(1).to_string();
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            // Acknowledged only once every in-sync replica has it.
            .set("acks", "all")
            // librdkafka retries with backoff inside this budget; past it the publish fails.
            .set("message.timeout.ms", &timeout_ms)
            .set("retry.backoff.ms", "100")
            .set("retry.backoff.max.ms", "1000")
            .set("linger.ms", "1")
            .set("reconnect.backoff.max.ms", "2000")
            .create()
            .map_err(|e| StoreError::Config(format!("bus url kafka://{brokers}: {e}")))?;
        let admin: AdminClient<DefaultClientContext> =
            ClientConfig::new()
                .set("bootstrap.servers", brokers)
                .create()
                .map_err(|e| StoreError::Config(format!("bus url kafka://{brokers}: {e}")))?;
        let k = Kafka { brokers: brokers.to_owned(), producer, admin, known: Mutex::default(), opts };
        k.ping().await?;
        Ok(k)
    }

    /// Whether a broker answers a metadata request.
    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        let p = self.producer.clone();
        tokio::task::spawn_blocking(move || p.client().fetch_metadata(None, Duration::from_secs(2)).map(|_| ()))
            .await
            .map_err(|e| StoreError::Cache(format!("bus: {e}")))?
            .map_err(|e| kerr("no Kafka broker answers", e))
    }

    /// Creates `name` with one partition unless it exists. One partition keeps the topic's
    /// order, as on the other backends; replication is the broker's default.
    async fn ensure_topic(&self, name: &str) -> Result<(), StoreError> {
        if self.known.lock().map(|k| k.contains(name)).unwrap_or(false) {
            return Ok(());
        }
        let topic = NewTopic::new(name, 1, TopicReplication::Fixed(1));
        let opts = AdminOptions::new().request_timeout(Some(self.opts.publish_timeout));
        let results = self.admin.create_topics([&topic], &opts).await.map_err(|e| kerr("creating a topic", e))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) => return Err(StoreError::Cache(format!("bus: creating topic {t}: {code}"))),
            }
        }
        if let Ok(mut k) = self.known.lock() {
            k.insert(name.to_owned());
        }
        Ok(())
    }

    /// Publishes and waits for the broker's acknowledgement; librdkafka retries with backoff
    /// for up to `publish_timeout`, then the publish fails with the broker's error.
    pub(super) async fn publish(&self, name: &str, payload: &[u8]) -> Result<(), StoreError> {
        self.ensure_topic(name).await?;
        let record = FutureRecord::to(name).key(name).payload(payload);
        match self.producer.send(record, Timeout::After(self.opts.publish_timeout)).await {
            Ok(_) => Ok(()),
            Err((e, _)) => {
                metrics::counter!(crate::metrics::BUS_PUBLISH_FAILURES, "backend" => "kafka").increment(1);
                tracing::warn!(topic = name, error = %e, "bus publish failed");
                Err(kerr(&format!("publish to {name} failed"), e))
            }
        }
    }

    /// Joins Kafka group `group` on topic `name`; deliveries arrive on the returned channel.
    pub(super) async fn subscribe(
        &self,
        name: &str,
        group: &str,
        topic: &str,
    ) -> Result<mpsc::Receiver<Delivery>, StoreError> {
        self.ensure_topic(name).await?;
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            // A dead member's partitions move to a live one after this long.
            // (Brokers accept 6 s to 5 min.) Joining a group also waits up to half of it on
            // some brokers (tansu), so short is also quick to start.
            .set("session.timeout.ms", self.opts.reclaim_after.as_millis().clamp(6_000, 300_000).to_string())
            .set("heartbeat.interval.ms", "1000")
            .set("reconnect.backoff.max.ms", "2000")
            .create()
            .map_err(|e| kerr("creating a consumer", e))?;
        let consumer = Arc::new(consumer);
        let (c, n) = (consumer.clone(), name.to_owned());
        match tokio::task::spawn_blocking(move || start_new_group_at_end(&c, &n)).await {
            Ok(Ok(())) => {}
            // Not fatal: the group then starts from the earliest kept message.
            Ok(Err(e)) => tracing::warn!(topic = name, group, error = %e, "could not start a new group at the end"),
            Err(e) => return Err(StoreError::Cache(format!("bus: {e}"))),
        }
        consumer.subscribe(&[name]).map_err(|e| kerr("subscribing", e))?;
        let (tx, rx) = mpsc::channel(self.opts.max_in_flight.max(1));
        tokio::spawn(member(consumer, name.to_owned(), topic.to_owned(), tx));
        Ok(rx)
    }
}

/// A group created now sees messages published from now on, as on the other backends: a group
/// without committed offsets gets the current end of each partition committed before it
/// joins (Kafka's own `latest` would resolve the end only after the join, losing what is
/// published in between).
fn start_new_group_at_end(c: &StreamConsumer, topic: &str) -> Result<(), KafkaError> {
    let md = c.fetch_metadata(Some(topic), META_TIMEOUT)?;
    let mut all = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            all.add_partition(topic, p.id());
        }
    }
    let committed = c.committed_offsets(all, META_TIMEOUT)?;
    let mut start = TopicPartitionList::new();
    for e in committed.elements() {
        if matches!(e.offset(), Offset::Invalid) {
            let (_, high) = c.fetch_watermarks(topic, e.partition(), META_TIMEOUT)?;
            start.add_partition_offset(topic, e.partition(), Offset::Offset(high))?;
        }
    }
    if start.count() > 0 {
        c.commit(&start, CommitMode::Sync)?;
    }
    Ok(())
}

/// Offsets delivered on one partition, in order, with whether each was acknowledged.
type Pending = HashMap<i32, VecDeque<(i64, bool)>>;

/// Marks `(partition, offset)` acknowledged; returns the offset to commit when the run of
/// acknowledged offsets at the front grew.
fn acknowledge(pending: &mut Pending, partition: i32, offset: i64) -> Option<i64> {
    let q = pending.get_mut(&partition)?;
    if let Ok(i) = q.binary_search_by_key(&offset, |&(o, _)| o) {
        q[i].1 = true;
    }
    let mut next = None;
    while let Some(&(o, true)) = q.front() {
        next = Some(o + 1);
        q.pop_front();
    }
    next
}

/// One group member: receives from Kafka, hands deliveries to the subscription (at most
/// `max_in_flight` waiting), commits as they are acknowledged. librdkafka reconnects by
/// itself; the member ends when the subscription is dropped.
async fn member(consumer: Arc<StreamConsumer>, name: String, topic: String, tx: mpsc::Sender<Delivery>) {
    let (ack_tx, mut acks) = mpsc::unbounded_channel::<(i32, i64)>();
    let mut pending = Pending::new();
    loop {
        tokio::select! {
            _ = tx.closed() => break,
            Some((p, o)) = acks.recv() => {
                if let Some(next) = acknowledge(&mut pending, p, o) {
                    let mut tpl = TopicPartitionList::new();
                    if tpl.add_partition_offset(&name, p, Offset::Offset(next)).is_ok()
                        && let Err(e) = consumer.commit(&tpl, CommitMode::Async)
                    {
                        // The partition moved to another member (which re-delivers) or the
                        // broker is away (the next commit covers this one).
                        tracing::debug!(topic = %topic, error = %e, "bus commit failed");
                    }
                }
            }
            m = consumer.recv() => match m {
                Ok(m) => {
                    let (p, o) = (m.partition(), m.offset());
                    let payload = m.payload().unwrap_or_default().to_vec();
                    drop(m);
                    let q = pending.entry(p).or_default();
                    // Offsets going back mean the partition was handed to us again.
                    if q.back().is_some_and(|&(last, _)| o <= last) {
                        q.clear();
                    }
                    q.push_back((o, false));
                    let ack = Ack::Kafka { tx: ack_tx.clone(), partition: p, offset: o };
                    if tx.send(Delivery { topic: topic.clone(), payload, ack }).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(topic = %topic, error = %e, "bus receive failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    // Closing a consumer leaves its group and blocks until the broker has heard it.
    tokio::task::spawn_blocking(move || drop(consumer));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_acknowledged_front_is_committed() {
        let mut p = Pending::new();
        p.entry(0).or_default().extend([(5, false), (6, false), (7, false)]);
        assert_eq!(acknowledge(&mut p, 0, 6), None, "5 is not handled yet");
        assert_eq!(acknowledge(&mut p, 0, 5), Some(7), "5 and 6 are");
        assert_eq!(acknowledge(&mut p, 0, 7), Some(8));
        assert_eq!(acknowledge(&mut p, 1, 0), None, "unknown partition");
    }

    #[test]
    fn names_are_what_kafka_accepts() {
        assert_eq!(kafka_name("rsgame-test:1:world chat"), "rsgame-test_1_world_chat");
        assert_eq!(kafka_name(&"x".repeat(300)).len(), 249);
    }
}
