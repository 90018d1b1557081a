//! Lockstep (frame-sync) rooms: the server does not simulate; it collects each player's inputs
//! for the current frame and, at a fixed rate, closes the frame and sends the same bundle to
//! everyone. Clients run the game deterministically from the bundles, in frame order. A late
//! joiner or a reconnecting player gets the frames it missed from a bounded history.
//!
//! Plain code: the room's task calls [`Lockstep::step`] at `fps` and delivers what it returns.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::aoi::EntityId;

/// A room's settings.
#[derive(Debug, Clone)]
pub struct LockstepConfig {
    /// Frames per second (15 or 30 for action games).
    pub fps: u32,
    /// Most players in the room.
    pub max_players: usize,
    /// Largest input one player may send in one frame, bytes.
    pub max_input: usize,
    /// Frames kept for catch-up (e.g. a minute's worth).
    pub keep_frames: usize,
}

/// One closed frame: every input received during it, grouped by player (ascending ids), each
/// player's inputs in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// 0, 1, 2… with no gaps.
    pub number: u64,
    /// (player, its inputs this frame).
    pub inputs: Vec<(EntityId, Vec<Vec<u8>>)>,
    /// Everyone in the room at the frame's close (ascending), when someone joined or left
    /// during it: membership is part of the frames, so every client (a late joiner replaying
    /// them too) adds and removes players at the same frame.
    pub members: Option<Vec<EntityId>>,
}

/// Why a lockstep request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockstepError {
    /// The room is full.
    #[error("the room is full")]
    Full,
    /// The player is not in the room.
    #[error("not in this room")]
    NotMember,
    /// The input is larger than allowed (or the frame's budget for this player is spent).
    #[error("input too large")]
    TooLarge,
    /// The frames asked for are no longer kept: the client must resynchronise from a snapshot.
    #[error("frames before {0} are no longer kept")]
    TooOld(u64),
}

/// A lockstep room.
pub struct Lockstep {
    cfg: LockstepConfig,
    players: BTreeSet<EntityId>,
    pending: BTreeMap<EntityId, (usize, Vec<Vec<u8>>)>,
    history: VecDeque<Frame>,
    next: u64,
    /// Someone joined or left during the frame being built.
    roster_changed: bool,
}

impl Lockstep {
    /// An empty room.
    pub fn new(cfg: LockstepConfig) -> Lockstep {
        Lockstep {
            cfg,
            players: BTreeSet::new(),
            pending: BTreeMap::new(),
            history: VecDeque::new(),
            next: 0,
            roster_changed: false,
        }
    }

    /// The settings.
    pub fn config(&self) -> &LockstepConfig {
        &self.cfg
    }

    /// The players in the room.
    pub fn players(&self) -> impl Iterator<Item = EntityId> + '_ {
        self.players.iter().copied()
    }

    /// The number the next closed frame will have.
    pub fn next_frame(&self) -> u64 {
        self.next
    }

    /// Adds a player; returns the kept frames so it can catch up (a late joiner replays
    /// them). Joining again (a reconnect) is not an error.
    pub fn join(&mut self, player: EntityId) -> Result<Vec<Frame>, LockstepError> {
        if !self.players.contains(&player) && self.players.len() >= self.cfg.max_players {
            return Err(LockstepError::Full);
        }
        self.roster_changed |= self.players.insert(player);
        Ok(self.history.iter().cloned().collect())
    }

    /// Removes a player; inputs it sent this frame are dropped.
    pub fn leave(&mut self, player: EntityId) {
        self.roster_changed |= self.players.remove(&player);
        self.pending.remove(&player);
    }

    /// Records an input for the current frame.
    pub fn input(&mut self, player: EntityId, data: Vec<u8>) -> Result<(), LockstepError> {
        if !self.players.contains(&player) {
            return Err(LockstepError::NotMember);
        }
        let slot = self.pending.entry(player).or_default();
        // The budget is per player and frame, so one client cannot flood a bundle.
        if slot.0 + data.len() > self.cfg.max_input {
            return Err(LockstepError::TooLarge);
        }
        slot.0 += data.len();
        slot.1.push(data);
        Ok(())
    }

    /// Closes the current frame: returns it (for every player) and keeps it for catch-up.
    pub fn step(&mut self) -> Frame {
        let inputs = std::mem::take(&mut self.pending).into_iter().map(|(p, (_, v))| (p, v)).collect();
        let members = std::mem::take(&mut self.roster_changed).then(|| self.players.iter().copied().collect());
        let frame = Frame { number: self.next, inputs, members };
        self.next += 1;
        self.history.push_back(frame.clone());
        while self.history.len() > self.cfg.keep_frames.max(1) {
            self.history.pop_front();
        }
        frame
    }

    /// The oldest frame still kept (the next one when none is).
    pub fn oldest(&self) -> u64 {
        self.history.front().map_or(self.next, |f| f.number)
    }

    /// The frames from `from` on, for a client that reconnects knowing the last frame it has.
    pub fn since(&self, from: u64) -> Result<Vec<Frame>, LockstepError> {
        let oldest = self.oldest();
        if from < oldest {
            return Err(LockstepError::TooOld(oldest));
        }
        Ok(self.history.iter().filter(|f| f.number >= from).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> Lockstep {
        Lockstep::new(LockstepConfig { fps: 15, max_players: 3, max_input: 8, keep_frames: 4 })
    }

    #[test]
    fn frames_bundle_inputs_in_order() {
        let mut r = room();
        r.join(2).expect("join");
        r.join(1).expect("join");
        r.input(2, b"up".to_vec()).expect("input");
        r.input(1, b"left".to_vec()).expect("input");
        r.input(2, b"fire".to_vec()).expect("input");
        let f = r.step();
        assert_eq!(f.number, 0);
        assert_eq!(f.inputs, vec![(1, vec![b"left".to_vec()]), (2, vec![b"up".to_vec(), b"fire".to_vec()])]);
        assert_eq!(f.members, Some(vec![1, 2]), "the frame they joined in names everyone");
        let empty = r.step();
        assert_eq!((empty.number, empty.inputs.len()), (1, 0), "a frame closes even with no input");
        assert_eq!(empty.members, None, "nobody came or went");
        assert!(r.join(2).is_ok());
        assert_eq!(r.step().members, None, "a reconnect changes nobody");
        r.leave(1);
        assert_eq!(r.step().members, Some(vec![2]), "a leave is a frame's news too");
    }

    #[test]
    fn limits_and_membership() {
        let mut r = room();
        assert_eq!(r.input(1, b"x".to_vec()), Err(LockstepError::NotMember));
        for p in 1..=3 {
            r.join(p).expect("join");
        }
        assert_eq!(r.join(4), Err(LockstepError::Full));
        assert!(r.join(3).is_ok(), "a reconnect is not a second seat");
        r.input(1, b"12345678".to_vec()).expect("exactly the budget");
        assert_eq!(r.input(1, b"9".to_vec()), Err(LockstepError::TooLarge), "the frame's budget is spent");
        r.leave(1);
        assert!(r.step().inputs.is_empty(), "a leaver's inputs are dropped");
    }

    #[test]
    fn late_joiners_and_reconnects_catch_up() {
        let mut r = room();
        r.join(1).expect("join");
        for i in 0..6u8 {
            r.input(1, vec![i]).expect("input");
            r.step();
        }
        let missed = r.join(2).expect("late join");
        assert_eq!(missed.iter().map(|f| f.number).collect::<Vec<_>>(), [2, 3, 4, 5], "the kept history");
        assert_eq!(r.since(4).expect("since").iter().map(|f| f.number).collect::<Vec<_>>(), [4, 5]);
        assert!(r.since(6).expect("nothing new").is_empty());
        assert_eq!(r.since(1), Err(LockstepError::TooOld(2)));
    }
}
