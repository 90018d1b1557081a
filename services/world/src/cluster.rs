//! The world over several game nodes. Each node is a line (分线) of the same world: it runs
//! every scene for the players connected to it. What crosses nodes: presence (which node a
//! player is on, in the shared cache with a TTL the node keeps refreshing), and over the bus
//! (NATS, Kafka or Redis streams; one consumer group per node, so every node gets every
//! message) world chat, private messages and friend notices for players on other nodes, and
//! the kick that ends a player's stay on one node when it logs in on another.
//!
//! When a node dies its players reconnect to a live one (the login reply names the live
//! nodes) and continue from their saved place and hit points; their presence expires after
//! `node.presence_ttl_secs` unless the new node overwrote it first.

use std::time::Duration;

use rsgame_proto::pb;
use rsgame_store::{Bus, Cache};
use serde::{Deserialize, Serialize};

/// The bus topic every node publishes world traffic to.
pub const TOPIC: &str = "world.cluster";

/// Messages older than this when they arrive are dropped: a node that was down does not
/// replay minutes of world chat on restart.
const STALE_MS: i64 = 30_000;

pub use rsgame_store::cache::presence_key;

/// What one node tells the others.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Wire {
    /// The node that sent it (its own copy is ignored).
    pub from: String,
    /// When it was sent, ms since the epoch.
    pub at: i64,
    pub what: What,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum What {
    /// World chat, for every player.
    World(pb::ChatMsg),
    /// A private message to `to`, stored as pending under `stored`: the node where `to` is
    /// delivers it and marks it delivered.
    Private { to: i64, stored: i64, msg: pb::ChatMsg },
    /// `user` came or went: for those of `followers` on this node, except the blocked.
    Friend { user: i64, info: pb::UserInfo, followers: Vec<i64>, blocked: Vec<i64> },
    /// `user` logged in on another node: end its stay here (unless it logged in here again
    /// after this was sent).
    Kick { user: i64 },
    /// `user`'s stay on the sending node has ended and its place is saved: node `to`, which
    /// asked with a kick, may load it now.
    Left { user: i64, to: String },
    /// The matchmaker formed a match: its players here are told where to play.
    Matched(crate::matchmaker::queue::MatchRecord),
    /// A ticket timed out: its players here are told.
    MatchTimedOut { ticket: String, mode: String, users: Vec<i64> },
    /// A party changed: pushed to those of `users` here.
    Party { users: Vec<i64>, update: pb::PartyUpdate },
    /// A party's or a guild's chat, for those of `users` here.
    GroupChat { users: Vec<i64>, msg: pb::ChatMsg },
}

/// The game nodes a match's room may go to (the binary's etcd directory).
pub trait Nodes: Send + Sync {
    /// The least loaded live node: its id and the URL clients reach it at.
    fn least_loaded(&self) -> Option<(String, String)>;
}

/// This node's place in the cluster.
pub struct Cluster {
    node: String,
    bus: Bus,
    cache: Cache,
    presence_ttl: Duration,
    /// Where clients reach this node (`node.public_url`; empty: `/ws`).
    url: String,
    nodes: Option<std::sync::Arc<dyn Nodes>>,
}

impl Cluster {
    /// Node `node` on `bus` with presence in `cache` (a shared one: Redis).
    pub fn new(node: String, bus: Bus, cache: Cache, presence_ttl: Duration) -> Cluster {
        Cluster { node, bus, cache, presence_ttl, url: "/ws".into(), nodes: None }
    }

    /// Where clients reach this node, and the directory of live nodes a match's room may go
    /// to (without one, matches play on the node that formed them).
    pub fn with_nodes(mut self, url: String, nodes: Option<std::sync::Arc<dyn Nodes>>) -> Cluster {
        self.url = url;
        self.nodes = nodes;
        self
    }

    /// Where a new match's room goes: the least loaded live node, else this one.
    pub(crate) fn room_node(&self) -> (String, String) {
        self.nodes.as_ref().and_then(|n| n.least_loaded()).unwrap_or_else(|| (self.node.clone(), self.url.clone()))
    }

    pub(crate) fn cache(&self) -> &Cache {
        &self.cache
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    pub(crate) fn bus(&self) -> &Bus {
        &self.bus
    }

    pub(crate) fn presence_ttl(&self) -> Duration {
        self.presence_ttl
    }

    pub(crate) async fn publish(&self, what: What) {
        let wire = Wire { from: self.node.clone(), at: rsgame_kit::time::unix_ms(), what };
        let payload = match serde_json::to_vec(&wire) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cluster message not encoded");
                return;
            }
        };
        if let Err(e) = self.bus.publish(TOPIC, &payload).await {
            metrics::counter!(crate::metrics::CLUSTER_PUBLISH_ERRORS).increment(1);
            tracing::warn!(error = %e, "cluster message not published: players on other nodes miss it");
        }
    }

    /// Decodes a message from the bus: what, when it was sent and by which node; None for
    /// this node's own, stale or unreadable ones.
    pub(crate) fn decode(&self, payload: &[u8]) -> Option<(What, i64, String)> {
        let wire: Wire = match serde_json::from_slice(payload) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable cluster message dropped");
                return None;
            }
        };
        if wire.from == self.node {
            return None;
        }
        if rsgame_kit::time::unix_ms() - wire.at > STALE_MS {
            metrics::counter!(crate::metrics::CLUSTER_STALE).increment(1);
            return None;
        }
        Some((wire.what, wire.at, wire.from))
    }

    /// The player is here now; returns the node it was on before, if another (one atomic
    /// step on Redis: of two nodes logging the player in at once, the second sees the first
    /// and ends its stay).
    pub(crate) async fn claim(&self, user: i64) -> Option<String> {
        match self.cache.replace(&presence_key(user), &self.node, Some(self.presence_ttl)).await {
            Ok(prev) => prev.filter(|n| *n != self.node),
            Err(e) => {
                tracing::warn!(user, error = %e, "presence not written");
                None
            }
        }
    }

    /// The player is still here (a refresh of its presence).
    pub(crate) async fn arrived(&self, user: i64) {
        if let Err(e) = self.cache.set(&presence_key(user), &self.node, Some(self.presence_ttl)).await {
            tracing::warn!(user, error = %e, "presence not written");
        }
    }

    /// The player left this node (its presence is removed unless another node took it).
    pub(crate) async fn left(&self, user: i64) {
        let key = presence_key(user);
        match self.cache.get::<String>(&key).await {
            Ok(Some(n)) if n == self.node => {
                if let Err(e) = self.cache.delete(&[&key]).await {
                    tracing::warn!(user, error = %e, "presence not removed: it expires");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(user, error = %e, "presence not read"),
        }
    }

    /// The node the player is on, if any.
    pub(crate) async fn where_is(&self, user: i64) -> Option<String> {
        self.cache.get::<String>(&presence_key(user)).await.ok().flatten()
    }
}
