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
    /// Takes the tickets out, all or none: false when one is gone already.
    async fn take(&self, ids: &[&str]) -> Result<bool>;
    /// Whether `node` runs the matching passes now (takes or renews a lease of `ttl`).
    async fn lead(&self, node: &str, ttl: Duration) -> bool;
    /// A new match number.
    async fn next_match(&self) -> Result<i64>;
    /// Keeps a formed match until its seats expire.
    async fn put_match(&self, m: &MatchRecord) -> Result<()>;
    /// The match playing in `room`, while its seats are kept.
    async fn get_match(&self, room: i64) -> Result<Option<MatchRecord>>;
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

    async fn take(&self, ids: &[&str]) -> Result<bool> {
        let mut s = self.state();
        if !ids.iter().all(|id| s.tickets.contains_key(*id)) {
            return Ok(false);
        }
        for id in ids {
            s.remove(id);
        }
        Ok(true)
    }

    async fn lead(&self, _node: &str, _ttl: Duration) -> bool {
        true
    }

    async fn next_match(&self) -> Result<i64> {
        let mut s = self.state();
        s.next += 1;
        Ok(s.next)
    }

    async fn put_match(&self, m: &MatchRecord) -> Result<()> {
        let mut s = self.state();
        let now = unix_ms();
        s.matches.retain(|_, m| m.seats_until > now);
        s.matches.insert(m.room, m.clone());
        Ok(())
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

/// Takes every ticket of ARGV out, or none when one is gone: 1 or 0.
const TAKE: &str = r"
for i = 1, #ARGV do
  if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 0 then return 0 end
end
for i = 1, #ARGV do
  local m = redis.call('HGET', KEYS[3], ARGV[i])
  redis.call('HDEL', KEYS[1], ARGV[i])
  redis.call('HDEL', KEYS[3], ARGV[i])
  for u in string.gmatch(m, '[^,]+') do
    if redis.call('HGET', KEYS[2], u) == ARGV[i] then redis.call('HDEL', KEYS[2], u) end
  end
end
return 1
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

    async fn take(&self, ids: &[&str]) -> Result<bool> {
        let mut inv = self.invoke(&self.take);
        for id in ids {
            inv.arg(*id);
        }
        let mut c = self.conn.clone();
        let n: i64 = inv.invoke_async(&mut c).await.map_err(unavailable)?;
        Ok(n == 1)
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

    async fn next_match(&self) -> Result<i64> {
        let mut c = self.conn.clone();
        redis::cmd("INCR").arg(&self.next).query_async(&mut c).await.map_err(unavailable)
    }

    async fn put_match(&self, m: &MatchRecord) -> Result<()> {
        let json = serde_json::to_string(m).map_err(corrupt)?;
        let ttl = (m.seats_until - unix_ms()).max(1);
        let mut c = self.conn.clone();
        redis::cmd("SET")
            .arg(format!("{}{}", self.prefix, m.room))
            .arg(json)
            .arg("PX")
            .arg(ttl)
            .query_async::<()>(&mut c)
            .await
            .map_err(unavailable)
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
        assert!(!q.take(&["b", "gone"]).await.expect("take"), "all or none");
        assert!(q.take(&["b", "c"]).await.expect("take"));
        assert!(q.remove("b", 2).await.expect("remove").is_none(), "taken");
        let t = q.remove_player(big).await.expect("remove").expect("its ticket");
        assert_eq!(t.id, "a");
        assert!(q.all().await.expect("all").is_empty());
        q.add(&ticket("d", &[big])).await.expect("free to queue again");
        assert_eq!(q.remove("d", big).await.expect("remove").map(|t| t.id), Some("d".into()));
        let (m1, m2) = (q.next_match().await.expect("n"), q.next_match().await.expect("n"));
        assert!(m2 > m1);
        let rec = MatchRecord {
            id: "m".into(),
            mode: "duel".into(),
            room: 7_000_000_123,
            node: "n1".into(),
            url: "/ws".into(),
            tickets: vec![("a".into(), vec![Member { user: big, nickname: "x".into() }])],
            seats_until: unix_ms() + 60_000,
        };
        q.put_match(&rec).await.expect("kept");
        assert_eq!(q.get_match(rec.room).await.expect("get"), Some(rec));
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
