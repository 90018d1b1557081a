//! The message bus: publish to a topic; subscribe as a member of a consumer group. Every group
//! gets every message; within a group each message goes to one member. Backends today:
//! in-process (bounded queues, at-most-once) and Redis Streams (consumer groups, XACK,
//! at-least-once: a message a dead member never acknowledged is reclaimed by a live one).
//! NATS JetStream and Kafka come with the rest of the storage issue.
//!
//! A publish that cannot reach the broker is retried with backoff and then fails with an
//! error: never silently dropped. Subscriptions reconnect by themselves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::db::StoreError;

/// One delivered message. Acknowledge it once handled; an unacknowledged message on a durable
/// backend is delivered again (to this group) after the reclaim delay.
pub struct Delivery {
    /// The topic it was published to.
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
    ack: Ack,
}

enum Ack {
    None,
    Redis { conn: redis::aio::ConnectionManager, key: String, group: String, id: String },
}

impl Delivery {
    /// Acknowledges the message.
    pub async fn ack(self) -> Result<(), StoreError> {
        match self.ack {
            Ack::None => Ok(()),
            Ack::Redis { mut conn, key, group, id } => redis::cmd("XACK")
                .arg(&key)
                .arg(&group)
                .arg(&id)
                .query_async::<u64>(&mut conn)
                .await
                .map(|_| ())
                .map_err(|e| StoreError::Cache(e.to_string())),
        }
    }
}

/// A member's stream of deliveries. Dropping it leaves the group.
pub struct Subscription {
    rx: SubRx,
    task: Option<tokio::task::JoinHandle<()>>,
}

enum SubRx {
    /// Members of an in-process group share one queue.
    Shared(Arc<tokio::sync::Mutex<mpsc::Receiver<Delivery>>>),
    Own(mpsc::Receiver<Delivery>),
}

impl Subscription {
    /// The next delivery; `None` when the bus is gone.
    pub async fn next(&mut self) -> Option<Delivery> {
        match &mut self.rx {
            SubRx::Shared(rx) => rx.lock().await.recv().await,
            SubRx::Own(rx) => rx.recv().await,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

struct Group {
    tx: mpsc::Sender<Delivery>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Delivery>>>,
}

/// Tuning shared by the backends.
#[derive(Debug, Clone)]
pub struct BusOptions {
    /// Messages a member may hold unacknowledged (and in-process queue depth per group).
    pub max_in_flight: usize,
    /// How long a durable backend waits before another member takes over a message that was
    /// delivered but never acknowledged.
    pub reclaim_after: Duration,
    /// Entries a Redis stream keeps (approximately); older ones are trimmed.
    pub max_len: u64,
}

impl Default for BusOptions {
    fn default() -> Self {
        BusOptions { max_in_flight: 256, reclaim_after: Duration::from_secs(30), max_len: 100_000 }
    }
}

#[derive(Clone)]
enum Backend {
    Memory(Arc<Mutex<HashMap<String, HashMap<String, Group>>>>),
    Redis { client: redis::Client, conn: redis::aio::ConnectionManager },
}

/// A bus handle. Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    backend: Backend,
    prefix: String,
    opts: BusOptions,
}

fn err(e: redis::RedisError) -> StoreError {
    StoreError::Cache(format!("bus: {e}"))
}

async fn manager(client: &redis::Client) -> Result<redis::aio::ConnectionManager, StoreError> {
    let cfg = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        // Above the 1 s BLOCK of a subscriber's read.
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    redis::aio::ConnectionManager::new_with_config(client.clone(), cfg).await.map_err(err)
}

impl Bus {
    /// An in-process bus.
    pub fn memory(opts: BusOptions) -> Bus {
        Bus { backend: Backend::Memory(Arc::default()), prefix: String::new(), opts }
    }

    /// A bus on Redis Streams; every stream key starts with `prefix`.
    pub async fn redis(url: &str, prefix: &str, opts: BusOptions) -> Result<Bus, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError::Config(format!("bus url: {e}")))?;
        let conn = manager(&client).await?;
        Ok(Bus { backend: Backend::Redis { client, conn }, prefix: prefix.to_owned(), opts })
    }

    /// Publishes `payload` to `topic`. Waits while an in-process group's queue is full; on
    /// Redis, retries three times with backoff, then fails.
    pub async fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Memory(topics) => {
                let senders: Vec<mpsc::Sender<Delivery>> = match topics.lock() {
                    Ok(t) => t.get(topic).map(|g| g.values().map(|g| g.tx.clone()).collect()).unwrap_or_default(),
                    Err(_) => Vec::new(),
                };
                for tx in senders {
                    let d = Delivery { topic: topic.to_owned(), payload: payload.to_vec(), ack: Ack::None };
                    // A group whose members all left is gone; the others still get it.
                    let _ = tx.send(d).await;
                }
                Ok(())
            }
            Backend::Redis { conn, .. } => {
                let key = format!("{}{topic}", self.prefix);
                let mut delay = Duration::from_millis(100);
                let mut last = None;
                for attempt in 0..4 {
                    if attempt > 0 {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                    let mut conn = conn.clone();
                    let r = redis::cmd("XADD")
                        .arg(&key)
                        .arg("MAXLEN")
                        .arg("~")
                        .arg(self.opts.max_len)
                        .arg("*")
                        .arg("p")
                        .arg(payload)
                        .query_async::<String>(&mut conn)
                        .await;
                    match r {
                        Ok(_) => return Ok(()),
                        Err(e) => {
                            tracing::warn!(topic, attempt, error = %e, "bus publish failed");
                            last = Some(e);
                        }
                    }
                }
                metrics::counter!("bus_publish_failures_total", "backend" => "redis").increment(1);
                Err(last.map(err).unwrap_or_else(|| StoreError::Cache("bus: publish failed".into())))
            }
        }
    }

    /// Joins consumer group `group` of `topic` as a new member. A group created now sees
    /// messages published from now on.
    pub async fn subscribe(&self, topic: &str, group: &str) -> Result<Subscription, StoreError> {
        match &self.backend {
            Backend::Memory(topics) => {
                let mut t = topics.lock().map_err(|_| StoreError::Cache("bus: poisoned".into()))?;
                let g = t.entry(topic.to_owned()).or_default().entry(group.to_owned()).or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(self.opts.max_in_flight.max(1));
                    Group { tx, rx: Arc::new(tokio::sync::Mutex::new(rx)) }
                });
                Ok(Subscription { rx: SubRx::Shared(g.rx.clone()), task: None })
            }
            Backend::Redis { client, .. } => {
                let key = format!("{}{topic}", self.prefix);
                let mut conn = manager(client).await?;
                create_group(&mut conn, &key, group).await?;
                // Its own connection: a blocking read would hold up every other command
                // sharing a multiplexed one.
                let reader = manager(client).await?;
                let (tx, rx) = mpsc::channel(self.opts.max_in_flight.max(1));
                let consumer = format!("c-{}-{}", std::process::id(), next_member());
                let task = tokio::spawn(redis_member(
                    reader,
                    conn,
                    key,
                    topic.to_owned(),
                    group.to_owned(),
                    consumer,
                    tx,
                    self.opts.clone(),
                ));
                Ok(Subscription { rx: SubRx::Own(rx), task: Some(task) })
            }
        }
    }
}

fn next_member() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

async fn create_group(conn: &mut redis::aio::ConnectionManager, key: &str, group: &str) -> Result<(), StoreError> {
    let r =
        redis::cmd("XGROUP").arg("CREATE").arg(key).arg(group).arg("$").arg("MKSTREAM").query_async::<()>(conn).await;
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.to_string().contains("BUSYGROUP") => Ok(()),
        Err(e) => Err(err(e)),
    }
}

type Entries = Vec<(String, Vec<u8>)>;

fn entries(reply: redis::streams::StreamReadReply) -> Entries {
    reply.keys.into_iter().flat_map(|k| k.ids).filter_map(payload).collect()
}

fn payload(id: redis::streams::StreamId) -> Option<(String, Vec<u8>)> {
    match id.map.get("p") {
        Some(redis::Value::BulkString(b)) => Some((id.id, b.clone())),
        _ => None,
    }
}

/// One Redis group member: first takes over messages other members left unacknowledged for
/// `reclaim_after`, then reads new ones; delivers into `tx` (bounded: at most
/// `max_in_flight` held). Errors (Redis away, the group lost with a restart) are retried.
#[allow(clippy::too_many_arguments)]
async fn redis_member(
    mut reader: redis::aio::ConnectionManager,
    mut conn: redis::aio::ConnectionManager,
    key: String,
    topic: String,
    group: String,
    consumer: String,
    tx: mpsc::Sender<Delivery>,
    opts: BusOptions,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let claimed = redis::cmd("XAUTOCLAIM")
            .arg(&key)
            .arg(&group)
            .arg(&consumer)
            .arg(opts.reclaim_after.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(16)
            .query_async::<redis::streams::StreamAutoClaimReply>(&mut reader)
            .await
            .map(|r| r.claimed.into_iter().filter_map(payload).collect::<Entries>());
        let read = match claimed {
            Ok(c) if !c.is_empty() => Ok(c),
            Ok(_) => redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(&group)
                .arg(&consumer)
                .arg("COUNT")
                .arg(16)
                .arg("BLOCK")
                .arg(1000)
                .arg("STREAMS")
                .arg(&key)
                .arg(">")
                .query_async::<Option<redis::streams::StreamReadReply>>(&mut reader)
                .await
                .map(|r| r.map(entries).unwrap_or_default()),
            Err(e) => Err(e),
        };
        match read {
            Ok(batch) => {
                backoff = Duration::from_millis(100);
                for (id, payload) in batch {
                    let ack = Ack::Redis { conn: conn.clone(), key: key.clone(), group: group.clone(), id };
                    if tx.send(Delivery { topic: topic.clone(), payload, ack }).await.is_err() {
                        return; // the subscription was dropped
                    }
                }
            }
            Err(e) => {
                if e.to_string().contains("NOGROUP") {
                    // Redis restarted without persistence: the group (and stream) are new.
                    let _ = create_group(&mut conn, &key, &group).await;
                } else {
                    tracing::warn!(topic = %topic, group = %group, error = %e, "bus read failed; retrying");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
        if tx.is_closed() {
            return;
        }
    }
}
