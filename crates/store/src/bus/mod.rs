//! The message bus: publish to a topic; subscribe as a member of a consumer group. Every group
//! gets every message; within a group each message goes to one member. Backends today:
//! in-process (bounded queues, at-most-once); Redis Streams (consumer groups, XACK,
//! at-least-once: a message a dead member never acknowledged is reclaimed by a live one); and
//! NATS JetStream (one stream per bus, a durable pull consumer per topic and group, explicit
//! acks, redelivery after `reclaim_after`); and Kafka (a consumer group per bus group, offsets
//! committed after handling; an unacknowledged message is delivered again when its partition
//! changes hands: the member leaves, dies or restarts).
//!
//! A publish that cannot reach the broker is retried with backoff and then fails with an
//! error: never silently dropped. Subscriptions reconnect by themselves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::db::StoreError;

mod kafka;

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
    Redis {
        conn: redis::aio::ConnectionManager,
        key: String,
        group: String,
        id: String,
    },
    Nats(Box<async_nats::jetstream::Message>),
    /// Handed back to the member, which commits the acknowledged run of offsets.
    Kafka {
        tx: mpsc::UnboundedSender<(i32, i64)>,
        partition: i32,
        offset: i64,
    },
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
            Ack::Nats(m) => m.ack().await.map_err(|e| StoreError::Cache(format!("bus: {e}"))),
            // A member that is gone has left its group: the message is delivered again.
            Ack::Kafka { tx, partition, offset } => {
                tx.send((partition, offset)).map_err(|_| StoreError::Cache("bus: the subscription is closed".into()))
            }
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
    /// Entries a Redis stream or NATS stream keeps (approximately); older ones are trimmed.
    pub max_len: u64,
    /// How long a publish keeps retrying an unreachable broker before it fails.
    pub publish_timeout: Duration,
}

impl Default for BusOptions {
    fn default() -> Self {
        BusOptions {
            max_in_flight: 256,
            reclaim_after: Duration::from_secs(30),
            max_len: 100_000,
            publish_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Clone)]
enum Backend {
    Memory(Arc<Mutex<HashMap<String, HashMap<String, Group>>>>),
    Redis { client: redis::Client, conn: redis::aio::ConnectionManager },
    Nats { js: async_nats::jetstream::Context, stream: String },
    Kafka(Arc<kafka::Kafka>),
}

/// NATS names (stream, consumer) allow letters, digits, `-` and `_`; subjects also `.`.
fn nats_name(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
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
    // A response timeout above the 1 s BLOCK of a subscriber's read.
    crate::cache::redis_manager(client, Duration::from_secs(5)).await.map_err(err)
}

impl Bus {
    /// An in-process bus.
    pub fn memory(opts: BusOptions) -> Bus {
        Bus { backend: Backend::Memory(Arc::default()), prefix: String::new(), opts }
    }

    /// A bus on Redis Streams; every stream key starts with `prefix`.
    pub async fn redis(url: &str, prefix: &str, opts: BusOptions) -> Result<Bus, StoreError> {
        Bus::redis_tls(url, prefix, opts, None).await
    }

    /// A bus on Redis Streams; with `rediss://`, TLS checked against `ca_file` (PEM) when
    /// given, else the system's roots.
    pub async fn redis_tls(
        url: &str,
        prefix: &str,
        opts: BusOptions,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Bus, StoreError> {
        let client = crate::cache::redis_client(url, ca_file)?;
        let conn = manager(&client).await?;
        Ok(Bus { backend: Backend::Redis { client, conn }, prefix: prefix.to_owned(), opts })
    }

    /// A bus on NATS JetStream: one stream (named from `prefix`) holding subjects
    /// `<prefix>.<topic>`, created if missing, keeping at most `max_len` messages.
    pub async fn nats(url: &str, prefix: &str, opts: BusOptions) -> Result<Bus, StoreError> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(2))
            .request_timeout(Some(Duration::from_secs(2)))
            .connect(url)
            .await
            .map_err(|e| StoreError::Config(format!("bus url {url}: {e}")))?;
        let js = async_nats::jetstream::new(client);
        let prefix = nats_name(prefix.trim_end_matches(['.', ':']));
        let stream = format!("{prefix}_bus");
        js.get_or_create_stream(async_nats::jetstream::stream::Config {
            name: stream.clone(),
            subjects: vec![format!("{prefix}.>")],
            max_messages: opts.max_len as i64,
            ..Default::default()
        })
        .await
        .map_err(|e| StoreError::Cache(format!("bus: creating stream {stream}: {e}")))?;
        Ok(Bus { backend: Backend::Nats { js, stream }, prefix, opts })
    }

    fn subject(&self, topic: &str) -> String {
        format!("{}.{}", self.prefix, nats_name(topic))
    }

    /// A bus on Kafka (`brokers`: `host:port[,host:port…]`): topic `<prefix><topic>`, group
    /// `<prefix><group>`, both made safe for Kafka's names. Topics are created on first use.
    pub async fn kafka(brokers: &str, prefix: &str, opts: BusOptions) -> Result<Bus, StoreError> {
        let k = kafka::Kafka::connect(brokers, opts.clone()).await?;
        Ok(Bus { backend: Backend::Kafka(Arc::new(k)), prefix: prefix.to_owned(), opts })
    }

    /// The bus a URL names: `memory://`, `redis://…`, `nats://…` or
    /// `kafka://host:port[,host:port…]`.
    pub async fn open(url: &str, prefix: &str, opts: BusOptions) -> Result<Bus, StoreError> {
        match url.split_once("://").map(|(scheme, _)| scheme) {
            Some("memory") => Ok(Bus::memory(opts)),
            Some("redis" | "rediss") => Bus::redis(url, prefix, opts).await,
            Some("nats" | "tls") => Bus::nats(url, prefix, opts).await,
            Some("kafka") => Bus::kafka(&url["kafka://".len()..], prefix, opts).await,
            _ => Err(StoreError::Config(format!("bus url {url}: expected memory://, redis://, nats:// or kafka://"))),
        }
    }

    /// The bus `bus.*` configures.
    pub async fn from_config(cfg: &crate::config::BusConfig) -> Result<Bus, StoreError> {
        let opts = BusOptions {
            max_in_flight: cfg.max_in_flight,
            reclaim_after: Duration::from_secs(cfg.reclaim_after_secs),
            max_len: cfg.max_len,
            publish_timeout: Duration::from_millis(cfg.publish_timeout_ms),
        };
        if cfg.url.starts_with("rediss://") && !cfg.tls_ca_file.is_empty() {
            return Bus::redis_tls(&cfg.url, &cfg.prefix, opts, Some(std::path::Path::new(&cfg.tls_ca_file))).await;
        }
        Bus::open(&cfg.url, &cfg.prefix, opts).await
    }

    /// `memory`, `redis`, `nats` or `kafka`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis { .. } => "redis",
            Backend::Nats { .. } => "nats",
            Backend::Kafka(_) => "kafka",
        }
    }

    /// Whether the broker answers (for readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Memory(_) => Ok(()),
            Backend::Redis { conn, .. } => {
                redis::cmd("PING").query_async::<String>(&mut conn.clone()).await.map(|_| ()).map_err(err)
            }
            Backend::Nats { js, stream } => {
                js.get_stream(stream).await.map(|_| ()).map_err(|e| StoreError::Cache(format!("bus: {e}")))
            }
            Backend::Kafka(k) => k.ping().await,
        }
    }

    /// Retries `attempt` with backoff (100 ms doubling to 1 s) until it succeeds or
    /// `publish_timeout` has passed; then fails with the last error, counted.
    async fn retry<F, Fut>(&self, topic: &str, backend: &'static str, mut attempt: F) -> Result<(), StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let deadline = tokio::time::Instant::now() + self.opts.publish_timeout;
        let mut delay = Duration::from_millis(100);
        let mut n = 0u32;
        loop {
            match attempt().await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(topic, attempt = n, error = %e, "bus publish failed");
                    if tokio::time::Instant::now() + delay > deadline {
                        metrics::counter!(crate::metrics::BUS_PUBLISH_FAILURES, "backend" => backend).increment(1);
                        return Err(StoreError::Cache(format!("bus: publish to {topic} failed: {e}")));
                    }
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
            n += 1;
        }
    }

    /// Publishes `payload` to `topic`. Waits while an in-process group's queue is full; on a
    /// broker, returns once the broker has stored it, retrying with backoff for up to
    /// `publish_timeout`, then fails: never a silent drop.
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
                self.retry(topic, "redis", || {
                    let mut conn = conn.clone();
                    let key = key.clone();
                    async move {
                        redis::cmd("XADD")
                            .arg(&key)
                            .arg("MAXLEN")
                            .arg("~")
                            .arg(self.opts.max_len)
                            .arg("*")
                            .arg("p")
                            .arg(payload)
                            .query_async::<String>(&mut conn)
                            .await
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    }
                })
                .await
            }
            Backend::Nats { js, .. } => {
                let subject = self.subject(topic);
                self.retry(topic, "nats", || {
                    let subject = subject.clone();
                    async move {
                        // Published only once the server has stored it (the second await).
                        match js.publish(subject, payload.to_vec().into()).await {
                            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                })
                .await
            }
            // librdkafka retries with backoff within `publish_timeout` itself.
            Backend::Kafka(k) => k.publish(&kafka::kafka_name(&format!("{}{topic}", self.prefix)), payload).await,
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
            Backend::Nats { js, stream } => {
                let name = format!("{}__{}", nats_name(topic), nats_name(group));
                let cfg = async_nats::jetstream::consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: self.subject(topic),
                    ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: self.opts.reclaim_after,
                    max_ack_pending: self.opts.max_in_flight as i64,
                    deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::New,
                    ..Default::default()
                };
                let st = js.get_stream(stream).await.map_err(|e| StoreError::Cache(format!("bus: {e}")))?;
                let consumer: async_nats::jetstream::consumer::PullConsumer =
                    st.get_or_create_consumer(&name, cfg).await.map_err(|e| StoreError::Cache(format!("bus: {e}")))?;
                let (tx, rx) = mpsc::channel(self.opts.max_in_flight.max(1));
                let task = tokio::spawn(nats_member(consumer, topic.to_owned(), tx));
                Ok(Subscription { rx: SubRx::Own(rx), task: Some(task) })
            }
            Backend::Kafka(k) => {
                let name = kafka::kafka_name(&format!("{}{topic}", self.prefix));
                let group = kafka::kafka_name(&format!("{}{group}", self.prefix));
                // The member ends by itself when the receiver is dropped, so that it can
                // leave its group cleanly.
                let rx = k.subscribe(&name, &group, topic).await?;
                Ok(Subscription { rx: SubRx::Own(rx), task: None })
            }
        }
    }
}

/// One NATS group member: pulls from the durable consumer (members of a group share it, so
/// each message goes to one of them) and delivers into `tx`. A broken pull is re-opened.
async fn nats_member(
    consumer: async_nats::jetstream::consumer::PullConsumer,
    topic: String,
    tx: mpsc::Sender<Delivery>,
) {
    use futures_util::StreamExt as _;
    let mut backoff = Duration::from_millis(100);
    loop {
        match consumer.messages().await {
            Ok(mut messages) => {
                while let Some(m) = messages.next().await {
                    match m {
                        Ok(m) => {
                            backoff = Duration::from_millis(100);
                            let payload = m.payload.to_vec();
                            let d = Delivery { topic: topic.clone(), payload, ack: Ack::Nats(Box::new(m)) };
                            if tx.send(d).await.is_err() {
                                return; // the subscription was dropped
                            }
                        }
                        Err(e) => {
                            tracing::warn!(topic = %topic, error = %e, "bus pull failed; retrying");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(topic = %topic, error = %e, "bus pull could not start; retrying"),
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
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
