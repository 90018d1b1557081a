//! A small etcd v3 client: the calls discovery needs (range, put, delete, a compare-and-put,
//! leases with keep-alive, watches), over tonic and the subset of etcd's own protocol in
//! `proto/etcd/` — compiled by protox like the rest, so the build needs no `protoc`.

use std::time::Duration;

use rsgame_kit::{Code, Error, Result};
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

use crate::pb::etcdserverpb as pb;
use crate::pb::etcdserverpb::kv_client::KvClient;
use crate::pb::etcdserverpb::lease_client::LeaseClient;
use crate::pb::etcdserverpb::watch_client::WatchClient;

/// How long one unary etcd call may take: discovery must not hang a start-up or a loop.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle on an etcd cluster; cheap to clone.
#[derive(Clone)]
pub struct Etcd {
    channel: Channel,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> Error {
    Error::internal(Code::Unavailable, std::io::Error::other(format!("etcd {what}: {e}")))
}

/// The end of the key range that holds every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff: etcd's "to the end of the keyspace".
    vec![0]
}

/// One key and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
}

/// A change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The key was written.
    Put(Kv),
    /// The key was deleted (or its lease ended).
    Delete(String),
}

/// An open watch: changes in order, from a revision on.
pub struct Watching {
    stream: tonic::Streaming<pb::WatchResponse>,
    // Dropping the request side would end the watch.
    _requests: mpsc::Sender<pb::WatchRequest>,
}

impl Watching {
    /// The next batch of changes; an error when the watch ended (etcd went away, or the
    /// revision was compacted): list again and watch from the new revision.
    pub async fn next(&mut self) -> Result<Vec<Change>> {
        loop {
            let resp = self
                .stream
                .message()
                .await
                .map_err(|e| unavailable("watch", e))?
                .ok_or_else(|| unavailable("watch", "stream closed"))?;
            if resp.canceled {
                return Err(unavailable("watch", format!("canceled: {}", resp.cancel_reason)));
            }
            if resp.created && resp.events.is_empty() {
                continue;
            }
            let changes = resp
                .events
                .into_iter()
                .filter_map(|ev| {
                    let kv = ev.kv?;
                    let key = String::from_utf8_lossy(&kv.key).into_owned();
                    Some(if ev.r#type == crate::pb::mvccpb::event::EventType::Delete as i32 {
                        Change::Delete(key)
                    } else {
                        Change::Put(Kv { key, value: kv.value })
                    })
                })
                .collect();
            return Ok(changes);
        }
    }
}

/// A lease kept alive: send on `tick` and read the reply's TTL (0: the lease is gone).
pub struct KeepAlive {
    lease: i64,
    requests: mpsc::Sender<pb::LeaseKeepAliveRequest>,
    replies: tonic::Streaming<pb::LeaseKeepAliveResponse>,
}

impl KeepAlive {
    /// Renews the lease once; returns its new time-to-live in seconds (0: it expired).
    pub async fn renew(&mut self) -> Result<i64> {
        let req = pb::LeaseKeepAliveRequest { id: self.lease };
        self.requests.send(req).await.map_err(|_| unavailable("keep-alive", "stream closed"))?;
        let reply = tokio::time::timeout(CALL_TIMEOUT, self.replies.message())
            .await
            .map_err(|_| unavailable("keep-alive", "no reply"))?
            .map_err(|e| unavailable("keep-alive", e))?
            .ok_or_else(|| unavailable("keep-alive", "stream closed"))?;
        Ok(reply.ttl)
    }
}

/// A client-streaming request body fed from a channel.
fn requests<T: Send + 'static>(rx: mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) })
}

async fn timed<T>(what: &str, fut: impl Future<Output = std::result::Result<T, tonic::Status>>) -> Result<T> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(unavailable(what, e)),
        Err(_) => Err(unavailable(what, "timed out")),
    }
}

impl Etcd {
    /// A lazily connecting client balanced over `endpoints` (`http://host:2379`). Must run in
    /// a Tokio runtime.
    pub fn connect(endpoints: &[String]) -> Result<Etcd> {
        let mut list = Vec::new();
        for url in endpoints {
            // No per-request timeout on the endpoint: it would cut the long-lived watch and
            // keep-alive streams; unary calls get CALL_TIMEOUT instead.
            let ep = Endpoint::from_shared(url.clone())
                .map_err(|e| Error::internal(Code::Failed, std::io::Error::other(format!("etcd url {url}: {e}"))))?
                .connect_timeout(Duration::from_secs(2))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(5));
            list.push(ep);
        }
        if list.is_empty() {
            return Err(Error::msg(Code::Failed, "no etcd endpoints"));
        }
        Ok(Etcd { channel: Channel::balance_list(list.into_iter()) })
    }

    fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel.clone())
    }

    /// Grants a lease of `ttl` seconds; returns its id.
    pub async fn grant(&self, ttl: i64) -> Result<i64> {
        let req = pb::LeaseGrantRequest { ttl, id: 0 };
        let r = timed("lease grant", LeaseClient::new(self.channel.clone()).lease_grant(req)).await?.into_inner();
        if !r.error.is_empty() {
            return Err(unavailable("lease grant", r.error));
        }
        Ok(r.id)
    }

    /// Revokes a lease: every key attached to it is deleted at once.
    pub async fn revoke(&self, lease: i64) -> Result<()> {
        let req = pb::LeaseRevokeRequest { id: lease };
        timed("lease revoke", LeaseClient::new(self.channel.clone()).lease_revoke(req)).await.map(drop)
    }

    /// Opens the keep-alive stream of `lease` (renewing it once: etcd answers the stream's
    /// headers only with its first reply).
    pub async fn keep_alive(&self, lease: i64) -> Result<KeepAlive> {
        let (tx, rx) = mpsc::channel(4);
        tx.send(pb::LeaseKeepAliveRequest { id: lease }).await.map_err(|_| unavailable("keep-alive", "closed"))?;
        let mut replies = timed("keep-alive", LeaseClient::new(self.channel.clone()).lease_keep_alive(requests(rx)))
            .await?
            .into_inner();
        let first = tokio::time::timeout(CALL_TIMEOUT, replies.message())
            .await
            .map_err(|_| unavailable("keep-alive", "no reply"))?
            .map_err(|e| unavailable("keep-alive", e))?
            .ok_or_else(|| unavailable("keep-alive", "stream closed"))?;
        if first.ttl <= 0 {
            return Err(unavailable("keep-alive", "the lease has expired"));
        }
        Ok(KeepAlive { lease, requests: tx, replies })
    }

    /// Writes `key` (attached to `lease` unless it is 0).
    pub async fn put(&self, key: &str, value: &[u8], lease: i64) -> Result<()> {
        let req = pb::PutRequest { key: key.into(), value: value.to_vec(), lease, ..Default::default() };
        timed("put", self.kv().put(req)).await.map(drop)
    }

    /// Writes `key` only if it does not exist; true when written.
    pub async fn put_if_absent(&self, key: &str, value: &[u8], lease: i64) -> Result<bool> {
        use pb::compare::{CompareResult, CompareTarget, TargetUnion};
        let req = pb::TxnRequest {
            compare: vec![pb::Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Create as i32,
                key: key.into(),
                target_union: Some(TargetUnion::CreateRevision(0)),
                range_end: Vec::new(),
            }],
            success: vec![pb::RequestOp {
                request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                    key: key.into(),
                    value: value.to_vec(),
                    lease,
                    ..Default::default()
                })),
            }],
            failure: Vec::new(),
        };
        Ok(timed("txn", self.kv().txn(req)).await?.into_inner().succeeded)
    }

    /// Reads one key.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let req = pb::RangeRequest { key: key.into(), ..Default::default() };
        let r = timed("range", self.kv().range(req)).await?.into_inner();
        Ok(r.kvs.into_iter().next().map(|kv| kv.value))
    }

    /// Every key under `prefix`, and the revision they were read at.
    pub async fn list(&self, prefix: &str) -> Result<(Vec<Kv>, i64)> {
        let req =
            pb::RangeRequest { key: prefix.into(), range_end: prefix_end(prefix.as_bytes()), ..Default::default() };
        let r = timed("range", self.kv().range(req)).await?.into_inner();
        let rev = r.header.map_or(0, |h| h.revision);
        let kvs =
            r.kvs.into_iter().map(|kv| Kv { key: String::from_utf8_lossy(&kv.key).into_owned(), value: kv.value });
        Ok((kvs.collect(), rev))
    }

    /// Deletes one key.
    pub async fn delete(&self, key: &str) -> Result<()> {
        let req = pb::DeleteRangeRequest { key: key.into(), ..Default::default() };
        timed("delete", self.kv().delete_range(req)).await.map(drop)
    }

    /// Watches every key under `prefix` from revision `from` on.
    pub async fn watch(&self, prefix: &str, from: i64) -> Result<Watching> {
        let (tx, rx) = mpsc::channel(1);
        let create = pb::WatchCreateRequest {
            key: prefix.into(),
            range_end: prefix_end(prefix.as_bytes()),
            start_revision: from,
            ..Default::default()
        };
        let first = pb::WatchRequest { request_union: Some(pb::watch_request::RequestUnion::CreateRequest(create)) };
        tx.send(first).await.map_err(|_| unavailable("watch", "request stream closed"))?;
        let stream = timed("watch", WatchClient::new(self.channel.clone()).watch(requests(rx))).await?.into_inner();
        Ok(Watching { stream, _requests: tx })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_cover_the_prefix() {
        assert_eq!(prefix_end(b"/rsgame/"), b"/rsgame0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}
