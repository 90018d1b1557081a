//! Where parties are kept: in this process (one game node), or in Redis, shared by every game
//! node so that players on different nodes can party. A change reads the party, applies a
//! rule, and writes it back only if nobody changed it meanwhile (its version), in the same
//! atomic step that records who is in which party: a player is in one party at most, even
//! when two parties take it at the same moment.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rsgame_kit::{Code, Error, Result};

use super::Party;

/// How a write went.
#[derive(Debug, PartialEq, Eq)]
pub enum Put {
    /// Written.
    Done,
    /// The party changed since it was read: read it again.
    Conflict,
    /// This player is in another party.
    Taken(i64),
}

/// Where parties are kept.
#[async_trait::async_trait]
pub trait PartyStore: Send + Sync {
    /// The party, if it exists.
    async fn get(&self, id: &str) -> Result<Option<Party>>;
    /// The party `user` is in.
    async fn party_of(&self, user: i64) -> Result<Option<String>>;
    /// Writes `party` (None: deletes party `id`) if it is still at version `read` (0: it did
    /// not exist), records `join` as in it (each must be in no party, or this one) and
    /// `gone` as in none.
    async fn put(&self, id: &str, read: u64, party: Option<&Party>, join: &[i64], gone: &[i64]) -> Result<Put>;
}

/// Reads party `id`, applies `change` (which says what it did, and may refuse), and writes
/// the result, again on a conflict. `change` returns the party to keep (None: delete it),
/// the players who join it and those who leave it.
pub async fn change<T>(
    store: &dyn PartyStore,
    id: &str,
    mut change: impl FnMut(Party) -> Result<(Option<Party>, Vec<i64>, Vec<i64>, T)>,
) -> Result<(Option<Party>, T)> {
    for _ in 0..8 {
        let Some(p) = store.get(id).await? else {
            return Err(Error::msg(Code::NotFound, "no such party"));
        };
        let read = p.version;
        let (mut after, join, gone, out) = change(p)?;
        if let Some(a) = after.as_mut() {
            a.version = read + 1;
        }
        match store.put(id, read, after.as_ref(), &join, &gone).await? {
            Put::Done => return Ok((after, out)),
            Put::Conflict => continue,
            Put::Taken(user) => return Err(in_a_party(user)),
        }
    }
    Err(Error::msg(Code::TooManyRequests, "the party is changing too fast: try again"))
}

/// The refusal for a player who is in a party already.
pub fn in_a_party(user: i64) -> Error {
    Error::msg(Code::Failed, format!("player {user} is in a party already: leave it first"))
}

/// The parties of one process.
#[derive(Default)]
pub struct LocalParties {
    state: Mutex<(HashMap<String, Party>, HashMap<i64, String>)>,
}

#[async_trait::async_trait]
impl PartyStore for LocalParties {
    async fn get(&self, id: &str) -> Result<Option<Party>> {
        Ok(self.state.lock().unwrap_or_else(|p| p.into_inner()).0.get(id).cloned())
    }

    async fn party_of(&self, user: i64) -> Result<Option<String>> {
        Ok(self.state.lock().unwrap_or_else(|p| p.into_inner()).1.get(&user).cloned())
    }

    async fn put(&self, id: &str, read: u64, party: Option<&Party>, join: &[i64], gone: &[i64]) -> Result<Put> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (parties, of) = &mut *s;
        if parties.get(id).map_or(0, |p| p.version) != read {
            return Ok(Put::Conflict);
        }
        if let Some(u) = join.iter().find(|u| of.get(u).is_some_and(|p| p != id)) {
            return Ok(Put::Taken(*u));
        }
        match party {
            Some(p) => parties.insert(id.to_owned(), p.clone()),
            None => parties.remove(id),
        };
        for u in join {
            of.insert(*u, id.to_owned());
        }
        for u in gone {
            if of.get(u).is_some_and(|p| p == id) {
                of.remove(u);
            }
        }
        Ok(Put::Done)
    }
}

/// A party's keys live this long after its last change: parties of nodes that died (their
/// members never left) do not stay forever.
const KEEP: Duration = Duration::from_secs(24 * 3600);

/// Compare-and-set. KEYS: the party. ARGV: the version read, the JSON to write ('' deletes),
/// members joining ("1,2"), members leaving, the party id, the index's key prefix, ms to keep.
/// Returns 'ok', 'conflict' or 'taken:{user}'. Versions are small; user ids are compared as
/// text (Lua's numbers cannot hold every i64).
const PUT: &str = r"
local cur = redis.call('GET', KEYS[1])
local v = 0
if cur then v = cjson.decode(cur).version end
if tostring(v) ~= ARGV[1] then return 'conflict' end
for u in string.gmatch(ARGV[3], '[^,]+') do
  local p = redis.call('GET', ARGV[6] .. u)
  if p and p ~= ARGV[5] then return 'taken:' .. u end
end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[7]) end
for u in string.gmatch(ARGV[3], '[^,]+') do redis.call('SET', ARGV[6] .. u, ARGV[5], 'PX', ARGV[7]) end
for u in string.gmatch(ARGV[4], '[^,]+') do
  if redis.call('GET', ARGV[6] .. u) == ARGV[5] then redis.call('DEL', ARGV[6] .. u) end
end
return 'ok'
";

/// The parties every game node shares, in Redis (under `cache.prefix`).
pub struct RedisParties {
    conn: redis::aio::ConnectionManager,
    party: String,
    of: String,
    put: redis::Script,
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    Error::internal(Code::Unavailable, e.to_string())
}

impl RedisParties {
    /// The parties in `cache`; None when the cache is not Redis.
    pub fn new(cache: &rsgame_store::Cache) -> Option<RedisParties> {
        Some(RedisParties {
            conn: cache.redis_connection()?,
            party: cache.namespaced("party:"),
            of: cache.namespaced("party:of:"),
            put: redis::Script::new(PUT),
        })
    }
}

fn csv(users: &[i64]) -> String {
    users.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

#[async_trait::async_trait]
impl PartyStore for RedisParties {
    async fn get(&self, id: &str) -> Result<Option<Party>> {
        let mut c = self.conn.clone();
        let json: Option<String> =
            redis::cmd("GET").arg(format!("{}{id}", self.party)).query_async(&mut c).await.map_err(unavailable)?;
        json.map(|j| serde_json::from_str(&j).map_err(unavailable)).transpose()
    }

    async fn party_of(&self, user: i64) -> Result<Option<String>> {
        let mut c = self.conn.clone();
        redis::cmd("GET").arg(format!("{}{user}", self.of)).query_async(&mut c).await.map_err(unavailable)
    }

    async fn put(&self, id: &str, read: u64, party: Option<&Party>, join: &[i64], gone: &[i64]) -> Result<Put> {
        let json = party.map(serde_json::to_string).transpose().map_err(unavailable)?.unwrap_or_default();
        let mut inv = self.put.prepare_invoke();
        inv.key(format!("{}{id}", self.party))
            .arg(read)
            .arg(json)
            .arg(csv(join))
            .arg(csv(gone))
            .arg(id)
            .arg(&self.of)
            .arg(KEEP.as_millis() as u64);
        let mut c = self.conn.clone();
        let r: String = inv.invoke_async(&mut c).await.map_err(unavailable)?;
        Ok(match r.as_str() {
            "ok" => Put::Done,
            "conflict" => Put::Conflict,
            other => Put::Taken(other.trim_start_matches("taken:").parse().unwrap_or_default()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matchmaker::Member;

    fn m(user: i64) -> Member {
        Member { user, nickname: format!("p{user}") }
    }

    async fn behaves(s: &dyn PartyStore, big: i64) {
        let p = Party::new("x".into(), m(big), true, 3).expect("party");
        assert_eq!(s.put("x", 0, Some(&p), &[big], &[]).await.expect("put"), Put::Done);
        assert_eq!(s.put("x", 0, Some(&p), &[big], &[]).await.expect("put"), Put::Conflict, "exists");
        let q = Party::new("y".into(), m(2), true, 3).expect("party");
        assert_eq!(s.put("y", 0, Some(&q), &[2, big], &[]).await.expect("put"), Put::Taken(big), "one party each");
        assert_eq!(s.get("y").await.expect("get"), None, "nothing half-written");
        assert_eq!(s.party_of(2).await.expect("of"), None);
        let (after, ()) = change(s, "x", |mut p| {
            p.join(m(2), 0)?;
            Ok((Some(p), vec![2], vec![], ()))
        })
        .await
        .expect("joined");
        assert_eq!(after.map(|p| (p.version, p.users())), Some((2, vec![big, 2])));
        assert_eq!(s.party_of(2).await.expect("of").as_deref(), Some("x"));
        let refused = change(s, "x", |mut p| {
            p.kick(2, big)?;
            Ok((Some(p), vec![], vec![big], ()))
        })
        .await;
        assert_eq!(refused.expect_err("not the leader").code(), Code::Forbidden);
        change(s, "x", |mut p| {
            let stays = p.leave(big)?;
            Ok((stays.then_some(p), vec![], vec![big], ()))
        })
        .await
        .expect("left");
        assert_eq!(s.party_of(big).await.expect("of"), None);
        assert_eq!(s.get("x").await.expect("get").map(|p| p.leader), Some(2));
        assert_eq!(
            change(s, "nope", |p| Ok((Some(p), vec![], vec![], ()))).await.expect_err("none").code(),
            Code::NotFound
        );
    }

    #[tokio::test]
    async fn in_process() {
        behaves(&LocalParties::default(), 9_007_199_254_740_993).await;
    }

    #[tokio::test]
    async fn in_redis() {
        let Some(url) = rsgame_testkit::service("RSGAME_TEST_REDIS_URL") else { return };
        let prefix = format!("partytest{}:", rsgame_kit::time::unix_ms());
        let cache = rsgame_store::Cache::redis(&url, &prefix).await.expect("redis");
        behaves(&RedisParties::new(&cache).expect("redis"), 9_007_199_254_740_993).await;
        let _ = cache.delete_prefix("").await;
    }
}
