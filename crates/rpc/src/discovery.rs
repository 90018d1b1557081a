//! Service discovery over etcd, in the manner of go-zero: a process registers what it serves
//! under a lease it keeps alive (so a process that dies silently disappears after the lease's
//! time-to-live) and revokes it on shutdown; clients watch a prefix and always hold the last
//! set of endpoints they saw — when etcd is away they keep calling those.

use std::collections::BTreeMap;
use std::time::Duration;

use rsgame_kit::Shutdown;
use tokio::sync::watch;

use crate::etcd::{Change, Etcd};

/// The key prefix under which servers of `service` register.
pub fn service_prefix(root: &str, service: &str) -> String {
    format!("{root}services/{service}/")
}

/// A registration kept alive in the background; see [`register`].
#[derive(Clone)]
pub struct Registration {
    value: watch::Sender<String>,
}

impl Registration {
    /// Replaces the registered value (a game node's load and scenes, for instance).
    pub fn update(&self, value: String) {
        self.value.send_replace(value);
    }
}

/// Registers `key` = `value` under a lease of `ttl` and keeps it there until `shutdown`
/// triggers, when the lease is revoked (the key disappears at once). If etcd is away or the
/// lease is lost (etcd restarted, a long pause), it registers again as soon as it can.
pub fn register(etcd: Etcd, key: String, value: String, ttl: Duration, shutdown: Shutdown) -> Registration {
    let (tx, mut rx) = watch::channel(value);
    tokio::spawn(async move {
        let ttl_secs = ttl.as_secs().max(2) as i64;
        let mut updates = true;
        let mut backoff = Duration::from_millis(200);
        let stop = shutdown.triggered();
        tokio::pin!(stop);
        loop {
            // The lease granted in this round, revoked if the round fails half-way or stops.
            let mut granted: Option<i64> = None;
            let registered = async {
                let lease = etcd.grant(ttl_secs).await?;
                granted = Some(lease);
                let value = rx.borrow_and_update().clone();
                etcd.put(&key, value.as_bytes(), lease).await?;
                let alive = etcd.keep_alive(lease).await?;
                Ok::<_, rsgame_kit::Error>((lease, alive))
            };
            let outcome = tokio::select! {
                _ = &mut stop => None,
                r = registered => Some(r),
            };
            let (lease, mut alive) = match outcome {
                Some(Ok(ok)) => ok,
                other => {
                    if let Some(lease) = granted {
                        // Best effort: an orphan lease ends by itself after its TTL anyway.
                        let _ = etcd.revoke(lease).await;
                    }
                    let Some(Err(e)) = other else { return };
                    tracing::warn!(key = %key, error = %e, retry_ms = backoff.as_millis() as u64, "registration failed");
                    tokio::select! { _ = &mut stop => return, _ = tokio::time::sleep(backoff) => {} }
                    backoff = (backoff * 2).min(ttl);
                    continue;
                }
            };
            tracing::info!(key = %key, lease, "registered in etcd");
            backoff = Duration::from_millis(200);
            // Renew three times per TTL so one lost renewal does not expire the lease.
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + ttl / 3, ttl / 3);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stop => {
                        if let Err(e) = etcd.revoke(lease).await {
                            tracing::warn!(key = %key, error = %e, "lease revoke failed: the key leaves when the lease ends");
                        } else {
                            tracing::info!(key = %key, "deregistered from etcd");
                        }
                        return;
                    }
                    changed = rx.changed(), if updates => {
                        if changed.is_err() {
                            // Every Registration handle is gone: the value stays as it is.
                            updates = false;
                            continue;
                        }
                        let value = rx.borrow_and_update().clone();
                        if let Err(e) = etcd.put(&key, value.as_bytes(), lease).await {
                            tracing::warn!(key = %key, error = %e, "registration update failed");
                        }
                    }
                    _ = tick.tick() => match alive.renew().await {
                        Ok(left) if left > 0 => {}
                        Ok(_) => {
                            tracing::warn!(key = %key, lease, "lease expired: registering again");
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(key = %key, error = %e, "keep-alive failed: registering again");
                            // Best effort: the old lease would otherwise hold a second copy
                            // of the key until its TTL.
                            let _ = etcd.revoke(lease).await;
                            break;
                        }
                    },
                }
            }
        }
    });
    Registration { value: tx }
}

/// Watches every key under `prefix`: the receiver always holds the current map of key →
/// value. It starts empty and fills after the first read; when etcd is away it keeps the
/// last map and retries (list again, then watch from that revision). Stops at `shutdown`.
pub fn watch_prefix(etcd: Etcd, prefix: String, shutdown: Shutdown) -> watch::Receiver<BTreeMap<String, String>> {
    let (tx, rx) = watch::channel(BTreeMap::new());
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(200);
        let stop = shutdown.triggered();
        tokio::pin!(stop);
        loop {
            let began = tokio::time::Instant::now();
            let run = async {
                let (kvs, rev) = etcd.list(&prefix).await?;
                let map: BTreeMap<String, String> =
                    kvs.into_iter().map(|kv| (kv.key, String::from_utf8_lossy(&kv.value).into_owned())).collect();
                tx.send_replace(map);
                let mut watching = etcd.watch(&prefix, rev + 1).await?;
                loop {
                    let changes = watching.next().await?;
                    tx.send_modify(|map| {
                        for c in changes {
                            match c {
                                Change::Put(kv) => {
                                    map.insert(kv.key, String::from_utf8_lossy(&kv.value).into_owned());
                                }
                                Change::Delete(key) => {
                                    map.remove(&key);
                                }
                            }
                        }
                    });
                }
                #[allow(unreachable_code)]
                Ok::<(), rsgame_kit::Error>(())
            };
            tokio::select! {
                _ = &mut stop => return,
                // Nobody follows the directory any more.
                _ = tx.closed() => return,
                r = run => if let Err(e) = r {
                    tracing::warn!(prefix = %prefix, error = %e, retry_ms = backoff.as_millis() as u64, "etcd watch lost: keeping the last endpoints");
                },
            }
            if tx.is_closed() {
                return;
            }
            if began.elapsed() > Duration::from_secs(10) {
                backoff = Duration::from_millis(200);
            }
            tokio::select! { _ = &mut stop => return, _ = tokio::time::sleep(backoff) => {} }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    });
    rx
}
