//! The matchmaker's rules, without sockets, stores or clocks: the modes from the game data,
//! a ticket checked as it is queued, a query over other tickets' properties, and one
//! matching pass over the queue.
//!
//! A ticket is one player, or a party queued by its leader (all its players land in the
//! same match). Its string and numeric properties are what other tickets' queries see; its
//! query is what it asks of every other ticket of its match: a match is a set of tickets of
//! one mode in which every ticket's query holds for every other ticket (both ways), and whose
//! player count every ticket accepts (its minimum, maximum and multiple).
//!
//! A pass takes the oldest waiting ticket first and fills its match from the tickets its
//! query allows — by a sorted index on the query's first numeric range, nearest value first
//! — up to the smallest maximum in the match. A match below that maximum forms only once its
//! oldest ticket has waited the mode's `fill_secs`. A mode may widen a numeric range as a
//! ticket waits (a rating window growing every few seconds). Tickets past the mode's
//! timeout leave the queue.
//!
//! - `queue`: where tickets wait (in process, or in Redis shared by every game node).

use std::collections::{BTreeMap, HashMap};

use rsgame_kit::{Error, Result};
use rsgame_proto::pb;
use serde::{Deserialize, Serialize};

use queue::{MatchRecord, Queue, Taking};

pub mod queue;

/// Match rooms' ids start here, from the queue's match numbers, so they are unique across
/// the cluster (rooms players create count up from 10,000 on each node).
pub const MATCH_ROOM_BASE: i64 = 1_000_000_000;

/// The largest query, encoded, a ticket may carry.
pub const MAX_QUERY_BYTES: usize = 1024;
/// Properties per ticket (strings and numbers together).
pub const MAX_PROPS: usize = 32;
/// The longest property key, and the longest string value.
pub const MAX_KEY: usize = 32;
const MAX_VALUE: usize = 64;
/// Tickets one anchor looks at in a pass: a crowd of compatible tickets costs no more.
const MAX_SCAN: usize = 2000;

/// How a mode widens a numeric range as a ticket waits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Widen {
    /// The numeric property whose ranges widen (`rating`).
    pub key: String,
    /// Every this many seconds of waiting…
    pub every_secs: u64,
    /// …each end of the range moves out by this much…
    pub step: f64,
    /// …up to this much in all.
    pub max: f64,
}

/// What a match's room is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomKind {
    /// A frame-sync room (clients must log in with `caps=lockstep`).
    Lockstep,
    /// A small scene, laid out like the scene `scene` (without its monsters).
    Scene,
}

/// A match mode, from the game data (`match_modes` in `world.yaml`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mode {
    /// What clients ask for (`duel`).
    pub name: String,
    /// The room the match plays in.
    pub room: RoomKind,
    /// For a scene room: the scene it copies.
    #[serde(default)]
    pub scene: Option<i32>,
    /// Players in a match: at least…
    pub min_count: u32,
    /// …at most…
    pub max_count: u32,
    /// …and a multiple of this (2: teams of two sides).
    #[serde(default = "one")]
    pub count_multiple: u32,
    /// The largest party that may queue together.
    #[serde(default = "one")]
    pub max_party: u32,
    /// A ticket leaves the queue after this long without a match.
    pub timeout_secs: u64,
    /// How long a match waits to fill up to its maximum before forming with fewer.
    #[serde(default)]
    pub fill_secs: u64,
    /// How long each player's seat in the room is kept.
    #[serde(default = "default_seat_secs")]
    pub seat_secs: u64,
    /// A numeric range that widens as a ticket waits.
    #[serde(default)]
    pub widen: Option<Widen>,
}

fn one() -> u32 {
    1
}

fn default_seat_secs() -> u64 {
    30
}

impl Mode {
    /// Checks a mode as the game data loader does; the message names the field.
    pub fn check(&self) -> std::result::Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= MAX_KEY
            && self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            return Err("name: 1 to 32 letters, digits, _ or -".into());
        }
        if self.min_count == 0 || self.min_count > self.max_count || self.max_count > 100 {
            return Err("min_count and max_count: 1 ≤ min_count ≤ max_count ≤ 100".into());
        }
        if self.count_multiple == 0 || self.count_multiple > self.max_count {
            return Err("count_multiple: 1 to max_count".into());
        }
        if self.max_party == 0 || self.max_party > self.max_count {
            return Err("max_party: 1 to max_count".into());
        }
        if self.timeout_secs == 0 || self.seat_secs == 0 {
            return Err("timeout_secs and seat_secs: above 0".into());
        }
        if self.room == RoomKind::Scene && self.scene.is_none() {
            return Err("scene: the scene a scene room copies".into());
        }
        if let Some(w) = &self.widen
            && (w.key.is_empty() || w.every_secs == 0 || !w.step.is_finite() || w.step < 0.0 || !w.max.is_finite())
        {
            return Err("widen: a key, every_secs above 0, a finite step and max".into());
        }
        Ok(())
    }

    /// The room type clients see (CreateRoom's numbering).
    pub fn room_type(&self) -> pb::RoomType {
        match self.room {
            RoomKind::Lockstep => pb::RoomType::Lockstep,
            RoomKind::Scene => pb::RoomType::Public,
        }
    }
}

/// One condition of a query (see `pb::MatchTerm`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Term {
    /// The property.
    pub key: String,
    /// The string values allowed; empty for a numeric range.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub any_of: Vec<String>,
    /// The numeric range's lower end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The numeric range's upper end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// A player of a ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The account.
    pub user: i64,
    /// Shown to the other players of the match.
    pub nickname: String,
}

/// A queued ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    /// Unique in the queue.
    pub id: String,
    /// The mode's name.
    pub mode: String,
    /// Its players (one, or a party).
    pub players: Vec<Member>,
    /// String properties others' queries see.
    #[serde(default)]
    pub strings: BTreeMap<String, String>,
    /// Numeric properties others' queries see.
    #[serde(default)]
    pub numbers: BTreeMap<String, f64>,
    /// What it asks of the others.
    #[serde(default)]
    pub query: Vec<Term>,
    /// The fewest players it accepts in its match.
    pub min: u32,
    /// The most players it accepts.
    pub max: u32,
    /// The match's player count is a multiple of this.
    pub multiple: u32,
    /// When it was queued (ms since the epoch).
    pub created_ms: i64,
    /// When it times out (ms since the epoch).
    pub expires_ms: i64,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::bad_param(msg.into())
}

fn key_ok(k: &str) -> bool {
    !k.is_empty() && k.len() <= MAX_KEY && !k.chars().any(char::is_control)
}

impl Ticket {
    /// Checks a MatchAdd against its mode and makes the ticket. Every refusal is 400102 with
    /// the field named.
    pub fn new(
        id: String,
        req: &pb::MatchAdd,
        modes: &HashMap<String, Mode>,
        players: Vec<Member>,
        now_ms: i64,
    ) -> Result<Ticket> {
        let mode = modes.get(&req.mode).ok_or_else(|| bad(format!("mode: no mode {:?}", trim(&req.mode))))?;
        let query_bytes: usize = req.query.iter().map(prost::Message::encoded_len).sum();
        if query_bytes > MAX_QUERY_BYTES {
            return Err(bad(format!("query: at most {MAX_QUERY_BYTES} bytes")));
        }
        if req.string_props.len() + req.numeric_props.len() > MAX_PROPS {
            return Err(bad(format!("stringProps, numericProps: at most {MAX_PROPS} in all")));
        }
        for (k, v) in &req.string_props {
            if !key_ok(k) || v.len() > MAX_VALUE || v.chars().any(char::is_control) {
                return Err(bad("stringProps: keys of 1 to 32 characters, values of at most 64"));
            }
        }
        for (k, v) in &req.numeric_props {
            if !key_ok(k) || !v.is_finite() {
                return Err(bad("numericProps: keys of 1 to 32 characters, finite numbers"));
            }
        }
        let mut query = Vec::with_capacity(req.query.len());
        for t in &req.query {
            if !key_ok(&t.key) {
                return Err(bad("query: each term names a key of 1 to 32 characters"));
            }
            if !t.any_of.is_empty() && (t.min.is_some() || t.max.is_some()) {
                return Err(bad("query: a term is anyOf or a range, not both"));
            }
            if t.any_of.is_empty() {
                let (lo, hi) = (t.min.unwrap_or(f64::NEG_INFINITY), t.max.unwrap_or(f64::INFINITY));
                if t.min.is_none() && t.max.is_none() || lo.is_nan() || hi.is_nan() || lo > hi {
                    return Err(bad("query: a range has min or max, and min ≤ max"));
                }
            }
            query.push(Term { key: t.key.clone(), any_of: t.any_of.clone(), min: t.min, max: t.max });
        }
        let pick = |asked: i32, default: u32| if asked <= 0 { default } else { asked as u32 };
        let (min, max) = (pick(req.min_count, mode.min_count), pick(req.max_count, mode.max_count));
        let multiple = pick(req.count_multiple, mode.count_multiple);
        if min > max {
            return Err(bad("minCount: not above maxCount"));
        }
        if min < mode.min_count || max > mode.max_count {
            return Err(bad(format!("minCount, maxCount: within the mode's {} to {}", mode.min_count, mode.max_count)));
        }
        if multiple > max {
            return Err(bad("countMultiple: not above maxCount"));
        }
        let size = players.len() as u32;
        if size == 0 || size > mode.max_party || size > max {
            return Err(bad(format!("party: at most {} players in mode {}", mode.max_party.min(max), mode.name)));
        }
        Ok(Ticket {
            id,
            mode: mode.name.clone(),
            players,
            strings: req.string_props.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            numbers: req.numeric_props.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            query,
            min,
            max,
            multiple,
            created_ms: now_ms,
            expires_ms: now_ms.saturating_add((mode.timeout_secs as i64).saturating_mul(1000)),
        })
    }

    fn size(&self) -> u32 {
        self.players.len() as u32
    }

    /// How far this ticket's ranges on the mode's widening key have moved out by `now`.
    fn widened<'m>(&self, mode: &'m Mode, now_ms: i64) -> Option<(&'m str, f64)> {
        let w = mode.widen.as_ref()?;
        let waited = (now_ms - self.created_ms).max(0) as u64 / 1000;
        let extra = (w.step * (waited / w.every_secs) as f64).min(w.max);
        Some((w.key.as_str(), extra))
    }

    /// Whether `other`'s properties satisfy every term of this ticket's query.
    fn accepts(&self, other: &Ticket, widen: Option<(&str, f64)>) -> bool {
        self.query.iter().all(|t| {
            if t.any_of.is_empty() {
                let Some(v) = other.numbers.get(&t.key) else { return false };
                let extra = widen.filter(|(k, _)| *k == t.key).map_or(0.0, |(_, e)| e);
                t.min.is_none_or(|lo| *v >= lo - extra) && t.max.is_none_or(|hi| *v <= hi + extra)
            } else {
                other.strings.get(&t.key).is_some_and(|v| t.any_of.iter().any(|a| a == v))
            }
        })
    }

    /// Whether a match of `count` players suits this ticket.
    fn takes(&self, count: u32) -> bool {
        self.min <= count && count <= self.max && count % self.multiple == 0
    }
}

/// A MatchAdd for `mode` whose ticket has the numeric property `key` = `value` and asks
/// every other ticket of its match for `key` within `within` of it (a rating window).
pub fn window(mode: &str, key: &str, value: f64, within: f64) -> pb::MatchAdd {
    pb::MatchAdd {
        mode: mode.to_owned(),
        numeric_props: [(key.to_owned(), value)].into(),
        query: vec![pb::MatchTerm {
            key: key.to_owned(),
            any_of: Vec::new(),
            min: Some(value - within),
            max: Some(value + within),
        }],
        ..Default::default()
    }
}

fn trim(s: &str) -> String {
    s.chars().take(MAX_KEY).collect()
}

/// What one pass decided: matches (indexes into the tickets given, oldest ticket first) and
/// tickets that timed out or whose mode is gone.
#[derive(Debug, Default, PartialEq)]
pub struct Pass {
    /// The matches formed.
    pub matches: Vec<Vec<usize>>,
    /// Tickets to drop with a MatchTimeout.
    pub expired: Vec<usize>,
}

/// One matching pass over `tickets` at `now_ms`.
pub fn pass(tickets: &[Ticket], modes: &HashMap<String, Mode>, now_ms: i64) -> Pass {
    let mut out = Pass::default();
    let mut by_mode: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, t) in tickets.iter().enumerate() {
        if t.expires_ms <= now_ms || !modes.contains_key(&t.mode) {
            out.expired.push(i);
        } else {
            by_mode.entry(t.mode.as_str()).or_default().push(i);
        }
    }
    let mut taken = vec![false; tickets.len()];
    let mut names: Vec<&str> = by_mode.keys().copied().collect();
    names.sort_unstable();
    for name in names {
        let (Some(mode), Some(mut order)) = (modes.get(name), by_mode.remove(name)) else { continue };
        order.sort_by(|a, b| {
            let (a, b) = (&tickets[*a], &tickets[*b]);
            a.created_ms.cmp(&b.created_ms).then_with(|| a.id.cmp(&b.id))
        });
        let mut indexes: HashMap<&str, Vec<(f64, usize)>> = HashMap::new();
        for &anchor in &order {
            if taken[anchor] {
                continue;
            }
            let a = &tickets[anchor];
            let candidates = candidates(tickets, &order, &mut indexes, a, anchor, mode, now_ms);
            let mut group = vec![anchor];
            let (mut count, mut cap) = (a.size(), a.max);
            for c in candidates {
                if taken[c] || group.contains(&c) {
                    continue;
                }
                let t = &tickets[c];
                let n = count + t.size();
                if n > cap.min(t.max) {
                    continue;
                }
                let wt = t.widened(mode, now_ms);
                let fits = group.iter().all(|&g| {
                    let g = &tickets[g];
                    g.accepts(t, g.widened(mode, now_ms)) && t.accepts(g, wt)
                });
                if fits {
                    group.push(c);
                    count = n;
                    cap = cap.min(t.max);
                    if count == cap {
                        break;
                    }
                }
            }
            // Counts every ticket takes: give back the latest additions until it holds.
            while group.len() > 1 && !group.iter().all(|&g| tickets[g].takes(count)) {
                if let Some(last) = group.pop() {
                    count -= tickets[last].size();
                }
            }
            cap = group.iter().map(|&g| tickets[g].max).min().unwrap_or(cap);
            let waited_ms = now_ms - a.created_ms;
            let full = count == cap || waited_ms >= (mode.fill_secs as i64) * 1000;
            if full && group.iter().all(|&g| tickets[g].takes(count)) {
                for &g in &group {
                    taken[g] = true;
                }
                out.matches.push(group);
            }
        }
    }
    out
}

/// What a pass did to the queue.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Tickets waiting when it began.
    pub queued: usize,
    /// The matches formed (their tickets are out of the queue, their records kept).
    pub formed: Vec<MatchRecord>,
    /// How long each matched ticket waited, seconds, by mode.
    pub waits: Vec<(String, f64)>,
    /// The tickets that timed out (out of the queue).
    pub expired: Vec<Ticket>,
}

/// One pass over `queue` at `now_ms`: reads every ticket, matches, and takes the matches and
/// the timed-out tickets out in one step (a group with a ticket cancelled meanwhile stays
/// for the next pass). `place` says where a new match's room goes: a node id and its URL.
pub async fn run_pass(
    queue: &dyn Queue,
    modes: &HashMap<String, Mode>,
    now_ms: i64,
    place: &(dyn Fn() -> (String, String) + Sync),
) -> Result<Outcome> {
    let tickets = queue.all().await?;
    let pass = pass(&tickets, modes, now_ms);
    let mut out = Outcome { queued: tickets.len(), ..Outcome::default() };
    if pass.matches.is_empty() && pass.expired.is_empty() {
        return Ok(out);
    }
    let first = if pass.matches.is_empty() { 0 } else { queue.next_matches(pass.matches.len()).await? };
    let (node, url) = if pass.matches.is_empty() { Default::default() } else { place() };
    let mut groups = Vec::with_capacity(pass.matches.len() + pass.expired.len());
    for (n, group) in pass.matches.iter().enumerate() {
        let t0 = &tickets[group[0]];
        let seats = modes.get(&t0.mode).map_or(30, |m| m.seat_secs) as i64;
        let number = first + n as i64;
        let record = MatchRecord {
            id: format!("m{number}"),
            mode: t0.mode.clone(),
            room: MATCH_ROOM_BASE + number,
            node: node.clone(),
            url: url.clone(),
            tickets: group.iter().map(|&i| (tickets[i].id.clone(), tickets[i].players.clone())).collect(),
            seats_until: now_ms + seats * 1000,
        };
        groups.push(Taking { tickets: group.iter().map(|&i| tickets[i].id.clone()).collect(), record: Some(record) });
    }
    for &i in &pass.expired {
        groups.push(Taking { tickets: vec![tickets[i].id.clone()], record: None });
    }
    let taken = queue.take(&groups).await?;
    for ((g, ok), k) in groups.into_iter().zip(taken).zip(0..) {
        if !ok {
            continue;
        }
        match g.record {
            Some(record) => {
                for &i in &pass.matches[k] {
                    let waited = (now_ms - tickets[i].created_ms).max(0) as f64 / 1000.0;
                    out.waits.push((record.mode.clone(), waited));
                }
                out.formed.push(record);
            }
            None => out.expired.push(tickets[pass.expired[k - pass.matches.len()]].clone()),
        }
    }
    Ok(out)
}

/// The tickets `a` may match with, best first: by a sorted index on its first numeric range
/// (nearest value first when `a` has one of its own), else oldest first; at most `MAX_SCAN`
/// looked at. Lazy: a 1v1 anchor usually stops at the first.
fn candidates<'t, 'i>(
    tickets: &'t [Ticket],
    order: &'t [usize],
    indexes: &'i mut HashMap<&'t str, Vec<(f64, usize)>>,
    a: &'t Ticket,
    anchor: usize,
    mode: &Mode,
    now_ms: i64,
) -> Candidates<'i> {
    let Some(term) = a.query.iter().find(|t| t.any_of.is_empty()) else {
        let all: Vec<usize> = order.iter().copied().filter(|&i| i != anchor).take(MAX_SCAN).collect();
        return Candidates::List(all.into_iter());
    };
    let index = indexes.entry(term.key.as_str()).or_insert_with(|| {
        let mut v: Vec<(f64, usize)> =
            order.iter().filter_map(|&i| tickets[i].numbers.get(&term.key).map(|x| (*x, i))).collect();
        v.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
        v
    });
    let extra = a.widened(mode, now_ms).filter(|(k, _)| *k == term.key).map_or(0.0, |(_, e)| e);
    let lo = term.min.map_or(f64::NEG_INFINITY, |v| v - extra);
    let hi = term.max.map_or(f64::INFINITY, |v| v + extra);
    let start = index.partition_point(|(v, _)| *v < lo);
    let end = index.partition_point(|(v, _)| *v <= hi);
    let within = &index[start..end];
    match a.numbers.get(&term.key) {
        Some(&mine) => {
            let right = within.partition_point(|(v, _)| *v < mine);
            Candidates::Nearest { within, mine, left: right, right, anchor, seen: 0 }
        }
        None => {
            let v: Vec<usize> = within.iter().map(|(_, i)| *i).filter(|&i| i != anchor).take(MAX_SCAN).collect();
            Candidates::List(v.into_iter())
        }
    }
}

/// The candidates of one anchor, in the order they are tried.
enum Candidates<'i> {
    List(std::vec::IntoIter<usize>),
    /// Outward from the anchor's own value, the nearer side first.
    Nearest {
        within: &'i [(f64, usize)],
        mine: f64,
        left: usize,
        right: usize,
        anchor: usize,
        seen: usize,
    },
}

impl Iterator for Candidates<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match self {
            Candidates::List(it) => it.next(),
            Candidates::Nearest { within, mine, left, right, anchor, seen } => loop {
                if *seen >= MAX_SCAN || (*left == 0 && *right >= within.len()) {
                    return None;
                }
                let take_left = match (left.checked_sub(1).map(|l| within[l]), within.get(*right)) {
                    (Some(l), Some(r)) => (*mine - l.0) <= (r.0 - *mine),
                    (Some(_), None) => true,
                    _ => false,
                };
                let i = if take_left {
                    *left -= 1;
                    within[*left].1
                } else {
                    *right += 1;
                    within[*right - 1].1
                };
                *seen += 1;
                if i != *anchor {
                    return Some(i);
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(name: &str, min: u32, max: u32) -> Mode {
        Mode {
            name: name.into(),
            room: RoomKind::Lockstep,
            scene: None,
            min_count: min,
            max_count: max,
            count_multiple: 1,
            max_party: max,
            timeout_secs: 60,
            fill_secs: 0,
            seat_secs: 30,
            widen: None,
        }
    }

    fn modes(list: Vec<Mode>) -> HashMap<String, Mode> {
        list.into_iter().map(|m| (m.name.clone(), m)).collect()
    }

    fn member(user: i64) -> Member {
        Member { user, nickname: format!("p{user}") }
    }

    fn rated(rating: f64, within: f64) -> pb::MatchAdd {
        window("duel", "rating", rating, within)
    }

    fn ticket(m: &HashMap<String, Mode>, user: i64, req: &pb::MatchAdd, at: i64) -> Ticket {
        Ticket::new(format!("t{user}"), req, m, vec![member(user)], at).expect("ticket")
    }

    fn users(tickets: &[Ticket], pass: &Pass) -> Vec<Vec<i64>> {
        pass.matches
            .iter()
            .map(|g| g.iter().flat_map(|&i| tickets[i].players.iter().map(|p| p.user)).collect())
            .collect()
    }

    #[test]
    fn ratings_pair_the_nearest_within_the_range() {
        let m = modes(vec![mode("duel", 2, 2)]);
        let tickets: Vec<Ticket> = [(1, 1000.0), (2, 1500.0), (3, 1050.0), (4, 1020.0), (5, 1900.0)]
            .iter()
            .map(|&(u, r)| ticket(&m, u, &rated(r, 100.0), u))
            .collect();
        let p = pass(&tickets, &m, 10);
        // 1 (oldest) takes its nearest, 4; 3 then has nobody within 100; 2 and 5 are alone.
        assert_eq!(users(&tickets, &p), vec![vec![1, 4]]);
        assert!(p.expired.is_empty());
    }

    #[test]
    fn queries_hold_both_ways() {
        let m = modes(vec![mode("duel", 2, 2)]);
        let picky = pb::MatchAdd {
            mode: "duel".into(),
            string_props: [("region".to_string(), "eu".to_string())].into(),
            query: vec![pb::MatchTerm { key: "region".into(), any_of: vec!["eu".into()], ..Default::default() }],
            ..Default::default()
        };
        let us = pb::MatchAdd {
            mode: "duel".into(),
            string_props: [("region".to_string(), "us".to_string())].into(),
            ..Default::default()
        };
        let eu = pb::MatchAdd {
            mode: "duel".into(),
            string_props: [("region".to_string(), "eu".to_string())].into(),
            ..Default::default()
        };
        let tickets = vec![ticket(&m, 1, &picky, 1), ticket(&m, 2, &us, 2), ticket(&m, 3, &eu, 3)];
        assert_eq!(users(&tickets, &pass(&tickets, &m, 10)), vec![vec![1, 3]]);
        // The open ticket does not reach the picky one from its side either.
        let tickets = vec![ticket(&m, 2, &us, 1), ticket(&m, 1, &picky, 2)];
        assert!(pass(&tickets, &m, 10).matches.is_empty());
    }

    #[test]
    fn ranges_widen_as_tickets_wait() {
        let mut duel = mode("duel", 2, 2);
        duel.widen = Some(Widen { key: "rating".into(), every_secs: 5, step: 50.0, max: 200.0 });
        let m = modes(vec![duel]);
        let tickets = vec![ticket(&m, 1, &rated(1000.0, 50.0), 0), ticket(&m, 2, &rated(1180.0, 50.0), 0)];
        assert!(pass(&tickets, &m, 4_000).matches.is_empty(), "180 apart, 50 each way");
        assert!(pass(&tickets, &m, 10_000).matches.is_empty(), "150 each way after 10 s: not yet");
        assert_eq!(users(&tickets, &pass(&tickets, &m, 15_000)), vec![vec![1, 2]], "200 after 15 s");
    }

    #[test]
    fn multiples_and_fill_time_shape_the_match() {
        let mut teams = mode("teams", 2, 4);
        teams.count_multiple = 2;
        teams.fill_secs = 10;
        let m = modes(vec![teams]);
        let open = pb::MatchAdd { mode: "teams".into(), ..Default::default() };
        let three: Vec<Ticket> = (1..=3).map(|u| ticket(&m, u, &open, 0)).collect();
        assert!(pass(&three, &m, 1_000).matches.is_empty(), "3 of 4: waits to fill");
        // After the fill time: the largest even count, 2; the third waits.
        assert_eq!(users(&three, &pass(&three, &m, 10_000)), vec![vec![1, 2]]);
        let four: Vec<Ticket> = (1..=4).map(|u| ticket(&m, u, &open, 0)).collect();
        assert_eq!(users(&four, &pass(&four, &m, 1_000)), vec![vec![1, 2, 3, 4]]);
    }

    #[test]
    fn a_party_lands_in_one_match() {
        let mut m2 = mode("duo", 4, 4);
        m2.max_party = 2;
        let m = modes(vec![m2]);
        let open = pb::MatchAdd { mode: "duo".into(), ..Default::default() };
        let party = Ticket::new("party".into(), &open, &m, vec![member(1), member(2)], 0).expect("party");
        let solo: Vec<Ticket> = (3..=5).map(|u| ticket(&m, u, &open, u)).collect();
        let mut tickets = vec![party];
        tickets.extend(solo);
        assert_eq!(users(&tickets, &pass(&tickets, &m, 100)), vec![vec![1, 2, 3, 4]]);
        let big = Ticket::new("big".into(), &open, &m, (1..=3).map(member).collect(), 0);
        assert_eq!(big.expect_err("too big").code().as_u32(), 400_102);
    }

    #[test]
    fn timed_out_and_orphaned_tickets_leave() {
        let m = modes(vec![mode("duel", 2, 2)]);
        let t = ticket(&m, 1, &pb::MatchAdd { mode: "duel".into(), ..Default::default() }, 0);
        let p = pass(std::slice::from_ref(&t), &m, 60_000);
        assert_eq!(p.expired, vec![0]);
        let p = pass(&[t], &HashMap::new(), 1);
        assert_eq!(p.expired, vec![0], "its mode left the game data");
    }

    #[test]
    fn bad_tickets_are_refused_with_the_field_named() {
        let m = modes(vec![mode("duel", 2, 2)]);
        let try_add =
            |req: pb::MatchAdd| Ticket::new("x".into(), &req, &m, vec![member(1)], 0).expect_err("refused").to_string();
        assert!(try_add(pb::MatchAdd { mode: "nope".into(), ..Default::default() }).contains("mode"));
        let long = pb::MatchTerm { key: "k".into(), any_of: vec!["v".repeat(60); 20], ..Default::default() };
        assert!(
            try_add(pb::MatchAdd { mode: "duel".into(), query: vec![long], ..Default::default() }).contains("query")
        );
        assert!(
            try_add(pb::MatchAdd { mode: "duel".into(), min_count: 3, max_count: 2, ..Default::default() })
                .contains("minCount")
        );
        let nan = pb::MatchTerm { key: "r".into(), min: Some(f64::NAN), ..Default::default() };
        assert!(
            try_add(pb::MatchAdd { mode: "duel".into(), query: vec![nan], ..Default::default() }).contains("range")
        );
        let both = pb::MatchTerm { key: "r".into(), any_of: vec!["a".into()], min: Some(1.0), ..Default::default() };
        assert!(
            try_add(pb::MatchAdd { mode: "duel".into(), query: vec![both], ..Default::default() }).contains("not both")
        );
        let inf = pb::MatchAdd {
            mode: "duel".into(),
            numeric_props: [("r".into(), f64::INFINITY)].into(),
            ..Default::default()
        };
        assert!(try_add(inf).contains("numericProps"));
    }

    #[test]
    fn modes_are_checked() {
        let mut bad = mode("x y", 2, 2);
        assert!(bad.check().expect_err("name").contains("name"));
        bad.name = "ok".into();
        bad.min_count = 3;
        assert!(bad.check().is_err());
        bad.min_count = 2;
        bad.room = RoomKind::Scene;
        assert!(bad.check().expect_err("scene").contains("scene"));
    }
}
