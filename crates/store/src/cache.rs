//! The cache: one typed API over an in-process cache (moka: bounded, per-entry TTL) and Redis
//! — the features go-game patched into its Redis client (any serde type with a TTL, batch
//! delete, lists, counters) plus get-or-load with single-flight.
//!
//! Values are JSON. Every key is namespaced with `cache.prefix`. A Redis that does not answer
//! never fails a request that could be served: [`Cache::get_or_load`] falls back to the
//! loader and a failed write is logged and counted (`cache_errors_total`), not returned.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use crate::db::StoreError;

/// The cache key of a player's presence: the game node it is on, written by that node while
/// the player is there (with a TTL the node keeps refreshing). Read by whoever routes logins
/// and by the guild service for its members' online status.
pub fn presence_key(user_id: i64) -> String {
    format!("presence:{user_id}")
}

/// A value as the in-process backend keeps it.
#[derive(Clone)]
enum Mem {
    Bytes(Arc<Vec<u8>>),
    List(Arc<VecDeque<Arc<Vec<u8>>>>),
    Counter(i64),
}

#[derive(Clone)]
struct MemEntry {
    value: Mem,
    /// Absolute expiry, kept across updates (a list push does not extend the TTL).
    expires: Option<Instant>,
}

struct MemExpiry;

impl moka::Expiry<String, MemEntry> for MemExpiry {
    fn expire_after_create(&self, _k: &String, v: &MemEntry, now: Instant) -> Option<Duration> {
        v.expires.map(|e| e.saturating_duration_since(now))
    }
    fn expire_after_update(&self, _k: &String, v: &MemEntry, now: Instant, _d: Option<Duration>) -> Option<Duration> {
        v.expires.map(|e| e.saturating_duration_since(now))
    }
}

#[derive(Clone)]
enum Backend {
    Memory(moka::future::Cache<String, MemEntry>),
    Redis(redis::aio::ConnectionManager),
}

type Flight = Arc<OnceCell<Result<Vec<u8>, String>>>;

/// Reserved entries one owner may hold unless configured (`cache.reserved_per_owner`).
const RESERVED_PER_OWNER: usize = 32;

/// A cache handle. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Cache {
    backend: Backend,
    prefix: String,
    flights: Arc<Mutex<HashMap<String, Flight>>>,
    label: &'static str,
    /// In process only: the entries [`Cache::set_reserved`] keeps apart from the LRU.
    reserved: Option<Arc<Mutex<Reserved>>>,
}

/// Entries a flood of other entries cannot evict, with a quota per owner and in all.
struct Reserved {
    entries: HashMap<String, Held>,
    /// Expiry order, for purging; an entry taken early leaves a stale item, skipped later.
    by_expiry: BinaryHeap<Reverse<(Instant, String)>>,
    per_owner: HashMap<Arc<str>, usize>,
    max_total: usize,
    max_per_owner: usize,
}

struct Held {
    bytes: Arc<Vec<u8>>,
    expires: Instant,
    owner: Arc<str>,
}

impl Reserved {
    fn new(max_total: usize, max_per_owner: usize) -> Reserved {
        Reserved {
            entries: HashMap::new(),
            by_expiry: BinaryHeap::new(),
            per_owner: HashMap::new(),
            max_total,
            max_per_owner,
        }
    }

    fn purge(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.by_expiry.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, k))) = self.by_expiry.pop() else { break };
            if self.entries.get(&k).is_some_and(|h| h.expires <= now) {
                self.remove(&k);
            }
        }
    }

    fn remove(&mut self, k: &str) -> Option<Held> {
        let held = self.entries.remove(k)?;
        if let Some(n) = self.per_owner.get_mut(&held.owner) {
            *n -= 1;
            if *n == 0 {
                self.per_owner.remove(&held.owner);
            }
        }
        Some(held)
    }

    fn get(&self, k: &str, now: Instant) -> Option<Arc<Vec<u8>>> {
        self.entries.get(k).filter(|h| h.expires > now).map(|h| h.bytes.clone())
    }

    /// Stores the entry, or says which limit refuses it.
    fn insert(&mut self, owner: &str, k: String, bytes: Vec<u8>, expires: Instant) -> Result<(), &'static str> {
        let now = Instant::now();
        self.purge(now);
        // Written again (the same ticket refreshed): its old place is given back first.
        self.remove(&k);
        let owner: Arc<str> = Arc::from(owner);
        if self.max_per_owner > 0 && self.per_owner.get(&owner).copied().unwrap_or(0) >= self.max_per_owner {
            return Err("owner");
        }
        if self.max_total > 0 && self.entries.len() >= self.max_total {
            return Err("total");
        }
        *self.per_owner.entry(owner.clone()).or_insert(0) += 1;
        self.by_expiry.push(Reverse((expires, k.clone())));
        self.entries.insert(k, Held { bytes: Arc::new(bytes), expires, owner });
        Ok(())
    }
}

fn ttl_ms(ttl: Option<Duration>) -> u64 {
    ttl.map_or(0, |d| d.as_millis().max(1) as u64)
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Config(format!("cache value does not serialize: {e}")))
}

fn decode<T: DeserializeOwned>(key: &str, b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(|e| StoreError::Cache(format!("value at {key} is not the type asked for: {e}")))
}

/// A Redis connection that reconnects by itself, failing commands fast while Redis is away;
/// shared by the cache and the bus (which needs a longer `response` for its blocking reads).
pub(crate) async fn redis_manager(
    client: &redis::Client,
    response: Duration,
) -> redis::RedisResult<redis::aio::ConnectionManager> {
    let cfg = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(response))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    redis::aio::ConnectionManager::new_with_config(client.clone(), cfg).await
}

/// A Redis client for `url`. `rediss://` is TLS, verified against the system's roots, or
/// against the PEM certificates in `ca_file` when one is given (a private CA).
pub(crate) fn redis_client(url: &str, ca_file: Option<&std::path::Path>) -> Result<redis::Client, StoreError> {
    let bad = |e: redis::RedisError| StoreError::Config(format!("redis url: {e}"));
    match ca_file {
        Some(path) if url.starts_with("rediss://") => {
            let pem = std::fs::read(path)
                .map_err(|e| StoreError::Config(format!("redis CA file {}: {e}", path.display())))?;
            redis::Client::build_with_tls(url, redis::TlsCertificates { client_tls: None, root_cert: Some(pem) })
                .map_err(bad)
        }
        _ => redis::Client::open(url).map_err(bad),
    }
}

fn redis_err(e: redis::RedisError) -> StoreError {
    StoreError::Cache(e.to_string())
}

impl Cache {
    /// An in-process cache holding at most `max_entries` keys (least useful evicted first).
    pub fn memory(max_entries: u64, prefix: &str) -> Cache {
        // LRU, not moka's default TinyLFU: TinyLFU admits a new key only if it promises more
        // hits than the one it would evict, so once a flood of one-off keys (QR tickets) had
        // filled the cache, every new captcha or ticket — read once, by design — was refused
        // within seconds. LRU always admits; a fresh entry lives until `max_entries` newer
        // ones arrive, which the per-address limits on public routes make slow.
        let c = moka::future::Cache::builder()
            .max_capacity(max_entries)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .expire_after(MemExpiry)
            .build();
        let reserved = Some(Arc::new(Mutex::new(Reserved::new(max_entries as usize, RESERVED_PER_OWNER))));
        Cache {
            backend: Backend::Memory(c),
            prefix: prefix.to_owned(),
            flights: Arc::default(),
            label: "memory",
            reserved,
        }
    }

    /// Sets the in-process reserve's quotas ([`Cache::set_reserved`]): at most `max_total`
    /// reserved entries and `max_per_owner` per owner (0: no limit). Nothing on Redis.
    pub fn with_reserve(self, max_total: usize, max_per_owner: usize) -> Cache {
        if let Some(r) = &self.reserved
            && let Ok(mut r) = r.lock()
        {
            (r.max_total, r.max_per_owner) = (max_total, max_per_owner);
        }
        self
    }

    /// A Redis cache (`redis://[:password@]host:port/db`). The connection
    /// reconnects by itself; commands fail fast while Redis is away.
    pub async fn redis(url: &str, prefix: &str) -> Result<Cache, StoreError> {
        Cache::redis_tls(url, prefix, None).await
    }

    /// A Redis cache; with `rediss://`, TLS checked against `ca_file` (PEM) when given, else
    /// the system's roots.
    pub async fn redis_tls(url: &str, prefix: &str, ca_file: Option<&std::path::Path>) -> Result<Cache, StoreError> {
        let client = redis_client(url, ca_file)?;
        let conn = redis_manager(&client, Duration::from_secs(2)).await.map_err(redis_err)?;
        Ok(Cache {
            backend: Backend::Redis(conn),
            prefix: prefix.to_owned(),
            flights: Arc::default(),
            label: "redis",
            reserved: None,
        })
    }

    /// The cache `cache.*` configures.
    pub async fn from_config(cfg: &crate::config::CacheConfig) -> Result<Cache, StoreError> {
        match cfg.backend {
            crate::config::CacheBackend::Memory => {
                Ok(Cache::memory(cfg.max_entries, &cfg.prefix).with_reserve(cfg.reserved_max, cfg.reserved_per_owner))
            }
            crate::config::CacheBackend::Redis => {
                let ca = (!cfg.tls_ca_file.is_empty()).then(|| std::path::Path::new(&cfg.tls_ca_file));
                Cache::redis_tls(&cfg.url, &cfg.prefix, ca).await
            }
        }
    }

    /// `memory` or `redis`.
    pub fn backend_name(&self) -> &'static str {
        self.label
    }

    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }

    /// For shared structures the typed API does not cover (the matchmaker's queue, moved
    /// atomically by Lua scripts): the Redis connection; None on the in-process cache.
    pub fn redis_connection(&self) -> Option<redis::aio::ConnectionManager> {
        match &self.backend {
            Backend::Redis(c) => Some(c.clone()),
            Backend::Memory(_) => None,
        }
    }

    /// `k` with `cache.prefix` in front, as every key of this cache is stored.
    pub fn namespaced(&self, k: &str) -> String {
        self.key(k)
    }

    fn count(&self, what: &'static str) {
        metrics::counter!(what, "backend" => self.label).increment(1);
    }

    fn fail(&self, op: &str, e: &StoreError) {
        self.count(crate::metrics::CACHE_ERRORS);
        tracing::warn!(backend = self.label, op, error = %e, "cache unavailable");
    }

    async fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let k = self.key(key);
        if let Some(b) = self.reserved_get(&k) {
            self.count(crate::metrics::CACHE_HITS);
            return Ok(Some(b.to_vec()));
        }
        let r = match &self.backend {
            Backend::Memory(c) => Ok(match c.get(&k).await.map(|e| e.value) {
                Some(Mem::Bytes(b)) => Some(b.to_vec()),
                Some(Mem::Counter(n)) => Some(n.to_string().into_bytes()),
                _ => None,
            }),
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                redis::cmd("GET").arg(&k).query_async::<Option<Vec<u8>>>(&mut conn).await.map_err(redis_err)
            }
        };
        match &r {
            Ok(Some(_)) => self.count(crate::metrics::CACHE_HITS),
            Ok(None) => self.count(crate::metrics::CACHE_MISSES),
            Err(e) => self.fail("get", e),
        }
        r
    }

    async fn set_raw(&self, key: &str, bytes: Vec<u8>, ttl: Option<Duration>) -> Result<(), StoreError> {
        let k = self.key(key);
        match &self.backend {
            Backend::Memory(c) => {
                let expires = ttl.map(|t| Instant::now() + t);
                c.insert(k, MemEntry { value: Mem::Bytes(Arc::new(bytes)), expires }).await;
                Ok(())
            }
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                let mut cmd = redis::cmd("SET");
                cmd.arg(&k).arg(bytes);
                if ttl.is_some() {
                    cmd.arg("PX").arg(ttl_ms(ttl));
                }
                cmd.query_async::<()>(&mut conn).await.map_err(redis_err)
            }
        }
    }

    /// The value at `key`, if present and not expired.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        match self.get_raw(key).await? {
            Some(b) => decode(key, &b).map(Some),
            None => Ok(None),
        }
    }

    /// Removes `key` and returns what it held, atomically: of two concurrent takes only one
    /// gets the value (one-time codes, captchas).
    pub async fn take<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let k = self.key(key);
        if let Some(held) = self.reserved_take(&k) {
            return decode(key, &held).map(Some);
        }
        let r = match &self.backend {
            Backend::Memory(c) => Ok(match c.remove(&k).await {
                Some(MemEntry { value: Mem::Bytes(b), expires }) if expires.is_none_or(|e| e > Instant::now()) => {
                    Some(b.to_vec())
                }
                _ => None,
            }),
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                redis::cmd("GETDEL").arg(&k).query_async::<Option<Vec<u8>>>(&mut conn).await.map_err(redis_err)
            }
        };
        match r {
            Ok(Some(b)) => decode(key, &b).map(Some),
            Ok(None) => Ok(None),
            Err(e) => {
                self.fail("take", &e);
                Err(e)
            }
        }
    }

    /// Stores `value` at `key` for `ttl` where no flood of other entries can evict it: for
    /// what a player is waiting on (a captcha, a verification code, a QR ticket). In process
    /// these entries are kept apart from the LRU, at most `cache.reserved_per_owner` live ones
    /// per `owner` (the client's address) and `cache.reserved_max` in all: past either the
    /// new one is refused ([`StoreError::Full`], counted in
    /// `cache_reserved_refused_total{limit}`) and nothing is evicted. On Redis it is a plain
    /// set (Redis evicts nothing unless its `maxmemory-policy` says so). Read, take and delete
    /// it like any key.
    pub async fn set_reserved<T: Serialize>(
        &self,
        owner: &str,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let Some(reserved) = &self.reserved else {
            return self.set(key, value, Some(ttl)).await;
        };
        let bytes = encode(value)?;
        let refused = match reserved.lock() {
            Ok(mut r) => r.insert(owner, self.key(key), bytes, Instant::now() + ttl).err(),
            Err(_) => Some("total"),
        };
        match refused {
            None => Ok(()),
            Some(limit) => {
                metrics::counter!(crate::metrics::CACHE_RESERVED_REFUSED, "limit" => limit).increment(1);
                Err(StoreError::Full(match limit {
                    "owner" => "too many open captchas, codes or tickets from this address".into(),
                    _ => "too many open captchas, codes or tickets: try again in a minute".into(),
                }))
            }
        }
    }

    fn reserved_get(&self, full_key: &str) -> Option<Arc<Vec<u8>>> {
        self.reserved.as_ref()?.lock().ok()?.get(full_key, Instant::now())
    }

    fn reserved_take(&self, full_key: &str) -> Option<Arc<Vec<u8>>> {
        let mut r = self.reserved.as_ref()?.lock().ok()?;
        let held = r.remove(full_key)?;
        (held.expires > Instant::now()).then_some(held.bytes)
    }

    /// Stores `value` at `key`, for `ttl` (or until evicted).
    pub async fn set<T: Serialize>(&self, key: &str, value: &T, ttl: Option<Duration>) -> Result<(), StoreError> {
        let r = self.set_raw(key, encode(value)?, ttl).await;
        if let Err(e) = &r {
            self.fail("set", e);
        }
        r
    }

    /// Stores `value` at `key` and returns what was there: one atomic step on Redis (`SET …
    /// GET`), so of two processes writing at once, the second sees the first's value.
    pub async fn replace<T: Serialize + DeserializeOwned>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<Option<T>, StoreError> {
        let bytes = encode(value)?;
        let r = match &self.backend {
            // In process there is no other writer to race with.
            Backend::Memory(_) => {
                let old = self.get_raw(key).await?;
                self.set_raw(key, bytes, ttl).await.map(|()| old)
            }
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                let mut cmd = redis::cmd("SET");
                cmd.arg(self.key(key)).arg(bytes);
                if ttl.is_some() {
                    cmd.arg("PX").arg(ttl_ms(ttl));
                }
                cmd.arg("GET");
                cmd.query_async::<Option<Vec<u8>>>(&mut conn).await.map_err(redis_err)
            }
        };
        match r {
            Ok(Some(b)) => decode(key, &b).map(Some),
            Ok(None) => Ok(None),
            Err(e) => {
                self.fail("replace", &e);
                Err(e)
            }
        }
    }

    /// Stores `value` only if `key` is absent (a lock); true if it was stored.
    pub async fn set_if_absent<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let bytes = encode(value)?;
        let k = self.key(key);
        match &self.backend {
            Backend::Memory(c) => {
                let expires = ttl.map(|t| Instant::now() + t);
                let entry = c
                    .entry(k)
                    .or_insert_with(async move { MemEntry { value: Mem::Bytes(Arc::new(bytes)), expires } })
                    .await;
                Ok(entry.is_fresh())
            }
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                let mut cmd = redis::cmd("SET");
                cmd.arg(&k).arg(bytes).arg("NX");
                if ttl.is_some() {
                    cmd.arg("PX").arg(ttl_ms(ttl));
                }
                let r: Option<String> = cmd.query_async(&mut conn).await.map_err(redis_err)?;
                Ok(r.is_some())
            }
        }
    }

    /// The values at `keys`, in order; `None` where absent.
    pub async fn get_many<T: DeserializeOwned>(&self, keys: &[&str]) -> Result<Vec<Option<T>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let raw: Vec<Option<Vec<u8>>> = match &self.backend {
            Backend::Memory(_) => {
                let mut v = Vec::with_capacity(keys.len());
                for k in keys {
                    v.push(self.get_raw(k).await?);
                }
                v
            }
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                let full: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
                redis::cmd("MGET").arg(&full).query_async(&mut conn).await.map_err(redis_err)?
            }
        };
        raw.iter().zip(keys).map(|(b, k)| b.as_deref().map(|b| decode(k, b)).transpose()).collect()
    }

    /// Deletes `keys`; returns how many existed.
    pub async fn delete(&self, keys: &[&str]) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Memory(c) => {
                let mut n = 0;
                for k in keys {
                    let k = self.key(k);
                    if self.reserved_take(&k).is_some() || c.remove(&k).await.is_some() {
                        n += 1;
                    }
                }
                Ok(n)
            }
            Backend::Redis(conn) => {
                if keys.is_empty() {
                    return Ok(0);
                }
                let mut conn = conn.clone();
                let full: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
                redis::cmd("DEL").arg(&full).query_async(&mut conn).await.map_err(redis_err)
            }
        }
    }

    /// Deletes every key that starts with `prefix`; returns how many.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64, StoreError> {
        let full = self.key(prefix);
        match &self.backend {
            Backend::Memory(c) => {
                let doomed: Vec<Arc<String>> = c.iter().filter(|(k, _)| k.starts_with(&full)).map(|(k, _)| k).collect();
                for k in &doomed {
                    c.remove(k.as_str()).await;
                }
                Ok(doomed.len() as u64)
            }
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                // Glob metacharacters in the prefix are literal, not patterns.
                let mut pattern = String::with_capacity(full.len() + 1);
                for ch in full.chars() {
                    if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
                        pattern.push('\\');
                    }
                    pattern.push(ch);
                }
                pattern.push('*');
                let mut cursor: u64 = 0;
                let mut n = 0;
                loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(500)
                        .query_async(&mut conn)
                        .await
                        .map_err(redis_err)?;
                    if !keys.is_empty() {
                        n += redis::cmd("UNLINK").arg(&keys).query_async::<u64>(&mut conn).await.map_err(redis_err)?;
                    }
                    if next == 0 {
                        return Ok(n);
                    }
                    cursor = next;
                }
            }
        }
    }

    /// Appends to the list at `key` (created with `ttl` if new); returns its length.
    pub async fn list_push<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<u64, StoreError> {
        let bytes = encode(value)?;
        let k = self.key(key);
        match &self.backend {
            Backend::Memory(c) => {
                let r = c
                    .entry(k)
                    .and_compute_with(|old| {
                        let (mut list, expires) = match old.map(|e| e.into_value()) {
                            Some(MemEntry { value: Mem::List(l), expires }) => (l, expires),
                            _ => (Arc::new(VecDeque::new()), ttl.map(|t| Instant::now() + t)),
                        };
                        Arc::make_mut(&mut list).push_back(Arc::new(bytes));
                        std::future::ready(moka::ops::compute::Op::Put(MemEntry { value: Mem::List(list), expires }))
                    })
                    .await;
                Ok(match r.into_entry().map(|e| e.into_value().value) {
                    Some(Mem::List(l)) => l.len() as u64,
                    _ => 0,
                })
            }
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                let script = redis::Script::new(
                    "local n = redis.call('RPUSH', KEYS[1], ARGV[1]) \
                     if n == 1 and tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end \
                     return n",
                );
                script.key(&k).arg(bytes).arg(ttl_ms(ttl)).invoke_async(&mut conn).await.map_err(redis_err)
            }
        }
    }

    /// Items `start..=stop` of the list at `key` (negative counts from the end, like Redis).
    pub async fn list_range<T: DeserializeOwned>(
        &self,
        key: &str,
        start: i64,
        stop: i64,
    ) -> Result<Vec<T>, StoreError> {
        let k = self.key(key);
        let raw: Vec<Vec<u8>> = match &self.backend {
            Backend::Memory(c) => match c.get(&k).await.map(|e| e.value) {
                Some(Mem::List(l)) => {
                    let (a, b) = span(l.len(), start, stop);
                    l.iter().skip(a).take(b.saturating_sub(a)).map(|v| v.to_vec()).collect()
                }
                _ => Vec::new(),
            },
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                redis::cmd("LRANGE").arg(&k).arg(start).arg(stop).query_async(&mut conn).await.map_err(redis_err)?
            }
        };
        raw.iter().map(|b| decode(key, b)).collect()
    }

    /// Keeps only items `start..=stop` of the list at `key`.
    pub async fn list_trim(&self, key: &str, start: i64, stop: i64) -> Result<(), StoreError> {
        let k = self.key(key);
        match &self.backend {
            Backend::Memory(c) => {
                c.entry(k)
                    .and_compute_with(|old| {
                        let op = match old.map(|e| e.into_value()) {
                            Some(MemEntry { value: Mem::List(l), expires }) => {
                                let (a, b) = span(l.len(), start, stop);
                                let kept: VecDeque<_> = l.iter().skip(a).take(b.saturating_sub(a)).cloned().collect();
                                moka::ops::compute::Op::Put(MemEntry { value: Mem::List(Arc::new(kept)), expires })
                            }
                            _ => moka::ops::compute::Op::Nop,
                        };
                        std::future::ready(op)
                    })
                    .await;
                Ok(())
            }
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                redis::cmd("LTRIM").arg(&k).arg(start).arg(stop).query_async::<()>(&mut conn).await.map_err(redis_err)
            }
        }
    }

    /// Whether the cache is shared between processes (Redis), so sorted sets can be used.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Redis(_))
    }

    fn zconn(&self) -> Result<redis::aio::ConnectionManager, StoreError> {
        match &self.backend {
            Backend::Redis(c) => Ok(c.clone()),
            Backend::Memory(_) => Err(StoreError::Config("sorted sets need the Redis cache".into())),
        }
    }

    /// Sets `member`'s score in the sorted set at `key` (Redis only: leaderboards).
    pub async fn zset_add(&self, key: &str, member: &str, score: f64) -> Result<(), StoreError> {
        let mut c = self.zconn()?;
        let r = redis::cmd("ZADD").arg(self.key(key)).arg(score).arg(member).query_async::<i64>(&mut c).await;
        r.map(|_| ()).map_err(|e| {
            let e = redis_err(e);
            self.fail("zadd", &e);
            e
        })
    }

    /// Members from rank `start` to `stop` (0-based, inclusive), highest score first, with
    /// their scores; equal scores come in descending member order.
    pub async fn zset_rev_range(&self, key: &str, start: i64, stop: i64) -> Result<Vec<(String, f64)>, StoreError> {
        let mut c = self.zconn()?;
        redis::cmd("ZREVRANGE")
            .arg(self.key(key))
            .arg(start)
            .arg(stop)
            .arg("WITHSCORES")
            .query_async::<Vec<(String, f64)>>(&mut c)
            .await
            .map_err(redis_err)
    }

    /// `member`'s 0-based rank, highest score first.
    pub async fn zset_rev_rank(&self, key: &str, member: &str) -> Result<Option<u64>, StoreError> {
        let mut c = self.zconn()?;
        redis::cmd("ZREVRANK")
            .arg(self.key(key))
            .arg(member)
            .query_async::<Option<u64>>(&mut c)
            .await
            .map_err(redis_err)
    }

    /// Members in the sorted set.
    pub async fn zset_len(&self, key: &str) -> Result<u64, StoreError> {
        let mut c = self.zconn()?;
        redis::cmd("ZCARD").arg(self.key(key)).query_async::<u64>(&mut c).await.map_err(redis_err)
    }

    /// Adds `by` to the counter at `key` (created at 0 with `ttl` if new); returns the new value.
    pub async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, StoreError> {
        let k = self.key(key);
        match &self.backend {
            Backend::Memory(c) => {
                let r = c
                    .entry(k)
                    .and_compute_with(|old| {
                        let (n, expires) = match old.map(|e| e.into_value()) {
                            Some(MemEntry { value: Mem::Counter(n), expires }) => (n, expires),
                            _ => (0, ttl.map(|t| Instant::now() + t)),
                        };
                        std::future::ready(moka::ops::compute::Op::Put(MemEntry {
                            value: Mem::Counter(n + by),
                            expires,
                        }))
                    })
                    .await;
                Ok(match r.into_entry().map(|e| e.into_value().value) {
                    Some(Mem::Counter(n)) => n,
                    _ => 0,
                })
            }
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                let script = redis::Script::new(
                    "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) \
                     if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end \
                     return v",
                );
                script.key(&k).arg(by).arg(ttl_ms(ttl)).invoke_async(&mut conn).await.map_err(redis_err)
            }
        }
    }

    /// The cached value at `key`, or the loader's, stored for `ttl`. Concurrent misses on one
    /// key run the loader once and share its result. If the cache itself fails, the loader's
    /// value is still returned (the failure is logged and counted).
    pub async fn get_or_load<T, E, F, Fut>(&self, key: &str, ttl: Option<Duration>, loader: F) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        E: From<StoreError>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if let Ok(Some(b)) = self.get_raw(key).await {
            if let Ok(v) = decode::<T>(key, &b) {
                return Ok(v);
            }
        }
        let flight: Flight = match self.flights.lock() {
            Ok(mut f) => f.entry(key.to_owned()).or_default().clone(),
            Err(_) => Arc::default(),
        };
        // The loader's error is the caller's type; carry it out of the shared cell by slot.
        let mut own_error: Option<E> = None;
        let result = flight
            .get_or_init(|| async {
                match loader().await {
                    Ok(v) => {
                        let bytes = encode(&v).map_err(|e| e.to_string())?;
                        if let Err(e) = self.set_raw(key, bytes.clone(), ttl).await {
                            self.fail("set", &e);
                        }
                        Ok(bytes)
                    }
                    Err(e) => {
                        own_error = Some(e);
                        Err("loader failed".to_owned())
                    }
                }
            })
            .await
            .clone();
        if let Ok(mut f) = self.flights.lock() {
            if f.get(key).is_some_and(|cur| Arc::ptr_eq(cur, &flight)) {
                f.remove(key);
            }
        }
        match result {
            Ok(bytes) => decode(key, &bytes).map_err(E::from),
            Err(msg) => {
                Err(own_error.unwrap_or_else(|| E::from(StoreError::Cache(format!("load of {key} failed: {msg}")))))
            }
        }
    }

    /// Checks the backend answers (the readiness check).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Memory(_) => Ok(()),
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                redis::cmd("PING").query_async::<String>(&mut conn).await.map(|_| ()).map_err(redis_err)
            }
        }
    }
}

/// Redis's LRANGE/LTRIM index rules: inclusive, negatives from the end, clamped.
fn span(len: usize, start: i64, stop: i64) -> (usize, usize) {
    let len_i = len as i64;
    let norm = |i: i64| if i < 0 { (len_i + i).max(0) } else { i };
    let a = norm(start).min(len_i);
    let b = (norm(stop) + 1).min(len_i);
    (a as usize, b.max(a) as usize)
}

#[cfg(test)]
mod tests {
    use super::span;

    #[tokio::test]
    async fn reserved_entries_outlive_floods_and_each_owner_holds_only_its_quota() {
        use super::{Cache, StoreError};
        use std::time::Duration;
        let c = Cache::memory(50, "t:").with_reserve(10, 3);
        c.set_reserved("victim", "ticket", &7, Duration::from_secs(60)).await.expect("reserved");
        // A flood of ordinary keys, far past the LRU's size, evicts none of it.
        for i in 0..500 {
            c.set(&format!("flood:{i}"), &i, None).await.expect("set");
        }
        assert_eq!(c.get::<i32>("ticket").await.expect("get"), Some(7));
        // One owner: three places, then refused; another owner is unaffected.
        for i in 0..3 {
            c.set_reserved("flooder", &format!("f{i}"), &i, Duration::from_secs(60)).await.expect("within quota");
        }
        let over = c.set_reserved("flooder", "f3", &3, Duration::from_secs(60)).await;
        assert!(matches!(over, Err(StoreError::Full(_))), "{over:?}");
        // Taking one gives its place back; writing the same key again does not cost one more.
        assert_eq!(c.take::<i32>("f0").await.expect("take"), Some(0));
        c.set_reserved("flooder", "f3", &3, Duration::from_secs(60)).await.expect("a place came back");
        c.set_reserved("flooder", "f3", &4, Duration::from_secs(60)).await.expect("rewritten in place");
        // The whole reserve (10): full means refused, never evicted.
        for i in 0..6 {
            c.set_reserved(&format!("o{i}"), "x", &i, Duration::from_secs(60)).await.ok();
            c.set_reserved(&format!("o{i}"), &format!("k{i}"), &i, Duration::from_secs(60)).await.ok();
        }
        let full = c.set_reserved("late", "late", &1, Duration::from_secs(60)).await;
        assert!(matches!(full, Err(StoreError::Full(_))), "{full:?}");
        assert_eq!(c.get::<i32>("ticket").await.expect("get"), Some(7), "the first entry is still there");
        // Expired entries give their places back.
        let short = Cache::memory(50, "t:").with_reserve(1, 1);
        short.set_reserved("a", "one", &1, Duration::from_millis(30)).await.expect("first");
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(short.get::<i32>("one").await.expect("get"), None, "expired");
        short.set_reserved("a", "two", &2, Duration::from_secs(60)).await.expect("the expired one's place");
        assert_eq!(short.delete(&["two"]).await.expect("delete"), 1);
    }

    #[test]
    fn spans_follow_redis() {
        assert_eq!(span(5, 0, -1), (0, 5));
        assert_eq!(span(5, -2, -1), (3, 5));
        assert_eq!(span(5, 1, 2), (1, 3));
        assert_eq!(span(5, 3, 1), (3, 3));
        assert_eq!(span(5, 0, 99), (0, 5));
        assert_eq!(span(0, 0, -1), (0, 0));
    }
}
