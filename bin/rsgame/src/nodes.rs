//! Game nodes in etcd: each node registers where clients reach it, how many players it holds
//! and the scenes it runs (`{discovery.prefix}nodes/{id}`, under a lease); the REST API
//! sends each player to the node it is already on, else to the least loaded live one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use rsgame_kit::Shutdown;
use rsgame_rpc::etcd::Etcd;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// What a node registers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeInfo {
    /// `node.id`.
    pub id: String,
    /// Where clients connect (`node.public_url`).
    pub url: String,
    /// Players online on it.
    pub players: usize,
    /// The scenes it runs.
    pub scenes: Vec<String>,
    /// The rooms players created on it (at most 100 listed).
    #[serde(default)]
    pub rooms: Vec<HostedRoom>,
    /// An operator is draining it: no new players are sent to it.
    #[serde(default)]
    pub draining: bool,
}

/// A created room, as the directory lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostedRoom {
    /// The room id.
    pub id: i64,
    /// Its name.
    pub name: String,
}

/// This node's id: `node.id`, or the machine's host name and the gate port (unique per
/// host and port, so two containers with default settings do not share an id).
pub fn node_id(cfg: &Config) -> String {
    if !cfg.node.id.is_empty() {
        return cfg.node.id.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String =
        host.trim().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    let host = if host.is_empty() { "node".to_owned() } else { host };
    format!("{host}-{}", cfg.gate.tcp_port)
}

/// Where clients reach this node: `node.public_url`, or the path `/ws`.
pub fn public_url(cfg: &Config) -> String {
    if cfg.node.public_url.is_empty() { "/ws".to_owned() } else { cfg.node.public_url.clone() }
}

fn prefix(cfg: &Config) -> String {
    format!("{}nodes/", cfg.discovery.prefix)
}

/// Registers this node and refreshes its player count every few seconds until shutdown.
/// Refuses to start when a live node holds the same id (after waiting out one lease, in case
/// it is this node's own entry from before a crash).
pub async fn register(
    cfg: &Config,
    etcd: Etcd,
    world: rsgame_world::World,
    scenes: Vec<String>,
    shutdown: &Shutdown,
) -> Result<(), String> {
    let id = node_id(cfg);
    let key = format!("{}{id}", prefix(cfg));
    let give_up = tokio::time::Instant::now() + Duration::from_secs(cfg.discovery.lease_ttl_secs + 2);
    loop {
        match etcd.get(&key).await {
            Ok(None) => break,
            Ok(Some(_)) if tokio::time::Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Ok(Some(_)) => return Err(format!("node.id {id:?} is in use by a live node")),
            // etcd away: registration retries by itself; the id check is best effort.
            Err(e) => {
                tracing::warn!(error = %e, "node id not checked: etcd unreachable");
                break;
            }
        }
    }
    let url = public_url(cfg);
    let key = format!("{}{id}", prefix(cfg));
    let info = move |players, rooms, draining| NodeInfo {
        id: id.clone(),
        url: url.clone(),
        players,
        scenes: scenes.clone(),
        rooms,
        draining,
    };
    let encode = |i: &NodeInfo| serde_json::to_string(i).unwrap_or_default();
    let ttl = Duration::from_secs(cfg.discovery.lease_ttl_secs);
    let reg = rsgame_rpc::discovery::register(etcd, key, encode(&info(0, Vec::new(), false)), ttl, shutdown.clone());
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut last = (0, Vec::new(), false);
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = stop.triggered() => return,
                _ = tick.tick() => {}
            }
            let rooms: Vec<HostedRoom> =
                world.created_rooms().into_iter().take(100).map(|(id, name)| HostedRoom { id, name }).collect();
            let now = (world.online(), rooms, world.draining());
            if now != last {
                reg.update(encode(&info(now.0, now.1.clone(), now.2)));
                last = now;
            }
        }
    });
    Ok(())
}

/// The live nodes, read from etcd, as usercenter's [`rsgame_usercenter::api::GameServers`].
pub struct NodeDirectory {
    nodes: watch::Receiver<BTreeMap<String, String>>,
    cache: rsgame_store::Cache,
    /// Used while no node is registered (`usercenter.game_servers`).
    fallback: Vec<String>,
}

impl NodeDirectory {
    /// Watches the nodes registered under `discovery.prefix`.
    pub fn new(cfg: &Config, etcd: Etcd, cache: rsgame_store::Cache, shutdown: &Shutdown) -> Arc<NodeDirectory> {
        let nodes = rsgame_rpc::discovery::watch_prefix(etcd, prefix(cfg), shutdown.clone());
        Arc::new(NodeDirectory { nodes, cache, fallback: cfg.usercenter.game_servers.clone() })
    }

    /// The live nodes taking players, least loaded first (ties by id, so the order is
    /// stable). Draining ones are left out, unless every node is draining: then players are
    /// still sent somewhere, and that node says why it refuses them.
    pub fn live(&self) -> Vec<NodeInfo> {
        let mut v: Vec<NodeInfo> =
            self.nodes.borrow().values().filter_map(|raw| serde_json::from_str::<NodeInfo>(raw).ok()).collect();
        if v.iter().any(|n| !n.draining) {
            v.retain(|n| !n.draining);
        }
        v.sort_by(|a, b| a.players.cmp(&b.players).then_with(|| a.id.cmp(&b.id)));
        v
    }
}

impl rsgame_world::cluster::Nodes for NodeDirectory {
    fn least_loaded(&self) -> Option<(String, String)> {
        self.live().into_iter().next().map(|n| (n.id, n.url))
    }
}

#[async_trait::async_trait]
impl rsgame_usercenter::api::GameServers for NodeDirectory {
    async fn for_user(&self, user_id: i64) -> Vec<String> {
        let mut live = self.live();
        if live.is_empty() {
            return self.fallback.clone();
        }
        // Already on a node (a refresh, a second device): that one first, so the player is
        // not moved; its other sessions would be ended by a login elsewhere.
        let key = rsgame_world::cluster::presence_key(user_id);
        if let Ok(Some(on)) = self.cache.get::<String>(&key).await
            && let Some(i) = live.iter().position(|n| n.id == on)
        {
            let n = live.remove(i);
            live.insert(0, n);
        }
        live.into_iter().map(|n| n.url).collect()
    }
}
