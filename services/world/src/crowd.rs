//! Crowd handling: what a player in a crowd is sent of the others' moves. Where a cell's view
//! holds more movers than a position batch may carry, its players are grouped by small
//! squares and each group is sent the movers nearest to it every tick (those around it always),
//! plus the cell's share of everyone else moving in view: those it sent longest ago first, so
//! they take turns, each as fresh as a near one. A mover that stops while left out is sent once
//! more, at its refresh turn, so no viewer keeps a stale place longer than
//! [`Crowd::refresh_ticks`]. A player is then sent about [`Crowd::cap`] entries a tick however
//! dense the crowd, in two batches: the far share, encoded once for the whole cell, and its
//! group's nearest, encoded once per group.
//!
//! Plain functions over positions: the scene decides who is a mover and who receives.

use foldhash::HashMap;

use super::aoi::EntityId;

/// A position as batches carry it.
pub type Site = (EntityId, f32, f32);

/// Crowd settings (`world.crowd_*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crowd {
    /// Most movers a cell's batch carries before its players are treated as a crowd (0: never).
    pub cap: usize,
    /// Of those, how many go to the nearest movers every tick.
    pub near: usize,
    /// Longest a viewer keeps a stale position of a mover, ticks (a power of two): each
    /// mover's refresh turn comes round this often.
    pub refresh_ticks: u64,
}

impl Default for Crowd {
    fn default() -> Self {
        Crowd { cap: 96, near: 32, refresh_ticks: 256 }
    }
}

impl Crowd {
    /// No crowd handling: every mover in view goes to every player every tick.
    pub const OFF: Crowd = Crowd { cap: 0, near: 0, refresh_ticks: 1 };

    /// Whether batches are capped at all.
    pub fn is_on(&self) -> bool {
        self.cap > 0
    }
}

/// Whether an entity's turn in a rotation of `period` ticks (a power of two) falls on `tick`.
/// Turns nest: an entity due at `tick` in a period is due then in every shorter one, so a
/// mover whose period changes from tick to tick still gets its turn at least once in the
/// longest period.
pub fn due(id: EntityId, tick: u64, period: u64) -> bool {
    due_within(id, tick, period, 1)
}

/// Whether an entity's turn in a rotation of `period` ticks fell on one of the `span` ticks
/// up to and including `tick`: what a batch sent every `span` ticks must carry.
pub fn due_within(id: EntityId, tick: u64, period: u64, span: u64) -> bool {
    // Fibonacci hashing: consecutive ids (accounts made one after the other) spread evenly
    // over the turns, and so do ids in any other pattern a client can't choose.
    let h = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    let mask = period.max(1) - 1;
    tick.wrapping_sub(h) & mask < span
}

/// The share of a crowded cell's movers (`moves`, this batch's) that goes to all of its
/// players beyond their nearest: those whose refresh turn it is, then the others that waited
/// longest since the cell last sent them (`sent`, updated), up to `cap - near` in all. Every
/// entry is a position that moved this batch, so what the far crowd is sent is as fresh as
/// what the near crowd is; it just comes less often, each in its turn.
pub fn far_share(
    moves: &[Site],
    sent: &mut HashMap<EntityId, u64>,
    now: u64,
    every: u64,
    crowd: &Crowd,
    out: &mut Vec<Site>,
) {
    let budget = crowd.cap.saturating_sub(crowd.near);
    let mut rest: Vec<(u64, Site)> = Vec::with_capacity(moves.len());
    for m in moves {
        if due_within(m.0, now, crowd.refresh_ticks, every) {
            out.push(*m);
            sent.insert(m.0, now);
        } else {
            rest.push((sent.get(&m.0).copied().unwrap_or(0), *m));
        }
    }
    let room = budget.saturating_sub(out.len());
    if rest.len() > room {
        // Oldest first; among those sent at the same tick, by id (the next tick's oldest are
        // then the others).
        rest.select_nth_unstable_by_key(room, |(t, m)| (*t, m.0));
        rest.truncate(room);
    }
    for (_, m) in rest {
        out.push(m);
        sent.insert(m.0, now);
    }
}

/// One tick's movers on a grid of small squares, for the nearest-first search.
pub struct Squares {
    origin: (f32, f32),
    side: f32,
    squares: HashMap<(i32, i32), Vec<Site>>,
}

impl Squares {
    /// `movers` on squares of `side` (positive) counted from `origin`.
    pub fn new<'a>(movers: impl Iterator<Item = &'a Site>, origin: (f32, f32), side: f32) -> Squares {
        let mut s = Squares { origin, side: side.max(0.01), squares: HashMap::default() };
        for m in movers {
            s.squares.entry(s.key(m.1, m.2)).or_default().push(*m);
        }
        s
    }

    /// The square holding (x, z).
    pub fn key(&self, x: f32, z: f32) -> (i32, i32) {
        (((x - self.origin.0) / self.side).floor() as i32, ((z - self.origin.1) / self.side).floor() as i32)
    }

    /// The movers a group standing in square `at` is sent every tick: all those in it and in
    /// the eight squares around it (every mover within one side of any of its players), then
    /// ring after ring outward until `near` are found or `max_ring` is passed, the last ring
    /// cut to its movers nearest the square's centre. `keep` says which are in view.
    pub fn nearest(
        &self,
        at: (i32, i32),
        near: usize,
        max_ring: i32,
        keep: impl Fn(f32, f32) -> bool,
        out: &mut Vec<Site>,
    ) {
        let start = out.len();
        let centre = (self.origin.0 + (at.0 as f32 + 0.5) * self.side, self.origin.1 + (at.1 as f32 + 0.5) * self.side);
        for r in 0..=max_ring.max(1) {
            let before = out.len();
            self.ring(at, r, &keep, out);
            let found = out.len() - start;
            if r >= 1 && found >= near {
                // Rings 0 and 1 are kept whole; a farther ring gives only what the quota lacks.
                if r >= 2 && found > near {
                    let ring = &mut out[before..];
                    let want = near.saturating_sub(before - start);
                    let dist = |s: &Site| (s.1 - centre.0).powi(2) + (s.2 - centre.1).powi(2);
                    if want < ring.len() && want > 0 {
                        ring.select_nth_unstable_by(want, |a, b| dist(a).total_cmp(&dist(b)));
                    }
                    out.truncate(before + want);
                }
                return;
            }
        }
    }

    /// The movers in the squares exactly `r` squares (Chebyshev) from `at`.
    fn ring(&self, at: (i32, i32), r: i32, keep: &impl Fn(f32, f32) -> bool, out: &mut Vec<Site>) {
        let mut take = |dx: i32, dz: i32| {
            if let Some(v) = self.squares.get(&(at.0 + dx, at.1 + dz)) {
                out.extend(v.iter().filter(|s| keep(s.1, s.2)));
            }
        };
        if r == 0 {
            take(0, 0);
            return;
        }
        for d in -r..=r {
            take(d, -r);
            take(d, r);
        }
        for d in -r + 1..r {
            take(-r, d);
            take(r, d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_nest_so_a_changing_period_still_comes_round() {
        for id in [1u64, 2, 77, 1 << 48, 123_456] {
            let t = (0..256).find(|t| due(id, *t, 256)).expect("one turn in 256 ticks");
            for p in [1, 2, 4, 16, 128] {
                assert!(due(id, t, p), "id {id}: due at {t} in 256, so in {p}");
            }
            assert_eq!((0..256).filter(|t| due(id, *t, 256)).count(), 1);
            // A batch every third tick carries the turns of its three ticks.
            assert!(due_within(id, t + 2, 256, 3) && !due_within(id, t + 3, 256, 3));
            assert_eq!((0..256).filter(|t| due_within(id, *t, 16, 3)).count(), 3 * 16);
        }
    }

    #[test]
    fn consecutive_ids_spread_evenly_over_the_turns() {
        let per_turn: Vec<usize> = (0..16).map(|t| (1000..2600u64).filter(|id| due(*id, t, 16)).count()).collect();
        assert!(per_turn.iter().all(|n| (70..=130).contains(n)), "{per_turn:?}");
    }

    #[test]
    fn the_far_share_sends_those_that_waited_longest_and_every_one_in_turn() {
        let c = Crowd { cap: 30, near: 10, refresh_ticks: 1 << 16 };
        let moves: Vec<Site> = (1..=100u64).map(|id| (id, id as f32, 0.0)).collect();
        let mut sent = HashMap::default();
        let mut last_seen = vec![0u64; 101];
        for now in 1..=50u64 {
            let mut out = Vec::new();
            far_share(&moves, &mut sent, now, 1, &c, &mut out);
            assert!(out.len() <= 20, "within the budget: {}", out.len());
            for m in out {
                last_seen[m.0 as usize] = now;
            }
            if now >= 5 {
                // 100 movers, 20 a tick: each comes round every 5 ticks.
                assert!(last_seen[1..].iter().all(|t| now - t < 5), "tick {now}: {last_seen:?}");
            }
        }
    }

    #[test]
    fn a_mover_whose_refresh_turn_it_is_goes_in_whatever_the_budget() {
        let c = Crowd { cap: 2, near: 1, refresh_ticks: 8 };
        let moves: Vec<Site> = (1..=50u64).map(|id| (id, 0.0, 0.0)).collect();
        let mut sent = HashMap::default();
        let mut out = Vec::new();
        far_share(&moves, &mut sent, 3, 1, &c, &mut out);
        let due_now: Vec<u64> = moves.iter().map(|m| m.0).filter(|id| due(*id, 3, 8)).collect();
        assert!(due_now.len() > 1, "{due_now:?}");
        assert_eq!(out.iter().map(|m| m.0).collect::<Vec<_>>(), due_now, "all due, beyond the budget of one");
    }

    #[test]
    fn the_nearest_search_keeps_the_first_rings_whole_and_cuts_the_last_by_distance() {
        // A mover on every unit point of a 21 x 21 lattice; squares of side 1.
        let movers: Vec<Site> = (0..21)
            .flat_map(|x| (0..21).map(move |z| ((x * 100 + z) as u64, x as f32 + 0.5, z as f32 + 0.5)))
            .collect();
        let sq = Squares::new(movers.iter(), (0.0, 0.0), 1.0);
        let mut out = Vec::new();
        sq.nearest(sq.key(10.5, 10.5), 3, 10, |_, _| true, &mut out);
        assert_eq!(out.len(), 9, "the square and the eight around it, whatever the quota");
        out.clear();
        sq.nearest(sq.key(10.5, 10.5), 13, 10, |_, _| true, &mut out);
        assert_eq!(out.len(), 13);
        // The four added from ring 2 are its nearest: straight out, not the corners.
        let mut ring2: Vec<u64> =
            out.iter().filter(|s| (s.1 - 10.5).abs() > 1.5 || (s.2 - 10.5).abs() > 1.5).map(|s| s.0).collect();
        ring2.sort_unstable();
        assert_eq!(ring2, [810, 1008, 1012, 1210]);
        out.clear();
        sq.nearest(sq.key(10.5, 10.5), 1000, 3, |x, _| x < 12.0, &mut out);
        assert_eq!(out.len(), 7 * 5, "within three rings and in view (x < 12)");
    }
}
