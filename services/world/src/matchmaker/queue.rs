//! Where tickets wait: in this process (one game node, the embedded default), or in Redis,
//! shared by every game node so that players on different nodes match each other.
//!
//! Every change is one atomic step: queueing checks that none of the ticket's players holds
//! a ticket already; taking a match's tickets out takes all of them or none (a player who
//! cancelled at that moment is not put in a match). One node at a time runs the matching
//! passes: the holder of a short lease, renewed every pass; when it dies another takes over
//! within the lease. Formed matches are kept until their seats expire, so the node that
//! hosts the room can check who may enter.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rsgame_kit::time::unix_ms;
use rsgame_kit::{Code, Error, Result};
use serde::{Deserialize, Serialize};

use super::{Member, Ticket};

/// A formed match, as the room's node checks entries against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchRecord {
    /// Unique per match.
    pub id: String,
    /// The mode's name.
    pub mode: String,
    /// The room it plays in.
    pub room: i64,
    /// The game node that hosts the room.
    pub node: String,
    /// Where clients reach that node (empty: the node they are on).
    pub url: String,
    /// Its players, by ticket.
    pub tickets: Vec<(String, Vec<Member>)>,
    /// Seats are kept until then (ms since the epoch).
    pub seats_until: i64,
}

impl MatchRecord {
    /// Every player of the match.
    pub fn players(&self) -> impl Iterator<Item = &Member> {
        self.tickets.iter().flat_map(|(_, m)| m.iter())
    }
}

/// Where tickets wait.
#[async_trait::async_trait]
pub trait Queue: Send + Sync {
    /// Queues the ticket, unless one of its players holds one already (400524).
    async fn add(&self, t: &Ticket) -> Result<()>;
    /// Takes ticket `id` out if `user` is one of its players; the ticket it was.
    async fn remove(&self, id: &str, user: i64) -> Result<Option<Ticket>>;
    /// Takes out the ticket `user` holds, if any.
    async fn remove_player(&self, user: i64) -> Result<Option<Ticket>>;
    /// Every waiting ticket.
    async fn all(&self) -> Result<Vec<Ticket>>;
    /// Takes each group's tickets out, all of a group or none of it (a group with a ticket
    /// gone already stays), and keeps the record of each match taken until its seats
    /// expire; in one step for the whole pass. Which groups were taken.
    async fn take(&self, groups: &[Taking]) -> Result<Vec<bool>>;
    /// Whether `node` runs the matching passes now (takes or renews a lease of `ttl`).
    async fn lead(&self, node: &str, ttl: Duration) -> bool;
    /// `count` new match numbers: the first of them.
    async fn next_matches(&self, count: usize) -> Result<i64>;
    /// The match playing in `room`, while its seats are kept.
    async fn get_match(&self, room: i64) -> Result<Option<MatchRecord>>;
}

/// Tickets a pass takes out of the queue together: a match (with its record) or one
/// ticket that timed out.
#[derive(Debug, Clone)]
pub struct Taking {
    /// The tickets' ids.
    pub tickets: Vec<String>,
    /// The match they form; None for a timed-out ticket.
    pub record: Option<MatchRecord>,
}

fn already_queued(user: i64) -> Error {
    Error::msg(Code::AlreadyQueued, format!("player {user} already holds a ticket: remove it first"))
}

/// The queue of one process.
#[derive(Default)]
pub struct LocalQueue {
    state: Mutex<Local>,
}

#[derive(Default)]
struct Local {
    tickets: HashMap<String, Ticket>,
    players: HashMap<i64, String>,
    matches: HashMap<i64, MatchRecord>,
    next: i64,
}

impl Local {
    fn remove(&mut self, id: &str) -> Option<Ticket> {
        let t = self.tickets.remove(id)?;
        for p in &t.players {
            if self.players.get(&p.user).is_some_and(|held| held == id) {
                self.players.remove(&p.user);
            }
        }
        Some(t)
    }
}

impl LocalQueue {
    fn state(&self) -> std::sync::MutexGuard<'_, Local> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl Queue for LocalQueue {
    async fn add(&self, t: &Ticket) -> Result<()> {
        let mut s = self.state();
        if let Some(p) = t.players.iter().find(|p| s.players.contains_key(&p.user)) {
            return Err(already_queued(p.user));
        }
        for p in &t.players {
            s.players.insert(p.user, t.id.clone());
        }
        s.tickets.insert(t.id.clone(), t.clone());
        Ok(())
    }

    async fn remove(&self, id: &str, user: i64) -> Result<Option<Ticket>> {
        let mut s = self.state();
        if !s.tickets.get(id).is_some_and(|t| t.players.iter().any(|p| p.user == user)) {
            return Ok(None);
        }
        Ok(s.remove(id))
    }

    async fn remove_player(&self, user: i64) -> Result<Option<Ticket>> {
        let mut s = self.state();
        let Some(id) = s.players.get(&user).cloned() else { return Ok(None) };
        Ok(s.remove(&id))
    }

    async fn all(&self) -> Result<Vec<Ticket>> {
        Ok(self.state().tickets.values().cloned().collect())
    }

    async fn take(&self, groups: &[Taking]) -> Result<Vec<bool>> {
        let mut s = self.state();
        let now = unix_ms();
        s.matches.retain(|_, m| m.seats_until > now);
        let mut taken = Vec::with_capacity(groups.len());
        for g in groups {
            let all = g.tickets.iter().all(|id| s.tickets.contains_key(id));
            if all {
                for id in &g.tickets {
                    s.remove(id);
                }
                if let Some(r) = &g.record {
                    s.matches.insert(r.room, r.clone());
                }
            }
            taken.push(all);
        }
        Ok(taken)
    }

    async fn lead(&self, _node: &str, _ttl: Duration) -> bool {
        true
    }

    async fn next_matches(&self, count: usize) -> Result<i64> {
        let mut s = self.state();
        let first = s.next + 1;
        s.next += count as i64;
        Ok(first)
    }

    async fn get_match(&self, room: i64) -> Result<Option<MatchRecord>> {
        Ok(self.state().matches.get(&room).filter(|m| m.seats_until > unix_ms()).cloned())
    }
}

/// Queues a ticket: refused with the first player that holds one already.
/// KEYS: tickets, players, members. ARGV: id, ticket JSON, its members ("1,2"), user ids…
const ADD: &str = r"
for i = 4, #ARGV do
  if redis.call('HEXISTS', KEYS[2], ARGV[i]) == 1 then return ARGV[i] end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
for i = 4, #ARGV do redis.call('HSET', KEYS[2], ARGV[i], ARGV[1]) end
return ''
";

/// Takes a ticket out: by id when `user` is one of its players (ARGV: id, user), or the one
/// `user` holds (ARGV: '', user). Returns its JSON, or false. Ids are compared as strings:
/// Lua's numbers cannot hold every i64.
const REMOVE: &str = r"
local id = ARGV[1]
if id == '' then
  id = redis.call('HGET', KEYS[2], ARGV[2])
  if not id then return false end
end
local m = redis.call('HGET', KEYS[3], id)
if not m then return false end
local mine = false
for u in string.gmatch(m, '[^,]+') do if u == ARGV[2] then mine = true end end
if not mine then return false end
local t = redis.call('HGET', KEYS[1], id)
redis.call('HDEL', KEYS[1], id)
redis.call('HDEL', KEYS[3], id)
for u in string.gmatch(m, '[^,]+') do
  if redis.call('HGET', KEYS[2], u) == id then redis.call('HDEL', KEYS[2], u) end
end
return t
";

/// Takes a pass's groups out, each all or none, keeping the records of the matches taken.
/// KEYS: tickets, players, members. ARGV[1]: a JSON list of {t: [ticket ids], k: record
/// key, r: record JSON, ttl: ms} (no k for a timed-out ticket). Returns a list of 1 or 0.
const TAKE: &str = r"
local groups = cjson.decode(ARGV[1])
local out = {}
for gi, g in ipairs(groups) do
  local all = 1
  for _, id in ipairs(g.t) do
    if redis.call('HEXISTS', KEYS[3], id) == 0 then all = 0 end
  end
  if all == 1 then
    for _, id in ipairs(g.t) do
      local m = redis.call('HGET', KEYS[3], id)
      redis.call('HDEL', KEYS[1], id)
      redis.call('HDEL', KEYS[3], id)
      for u in string.gmatch(m, '[^,]+') do
        if redis.call('HGET', KEYS[2], u) == id then redis.call('HDEL', KEYS[2], u) end
      end
    end
    if g.k then redis.call('SET', g.k, g.r, 'PX', g.ttl) end
  end
  out[gi] = all
end
return out
";

/// Takes or renews the leader's lease. KEYS: lease. ARGV: node, ttl ms.
const LEAD: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
";

/// The queue shared by every game node, in Redis (under `cache.prefix`).
pub struct RedisQueue {
    conn: redis::aio::ConnectionManager,
    keys: [String; 3],
    lease: String,
    next: String,
    prefix: String,
    add: redis::Script,
    remove: redis::Script,
    take: redis::Script,
    lead: redis::Script,
}

fn unavailable(e: redis::RedisError) -> Error {
    Error::internal(Code::Unavailable, e)
}

fn corrupt(e: serde_json::Error) -> Error {
    Error::internal(Code::Unavailable, e)
}

impl RedisQueue {
    /// The queue in `cache`; None when the cache is not Redis (then there is no queue shared
    /// between nodes).
    pub fn new(cache: &rsgame_store::Cache) -> Option<RedisQueue> {
        let conn = cache.redis_connection()?;
        let k = |s: &str| cache.namespaced(s);
        Some(RedisQueue {
            conn,
            keys: [k("mm:tickets"), k("mm:players"), k("mm:members")],
            lease: k("mm:leader"),
            next: k("mm:next"),
            prefix: k("mm:match:"),
            add: redis::Script::new(ADD),
            remove: redis::Script::new(REMOVE),
            take: redis::Script::new(TAKE),
            lead: redis::Script::new(LEAD),
        })
    }

    fn invoke<'a>(&'a self, script: &'a redis::Script) -> redis::ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        for k in &self.keys {
            inv.key(k);
        }
        inv
    }

    async fn removed(&self, id: &str, user: i64) -> Result<Option<Ticket>> {
        let mut inv = self.invoke(&self.remove);
        inv.arg(id).arg(user.to_string());
        let mut c = self.conn.clone();
        let json: Option<String> = inv.invoke_async(&mut c).await.map_err(unavailable)?;
        json.map(|j| serde_json::from_str(&j).map_err(corrupt)).transpose()
    }
}

#[async_trait::async_trait]
impl Queue for RedisQueue {
    async fn add(&self, t: &Ticket) -> Result<()> {
        let json = serde_json::to_string(t).map_err(corrupt)?;
        let members: Vec<String> = t.players.iter().map(|p| p.user.to_string()).collect();
        let mut inv = self.invoke(&self.add);
        inv.arg(&t.id).arg(json).arg(members.join(","));
        for m in &members {
            inv.arg(m);
        }
        let mut c = self.conn.clone();
        let held: String = inv.invoke_async(&mut c).await.map_err(unavailable)?;
        if held.is_empty() { Ok(()) } else { Err(already_queued(held.parse().unwrap_or_default())) }
    }

    async fn remove(&self, id: &str, user: i64) -> Result<Option<Ticket>> {
        if id.is_empty() {
            return Ok(None);
        }
        self.removed(id, user).await
    }

    async fn remove_player(&self, user: i64) -> Result<Option<Ticket>> {
        self.removed("", user).await
    }

    async fn all(&self) -> Result<Vec<Ticket>> {
        let mut c = self.conn.clone();
        let raw: Vec<String> = redis::cmd("HVALS").arg(&self.keys[0]).query_async(&mut c).await.map_err(unavailable)?;
        Ok(raw
            .iter()
            .filter_map(|j| match serde_json::from_str(j) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable matchmaking ticket skipped");
                    None
                }
            })
            .collect())
    }

    async fn take(&self, groups: &[Taking]) -> Result<Vec<bool>> {
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let now = unix_ms();
        let mut list = Vec::with_capacity(groups.len());
        for g in groups {
            let mut item = serde_json::json!({ "t": g.tickets });
            if let Some(r) = &g.record {
                item["k"] = format!("{}{}", self.prefix, r.room).into();
                item["r"] = serde_json::to_string(r).map_err(corrupt)?.into();
                item["ttl"] = (r.seats_until - now).max(1).into();
            }
            list.push(item);
        }
        let mut inv = self.invoke(&self.take);
        inv.arg(serde_json::Value::Array(list).to_string());
        let mut c = self.conn.clone();
        let taken: Vec<i64> = inv.invoke_async(&mut c).await.map_err(unavailable)?;
        Ok(taken.into_iter().map(|n| n == 1).collect())
    }

    async fn lead(&self, node: &str, ttl: Duration) -> bool {
        let mut inv = self.lead.prepare_invoke();
        inv.key(&self.lease).arg(node).arg(ttl.as_millis().max(1) as u64);
        let mut c = self.conn.clone();
        match inv.invoke_async::<i64>(&mut c).await {
            Ok(n) => n == 1,
            Err(e) => {
                tracing::warn!(error = %e, "matchmaker lease not renewed: no passes from this node");
                false
            }
        }
    }

    async fn next_matches(&self, count: usize) -> Result<i64> {
        let mut c = self.conn.clone();
        let last: i64 =
            redis::cmd("INCRBY").arg(&self.next).arg(count.max(1)).query_async(&mut c).await.map_err(unavailable)?;
        Ok(last - count.max(1) as i64 + 1)
    }

    async fn get_match(&self, room: i64) -> Result<Option<MatchRecord>> {
        let mut c = self.conn.clone();
        let json: Option<String> =
            redis::cmd("GET").arg(format!("{}{room}", self.prefix)).query_async(&mut c).await.map_err(unavailable)?;
        json.map(|j| serde_json::from_str(&j).map_err(corrupt)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matchmaker::Member;

    fn ticket(id: &str, users: &[i64]) -> Ticket {
        Ticket {
            id: id.into(),
            mode: "duel".into(),
            players: users.iter().map(|&user| Member { user, nickname: format!("p{user}") }).collect(),
            strings: Default::default(),
            numbers: Default::default(),
            query: Vec::new(),
            min: 2,
            max: 2,
            multiple: 1,
            created_ms: 1,
            expires_ms: i64::MAX,
        }
    }

    /// The behaviour every queue shares, run on each.
    async fn behaves(q: &dyn Queue, big: i64) {
        q.add(&ticket("a", &[1, big])).await.expect("queued");
        let again = q.add(&ticket("b", &[2, big])).await.expect_err("a player holds one");
        assert_eq!(again.code(), Code::AlreadyQueued);
        assert!(q.remove_player(2).await.expect("remove").is_none(), "nothing half-written");
        q.add(&ticket("b", &[2])).await.expect("queued");
        q.add(&ticket("c", &[3])).await.expect("queued");
        assert_eq!(q.all().await.expect("all").len(), 3);
        assert!(q.remove("a", 3).await.expect("remove").is_none(), "not its ticket");
        let rec = MatchRecord {
            id: "m".into(),
            mode: "duel".into(),
            room: 7_000_000_123,
            node: "n1".into(),
            url: "/ws".into(),
            tickets: vec![("b".into(), vec![Member { user: 2, nickname: "x".into() }])],
            seats_until: unix_ms() + 60_000,
        };
        let group = |ids: &[&str], record: Option<MatchRecord>| Taking {
            tickets: ids.iter().map(|s| s.to_string()).collect(),
            record,
        };
        let taken = q.take(&[group(&["b", "gone"], Some(rec.clone())), group(&["c"], None)]).await.expect("take");
        assert_eq!(taken, [false, true], "each group all or none");
        assert_eq!(q.get_match(rec.room).await.expect("get"), None, "no record for a group not taken");
        assert_eq!(q.take(&[group(&["b"], Some(rec.clone()))]).await.expect("take"), [true]);
        assert_eq!(q.get_match(rec.room).await.expect("get"), Some(rec));
        assert!(q.remove("b", 2).await.expect("remove").is_none(), "taken");
        let t = q.remove_player(big).await.expect("remove").expect("its ticket");
        assert_eq!(t.id, "a");
        assert!(q.all().await.expect("all").is_empty());
        q.add(&ticket("d", &[big])).await.expect("free to queue again");
        assert_eq!(q.remove("d", big).await.expect("remove").map(|t| t.id), Some("d".into()));
        let first = q.next_matches(3).await.expect("n");
        assert_eq!(q.next_matches(1).await.expect("n"), first + 3);
        assert!(q.lead("n1", Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn the_local_queue() {
        behaves(&LocalQueue::default(), 9_007_199_254_740_993).await;
    }

    #[tokio::test]
    async fn the_redis_queue() {
        let Some(url) = rsgame_testkit::service("RSGAME_TEST_REDIS_URL") else { return };
        let prefix = format!("mmtest{}:", unix_ms());
        let cache = rsgame_store::Cache::redis(&url, &prefix).await.expect("redis");
        let q = RedisQueue::new(&cache).expect("redis queue");
        // An id Lua's doubles cannot hold: compared as text, it still works.
        behaves(&q, 9_007_199_254_740_993).await;
        assert!(!q.lead("n2", Duration::from_secs(5)).await, "n1 holds the lease");
        let _ = cache.delete_prefix("").await;
    }
}
