//! A scene's simulation: players and monsters on a plane, nine-grid AOI, server-validated
//! movement, and per-tick batching of what each player must be told. Plain code driven by
//! commands and a tick number — no sockets, no clock — so it is tested directly and replays
//! the same way every time. The task that owns a scene feeds it commands and ticks and
//! delivers the [`Out`] messages.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::aoi::{Bounds, EntityId, Grid, MONSTER_BASE};
use super::crowd::{self, Crowd, Site, Squares};

/// A scene's settings.
#[derive(Debug, Clone)]
pub struct SceneConfig {
    /// go-game's scene id (1000, 1001, 1002…).
    pub id: i32,
    /// The walkable rectangle.
    pub bounds: Bounds,
    /// AOI cell side.
    pub cell: f32,
    /// go-game's AOI grid (columns, rows) for its clients' view, which lies within rsgame's.
    pub go_game_grid: Option<(usize, usize)>,
    /// Ticks per second.
    pub tick_hz: u32,
    /// Fastest a player may move, units per second.
    pub max_speed: f32,
    /// Monsters and where they spawn.
    pub monsters: Vec<MonsterSpawn>,
    /// How far an attack reaches.
    pub attack_range: f32,
    /// Ticks between two attacks of one attacker.
    pub attack_cooldown: u64,
    /// Whether players may attack players here.
    pub pvp: bool,
    /// Where a dead player comes back.
    pub respawn: (f32, f32),
    /// Monsters do not pick, nor keep chasing, a player within this distance of the respawn
    /// point (0: nowhere is safe).
    pub safe_radius: f32,
    /// Hit points a living player regains each second once out of combat (0: none).
    pub regen_per_sec: i64,
    /// Seconds without hitting or being hit before regeneration starts.
    pub regen_after_secs: u32,
    /// Position batches go to a player every this many ticks (1: every tick). Above 1, the
    /// cells take turns, so each tick sends to a share of the players and every move still
    /// reaches every viewer within this many ticks, at its latest position.
    pub position_every: u32,
    /// How a cell's batch is capped when its view holds a crowd.
    pub crowd: Crowd,
}

/// A monster spawn point (an entry of a scene's `monsters` in `world.yaml`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonsterSpawn {
    /// Name.
    pub name: String,
    /// Spawn position.
    pub x: f32,
    /// Spawn position.
    pub z: f32,
    /// Hit points.
    pub hp: i64,
    /// Attack.
    pub attack: i64,
    /// Defence.
    pub defence: i64,
    /// Units per second when chasing or going home.
    pub speed: f32,
    /// A player this close is chased.
    pub aggro: f32,
    /// Farther than this from its spawn point, it gives up and goes home.
    pub leash: f32,
    /// Seconds until a killed monster comes back.
    pub respawn_secs: u32,
    /// Experience its killer earns.
    pub exp: i64,
    /// Coins its killer earns.
    pub coins: i64,
    /// Leaderboard score its killer earns (game data; none by default).
    #[serde(default)]
    pub score: i64,
}

impl MonsterSpawn {
    /// A monster with common settings: chases within 12, gives up beyond 30, back 10 s after
    /// death.
    pub fn basic(name: &str, x: f32, z: f32, hp: i64, attack: i64) -> MonsterSpawn {
        MonsterSpawn {
            name: name.into(),
            x,
            z,
            hp,
            attack,
            defence: 1,
            speed: 4.0,
            aggro: 12.0,
            leash: 30.0,
            respawn_secs: 10,
            exp: 10,
            coins: 5,
            score: 0,
        }
    }
}

/// What a monster is doing.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ai {
    Idle,
    Chase(EntityId),
    Home,
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
    /// Name (shared: a spawn in a crowd copies a view hundreds of times a tick).
    pub name: std::sync::Arc<str>,
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
    /// Distance it may still cover beyond what the ticks since `moved_at` allow: what a move
    /// that arrived early (network or timer jitter) did not use of the one before.
    move_budget: f32,
    attack: i64,
    defence: i64,
    /// The first tick it may attack again.
    ready_at: u64,
    /// A monster's spawn entry.
    spawn: Option<usize>,
    ai: Ai,
    /// A dead monster comes back at this tick.
    dead_until: Option<u64>,
    /// The tick it last hit or was hit.
    fought_at: u64,
    /// The tick its position last changed (or it arrived).
    pos_tick: u64,
    /// The last tick it moved in view of a crowd, where a batch may have left it out.
    crowd_at: Option<u64>,
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
        /// Attack with equipment.
        attack: i64,
        /// Defence with equipment.
        defence: i64,
    },
    /// A player leaves (logout, disconnect, another scene).
    Leave {
        /// The account.
        id: EntityId,
    },
    /// A player attacks a monster (or a player where PvP is on).
    Attack {
        /// The attacker.
        id: EntityId,
        /// The target.
        target: EntityId,
    },
    /// A dead player comes back, full hp, at the scene's respawn point.
    Respawn {
        /// The player.
        id: EntityId,
    },
    /// A player's numbers changed outside the scene (a level-up, new equipment).
    Stats {
        /// The player.
        id: EntityId,
        /// Hit points now.
        hp: i64,
        /// Maximum hit points.
        max_hp: i64,
        /// Attack with equipment.
        attack: i64,
        /// Defence with equipment.
        defence: i64,
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
    /// This tick's positions of what moved in view, for every player in one cell: they all
    /// see the same nine cells, so one batch (encoded once) serves them all. A receiver's own
    /// position is in it when it moved; clients skip their own entry. In a crowd (more movers
    /// in view than [`Crowd::cap`]) a player gets two: the cell's share of its movers (to all
    /// its players), then the movers nearest to the player's small square that are not in it
    /// (to that square's players) ([`crate::crowd`]).
    Positions {
        /// The receiving players (one cell's, or in a crowd one square's of it), ascending.
        to: Vec<EntityId>,
        /// (id, x, z), sorted by id.
        moves: Vec<(EntityId, f32, f32)>,
    },
    /// A hit, told to every player who can see the target.
    Hit {
        /// The receiving player.
        to: EntityId,
        /// Who hit.
        attacker: EntityId,
        /// Who was hit.
        target: EntityId,
        /// Damage.
        damage: i64,
        /// The target's hp after it.
        target_hp: i64,
    },
    /// Something died, told to every player who could see it.
    Died {
        /// The receiving player.
        to: EntityId,
        /// Who died.
        id: EntityId,
        /// Who killed it.
        by: EntityId,
    },
    /// A kill's reward, for the owner of the scene to grant through the game service.
    Reward {
        /// The killer.
        to: EntityId,
        /// The monster killed.
        killed: EntityId,
        /// Experience.
        exp: i64,
        /// Coins.
        coins: i64,
        /// Leaderboard score.
        score: i64,
    },
    /// A player regained hit points (out of combat): its own numbers to tell it.
    Healed {
        /// The player.
        id: EntityId,
        /// Its hp now.
        hp: i64,
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

/// A per-tick map keyed by cell index: hashed fast, rebuilt every tick.
type CellMap<V> = foldhash::HashMap<usize, V>;

/// What a tick's crowded cells share (see [`Scene::crowd_tick`]).
struct CrowdTick {
    /// The tick's movers on small squares.
    squares: Squares,
    /// Squares per cell side.
    per_cell: usize,
}

/// A scene.
pub struct Scene {
    cfg: SceneConfig,
    grid: Grid,
    entities: BTreeMap<EntityId, Entity>,
    /// Entities that moved since the last tick.
    moved: BTreeSet<EntityId>,
    /// The movers of the last `position_every` ticks, oldest first (the current tick's last).
    window: VecDeque<BTreeSet<EntityId>>,
    /// With `position_every` above 1: spawns and despawns waiting for their receiver's turn,
    /// with the tick they were made.
    held: Vec<(u64, Out)>,
    /// The last tick a cell's batch was capped for a crowd.
    crowd_seen: Option<u64>,
    /// By crowded cell: the tick it last had a turn, and the tick each mover in its view was
    /// last in its far share.
    crowd_sent: CellMap<(u64, foldhash::HashMap<EntityId, u64>)>,
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
            window: VecDeque::new(),
            held: Vec::new(),
            crowd_seen: None,
            crowd_sent: CellMap::default(),
            out: Vec::new(),
            tick: 0,
        };
        for (i, m) in s.cfg.monsters.clone().into_iter().enumerate() {
            let (x, z) = s.cfg.bounds.clamp(m.x, m.z);
            let view = View {
                id: MONSTER_BASE + i as u64,
                kind: Kind::Monster,
                name: m.name.into(),
                x,
                z,
                hp: m.hp,
                max_hp: m.hp,
            };
            s.add(view, m.attack, m.defence, Some(i));
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

    /// What `id` sees around it (itself excluded), sorted by id: what a reconnecting client
    /// is sent to rebuild its view.
    pub fn in_view(&self, id: EntityId) -> Vec<View> {
        let Some(me) = self.entities.get(&id) else { return Vec::new() };
        let mut v: Vec<View> = self
            .grid
            .around(me.view.x, me.view.z)
            .filter(|o| *o != id)
            .filter_map(|o| self.entities.get(&o).map(|e| e.view.clone()))
            .collect();
        v.sort_unstable_by_key(|e| e.id);
        v
    }

    fn is_player(&self, id: EntityId) -> bool {
        self.entities.get(&id).is_some_and(|e| e.view.kind == Kind::Player)
    }

    fn add(&mut self, view: View, attack: i64, defence: i64, spawn: Option<usize>) {
        self.grid.insert(view.id, view.x, view.z);
        let e = Entity {
            view,
            moved_at: self.tick,
            // Arrived rested: a first step right after the login is not cut.
            move_budget: self.move_cap(),
            attack,
            defence,
            ready_at: 0,
            spawn,
            ai: Ai::Idle,
            dead_until: None,
            fought_at: 0,
            pos_tick: self.tick,
            crowd_at: None,
        };
        self.entities.insert(e.view.id, e);
    }

    /// Players who can see (x, z).
    fn viewers(&self, x: f32, z: f32) -> Vec<EntityId> {
        let mut v: Vec<EntityId> = self.grid.around(x, z).filter(|id| self.is_player(*id)).collect();
        v.sort_unstable();
        v
    }

    /// Damage of one hit: attack less half the defence, at least 1 (the battle simulation's
    /// rule without its randomness: real-time fights must not depend on a roll order).
    fn damage(attack: i64, defence: i64) -> i64 {
        (attack - defence / 2).max(1)
    }

    /// `attacker` hits `target` if it is ready and close enough; tells the viewers; handles
    /// a death.
    fn hit(&mut self, attacker: EntityId, target: EntityId) -> bool {
        let (Some(a), Some(t)) = (self.entities.get(&attacker), self.entities.get(&target)) else { return false };
        if a.view.hp <= 0 || t.view.hp <= 0 || t.dead_until.is_some() || a.ready_at > self.tick {
            return false;
        }
        let (dx, dz) = (a.view.x - t.view.x, a.view.z - t.view.z);
        if (dx * dx + dz * dz).sqrt() > self.cfg.attack_range {
            return false;
        }
        let damage = Scene::damage(a.attack, t.defence);
        let cooldown = self.cfg.attack_cooldown;
        if let Some(a) = self.entities.get_mut(&attacker) {
            a.ready_at = self.tick + cooldown;
            a.fought_at = self.tick;
        }
        let Some(t) = self.entities.get_mut(&target) else { return false };
        t.view.hp = (t.view.hp - damage).max(0);
        t.fought_at = self.tick;
        let (hp, x, z, kind, spawn) = (t.view.hp, t.view.x, t.view.z, t.view.kind, t.spawn);
        for to in self.viewers(x, z) {
            self.out.push(Out::Hit { to, attacker, target, damage, target_hp: hp });
        }
        if hp == 0 {
            for to in self.viewers(x, z) {
                self.out.push(Out::Died { to, id: target, by: attacker });
            }
            if kind == Kind::Monster {
                let m = spawn.and_then(|i| self.cfg.monsters.get(i)).cloned();
                if let Some(m) = m {
                    if self.is_player(attacker) {
                        self.out.push(Out::Reward {
                            to: attacker,
                            killed: target,
                            exp: m.exp,
                            coins: m.coins,
                            score: m.score,
                        });
                    }
                    let back = self.tick + u64::from(m.respawn_secs) * u64::from(self.cfg.tick_hz.max(1));
                    self.grid.remove(target, x, z);
                    if let Some(t) = self.entities.get_mut(&target) {
                        t.dead_until = Some(back);
                        t.ai = Ai::Idle;
                    }
                }
            }
        }
        true
    }

    /// Once a second: living players out of combat for `regen_after_secs` regain
    /// `regen_per_sec` hit points, told to themselves and to those who see them.
    fn regenerate(&mut self) {
        let hz = u64::from(self.cfg.tick_hz.max(1));
        if self.cfg.regen_per_sec <= 0 || self.tick % hz != 0 {
            return;
        }
        let calm = u64::from(self.cfg.regen_after_secs) * hz;
        let healed: Vec<EntityId> = self
            .entities
            .values()
            .filter(|e| e.view.kind == Kind::Player && e.view.hp > 0 && e.view.hp < e.view.max_hp)
            .filter(|e| self.tick.saturating_sub(e.fought_at) >= calm)
            .map(|e| e.view.id)
            .collect();
        for id in healed {
            let Some(e) = self.entities.get_mut(&id) else { continue };
            e.view.hp = (e.view.hp + self.cfg.regen_per_sec).min(e.view.max_hp);
            let hp = e.view.hp;
            self.out.push(Out::Healed { id, hp });
            self.show(id, &[]);
        }
    }

    /// Monsters: respawn the dead whose time came; chase, attack, or go home.
    fn monsters(&mut self) {
        let ids: Vec<EntityId> = self.entities.range(MONSTER_BASE..).map(|(id, _)| *id).collect();
        for id in ids {
            let Some(e) = self.entities.get(&id) else { continue };
            let Some(spec) = e.spawn.and_then(|i| self.cfg.monsters.get(i)).cloned() else { continue };
            if let Some(back) = e.dead_until {
                if back <= self.tick {
                    let (x, z) = self.cfg.bounds.clamp(spec.x, spec.z);
                    if let Some(e) = self.entities.get_mut(&id) {
                        (e.view.x, e.view.z, e.view.hp, e.dead_until, e.ai) = (x, z, e.view.max_hp, None, Ai::Idle);
                    }
                    self.grid.insert(id, x, z);
                    let view = self.entities.get(&id).map(|e| e.view.clone());
                    if let Some(view) = view {
                        for to in self.viewers(x, z) {
                            self.out.push(Out::Spawn { to, view: view.clone() });
                        }
                    }
                }
                continue;
            }
            let (x, z, ai) = (e.view.x, e.view.z, e.ai);
            let dist = |ax: f32, az: f32, bx: f32, bz: f32| ((ax - bx).powi(2) + (az - bz).powi(2)).sqrt();
            let from_home = dist(x, z, spec.x, spec.z);
            let step = spec.speed / self.cfg.tick_hz.max(1) as f32;
            // Pick or keep a target: the nearest living player within aggro range, outside the
            // safe zone around the respawn point.
            let (rx, rz, safe) = (self.cfg.respawn.0, self.cfg.respawn.1, self.cfg.safe_radius);
            let fair = |p: &Entity| p.view.hp > 0 && dist(p.view.x, p.view.z, rx, rz) > safe;
            let target = match ai {
                Ai::Home => None,
                _ if from_home > spec.leash => None,
                Ai::Chase(t) if self.entities.get(&t).is_some_and(fair) => Some(t),
                _ => self
                    .grid
                    .around(x, z)
                    .filter_map(|o| self.entities.get(&o))
                    .filter(|o| o.view.kind == Kind::Player && fair(o))
                    .map(|o| (dist(x, z, o.view.x, o.view.z), o.view.id))
                    .filter(|(d, _)| *d <= spec.aggro)
                    .min_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(_, id)| id),
            };
            let (goal, next_ai) = match (target, ai) {
                (Some(t), _) => (self.entities.get(&t).map(|p| (p.view.x, p.view.z)), Ai::Chase(t)),
                (None, Ai::Idle) => (None, Ai::Idle),
                // Leashed or target lost: go home and heal.
                (None, _) => (Some((spec.x, spec.z)), Ai::Home),
            };
            if let Some(e) = self.entities.get_mut(&id) {
                e.ai = next_ai;
            }
            if let Ai::Chase(t) = next_ai
                && self.hit(id, t)
            {
                continue;
            }
            if let Some((gx, gz)) = goal {
                let d = dist(x, z, gx, gz);
                // Chasers stop at attack range; homecomers walk all the way.
                let stop = if matches!(next_ai, Ai::Chase(_)) { self.cfg.attack_range * 0.8 } else { 0.0 };
                if d > stop {
                    let k = ((d - stop).min(step)) / d;
                    let (nx, nz) = (x + (gx - x) * k, z + (gz - z) * k);
                    let change = self.grid.moved(id, (x, z), (nx, nz));
                    if let Some(e) = self.entities.get_mut(&id) {
                        (e.view.x, e.view.z) = (nx, nz);
                    }
                    let view = self.entities.get(&id).map(|e| e.view.clone());
                    let left: Vec<EntityId> = change.left.into_iter().filter(|o| self.is_player(*o)).collect();
                    let entered: Vec<EntityId> = change.entered.into_iter().filter(|o| self.is_player(*o)).collect();
                    for o in left {
                        self.out.push(Out::Despawn { to: o, id });
                    }
                    if let Some(view) = view {
                        for o in entered {
                            self.out.push(Out::Spawn { to: o, view: view.clone() });
                        }
                    }
                    self.moved.insert(id);
                } else if next_ai == Ai::Home {
                    if let Some(e) = self.entities.get_mut(&id) {
                        (e.ai, e.view.hp) = (Ai::Idle, e.view.max_hp);
                    }
                }
            }
        }
    }

    /// Applies a command now; what it causes is queued for the next [`Scene::tick`].
    pub fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Join { id, name, x, z, hp, max_hp, attack, defence } => {
                if id >= MONSTER_BASE {
                    return;
                }
                if self.entities.contains_key(&id) {
                    // A second join (a reconnect): the player stays, no duplicate.
                    return;
                }
                let (x, z) = self.cfg.bounds.clamp(x, z);
                let view = View { id, kind: Kind::Player, name: name.into(), x, z, hp, max_hp };
                self.add(view.clone(), attack, defence, None);
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
            Command::Stats { id, hp, max_hp, attack, defence } => {
                if let Some(e) = self.entities.get_mut(&id).filter(|e| e.view.kind == Kind::Player) {
                    let alive = e.view.hp > 0;
                    e.view.max_hp = max_hp.max(1);
                    // A dead player stays dead until it respawns, whatever the new numbers.
                    e.view.hp = if alive { hp.clamp(1, e.view.max_hp) } else { 0 };
                    (e.attack, e.defence) = (attack, defence);
                }
            }
            Command::Attack { id, target } => {
                // Players only attack; monsters (and players where PvP is on) are targets.
                if !self.is_player(id) || (self.is_player(target) && !self.cfg.pvp) || id == target {
                    return;
                }
                self.hit(id, target);
            }
            Command::Respawn { id } => {
                let Some(e) = self.entities.get(&id) else { return };
                if e.view.kind != Kind::Player || e.view.hp > 0 {
                    return;
                }
                let (x, z) = (e.view.x, e.view.z);
                let (rx, rz) = self.cfg.bounds.clamp(self.cfg.respawn.0, self.cfg.respawn.1);
                let cap = self.move_cap();
                if let Some(e) = self.entities.get_mut(&id) {
                    e.view.hp = e.view.max_hp;
                    e.moved_at = self.tick;
                    e.move_budget = cap;
                }
                // Teleported by the server: no speed check.
                let entered = self.relocate(id, (x, z), (rx, rz));
                self.out.push(Out::Corrected { to: id, x: rx, z: rz });
                self.moved.insert(id);
                // Those who saw it dead and still see it learn it is back (full hp): the
                // ones it came into view of were just told with a spawn.
                self.show(id, &entered);
            }
        }
    }

    /// Tells the players who see `id` (but `id` itself and those in `told`) how it stands
    /// now, as a spawn: after a change a hit does not show (a respawn, a heal, a level-up).
    pub fn show(&mut self, id: EntityId, told: &[EntityId]) {
        let Some(me) = self.entities.get(&id).map(|e| e.view.clone()) else { return };
        for o in self.viewers(me.x, me.z) {
            if o != id && !told.contains(&o) {
                self.out.push(Out::Spawn { to: o, view: me.clone() });
            }
        }
    }

    /// Puts player `id` at `to` and tells both sides of every view it entered or left:
    /// what it now sees (and no longer sees), and the players who now see it (or no longer).
    /// Returns those it came into view of.
    fn relocate(&mut self, id: EntityId, from: (f32, f32), to: (f32, f32)) -> Vec<EntityId> {
        let change = self.grid.moved(id, from, to);
        if let Some(e) = self.entities.get_mut(&id) {
            (e.view.x, e.view.z) = to;
        }
        for o in change.left {
            self.out.push(Out::Despawn { to: id, id: o });
            if self.is_player(o) {
                self.out.push(Out::Despawn { to: o, id });
            }
        }
        let me = self.entities.get(&id).map(|e| e.view.clone());
        for &o in &change.entered {
            if let Some(ov) = self.entities.get(&o).map(|e| e.view.clone()) {
                self.out.push(Out::Spawn { to: id, view: ov });
            }
            if let (true, Some(me)) = (self.is_player(o), me.clone()) {
                self.out.push(Out::Spawn { to: o, view: me });
            }
        }
        change.entered
    }

    /// The distance a player may cover per tick (with the 10 % slack).
    fn move_per_tick(&self) -> f32 {
        self.cfg.max_speed / self.cfg.tick_hz.max(1) as f32 * 1.1
    }

    /// The most movement allowance a player can save up: one second's worth, so a client
    /// that sends its position once a second (a throttled background tab) still walks.
    fn move_cap(&self) -> f32 {
        self.move_per_tick() * self.cfg.tick_hz.max(1) as f32
    }

    /// Validates a move: inside the bounds, and no farther than the speed allows (10 % slack).
    /// The allowance is a budget that fills at the speed with every tick and is spent by
    /// moves, holding at most one second's worth: a move that arrives a tick early (timer or
    /// network jitter) uses what the previous one left, so a steady walker is never cut,
    /// while nobody outruns the speed by more than that second's worth, however long it
    /// stood still. A move
    /// too far is cut to the budget along its direction and the player is told its position.
    fn move_player(&mut self, id: EntityId, x: f32, z: f32) {
        let Some(e) = self.entities.get(&id) else { return };
        if e.view.kind != Kind::Player || e.view.hp <= 0 {
            return;
        }
        let (ox, oz) = (e.view.x, e.view.z);
        let mut corrected = !(x.is_finite() && z.is_finite() && self.cfg.bounds.contains(x, z));
        let (mut nx, mut nz) = if x.is_finite() && z.is_finite() { self.cfg.bounds.clamp(x, z) } else { (ox, oz) };
        let ticks = self.tick.saturating_sub(e.moved_at) as f32;
        let (per_tick, cap) = (self.move_per_tick(), self.move_cap());
        let allowed = (e.move_budget + ticks * per_tick).min(cap);
        let (dx, dz) = (nx - ox, nz - oz);
        let dist = (dx * dx + dz * dz).sqrt();
        if dist > allowed {
            let k = allowed / dist;
            (nx, nz) = (ox + dx * k, oz + dz * k);
            corrected = true;
        }
        if let Some(e) = self.entities.get_mut(&id) {
            e.moved_at = self.tick;
            e.move_budget = (allowed - dist).max(0.0);
        }
        self.relocate(id, (ox, oz), (nx, nz));
        if corrected {
            self.out.push(Out::Corrected { to: id, x: nx, z: nz });
        }
        self.moved.insert(id);
    }

    /// Advances one tick: everything queued since the last tick, plus one position batch per
    /// player holding the moves it can see (its own excluded) — every tick, or with
    /// `position_every` above 1 for the cells whose turn it is, holding the moves of the last
    /// `position_every` ticks.
    pub fn tick(&mut self) -> Vec<Out> {
        self.tick += 1;
        self.monsters();
        self.regenerate();
        let mut out = std::mem::take(&mut self.out);
        let every = u64::from(self.cfg.position_every.max(1));
        self.crowd_turns();
        self.window.push_back(std::mem::take(&mut self.moved));
        while self.window.len() as u64 > every {
            self.window.pop_front();
        }
        // Which cells' players are told this tick: all, or those whose turn it is.
        let turn = self.tick % every;
        let due = |cell: usize| every == 1 || cell as u64 % every == turn;
        if every > 1 {
            // What comes into or leaves a player's view waits for its turn too, so a player
            // off its turn gets no write at all; nothing waits more than its turn's distance.
            let now = self.tick;
            let mut ready = Vec::with_capacity(out.len());
            // A player written to this tick anyway (a hit, a death, a correction) gets what
            // waits for it now, ahead of that: it costs no extra write, and a client never
            // hears of a hit by something it has not yet been told came into view.
            let told: BTreeSet<EntityId> = out
                .iter()
                .filter_map(|o| match o {
                    Out::Hit { to, .. } | Out::Died { to, .. } | Out::Corrected { to, .. } => Some(*to),
                    Out::Healed { id, .. } => Some(*id),
                    Out::Spawn { .. } | Out::Despawn { .. } | Out::Positions { .. } | Out::Reward { .. } => None,
                })
                .collect();
            let held = std::mem::take(&mut self.held);
            for (made, o) in held.into_iter().chain(out.into_iter().map(|o| (now, o))) {
                let to = match &o {
                    Out::Spawn { to, .. } | Out::Despawn { to, .. } => Some(*to),
                    _ => None,
                };
                let wait = to.is_some_and(|to| {
                    now - made < every - 1
                        && !told.contains(&to)
                        && self.entities.get(&to).is_some_and(|e| !due(self.grid.index_of(e.view.x, e.view.z)))
                });
                if wait {
                    self.held.push((made, o));
                } else {
                    ready.push(o);
                }
            }
            out = ready;
        }
        let mut movers = self.window.iter().flatten().peekable();
        if movers.peek().is_some() {
            // Movers by cell, then one batch per cell that has players: the cost follows the
            // cells in use, not players times movers, and each batch is encoded once.
            let mut by_cell: CellMap<Vec<(EntityId, f32, f32)>> =
                CellMap::with_capacity_and_hasher(self.window.iter().map(BTreeSet::len).sum(), Default::default());
            let mut seen = BTreeSet::new();
            for id in movers {
                // A mover of several ticks in the window counts once, where it is now; one that
                // has left since is no longer in `entities` and is skipped.
                if every > 1 && !seen.insert(*id) {
                    continue;
                }
                if let Some(e) = self.entities.get(id) {
                    by_cell.entry(self.grid.index_of(e.view.x, e.view.z)).or_default().push((*id, e.view.x, e.view.z));
                }
            }
            // Players sorted by cell (ids ascending within one): each run is one batch.
            let mut receivers: Vec<(usize, EntityId)> =
                self.players().map(|p| (self.grid.index_of(p.x, p.z), p.id)).filter(|(cell, _)| due(*cell)).collect();
            receivers.sort_unstable();
            let mut moves: Vec<(EntityId, f32, f32)> = Vec::new();
            // Built on the first crowded cell of the tick, shared by the others.
            let mut crowd: Option<CrowdTick> = None;
            let mut marks: Vec<EntityId> = Vec::new();
            let mut sent = std::mem::take(&mut self.crowd_sent);
            for run in receivers.chunk_by(|a, b| a.0 == b.0) {
                let cell = run[0].0;
                moves.clear();
                moves.extend(self.grid.view_of(cell).filter_map(|c| by_cell.get(&c)).flatten().copied());
                // Nothing to tell, or only a lone mover its own position.
                if moves.is_empty() || (run.len() == 1 && moves.len() == 1 && moves[0].0 == run[0].1) {
                    continue;
                }
                if self.cfg.crowd.is_on() && moves.len() > self.cfg.crowd.cap {
                    let ct = crowd.get_or_insert_with(|| self.crowd_tick(&by_cell));
                    self.crowd_batches(cell, run, &moves, ct, &mut sent, &mut out, &mut marks);
                    continue;
                }
                moves.sort_unstable_by_key(|m| m.0);
                out.push(Out::Positions { to: run.iter().map(|r| r.1).collect(), moves: moves.clone() });
            }
            // What crowded cells sent; a cell not crowded since its last turn is forgotten.
            let now = self.tick;
            sent.retain(|_, (t, _)| *t + every >= now);
            self.crowd_sent = sent;
            if crowd.is_some() {
                self.crowd_seen = Some(now);
                for id in marks {
                    if let Some(e) = self.entities.get_mut(&id) {
                        e.crowd_at = Some(now);
                    }
                }
            }
        }
        out
    }

    /// Notes when this tick's movers moved; then, while crowds are about, adds to them those
    /// that moved in view of one lately and whose refresh turn this is. A crowded cell's batch
    /// that left such a mover out may have been the last one to carry it (it stopped, or the
    /// viewer walked out of the crowd), so this sends it once more, at its latest position, to
    /// everyone who sees it: nobody keeps a stale position longer than `refresh_ticks`.
    fn crowd_turns(&mut self) {
        let now = self.tick;
        for id in &self.moved {
            if let Some(e) = self.entities.get_mut(id) {
                e.pos_tick = now;
            }
        }
        let refresh = self.cfg.crowd.refresh_ticks.max(1);
        if self.crowd_seen.is_none_or(|t| t + refresh < now) {
            return;
        }
        for (id, e) in &self.entities {
            if e.crowd_at.is_some_and(|t| t + refresh >= now) && crowd::due(*id, now, refresh) {
                self.moved.insert(*id);
            }
        }
    }

    /// What every crowded cell of this tick shares: the movers on small squares, sized so
    /// that the densest cell holds about four movers per square (a group's square and the
    /// eight around it then hold about `crowd_near`).
    fn crowd_tick(&self, by_cell: &CellMap<Vec<Site>>) -> CrowdTick {
        let densest = by_cell.values().map(Vec::len).max().unwrap_or(1);
        let per_cell = ((densest as f64 / 4.0).sqrt().ceil() as usize).clamp(1, 32);
        let b = self.cfg.bounds;
        let squares =
            Squares::new(by_cell.values().flatten(), (b.min_x, b.min_z), self.cfg.cell.max(1.0) / per_cell as f32);
        CrowdTick { squares, per_cell }
    }

    /// The batches of one crowded cell's players (`run`, sorted by cell then id), who see the
    /// movers `moves`: grouped by square, each group is sent its nearest movers and the cell's
    /// share of the others, those the cell sent longest ago first.
    #[allow(clippy::too_many_arguments)] // the tick's state, passed apart to borrow it apart
    fn crowd_batches(
        &self,
        cell: usize,
        run: &[(usize, EntityId)],
        moves: &[Site],
        ct: &CrowdTick,
        sent: &mut CellMap<(u64, foldhash::HashMap<EntityId, u64>)>,
        out: &mut Vec<Out>,
        marks: &mut Vec<EntityId>,
    ) {
        let (now, c) = (self.tick, self.cfg.crowd);
        let every = u64::from(self.cfg.position_every.max(1));
        // The cell's far share, from what it sent before (the tick drops a cell not crowded
        // since its last turn, so one crowded again starts afresh).
        let sent = sent.entry(cell).or_insert_with(|| (now, foldhash::HashMap::default()));
        sent.0 = now;
        let mut far = Vec::new();
        crowd::far_share(moves, &mut sent.1, now, every, &c, &mut far);
        if sent.1.len() > 2 * moves.len() + 64 {
            // Those that left the view or stopped long ago.
            sent.1.retain(|_, t| *t + c.refresh_ticks >= now);
        }
        far.sort_unstable_by_key(|m| m.0);
        // Movers of the window a group's batch may leave out: their refresh turn is due.
        marks.extend(
            moves.iter().filter(|m| self.entities.get(&m.0).is_some_and(|e| e.pos_tick + every > now)).map(|m| m.0),
        );
        let cols = self.grid.size().0;
        let (cc, cr) = (cell % cols, cell / cols);
        let in_view = |x: f32, z: f32| {
            let (c2, r2) = self.grid.cell_of(x, z);
            c2.abs_diff(cc) <= 1 && r2.abs_diff(cr) <= 1
        };
        let mut groups: Vec<((i32, i32), EntityId)> = run
            .iter()
            .filter_map(|(_, id)| self.entities.get(id).map(|e| (ct.squares.key(e.view.x, e.view.z), *id)))
            .collect();
        groups.sort_unstable();
        // The far share is the same for every group of the cell: one batch for all its players,
        // encoded once; each group's own batch holds only its nearest that are not in it.
        if !far.is_empty() {
            out.push(Out::Positions { to: run.iter().map(|r| r.1).collect(), moves: far.clone() });
        }
        for g in groups.chunk_by(|a, b| a.0 == b.0) {
            let mut near = Vec::new();
            // Rings up to a cell's width stay within the nine cells in view.
            ct.squares.nearest(g[0].0, c.near, ct.per_cell as i32, in_view, &mut near);
            near.retain(|m| far.binary_search_by_key(&m.0, |f| f.0).is_err());
            near.sort_unstable_by_key(|m| m.0);
            if !near.is_empty() {
                out.push(Out::Positions { to: g.iter().map(|m| m.1).collect(), moves: near });
            }
        }
    }

    /// The current tick number.
    pub fn now(&self) -> u64 {
        self.tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn scene() -> Scene {
        scene_every(1)
    }

    fn scene_every(position_every: u32) -> Scene {
        Scene::new(config_every(position_every))
    }

    fn config_every(position_every: u32) -> SceneConfig {
        SceneConfig {
            id: 1000,
            bounds: Bounds { min_x: 0.0, min_z: 0.0, max_x: 200.0, max_z: 200.0 },
            cell: 20.0,
            go_game_grid: None,
            tick_hz: 20,
            max_speed: 10.0,
            monsters: vec![MonsterSpawn::basic("Slime", 30.0, 30.0, 30, 6)],
            attack_range: 3.0,
            attack_cooldown: 10,
            pvp: false,
            respawn: (5.0, 5.0),
            safe_radius: 0.0,
            regen_per_sec: 0,
            regen_after_secs: 5,
            position_every,
            crowd: Crowd::default(),
        }
    }

    fn join(s: &mut Scene, id: EntityId, x: f32, z: f32) {
        s.apply(Command::Join { id, name: format!("p{id}"), x, z, hp: 100, max_hp: 100, attack: 12, defence: 2 });
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
        // Far from the slime, which would otherwise come for them.
        join(&mut s, 1, 125.0, 125.0);
        join(&mut s, 2, 130.0, 125.0);
        join(&mut s, 3, 190.0, 10.0);
        s.tick();
        s.tick();
        s.apply(Command::Move { id: 1, x: 125.4, z: 125.0 });
        let out = s.tick();
        let batches: Vec<&Out> = out.iter().filter(|o| matches!(o, Out::Positions { .. })).collect();
        assert_eq!(batches.len(), 1, "one batch: 1 and 2 share a cell: {out:?}");
        let Out::Positions { to, moves } = batches[0] else { unreachable!() };
        assert_eq!((to.as_slice(), moves.as_slice()), (&[1, 2][..], &[(1, 125.4, 125.0)][..]), "not for 3, far away");
    }

    /// A mover's entry in a batch: (id, x, z).
    type Move = (EntityId, f32, f32);

    /// The position batches of one tick, as (receiver, moves) pairs.
    fn batches(out: &[Out]) -> Vec<(EntityId, Vec<Move>)> {
        out.iter()
            .filter_map(|o| match o {
                Out::Positions { to, moves } => Some(to.iter().map(|t| (*t, moves.clone())).collect::<Vec<_>>()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    #[test]
    fn every_second_tick_each_viewer_gets_every_move_once_at_its_latest_position() {
        let mut s = scene_every(2);
        // Viewers in neighbouring cells (cells of 20: x 120–139 and 140–159 differ in parity),
        // all in view of the mover at 130.
        join(&mut s, 1, 130.0, 130.0);
        join(&mut s, 2, 131.0, 130.0);
        join(&mut s, 3, 145.0, 130.0);
        join(&mut s, 4, 125.0, 145.0);
        s.tick();
        s.tick();
        let mut got: HashMap<EntityId, Vec<(u64, f32)>> = HashMap::new();
        let mut x = 130.0;
        for step in 0..12 {
            // The mover walks on most ticks and stands still on some.
            if step % 4 != 3 {
                x += 0.3;
                s.apply(Command::Move { id: 1, x, z: 130.0 });
            }
            let out = s.tick();
            let now = s.now();
            let mut told = Vec::new();
            for (to, moves) in batches(&out) {
                told.push(to);
                let mine: Vec<_> = moves.iter().filter(|m| m.0 == 1).collect();
                assert!(mine.len() <= 1, "one entry per mover: {moves:?}");
                if let Some(m) = mine.first() {
                    assert!((m.1 - x).abs() < 1e-4, "the latest position, tick {now}: {m:?} vs {x}");
                    got.entry(to).or_default().push((now, m.1));
                }
            }
            told.sort_unstable();
            told.dedup();
            // Nobody gets two batches in a row.
            for to in &told {
                if let Some(v) = got.get(to)
                    && v.len() >= 2
                {
                    assert!(v[v.len() - 1].0 - v[v.len() - 2].0 >= 2, "{to} got batches on consecutive ticks: {v:?}");
                }
            }
        }
        // Every viewer heard of the walk within two ticks of each step, and 1 (whose cell is
        // the mover's) too.
        for viewer in [1, 2, 3, 4] {
            let v = got.get(&viewer).unwrap_or_else(|| panic!("{viewer} heard nothing"));
            assert!(v.len() >= 4, "{viewer}: {v:?}");
            assert!(v.windows(2).all(|w| w[1].0 - w[0].0 <= 4), "{viewer}: a gap: {v:?}");
        }
        // One step, then stillness: each cell hears of it on its own turn, once.
        s.tick();
        s.tick();
        s.apply(Command::Move { id: 1, x: x + 0.3, z: 130.0 });
        let told = |out: Vec<Out>| {
            let mut v: Vec<EntityId> = batches(&out).into_iter().map(|b| b.0).collect();
            v.sort_unstable();
            v
        };
        let (first, second, third) = (told(s.tick()), told(s.tick()), told(s.tick()));
        let mut both = [first.clone(), second.clone()].concat();
        both.sort_unstable();
        assert_eq!(both, [1, 2, 3, 4], "each viewer once over two ticks: {first:?} then {second:?}");
        assert!(!first.is_empty() && !second.is_empty(), "the cells took turns: {first:?} / {second:?}");
        assert!(third.is_empty(), "nothing more: {third:?}");
    }

    #[test]
    fn every_second_tick_what_enters_or_leaves_view_comes_on_the_viewers_turn() {
        let mut s = scene_every(2);
        // A still viewer, and a walker crossing its view from one side to the other.
        join(&mut s, 2, 130.0, 130.0);
        join(&mut s, 1, 60.0, 130.0);
        s.tick();
        s.tick();
        let viewer_turn = |s: &Scene| s.grid.index_of(130.0, 130.0) as u64 % 2;
        let (mut spawned, mut despawned, mut x) = (0, 0, 60.0);
        for _ in 0..200 {
            x += 1.5;
            s.apply(Command::Move { id: 1, x, z: 130.0 });
            let out = s.tick();
            for o in &out {
                let (to, what) = match o {
                    Out::Spawn { to, view } => (*to, view.id),
                    Out::Despawn { to, id } => (*to, *id),
                    _ => continue,
                };
                if to == 2 && what == 1 {
                    assert_eq!(s.now() % 2, viewer_turn(&s), "told off its turn: {o:?}");
                    if matches!(o, Out::Spawn { .. }) {
                        spawned += 1;
                    } else {
                        despawned += 1;
                    }
                }
            }
        }
        assert_eq!((spawned, despawned), (1, 1), "the walker came into view and left it once each");
    }

    #[test]
    fn every_second_tick_a_hit_never_comes_before_the_attackers_spawn() {
        // A watcher stands by the slime; an attacker appears beside it and strikes at once.
        // Whichever turn the watcher's cell has, it hears of the attacker before the hit.
        for wait in 0..2 {
            let mut s = scene_every(2);
            join(&mut s, 2, 35.0, 30.0);
            for _ in 0..=wait {
                s.tick();
            }
            join(&mut s, 1, 31.0, 30.0);
            s.apply(Command::Attack { id: 1, target: MONSTER_BASE });
            let (mut spawned, mut hits) = (false, 0);
            for _ in 0..4 {
                for o in s.tick() {
                    match o {
                        Out::Spawn { to: 2, view } if view.id == 1 => spawned = true,
                        Out::Hit { to: 2, attacker: 1, .. } => {
                            assert!(spawned, "a hit by an attacker the watcher was never shown");
                            hits += 1;
                        }
                        _ => {}
                    }
                }
            }
            assert_eq!((spawned, hits), (true, 1), "shown the attacker, told of its hit");
        }
    }

    #[test]
    fn impossible_moves_are_cut_short_and_corrected() {
        let mut s = scene();
        join(&mut s, 1, 25.0, 25.0);
        s.tick();
        // At 10 units/s (+10 %) a player saves up at most a second: 11 units. A teleport of
        // 100 is cut to that, and the next one, a tick later, to one tick's 0.55.
        s.apply(Command::Move { id: 1, x: 125.0, z: 25.0 });
        let out = s.tick();
        let Some(Out::Corrected { x, .. }) = out.iter().find(|o| matches!(o, Out::Corrected { .. })) else {
            panic!("corrected: {out:?}")
        };
        assert!((x - 36.0).abs() < 0.01, "moved only as far as allowed: {x}");
        s.apply(Command::Move { id: 1, x: 125.0, z: 25.0 });
        let out = s.tick();
        let Some(Out::Corrected { x, .. }) = out.iter().find(|o| matches!(o, Out::Corrected { .. })) else {
            panic!("corrected: {out:?}")
        };
        assert!((x - 36.55).abs() < 0.01, "one tick's worth: {x}");
        s.apply(Command::Move { id: 1, x: -50.0, z: f32::NAN });
        let out = s.tick();
        assert!(out.iter().any(|o| matches!(o, Out::Corrected { .. })), "out of bounds or NaN: corrected");
        let me = s.get(1).expect("me");
        assert!(s.config().bounds.contains(me.x, me.z));
    }

    #[test]
    fn jittered_steady_steps_pass_but_sustained_speeding_is_cut() {
        let mut s = scene();
        join(&mut s, 1, 25.0, 25.0);
        // 10 units/s at 20 Hz: a step of 1.0 every two ticks is exactly the speed. Timer jitter
        // delivers them one and three ticks apart in turn: none may be cut.
        let mut x = 25.0;
        for gap in [2, 1, 3, 1, 3, 2, 1, 3, 1, 3] {
            for _ in 0..gap {
                s.tick();
            }
            x += 1.0;
            s.apply(Command::Move { id: 1, x, z: 25.0 });
        }
        let out = s.tick();
        assert!(!out.iter().any(|o| matches!(o, Out::Corrected { .. })), "{out:?}");
        assert!((s.get(1).expect("me").x - x).abs() < 1e-3);
        // Twice the speed, every tick: the saved budget runs out and moves are cut.
        let mut cut = false;
        for _ in 0..40 {
            x += 1.0;
            s.apply(Command::Move { id: 1, x, z: 25.0 });
            cut |= s.tick().iter().any(|o| matches!(o, Out::Corrected { .. }));
        }
        assert!(cut, "sustained double speed is corrected");
        // Over those 40 ticks (2 s) it gained at most the saved second beyond the speed.
        let gained = s.get(1).expect("me").x - 35.0;
        assert!(gained <= 2.0 * 10.0 * 1.1 + 11.0 + 0.01, "{gained}");
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

    fn hits_on(out: &[Out], target: EntityId) -> Vec<(EntityId, i64)> {
        out.iter()
            .filter_map(|o| match o {
                Out::Hit { attacker, target: t, target_hp, .. } if *t == target => Some((*attacker, *target_hp)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_monster_chases_attacks_and_goes_home_when_leashed() {
        let mut s = scene();
        join(&mut s, 1, 38.0, 30.0); // 8 from the slime: within aggro
        let mut hit = false;
        for _ in 0..60 {
            if hits_on(&s.tick(), 1).iter().any(|(a, _)| *a == MONSTER_BASE) {
                hit = true;
                break;
            }
        }
        assert!(hit, "the slime came and hit");
        assert!(s.get(1).expect("me").hp < 100);
        // Run away east at full speed: the slime follows until its leash, then goes home.
        let mut x = s.get(1).expect("me").x;
        for _ in 0..400 {
            x = (x + 0.5).min(199.0);
            s.apply(Command::Move { id: 1, x, z: 30.0 });
            s.tick();
        }
        let slime = s.get(MONSTER_BASE).expect("slime");
        assert!((slime.x - 30.0).abs() < 0.01 && (slime.z - 30.0).abs() < 0.01, "home again: {slime:?}");
        assert_eq!(slime.hp, slime.max_hp);
    }

    #[test]
    fn killing_a_monster_rewards_the_killer_and_it_comes_back() {
        let mut s = scene();
        join(&mut s, 1, 31.0, 30.0);
        let mut rewarded = None;
        for _ in 0..100 {
            s.apply(Command::Attack { id: 1, target: MONSTER_BASE });
            let out = s.tick();
            if let Some(r) = out.iter().find(|o| matches!(o, Out::Reward { .. })) {
                assert!(out.contains(&Out::Died { to: 1, id: MONSTER_BASE, by: 1 }));
                rewarded = Some(r.clone());
                break;
            }
        }
        assert_eq!(rewarded, Some(Out::Reward { to: 1, killed: MONSTER_BASE, exp: 10, coins: 5, score: 0 }));
        // Dead: no more hits land; back after 10 s (200 ticks) with full hp, seen by the player.
        s.apply(Command::Attack { id: 1, target: MONSTER_BASE });
        assert!(hits_on(&s.tick(), MONSTER_BASE).is_empty());
        let mut back = false;
        for _ in 0..210 {
            if spawns_to(&s.tick(), 1).contains(&MONSTER_BASE) {
                back = true;
                break;
            }
        }
        assert!(back, "respawned in view");
        assert_eq!(s.get(MONSTER_BASE).map(|m| m.hp), Some(30));
    }

    #[test]
    fn monsters_leave_the_safe_zone_alone_and_players_heal_out_of_combat() {
        let mut s = scene();
        // The slime sits at (30, 30); the respawn point is (5, 5).
        s.cfg.safe_radius = 40.0;
        (s.cfg.regen_per_sec, s.cfg.regen_after_secs) = (3, 2);
        join(&mut s, 1, 38.0, 30.0); // 8 from the slime, but 40.3 from the respawn point
        let mut hit = false;
        for _ in 0..40 {
            hit |= !hits_on(&s.tick(), 1).is_empty();
        }
        assert!(hit, "outside the zone the slime attacks");
        let hurt = s.get(1).expect("player").hp;
        assert!(hurt < 100);
        // Into the zone (beside the slime, but within 40 of the respawn point): left alone.
        s.apply(Command::Move { id: 1, x: 33.0, z: 27.0 });
        s.tick();
        let mut hits_after = 0;
        let mut healed = Vec::new();
        for _ in 0..(20 * 4) {
            let out = s.tick();
            hits_after += hits_on(&out, 1).len();
            healed.extend(out.iter().filter_map(|o| match o {
                Out::Healed { id: 1, hp } => Some(*hp),
                _ => None,
            }));
        }
        assert_eq!(hits_after, 0, "no attack in the safe zone");
        // Out of combat for 2 s, then 3 hp a second: about two heals in 4 s.
        assert!(!healed.is_empty() && healed.windows(2).all(|w| w[1] == w[0] + 3), "{healed:?}");
        assert_eq!(s.get(1).expect("player").hp, *healed.last().expect("healed"));
    }

    #[test]
    fn pvp_is_off_by_default_and_the_dead_respawn() {
        let mut s = scene();
        join(&mut s, 1, 150.0, 150.0);
        join(&mut s, 2, 151.0, 150.0);
        s.apply(Command::Attack { id: 1, target: 2 });
        assert!(hits_on(&s.tick(), 2).is_empty(), "no PvP in this scene");
        // A player killed by the slime cannot move until it respawns, then is back at full hp.
        let mut s = scene();
        s.apply(Command::Join {
            id: 9,
            name: "weak".into(),
            x: 31.0,
            z: 30.0,
            hp: 5,
            max_hp: 100,
            attack: 1,
            defence: 0,
        });
        let mut died = false;
        for _ in 0..100 {
            if s.tick().iter().any(|o| matches!(o, Out::Died { to: 9, id: 9, by } if *by >= MONSTER_BASE)) {
                died = true;
                break;
            }
        }
        assert!(died);
        s.apply(Command::Move { id: 9, x: 31.2, z: 30.0 });
        s.tick();
        assert_eq!(s.get(9).map(|p| p.x), Some(31.0), "the dead do not walk");
        // An onlooker standing between the death and the respawn point saw it die and sees
        // it come back at full hp, not a ghost.
        s.apply(Command::Join {
            id: 10,
            name: "onlooker".into(),
            x: 18.0,
            z: 18.0,
            hp: 100,
            max_hp: 100,
            attack: 1,
            defence: 0,
        });
        s.tick();
        s.apply(Command::Respawn { id: 9 });
        let out = s.tick();
        assert!(out.contains(&Out::Corrected { to: 9, x: 5.0, z: 5.0 }));
        assert_eq!(s.get(9).map(|p| p.hp), Some(100));
        let back = out.iter().find_map(|o| match o {
            Out::Spawn { to: 10, view } if view.id == 9 => Some(view.hp),
            _ => None,
        });
        assert_eq!(back, Some(100), "the onlooker is told: {out:?}");
    }

    /// A scene of 20-unit cells with no monsters, crowd settings `crowd`.
    fn crowd_scene(crowd: Crowd, position_every: u32) -> Scene {
        Scene::new(SceneConfig { crowd, max_speed: 20.0, monsters: Vec::new(), ..config_every(position_every) })
    }

    /// What each player was last told of each entity it sees (Spawn, Positions, Despawn), and
    /// the tick it was told.
    /// By receiver, by entity: where it was told the entity is, and when.
    type Told = HashMap<EntityId, HashMap<EntityId, ((f32, f32), u64)>>;

    #[derive(Default)]
    struct Known(Told);

    impl Known {
        fn learn(&mut self, out: &[Out], now: u64) -> HashMap<EntityId, BTreeSet<EntityId>> {
            let mut sent: HashMap<EntityId, BTreeSet<EntityId>> = HashMap::new();
            for o in out {
                match o {
                    Out::Spawn { to, view } => {
                        self.0.entry(*to).or_default().insert(view.id, ((view.x, view.z), now));
                    }
                    Out::Despawn { to, id } => {
                        self.0.entry(*to).or_default().remove(id);
                    }
                    Out::Positions { to, moves } => {
                        for r in to {
                            for m in moves {
                                self.0.entry(*r).or_default().insert(m.0, ((m.1, m.2), now));
                                sent.entry(*r).or_default().insert(m.0);
                            }
                        }
                    }
                    _ => {}
                }
            }
            sent
        }
    }

    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> f32 {
            self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 40) as f32 / (1u64 << 24) as f32
        }
    }

    #[test]
    fn in_a_crowd_a_player_sees_its_nearest_neighbours_move_every_tick() {
        let crowd = Crowd::default();
        let mut s = crowd_scene(crowd, 1);
        // 400 players 0.9 apart in one cell, all stepping together every tick.
        let spot = |i: u64, j: u64| (100.5 + i as f32 * 0.9, 100.5 + j as f32 * 0.9);
        for i in 0..20 {
            for j in 0..20 {
                let (x, z) = spot(i, j);
                join(&mut s, 1 + i * 20 + j, x, z);
            }
        }
        s.tick();
        let (mut sizes, mut batches) = (0usize, 0usize);
        for t in 0..40 {
            let dx = if t % 2 == 0 { 0.3 } else { -0.3 };
            for id in 1..=400 {
                let p = s.get(id).map(|v| (v.x, v.z)).expect("in the scene");
                s.apply(Command::Move { id, x: p.0 + dx, z: p.1 });
            }
            let out = s.tick();
            for o in &out {
                if let Out::Positions { moves, .. } = o {
                    assert!(moves.len() <= 2 * crowd.cap, "a batch stays near the cap: {}", moves.len());
                    sizes += moves.len();
                    batches += 1;
                }
            }
            let sent = Known::default().learn(&out, s.now());
            for r in 1..=400u64 {
                let me = s.get(r).map(|v| (v.x, v.z)).expect("in the scene");
                for o in 1..=400u64 {
                    let p = s.get(o).map(|v| (v.x, v.z)).expect("in the scene");
                    let d = ((p.0 - me.0).powi(2) + (p.1 - me.1).powi(2)).sqrt();
                    if o != r && d < 1.3 {
                        assert!(
                            sent.get(&r).is_some_and(|b| b.contains(&o)),
                            "tick {t}: {r} was not sent its neighbour {o}"
                        );
                    }
                }
            }
        }
        // About the cap: a group's own square and the eight around it go whole, which may
        // pass `near` by a few.
        assert!(
            batches > 0 && sizes / batches <= crowd.cap + crowd.cap / 8,
            "{} entries per batch on average",
            sizes / batches.max(1)
        );
    }

    #[test]
    fn in_a_crowd_every_mover_in_view_is_seen_at_its_latest_place_within_the_refresh() {
        for every in [1, 2] {
            let crowd = Crowd { cap: 24, near: 8, refresh_ticks: 16 };
            let mut s = crowd_scene(crowd, every);
            let mut rng = Lcg(7);
            let mut known = Known::default();
            // By entity: each place it has stood, and the last tick it stood there.
            let mut held: HashMap<EntityId, HashMap<(u32, u32), u64>> = HashMap::new();
            for id in 1..=150 {
                join(&mut s, id, 100.0 + rng.next() * 20.0, 100.0 + rng.next() * 20.0);
            }
            // A few onlookers outside the crowd's cell that still see it.
            for id in 151..=155 {
                join(&mut s, id, 125.0 + rng.next() * 10.0, 105.0 + rng.next() * 10.0);
            }
            for v in s.players() {
                held.entry(v.id).or_default().insert((v.x.to_bits(), v.z.to_bits()), 0);
            }
            let bound = crowd.refresh_ticks + u64::from(every) + 1;
            let (mut capped, mut stale_seen) = (false, false);
            for t in 0..120u64 {
                // The crowd mills about for 60 ticks, then stands still.
                if t < 60 {
                    for id in 1..=150 {
                        let p = s.get(id).map(|v| (v.x, v.z)).expect("in the scene");
                        let x = (p.0 + (rng.next() - 0.5) * 0.8).clamp(100.1, 119.9);
                        let z = (p.1 + (rng.next() - 0.5) * 0.8).clamp(100.1, 119.9);
                        s.apply(Command::Move { id, x, z });
                    }
                }
                let out = s.tick();
                let now = s.now();
                capped |= out.iter().any(|o| matches!(o, Out::Positions { to, .. } if to.len() < 20));
                known.learn(&out, now);
                for v in s.players() {
                    held.entry(v.id).or_default().insert((v.x.to_bits(), v.z.to_bits()), now);
                }
                if t < u64::from(every) {
                    // Spawns wait for their receiver's turn.
                    continue;
                }
                for r in 1..=155u64 {
                    let mine = known.0.get(&r).expect("told something");
                    for v in s.in_view(r) {
                        let (at, _) = mine.get(&v.id).copied().expect("everything in view was spawned");
                        stale_seen |= at != (v.x, v.z);
                        // What a player knows of another is where that one stood at most
                        // `bound` ticks ago.
                        let until = held.get(&v.id).and_then(|h| h.get(&(at.0.to_bits(), at.1.to_bits()))).copied();
                        assert!(
                            until.is_some_and(|u| now - u <= bound),
                            "every {every}, tick {t}: {r} knows {} where it stood at tick {until:?}",
                            v.id
                        );
                    }
                }
            }
            assert!(capped && stale_seen, "the crowd was handled as one: {capped} {stale_seen}");
            for r in 1..=155u64 {
                let mine = known.0.get(&r).expect("told something");
                for v in s.in_view(r) {
                    assert_eq!(
                        mine.get(&v.id).map(|k| k.0),
                        Some((v.x, v.z)),
                        "every {every}: {r} knows where {} stands",
                        v.id
                    );
                }
            }
        }
    }

    #[test]
    fn a_small_group_is_sent_every_move_in_view_as_before() {
        let mut s = crowd_scene(Crowd { cap: 8, near: 4, refresh_ticks: 16 }, 1);
        for id in 1..=8 {
            join(&mut s, id, 100.0 + id as f32, 100.0);
        }
        s.tick();
        for id in 1..=8 {
            s.apply(Command::Move { id, x: 100.0 + id as f32, z: 100.5 });
        }
        let out = s.tick();
        let batches: Vec<&Out> = out.iter().filter(|o| matches!(o, Out::Positions { .. })).collect();
        assert_eq!(batches.len(), 1, "one batch for the cell: {batches:?}");
        if let Out::Positions { to, moves } = batches[0] {
            assert_eq!(to.len(), 8);
            assert_eq!(moves.len(), 8);
        }
    }
}
