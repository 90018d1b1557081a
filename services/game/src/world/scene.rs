//! A scene's simulation: players and monsters on a plane, nine-grid AOI, server-validated
//! movement, and per-tick batching of what each player must be told. Plain code driven by
//! commands and a tick number — no sockets, no clock — so it is tested directly and replays
//! the same way every time. The task that owns a scene feeds it commands and ticks and
//! delivers the [`Out`] messages.

use std::collections::{BTreeMap, BTreeSet};

use super::aoi::{Bounds, EntityId, Grid, MONSTER_BASE};

/// A scene's settings.
#[derive(Debug, Clone)]
pub struct SceneConfig {
    /// go-game's scene id (1000, 1001, 1002…).
    pub id: i32,
    /// The walkable rectangle.
    pub bounds: Bounds,
    /// AOI cell side.
    pub cell: f32,
    /// Ticks per second.
    pub tick_hz: u32,
    /// Fastest a player may move, units per second.
    pub max_speed: f32,
    /// Monsters and where they spawn.
    pub monsters: Vec<MonsterSpawn>,
}

/// A monster spawn point.
#[derive(Debug, Clone)]
pub struct MonsterSpawn {
    /// Name.
    pub name: String,
    /// Spawn position.
    pub x: f32,
    /// Spawn position.
    pub z: f32,
    /// Hit points.
    pub hp: i64,
}

/// Who something is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A player (id: the account).
    Player,
    /// A monster.
    Monster,
}

/// An entity as others see it when it comes into view.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// Id.
    pub id: EntityId,
    /// Player or monster.
    pub kind: Kind,
    /// Name.
    pub name: String,
    /// Position.
    pub x: f32,
    /// Position.
    pub z: f32,
    /// Hit points.
    pub hp: i64,
    /// Maximum hit points.
    pub max_hp: i64,
}

#[derive(Debug, Clone)]
struct Entity {
    view: View,
    /// The tick of its last accepted move (players) — the base of the speed check.
    moved_at: u64,
}

/// What the scene is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// A player enters at a position (its saved one).
    Join {
        /// The account.
        id: EntityId,
        /// Its name.
        name: String,
        /// Where.
        x: f32,
        /// Where.
        z: f32,
        /// Hit points.
        hp: i64,
        /// Maximum hit points.
        max_hp: i64,
    },
    /// A player leaves (logout, disconnect, another scene).
    Leave {
        /// The account.
        id: EntityId,
    },
    /// A player says where it moved.
    Move {
        /// The account.
        id: EntityId,
        /// Where.
        x: f32,
        /// Where.
        z: f32,
    },
}

/// What one player must be told.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// Something came into view.
    Spawn {
        /// The receiving player.
        to: EntityId,
        /// What it sees.
        view: View,
    },
    /// Something left view.
    Despawn {
        /// The receiving player.
        to: EntityId,
        /// What left.
        id: EntityId,
    },
    /// This tick's positions of what moved in view (one batch per receiver and tick).
    Positions {
        /// The receiving player.
        to: EntityId,
        /// (id, x, z), sorted by id.
        moves: Vec<(EntityId, f32, f32)>,
    },
    /// The player's own move was refused or cut short: its authoritative position.
    Corrected {
        /// The player.
        to: EntityId,
        /// Where it is.
        x: f32,
        /// Where it is.
        z: f32,
    },
}

/// A scene.
pub struct Scene {
    cfg: SceneConfig,
    grid: Grid,
    entities: BTreeMap<EntityId, Entity>,
    /// Entities that moved since the last tick.
    moved: BTreeSet<EntityId>,
    out: Vec<Out>,
    tick: u64,
}

impl Scene {
    /// A scene with its monsters spawned.
    pub fn new(cfg: SceneConfig) -> Scene {
        let mut s = Scene {
            grid: Grid::new(cfg.bounds, cfg.cell),
            cfg,
            entities: BTreeMap::new(),
            moved: BTreeSet::new(),
            out: Vec::new(),
            tick: 0,
        };
        for (i, m) in s.cfg.monsters.clone().into_iter().enumerate() {
            let (x, z) = s.cfg.bounds.clamp(m.x, m.z);
            let view =
                View { id: MONSTER_BASE + i as u64, kind: Kind::Monster, name: m.name, x, z, hp: m.hp, max_hp: m.hp };
            s.add(view);
        }
        s
    }

    /// The settings.
    pub fn config(&self) -> &SceneConfig {
        &self.cfg
    }

    /// Players in the scene.
    pub fn players(&self) -> impl Iterator<Item = &View> {
        self.entities.values().filter(|e| e.view.kind == Kind::Player).map(|e| &e.view)
    }

    /// An entity's view.
    pub fn get(&self, id: EntityId) -> Option<&View> {
        self.entities.get(&id).map(|e| &e.view)
    }

    fn is_player(&self, id: EntityId) -> bool {
        self.entities.get(&id).is_some_and(|e| e.view.kind == Kind::Player)
    }

    fn add(&mut self, view: View) {
        self.grid.insert(view.id, view.x, view.z);
        self.entities.insert(view.id, Entity { view, moved_at: self.tick });
    }

    /// Applies a command now; what it causes is queued for the next [`Scene::tick`].
    pub fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Join { id, name, x, z, hp, max_hp } => {
                if id >= MONSTER_BASE {
                    return;
                }
                if self.entities.contains_key(&id) {
                    // A second join (a reconnect): the player stays, no duplicate.
                    return;
                }
                let (x, z) = self.cfg.bounds.clamp(x, z);
                let view = View { id, kind: Kind::Player, name, x, z, hp, max_hp };
                self.add(view.clone());
                let around: Vec<EntityId> = self.grid.around(x, z).filter(|&o| o != id).collect();
                for o in around {
                    if let Some(ov) = self.entities.get(&o).map(|e| e.view.clone()) {
                        self.out.push(Out::Spawn { to: id, view: ov });
                    }
                    if self.is_player(o) {
                        self.out.push(Out::Spawn { to: o, view: view.clone() });
                    }
                }
            }
            Command::Leave { id } => {
                let Some(e) = self.entities.remove(&id) else { return };
                self.grid.remove(id, e.view.x, e.view.z);
                self.moved.remove(&id);
                let around: Vec<EntityId> = self.grid.around(e.view.x, e.view.z).collect();
                for o in around {
                    if self.is_player(o) {
                        self.out.push(Out::Despawn { to: o, id });
                    }
                }
            }
            Command::Move { id, x, z } => self.move_player(id, x, z),
        }
    }

    /// Validates a move: inside the bounds, and no farther than the speed allows since the
    /// last accepted move (with 10 % slack for network jitter). A move too far is cut to the
    /// allowed distance along its direction and the player is told its position.
    fn move_player(&mut self, id: EntityId, x: f32, z: f32) {
        let Some(e) = self.entities.get(&id) else { return };
        if e.view.kind != Kind::Player {
            return;
        }
        let (ox, oz) = (e.view.x, e.view.z);
        let mut corrected = !(x.is_finite() && z.is_finite() && self.cfg.bounds.contains(x, z));
        let (mut nx, mut nz) = if x.is_finite() && z.is_finite() { self.cfg.bounds.clamp(x, z) } else { (ox, oz) };
        let ticks = self.tick.saturating_sub(e.moved_at).max(1) as f32;
        let allowed = self.cfg.max_speed * ticks / self.cfg.tick_hz.max(1) as f32 * 1.1;
        let (dx, dz) = (nx - ox, nz - oz);
        let dist = (dx * dx + dz * dz).sqrt();
        if dist > allowed {
            let k = allowed / dist;
            (nx, nz) = (ox + dx * k, oz + dz * k);
            corrected = true;
        }
        if let Some(e) = self.entities.get_mut(&id) {
            e.view.x = nx;
            e.view.z = nz;
            e.moved_at = self.tick;
        }
        let change = self.grid.moved(id, (ox, oz), (nx, nz));
        for o in change.left {
            self.out.push(Out::Despawn { to: id, id: o });
            if self.is_player(o) {
                self.out.push(Out::Despawn { to: o, id });
            }
        }
        let me = self.entities.get(&id).map(|e| e.view.clone());
        for o in change.entered {
            if let Some(ov) = self.entities.get(&o).map(|e| e.view.clone()) {
                self.out.push(Out::Spawn { to: id, view: ov });
            }
            if let (true, Some(me)) = (self.is_player(o), me.clone()) {
                self.out.push(Out::Spawn { to: o, view: me });
            }
        }
        if corrected {
            self.out.push(Out::Corrected { to: id, x: nx, z: nz });
        }
        self.moved.insert(id);
    }

    /// Advances one tick: everything queued since the last tick, plus one position batch per
    /// player holding the moves of this tick that it can see (its own excluded).
    pub fn tick(&mut self) -> Vec<Out> {
        self.tick += 1;
        let mut out = std::mem::take(&mut self.out);
        if !self.moved.is_empty() {
            let moved = std::mem::take(&mut self.moved);
            let receivers: Vec<EntityId> = self.players().map(|p| p.id).collect();
            for to in receivers {
                let Some(me) = self.entities.get(&to) else { continue };
                let visible: BTreeSet<EntityId> = self.grid.around(me.view.x, me.view.z).collect();
                let moves: Vec<(EntityId, f32, f32)> = moved
                    .iter()
                    .filter(|id| **id != to && visible.contains(id))
                    .filter_map(|id| self.entities.get(id).map(|e| (*id, e.view.x, e.view.z)))
                    .collect();
                if !moves.is_empty() {
                    out.push(Out::Positions { to, moves });
                }
            }
        }
        out
    }

    /// The current tick number.
    pub fn now(&self) -> u64 {
        self.tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene() -> Scene {
        Scene::new(SceneConfig {
            id: 1000,
            bounds: Bounds { min_x: 0.0, min_z: 0.0, max_x: 200.0, max_z: 200.0 },
            cell: 20.0,
            tick_hz: 20,
            max_speed: 10.0,
            monsters: vec![MonsterSpawn { name: "Slime".into(), x: 30.0, z: 30.0, hp: 30 }],
        })
    }

    fn join(s: &mut Scene, id: EntityId, x: f32, z: f32) {
        s.apply(Command::Join { id, name: format!("p{id}"), x, z, hp: 100, max_hp: 100 });
    }

    fn spawns_to(out: &[Out], to: EntityId) -> Vec<EntityId> {
        out.iter()
            .filter_map(|o| match o {
                Out::Spawn { to: t, view } if *t == to => Some(view.id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn joining_players_see_each_other_and_the_monsters_near_them() {
        let mut s = scene();
        join(&mut s, 1, 25.0, 25.0);
        join(&mut s, 2, 35.0, 35.0);
        join(&mut s, 3, 190.0, 190.0); // far away
        let out = s.tick();
        let sorted = |mut v: Vec<EntityId>| {
            v.sort_unstable();
            v
        };
        assert_eq!(sorted(spawns_to(&out, 1)), [2, MONSTER_BASE], "the monster, then 2 joining");
        assert_eq!(sorted(spawns_to(&out, 2)), [1, MONSTER_BASE]);
        assert!(spawns_to(&out, 3).is_empty(), "nothing near the far player");
    }

    #[test]
    fn moves_are_batched_per_tick_for_those_in_view() {
        let mut s = scene();
        join(&mut s, 1, 25.0, 25.0);
        join(&mut s, 2, 30.0, 25.0);
        join(&mut s, 3, 190.0, 190.0);
        s.tick();
        s.tick();
        s.apply(Command::Move { id: 1, x: 25.4, z: 25.0 });
        let out = s.tick();
        assert_eq!(out, vec![Out::Positions { to: 2, moves: vec![(1, 25.4, 25.0)] }], "one batch, for 2 only");
    }

    #[test]
    fn impossible_moves_are_cut_short_and_corrected() {
        let mut s = scene();
        join(&mut s, 1, 25.0, 25.0);
        s.tick();
        // One tick at 10 units/s allows 0.5 (+10 %); a teleport of 100 is refused.
        s.apply(Command::Move { id: 1, x: 125.0, z: 25.0 });
        let out = s.tick();
        let Some(Out::Corrected { x, .. }) = out.iter().find(|o| matches!(o, Out::Corrected { .. })) else {
            panic!("corrected: {out:?}")
        };
        assert!((x - 25.55).abs() < 0.01, "moved only as far as allowed: {x}");
        s.apply(Command::Move { id: 1, x: -50.0, z: f32::NAN });
        let out = s.tick();
        assert!(out.iter().any(|o| matches!(o, Out::Corrected { .. })), "out of bounds or NaN: corrected");
        let me = s.get(1).expect("me");
        assert!(s.config().bounds.contains(me.x, me.z));
    }

    #[test]
    fn walking_into_view_spawns_and_out_of_view_despawns() {
        let mut s = scene();
        join(&mut s, 1, 100.0, 100.0);
        join(&mut s, 2, 165.0, 100.0); // three cells away
        assert!(spawns_to(&s.tick(), 1).is_empty());
        // Walk player 2 towards 1 over a few seconds of ticks.
        let mut x = 165.0;
        let mut saw = false;
        for _ in 0..200 {
            x -= 0.5;
            s.apply(Command::Move { id: 2, x, z: 100.0 });
            let out = s.tick();
            if spawns_to(&out, 1).contains(&2) {
                saw = true;
                assert!(spawns_to(&out, 2).contains(&1), "both sides are told");
                break;
            }
        }
        assert!(saw, "1 saw 2 come into view");
        s.apply(Command::Leave { id: 2 });
        assert!(s.tick().contains(&Out::Despawn { to: 1, id: 2 }));
        // A second join of a present player does not duplicate it.
        join(&mut s, 1, 0.0, 0.0);
        assert_eq!(s.players().count(), 1);
    }
}
