//! Servers: the game nodes with their players, scenes and rooms (from the status each node
//! writes to the shared cache every few seconds), draining or reopening a node, and closing
//! a room players created. Commands go to the node over the bus; the console then waits for
//! the node's next status to show the change, so the operator learns whether it took.

use std::collections::BTreeMap;
use std::time::Duration;

use rsgame_kit::{Code, Error, Result};
use rsgame_proto::events::{NODE_COMMAND_TOPIC, NodeCommand, NodeDrain};
use rsgame_world::node::servers::{LOCATE_PREFIX, NODE_STATUS_INDEX, NodeStatus, Whereabouts, node_status_key};
use serde::Deserialize;

use crate::Console;
use crate::audit::{self, Change, json};
use crate::players::reason;
use crate::sessions::Session;

/// How long a player's page waits for the node that holds the player to say where it is.
const LOCATE_WITHIN: Duration = Duration::from_millis(1500);

/// How long the console waits for a node to show a command took.
const CONFIRM_WITHIN: Duration = Duration::from_secs(10);

/// Drain a node, or take players again.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrainReq {
    /// The node's id.
    pub node: String,
    /// true: refuse new game logins; false: take them again.
    pub drain: bool,
    /// Why.
    pub reason: String,
}

/// Close a created room.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloseRoomReq {
    /// The node's id.
    pub node: String,
    /// The room's id.
    pub room: i64,
    /// Why (its players are told).
    pub reason: String,
}

impl Console {
    /// The game nodes that wrote a status lately, by id.
    pub async fn nodes(&self) -> Result<Vec<NodeStatus>> {
        let index: BTreeMap<String, i64> = self.cache.get(NODE_STATUS_INDEX).await?.unwrap_or_default();
        let keys: Vec<String> = index.keys().map(|n| node_status_key(n)).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        Ok(self.cache.get_many::<NodeStatus>(&keys).await?.into_iter().flatten().collect())
    }

    async fn node(&self, id: &str) -> Result<Option<NodeStatus>> {
        if id.is_empty() || id.len() > 128 {
            return Err(Error::bad_param("node: a node's id, 1 to 128 bytes"));
        }
        Ok(self.cache.get(&node_status_key(id)).await?)
    }

    /// Sends `c` to its node.
    async fn command(&self, c: &NodeCommand) -> Result<()> {
        let bus = self.game.events().ok_or_else(|| Error::msg(Code::Unavailable, "no bus to the game nodes"))?;
        bus.publish(NODE_COMMAND_TOPIC, &prost::Message::encode_to_vec(c)).await?;
        Ok(())
    }

    /// Waits for `node`'s status to satisfy `done`; the status, or an error saying the
    /// command was sent but not seen to take.
    async fn confirmed(&self, node: &str, done: impl Fn(&NodeStatus) -> bool) -> Result<NodeStatus> {
        let until = tokio::time::Instant::now() + CONFIRM_WITHIN;
        loop {
            if let Some(s) = self.node(node).await?
                && done(&s)
            {
                return Ok(s);
            }
            if tokio::time::Instant::now() >= until {
                return Err(Error::msg(
                    Code::Timeout,
                    "sent, but the node has not shown the change yet: look at the servers page again",
                ));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Where an online player is now (node, scene or room), as the node that holds it
    /// answers on the bus; None when no node answers in time (offline, or a node that is
    /// going away).
    pub async fn locate(&self, user_id: i64) -> Option<Whereabouts> {
        let bus = self.game.events()?;
        let key = format!("{LOCATE_PREFIX}{}", rsgame_usercenter::logic::random_hex(16));
        let ask = NodeCommand { locate: user_id, reply_key: key.clone(), ..Default::default() };
        if let Err(e) = bus.publish(NODE_COMMAND_TOPIC, &prost::Message::encode_to_vec(&ask)).await {
            tracing::debug!(error = %e, "locate not asked");
            return None;
        }
        let until = tokio::time::Instant::now() + LOCATE_WITHIN;
        while tokio::time::Instant::now() < until {
            if let Ok(Some(w)) = self.cache.get::<Whereabouts>(&key).await {
                return Some(w);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Drains a node (its new game logins are refused, so players go to the others) or
    /// reopens it; the node's status once it shows the change.
    pub async fn drain(&self, s: &Session, ip: &str, r: &DrainReq) -> Result<NodeStatus> {
        let why = reason(&r.reason)?;
        let before = self.node(&r.node).await?.ok_or_else(|| Error::msg(Code::NotFound, "no such live node"))?;
        let drain = if r.drain { NodeDrain::On } else { NodeDrain::Off };
        self.command(&NodeCommand { node: r.node.clone(), drain: drain as i32, ..Default::default() }).await?;
        let action = if r.drain { "node.drain" } else { "node.open" };
        let change = Change::by(s, ip, action, format!("node:{}", r.node));
        let after = serde_json::json!({ "draining": r.drain });
        audit::record(self.db(), Change { before: json(&before.draining), after: json(&after), reason: why, ..change })
            .await?;
        self.confirmed(&r.node, |n| n.draining == r.drain).await
    }

    /// Closes a created room: its players go back to the scenes they came from, told why.
    pub async fn close_room(&self, s: &Session, ip: &str, r: &CloseRoomReq) -> Result<NodeStatus> {
        let why = reason(&r.reason)?;
        let before = self.node(&r.node).await?.ok_or_else(|| Error::msg(Code::NotFound, "no such live node"))?;
        let room = before
            .rooms
            .iter()
            .find(|x| x.id == r.room)
            .ok_or_else(|| Error::msg(Code::NotFound, "no such room on that node"))?;
        if room.permanent {
            return Err(Error::bad_param("a scene of the world cannot be closed: drain the node instead"));
        }
        let remark = format!("closed by an operator: {why}");
        self.command(&NodeCommand { node: r.node.clone(), close_room: r.room, remark, ..Default::default() }).await?;
        let change = Change::by(s, ip, "room.close", format!("node:{}", r.node));
        let after = serde_json::json!({ "room": r.room, "closed": true });
        audit::record(self.db(), Change { before: json(room), after: json(&after), reason: why, ..change }).await?;
        self.confirmed(&r.node, |n| !n.rooms.iter().any(|x| x.id == r.room)).await
    }
}
