//! The world's configuration section, `world.*`: tick rate, saves, reconnection, combat and
//! chat limits, rooms and lockstep rooms. Scenes and monsters are game data (`world.yaml`).

use rsgame_kit::config::{Invalid, Section};
use serde::{Deserialize, Serialize};

/// `world.*` — the game node's real-time world: scenes, combat, rooms, chat, lockstep rooms.
/// Scenes and their monsters are game data (`world.yaml` in `game.data_dir`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WorldConfig {
    /// Scene ticks per second.
    pub tick_hz: u32,
    /// Position batches (and spawns and despawns) go to each player every this many ticks
    /// (1: every tick). A crowd's cost is one write per player per batch: 2 halves it, and a
    /// move then takes up to one more tick to be seen.
    pub position_every_ticks: u32,
    /// Most movers a position batch carries before a cell's players are treated as a crowd
    /// (0: no cap). A crowd's players are sent their nearest movers every tick and a rotating
    /// share of the others, about this many entries per batch in all.
    pub crowd_cap: usize,
    /// Of `crowd_cap`, the entries kept for the nearest movers, sent every tick.
    pub crowd_near: usize,
    /// Longest a mover in a crowd's view waits to be sent at its latest position, ticks (a
    /// power of two).
    pub crowd_refresh_ticks: u64,
    /// How often changed positions and hit points are saved, seconds (write-behind).
    pub save_secs: u64,
    /// How long a dropped player stays in its scene waiting for the client to come back.
    pub reconnect_grace_secs: u64,
    /// Fastest a player may move, units per second.
    pub max_speed: f32,
    /// Farthest a hit reaches, units.
    pub attack_range: f32,
    /// Time between two attacks of one player or monster, milliseconds.
    pub attack_cooldown_ms: u64,
    /// Longest chat message, characters.
    pub chat_max_len: usize,
    /// Chat messages a player may send in a burst, and per minute after it.
    pub chat_burst: u32,
    /// Chat messages per minute after the burst.
    pub chat_per_min: u32,
    /// World and room messages kept for the history query, per channel.
    pub chat_history: usize,
    /// Days world and room chat is kept in the database for moderators (0: not logged).
    pub chat_log_days: u32,
    /// Most rooms players may create on this node.
    pub max_rooms: usize,
    /// Most players a created room may hold.
    pub max_room_users: i32,
    /// Frames per second of lockstep rooms.
    pub lockstep_fps: u32,
    /// Frames a lockstep room keeps for late joiners and reconnects.
    pub lockstep_keep_frames: usize,
    /// How often the matchmaker runs a pass over the queue, milliseconds (on one node of a
    /// cluster at a time).
    pub match_interval_ms: u64,
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            tick_hz: 20,
            position_every_ticks: 1,
            crowd_cap: 96,
            crowd_near: 32,
            crowd_refresh_ticks: 256,
            save_secs: 5,
            reconnect_grace_secs: 30,
            max_speed: 40.0,
            attack_range: 20.0,
            attack_cooldown_ms: 800,
            chat_max_len: 300,
            chat_burst: 5,
            chat_per_min: 30,
            chat_history: 50,
            chat_log_days: 30,
            max_rooms: 1000,
            max_room_users: 50,
            lockstep_fps: 15,
            lockstep_keep_frames: 1800,
            match_interval_ms: 500,
        }
    }
}

impl WorldConfig {
    /// The crowd settings a scene runs with.
    pub fn crowd(&self) -> crate::crowd::Crowd {
        if self.crowd_cap == 0 {
            return crate::crowd::Crowd::OFF;
        }
        crate::crowd::Crowd { cap: self.crowd_cap, near: self.crowd_near, refresh_ticks: self.crowd_refresh_ticks }
    }
}

impl Section for WorldConfig {
    fn check(&self) -> Result<(), Invalid> {
        if !(1..=1000).contains(&self.tick_hz) {
            return Err(Invalid::new("tick_hz", "must be between 1 and 1000"));
        }
        if !(1..=self.tick_hz).contains(&self.position_every_ticks) {
            return Err(Invalid::new("position_every_ticks", "must be between 1 and tick_hz"));
        }
        if self.crowd_cap > 0 && !(1..self.crowd_cap).contains(&self.crowd_near) {
            return Err(Invalid::new("crowd_near", "must be at least 1 and below crowd_cap"));
        }
        if !self.crowd_refresh_ticks.is_power_of_two()
            || !(u64::from(self.position_every_ticks)..=65_536).contains(&self.crowd_refresh_ticks)
        {
            return Err(Invalid::new(
                "crowd_refresh_ticks",
                "must be a power of two, at least position_every_ticks and at most 65536",
            ));
        }
        if !(1..=120).contains(&self.lockstep_fps) {
            return Err(Invalid::new("lockstep_fps", "must be between 1 and 120"));
        }
        if !(50..=60_000).contains(&self.match_interval_ms) {
            return Err(Invalid::new("match_interval_ms", "must be between 50 and 60000"));
        }
        if self.max_room_users < 1 {
            return Err(Invalid::new("max_room_users", "must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crowd_settings_are_checked() {
        let ok = WorldConfig::default();
        assert!(ok.check().is_ok());
        assert_eq!(ok.crowd(), crate::crowd::Crowd::default(), "the defaults are the crowd's");
        let off = WorldConfig { crowd_cap: 0, ..WorldConfig::default() };
        assert!(off.check().is_ok());
        assert!(!off.crowd().is_on());
        for bad in [
            WorldConfig { crowd_near: 96, ..WorldConfig::default() },
            WorldConfig { crowd_near: 0, ..WorldConfig::default() },
            WorldConfig { crowd_refresh_ticks: 100, ..WorldConfig::default() },
            WorldConfig { crowd_refresh_ticks: 1, position_every_ticks: 2, ..WorldConfig::default() },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }
}
