//! The world's rooms, written on the framework's public room API ([`rsgame_gate::room`]): a
//! scene ([`SceneRoom`]: its simulation, fixed tick, AOI delivery and write-behind saves) or
//! a lockstep room ([`LockstepRoom`]: frames at a fixed rate). The world holds their handles
//! and moves players with the room API alone: a join brings what the room needs (a
//! [`SceneJoin`], or the lockstep room's greeting), a leave takes the player out, and the
//! world's disconnect hook reports a closed connection (the rooms do not watch connections
//! themselves, so a close is seen once). Moves, attacks and lockstep inputs go straight to
//! the handles. Nothing else touches a room's state, so it needs no locks.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use rsgame_gate::config::BodyCodec;
use rsgame_gate::room::{Room, RoomCtx, WeakRoomHandle};
use rsgame_gate::{Session, Wire};
use rsgame_kit::telemetry::metrics::FastHistogram;
use rsgame_proto::{ids, pb};
use tokio::sync::{mpsc, oneshot};

use crate::aoi::{EntityId, MONSTER_BASE, PlayerId, wire_id};
use crate::caps::Caps;
use crate::lockstep::{Frame, Lockstep};
use crate::scene::{Command, Kind, Out, Scene, View};
use crate::store::Place;

/// Room commands queued before a sender waits (a scene drains them every tick).
pub(crate) const QUEUE: usize = 4096;

/// The first thing a player is told on entering a room.
pub(crate) enum Greet {
    /// After GameLogin: UserInfo, its position filled in by the scene.
    Login(pb::UserInfo),
    /// After EnterRoom or CreateRoom: EnterRoomResp.
    Enter(pb::EnterRoomResp),
}

/// A player's numbers as the world last read them from the game service.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stats {
    pub hp: i64,
    pub max_hp: i64,
    pub level: i64,
    pub exp: i64,
    pub coins: i64,
    pub attack: i64,
    pub defence: i64,
}

impl Stats {
    pub(crate) fn from_pack(p: &rsgame_game::logic::Pack) -> Stats {
        Stats {
            hp: p.player.hp,
            max_hp: p.player.max_hp,
            level: p.player.level,
            exp: p.player.exp,
            coins: p.player.coins,
            attack: p.total_attack,
            defence: p.total_defence,
        }
    }

    fn message(&self, user_id: i64) -> pb::PlayerStats {
        pb::PlayerStats {
            user_id,
            hp: self.hp,
            max_hp: self.max_hp,
            level: self.level,
            exp: self.exp,
            coins: self.coins,
            attack: self.attack,
            defence: self.defence,
        }
    }
}

/// What the saver is asked to do.
pub(crate) enum SaveMsg {
    /// Rows to write.
    Batch(SaveBatch),
    /// Answer once everything queued before is written or given up on, with the players
    /// whose latest state is not in the database (empty: all saved).
    Barrier(oneshot::Sender<Vec<i64>>),
}

/// A write-behind batch for the saver.
pub(crate) struct SaveBatch {
    pub places: Vec<(i64, Place)>,
    pub hps: Vec<(i64, i64)>,
    /// A last save (a player leaving, the shutdown's flush): retried at once and, failing
    /// that, reported. A periodic one's failed rows wait for the next batch instead.
    pub last: bool,
}

/// A kill reward for the rewarder.
pub(crate) struct RewardJob {
    /// The scene to tell the new numbers (gone by then is fine: the reward is stored).
    pub room: WeakRoomHandle<SceneRoom>,
    pub user: i64,
    pub killed: EntityId,
    pub exp: i64,
    pub coins: i64,
    pub score: i64,
    pub level: i64,
    pub reference: String,
}

/// What the rewarder is asked to do.
pub(crate) enum RewardMsg {
    /// Grant a kill's reward.
    Job(RewardJob),
    /// Retry what failed, then answer with the rewards still not granted (graceful
    /// shutdown).
    Flush(oneshot::Sender<Vec<RewardJob>>),
    /// Time for a retry round (sent by the rewarder to itself).
    Retry,
}

/// What every room task needs from the world.
#[derive(Clone)]
pub(crate) struct RoomEnv {
    pub saver: mpsc::UnboundedSender<SaveMsg>,
    pub rewards: mpsc::UnboundedSender<RewardMsg>,
    pub save_every: Duration,
    /// This run of the node, in every kill reward's reference: a scene's clock restarts at
    /// zero, and a reference repeated after a restart would be refused by the ledger as
    /// a duplicate.
    pub run: Arc<str>,
}

fn site(x: f32, z: f32) -> pb::Site {
    pb::Site { x, y: 0.0, z, v: 0.0 }
}

fn entity(v: &View) -> pb::Entity {
    entity_of(v.clone())
}

/// Takes the view's name rather than copying it: a busy tick sends thousands of spawns.
fn entity_of(v: View) -> pb::Entity {
    pb::Entity {
        id: wire_id(v.id),
        kind: if v.kind == Kind::Player { pb::EntityKind::Player } else { pb::EntityKind::Monster } as i32,
        name: v.name.to_string(),
        site: Some(site(v.x, v.z)),
        hp: v.hp,
        max_hp: v.max_hp,
    }
}

/// A tick's `SpawnResp` parts, each entity encoded once: an arrival in a crowd is told to
/// every player around it, and the arrival is told of every one of them, so one tick's spawns
/// repeat the same few hundred entities thousands of times.
#[derive(Default)]
struct SpawnParts {
    /// By entity and what a spawn shows of it: `SpawnResp { list: [it] }` encoded, which is
    /// one element of the repeated field as it appears in any longer list.
    parts: foldhash::HashMap<(EntityId, u32, u32, i64, i64), Vec<u8>>,
    body: Vec<u8>,
}

impl SpawnParts {
    /// `SpawnResp { list }` framed for `wire` onto `out`.
    fn encode_into(&mut self, wire: Wire, list: Vec<View>, out: &mut BytesMut) {
        if wire.text || wire.codec != BodyCodec::Protobuf {
            let msg = pb::SpawnResp { list: list.into_iter().map(entity_of).collect() };
            wire.encode_into(ids::SPAWN, &msg, out);
            return;
        }
        self.body.clear();
        for v in list {
            let key = (v.id, v.x.to_bits(), v.z.to_bits(), v.hp, v.max_hp);
            let part =
                self.parts.entry(key).or_insert_with(|| pb::SpawnResp { list: vec![entity_of(v)] }.encode_to_vec());
            self.body.extend_from_slice(part);
        }
        wire.encode_protobuf_body_into(ids::SPAWN, &self.body, out);
    }
}

/// Which part of a position batch a receiver is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sees {
    /// Everything in the batch (rsgame's clients, `caps=entities`).
    All,
    /// Players only, and with go-game's grid those within go-game's nine cells around this
    /// (column, row).
    Players(Option<(usize, usize)>),
}

/// An entity's position in a batch: (id, x, z).
type Site = (EntityId, f32, f32);

/// One receiver's messages of a tick, in the order they happened, consecutive ones of a kind
/// merged into one frame.
enum Mail {
    Spawn(Vec<View>),
    Despawn(Vec<i64>),
    Move(Vec<pb::UserSite>),
    Attack(pb::AttackResp),
    Stats(pb::PlayerStats),
}

/// Tick durations of the last ten seconds, for the p50/p99 gauges.
struct TickWindow {
    samples: Vec<f64>,
    next: usize,
    last_report: Instant,
}

impl TickWindow {
    fn new(capacity: usize) -> TickWindow {
        TickWindow { samples: Vec::with_capacity(capacity), next: 0, last_report: Instant::now() }
    }

    fn record(&mut self, secs: f64, scene: &str) {
        let cap = self.samples.capacity().max(1);
        if self.samples.len() < cap {
            self.samples.push(secs);
        } else {
            self.samples[self.next] = secs;
            self.next = (self.next + 1) % cap;
        }
        if self.last_report.elapsed() >= Duration::from_secs(1) {
            self.last_report = Instant::now();
            let mut s = self.samples.clone();
            s.sort_by(f64::total_cmp);
            let at = |q: f64| s.get(((s.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
            let label = scene.to_string();
            metrics::gauge!(crate::metrics::TICK_P50, "scene" => label.clone()).set(at(0.5));
            metrics::gauge!(crate::metrics::TICK_P99, "scene" => label.clone()).set(at(0.99));
            metrics::gauge!(crate::metrics::TICK_MAX, "scene" => label).set(at(1.0));
        }
    }
}

/// What a scene takes from its players: the simulation's commands (move, attack, respawn).
pub(crate) enum SceneInput {
    Cmd(Command),
}

/// What a player brings into a scene.
pub(crate) enum SceneJoin {
    /// Entering: its name, where it stands, its numbers, what it is greeted with, and what
    /// its client asked to be sent beyond go-game's protocol.
    Enter { name: String, x: f32, z: f32, stats: Stats, greet: Greet, caps: Caps },
    /// Already in the scene, on a new connection (a reconnect, a second login).
    Return { greet: Greet, caps: Caps },
}

/// A scene, on the framework's public room API: the simulation with its fixed tick, AOI
/// delivery (each position batch encoded once per wire and cell) and write-behind saves.
pub(crate) struct SceneRoom {
    pub scene: Scene,
    /// Permanent scenes save places; a created room's places mean nothing after it closes.
    pub permanent: bool,
    pub env: RoomEnv,
    /// This scene, for the rewarder's answers.
    me: WeakRoomHandle<SceneRoom>,
    stats: HashMap<EntityId, Stats>,
    /// What each player's client takes beyond go-game's protocol.
    caps: HashMap<EntityId, Caps>,
    /// How many of them are go-game's (no `entities`): while none is, delivery looks
    /// nothing up per receiver.
    go_game_clients: usize,
    /// go-game's AOI grid, when the scene has one: its clients see by it (a part of what
    /// rsgame's clients see), so their position batches are cut to it.
    go_game: Option<rsgame_gate::aoi::Grid>,
    saved: HashMap<EntityId, (f32, f32, i64)>,
    label: String,
    hist: Arc<FastHistogram>,
    window: TickWindow,
    last_save: Instant,
}

impl SceneRoom {
    pub(crate) fn new(scene: Scene, permanent: bool, env: RoomEnv, me: WeakRoomHandle<SceneRoom>) -> SceneRoom {
        let hz = scene.config().tick_hz.max(1);
        let label = scene.config().id.to_string();
        let hist =
            FastHistogram::register(crate::metrics::TICK_SECONDS, crate::metrics::TICK_HELP, &[("scene", &label)]);
        let go_game = scene
            .config()
            .go_game_grid
            .map(|(cols, rows)| rsgame_gate::aoi::Grid::with_cells(scene.config().bounds, cols, rows));
        SceneRoom {
            scene,
            permanent,
            env,
            me,
            stats: HashMap::new(),
            caps: HashMap::new(),
            go_game_clients: 0,
            go_game,
            saved: HashMap::new(),
            label,
            hist,
            window: TickWindow::new(hz as usize * 10),
            last_save: Instant::now(),
        }
    }

    /// The player leaves the scene: its last state goes to the saver (a [`SaveMsg::Barrier`]
    /// after the leave tells the world when it is written).
    fn depart(&mut self, id: EntityId) {
        let Some((x, z, hp)) = self.scene.get(id).map(|v| (v.x, v.z, v.hp)) else { return };
        self.scene.apply(Command::Leave { id });
        self.stats.remove(&id);
        self.set_caps(id, None);
        self.saved.remove(&id);
        self.players_gauge();
        let places = if self.permanent { vec![(wire_id(id), self.place(x, z))] } else { Vec::new() };
        self.queue_save(SaveBatch { places, hps: vec![(wire_id(id), hp)], last: true });
    }

    fn queue_save(&self, batch: SaveBatch) {
        if self.env.saver.send(SaveMsg::Batch(batch)).is_err() {
            // The saver ends only with the runtime; say so rather than lose rows silently.
            metrics::counter!(crate::metrics::SAVE_ERRORS).increment(1);
            tracing::error!(scene = %self.label, "world saver gone: rows not saved");
        }
    }

    fn apply(&mut self, ctx: &RoomCtx, cmd: Command) {
        let respawn = match cmd {
            Command::Respawn { id } => Some(id),
            _ => None,
        };
        self.scene.apply(cmd);
        if let Some(id) = respawn {
            self.push_stats(ctx, id);
        }
    }

    pub(crate) fn rewarded(
        &mut self,
        ctx: &RoomCtx,
        id: EntityId,
        killed: EntityId,
        exp: i64,
        coins: i64,
        mut stats: Stats,
    ) {
        let Some(v) = self.scene.get(id) else { return };
        let before = self.stats.get(&id).copied().unwrap_or_default();
        if stats.attack < 0 {
            // No level-up: attack and defence did not change.
            (stats.attack, stats.defence) = (before.attack, before.defence);
        }
        let hp = if stats.level > before.level {
            stats.max_hp // a level-up refills
        } else {
            v.hp
        };
        self.scene.apply(Command::Stats { id, hp, max_hp: stats.max_hp, attack: stats.attack, defence: stats.defence });
        self.stats.insert(id, stats);
        // go-game's protocol has neither monsters nor kill rewards; the numbers go to whoever
        // takes them.
        if self.caps_of(id).has(Caps::ENTITIES) {
            let reward = pb::AttackResp {
                user_id: wire_id(id),
                obj_id: wire_id(killed),
                status: pb::AttackStatus::Reward as i32,
                exp,
                coin: coins,
                ..Default::default()
            };
            ctx.send(wire_id(id), ids::reply(ids::ATTACK), &reward);
        }
        self.push_stats(ctx, id);
    }
}

impl SceneRoom {
    /// A player's numbers changed outside the world (the game service): take them, add
    /// `hp_delta` to the live hit points (a dead player stays dead; a level-up refills), and
    /// tell the player and those who see it.
    pub(crate) fn changed(&mut self, ctx: &RoomCtx, id: EntityId, stats: Stats, hp_delta: i64) {
        let Some(v) = self.scene.get(id) else { return };
        let before = self.stats.get(&id).copied().unwrap_or_default();
        let hp = if v.hp == 0 {
            0
        } else if stats.level > before.level {
            stats.max_hp
        } else {
            (v.hp + hp_delta).clamp(1, stats.max_hp.max(1))
        };
        self.scene.apply(Command::Stats { id, hp, max_hp: stats.max_hp, attack: stats.attack, defence: stats.defence });
        self.stats.insert(id, stats);
        self.push_stats(ctx, id);
        self.scene.show(id, &[]);
    }
}

impl Room for SceneRoom {
    type Input = SceneInput;
    type Join = SceneJoin;
    /// The world's disconnect hook reports closes: it also times the reconnect grace.
    const WATCH_CONNECTIONS: bool = false;

    fn tick_every(&self) -> Option<Duration> {
        Some(Duration::from_secs(1) / self.scene.config().tick_hz.max(1))
    }

    fn join(&mut self, ctx: &mut RoomCtx, player: i64, join: SceneJoin) -> Result<(), rsgame_kit::Error> {
        let id = PlayerId::new(player).entity();
        let SceneJoin::Enter { name, x, z, stats, greet, caps } = join else {
            return Err(rsgame_kit::Error::msg(rsgame_kit::Code::Failed, "not in this scene any more: log in again"));
        };
        self.scene.apply(Command::Join {
            id,
            name,
            x,
            z,
            hp: stats.hp,
            max_hp: stats.max_hp,
            attack: stats.attack,
            defence: stats.defence,
        });
        self.stats.insert(id, stats);
        self.set_caps(id, Some(caps));
        if let Some(session) = ctx.session(player) {
            self.greet(id, session, greet);
        }
        self.players_gauge();
        Ok(())
    }

    fn rejoin(&mut self, ctx: &mut RoomCtx, player: i64, join: SceneJoin) {
        let id = PlayerId::new(player).entity();
        let (SceneJoin::Return { greet, caps } | SceneJoin::Enter { greet, caps, .. }) = join;
        self.set_caps(id, Some(caps));
        let (Some(session), Some(_)) = (ctx.session(player), self.scene.get(id)) else { return };
        self.greet(id, session, greet);
        if !caps.has(Caps::ENTITIES) {
            return;
        }
        // A new connection knows nothing: everything in view, now. (A full queue cuts the
        // connection off; nothing more to do for it here.)
        let list: Vec<pb::Entity> = self.scene.in_view(id).iter().map(entity).collect();
        if !list.is_empty() {
            session.push(ids::SPAWN, &pb::SpawnResp { list });
        }
    }

    fn disconnected(&mut self, _ctx: &mut RoomCtx, _player: i64) -> bool {
        // The player stays in the scene through the world's reconnect grace.
        false
    }

    fn leave(&mut self, _ctx: &mut RoomCtx, player: i64) {
        self.depart(PlayerId::new(player).entity());
    }

    fn input(&mut self, ctx: &mut RoomCtx, _player: i64, input: SceneInput) -> Result<(), rsgame_kit::Error> {
        let SceneInput::Cmd(cmd) = input;
        self.apply(ctx, cmd);
        Ok(())
    }

    fn tick(&mut self, ctx: &mut RoomCtx) {
        let started = Instant::now();
        let out = self.scene.tick();
        let updates = self.deliver(ctx, out);
        let took = started.elapsed();
        self.hist.record(took);
        self.window.record(took.as_secs_f64(), &self.label);
        if updates > 0 {
            metrics::counter!(crate::metrics::ENTITY_UPDATES, "scene" => self.label.clone()).increment(updates);
        }
        if self.last_save.elapsed() >= self.env.save_every {
            self.last_save = Instant::now();
            self.save(false);
        }
    }
}

impl SceneRoom {
    fn place(&self, x: f32, z: f32) -> Place {
        Place { scene_id: self.scene.config().id, x, z }
    }

    fn players_gauge(&self) {
        metrics::gauge!(crate::metrics::PLAYERS, "scene" => self.scene.config().id.to_string())
            .set(self.stats.len() as f64);
    }

    fn greet(&self, id: EntityId, session: &Session, greet: Greet) {
        let Some(v) = self.scene.get(id) else { return };
        let greet = match greet {
            Greet::Login(mut info) => {
                info.position = Some(site(v.x, v.z));
                Greet::Login(info)
            }
            enter => enter,
        };
        send_greeting(session, greet);
        if self.caps_of(id).has(Caps::ENTITIES) {
            let c = self.scene.config();
            let b = &c.bounds;
            session.push(
                ids::SCENE_INFO,
                &pb::SceneInfo {
                    room_id: i64::from(c.id),
                    min_x: b.min_x,
                    min_z: b.min_z,
                    max_x: b.max_x,
                    max_z: b.max_z,
                    cell: c.cell,
                    view_distance: c.cell,
                    pvp: c.pvp,
                    tick_hz: c.tick_hz as i32,
                    respawn_x: c.respawn.0,
                    respawn_z: c.respawn.1,
                },
            );
        }
        // The authoritative position, then the numbers.
        let me = pb::UserSite { user_id: wire_id(id), site: Some(site(v.x, v.z)), action: "spawn".into() };
        session.push(ids::reply(ids::MOVE), &pb::MoveResp { site_list: vec![me] });
        if let Some(st) = self.stats.get(&id).filter(|_| self.caps_of(id).has(Caps::STATS)) {
            let st = Stats { hp: v.hp, max_hp: v.max_hp, ..*st };
            session.push(ids::PLAYER_STATS, &st.message(wire_id(id)));
        }
    }

    /// Records (or, with `None`, forgets) what `id`'s client takes.
    fn set_caps(&mut self, id: EntityId, caps: Option<Caps>) {
        let old = match caps {
            Some(c) => self.caps.insert(id, c),
            None => self.caps.remove(&id),
        };
        let plain = |c: Option<Caps>| usize::from(c.is_some_and(|c| !c.has(Caps::ENTITIES)));
        self.go_game_clients = self.go_game_clients + plain(caps) - plain(old);
    }

    fn caps_of(&self, id: EntityId) -> Caps {
        self.caps.get(&id).copied().unwrap_or_default()
    }

    fn push_stats(&self, ctx: &RoomCtx, id: EntityId) {
        if !self.caps_of(id).has(Caps::STATS) {
            return;
        }
        let (Some(v), Some(st)) = (self.scene.get(id), self.stats.get(&id)) else { return };
        let st = Stats { hp: v.hp, max_hp: v.max_hp, ..*st };
        ctx.send(wire_id(id), ids::PLAYER_STATS, &st.message(wire_id(id)));
    }

    /// Queues the players whose place or hp changed since the last save; with `all`, every
    /// player, as a last save (the shutdown's flush).
    pub(crate) fn save(&mut self, all: bool) {
        let mut places = Vec::new();
        let mut hps = Vec::new();
        for v in self.scene.players() {
            let now = (v.x, v.z, v.hp);
            if !all && self.saved.get(&v.id) == Some(&now) {
                continue;
            }
            if self.permanent {
                places.push((wire_id(v.id), Place { scene_id: self.scene.config().id, x: v.x, z: v.z }));
            }
            hps.push((wire_id(v.id), v.hp));
        }
        for v in self.scene.players() {
            self.saved.insert(v.id, (v.x, v.z, v.hp));
        }
        if places.is_empty() && hps.is_empty() {
            return;
        }
        self.queue_save(SaveBatch { places, hps, last: all });
    }

    /// Sends a tick's output; returns how many entity positions were delivered.
    fn deliver(&mut self, ctx: &RoomCtx, out: Vec<Out>) -> u64 {
        let mut boxes: HashMap<EntityId, Vec<Mail>> = HashMap::new();
        let mut batches: Vec<(Vec<EntityId>, Vec<Site>)> = Vec::new();
        let mut updates = 0u64;
        for o in out {
            match o {
                Out::Spawn { to, view } => {
                    let b = boxes.entry(to).or_default();
                    match b.last_mut() {
                        Some(Mail::Spawn(v)) => v.push(view),
                        _ => b.push(Mail::Spawn(vec![view])),
                    }
                }
                Out::Despawn { to, id } => {
                    let b = boxes.entry(to).or_default();
                    match b.last_mut() {
                        Some(Mail::Despawn(v)) => v.push(wire_id(id)),
                        _ => b.push(Mail::Despawn(vec![wire_id(id)])),
                    }
                }
                Out::Positions { to, moves } => {
                    updates += (moves.len() * to.len()) as u64;
                    batches.push((to, moves));
                }
                Out::Healed { id, hp } => {
                    // The player's own numbers; those who see it got a spawn with its hp.
                    if let Some(st) = self.stats.get(&id).filter(|_| self.caps_of(id).has(Caps::STATS)) {
                        let max_hp = self.scene.get(id).map_or(st.max_hp, |v| v.max_hp);
                        let msg = Stats { hp, max_hp, ..*st }.message(wire_id(id));
                        boxes.entry(id).or_default().push(Mail::Stats(msg));
                    }
                }
                Out::Corrected { to, x, z } => {
                    let me = pb::UserSite { user_id: wire_id(to), site: Some(site(x, z)), action: "correct".into() };
                    let b = boxes.entry(to).or_default();
                    match b.last_mut() {
                        Some(Mail::Move(v)) => v.push(me),
                        _ => b.push(Mail::Move(vec![me])),
                    }
                }
                Out::Hit { to, attacker, target, damage, target_hp } => {
                    let a = pb::AttackResp {
                        user_id: wire_id(attacker),
                        obj_id: wire_id(target),
                        status: pb::AttackStatus::Hit as i32,
                        hurt: damage,
                        obj_hp: target_hp,
                        ..Default::default()
                    };
                    boxes.entry(to).or_default().push(Mail::Attack(a));
                }
                Out::Died { to, id, by } => {
                    // userId: the killer, so a death says who did it.
                    let a = pb::AttackResp {
                        user_id: wire_id(by),
                        obj_id: wire_id(id),
                        status: pb::AttackStatus::Died as i32,
                        ..Default::default()
                    };
                    boxes.entry(to).or_default().push(Mail::Attack(a));
                }
                Out::Reward { to, killed, exp, coins, score } => {
                    let level = self.stats.get(&to).map_or(0, |s| s.level);
                    // Unique per kill (this run, scene, monster, tick): a retried grant of
                    // the same kill is refused by the ledger, a new kill is not.
                    let reference = format!(
                        "kill:{}:{}:{}:{}",
                        self.env.run,
                        self.scene.config().id,
                        killed - MONSTER_BASE,
                        self.scene.now()
                    );
                    let user = wire_id(to);
                    let job = RewardJob { room: self.me.clone(), user, killed, exp, coins, score, level, reference };
                    if self.env.rewards.send(RewardMsg::Job(job)).is_err() {
                        metrics::counter!(crate::metrics::REWARD_ERRORS).increment(1);
                        tracing::error!(user = to, "world rewarder gone: kill reward not granted");
                    }
                }
            }
        }
        // Each position batch encoded once per wire format, shared by its cell's players; for
        // go-game's clients once more per go-game cell, players only.
        // By receiver, its batches: one, or in a crowd two (its cell's share, then its nearest).
        let mut position_of: HashMap<EntityId, Vec<usize>> = HashMap::new();
        let mut encoded: Vec<Vec<(Wire, Sees, Bytes)>> = Vec::with_capacity(batches.len());
        let mut resps: Vec<pb::MoveResp> = Vec::with_capacity(batches.len());
        for (i, (to, moves)) in batches.into_iter().enumerate() {
            let site_list = moves
                .into_iter()
                .map(|(id, x, z)| pb::UserSite { user_id: wire_id(id), site: Some(site(x, z)), action: String::new() })
                .collect();
            resps.push(pb::MoveResp { site_list });
            encoded.push(Vec::with_capacity(1));
            for t in to {
                position_of.entry(t).or_default().push(i);
            }
        }
        let go_game = self.go_game.as_ref();
        // The bytes of batch `i` for `wire` and a receiver's view; empty when a go-game
        // client's part of the batch has nobody in it.
        let mut positions = |i: usize, wire: Wire, view: Sees| -> Bytes {
            if let Some((_, _, b)) = encoded[i].iter().find(|(w, v, _)| *w == wire && *v == view) {
                return b.clone();
            }
            let b = match view {
                Sees::All => wire.encode(ids::reply(ids::MOVE), &resps[i]),
                Sees::Players(cell) => {
                    let seen = |u: &&pb::UserSite| match (go_game, cell, u.site.as_ref()) {
                        (Some(g), Some((c, r)), Some(at)) => {
                            let (uc, ur) = g.cell_of(at.x, at.z);
                            uc.abs_diff(c) <= 1 && ur.abs_diff(r) <= 1
                        }
                        _ => true,
                    };
                    let site_list: Vec<pb::UserSite> = resps[i]
                        .site_list
                        .iter()
                        .filter(|u| u.user_id < wire_id(MONSTER_BASE))
                        .filter(seen)
                        .cloned()
                        .collect();
                    if site_list.is_empty() {
                        Bytes::new()
                    } else {
                        wire.encode(ids::reply(ids::MOVE), &pb::MoveResp { site_list })
                    }
                }
            };
            encoded[i].push((wire, view, b.clone()));
            b
        };
        // What a receiver sees: everything (rsgame's clients), or players in go-game's view.
        // With no go-game client in the scene (the usual case) nothing is looked up.
        let plain = self.go_game_clients == 0;
        let view_of = |to: EntityId| -> Sees {
            if plain || self.caps.get(&to).is_some_and(|c| c.has(Caps::ENTITIES)) {
                return Sees::All;
            }
            Sees::Players(go_game.zip(self.scene.get(to)).map(|(g, v)| g.cell_of(v.x, v.z)))
        };
        let is_monster = |id: i64| id >= wire_id(MONSTER_BASE);
        let mut spawn_parts = SpawnParts::default();
        // One queue entry per player and tick on frame wires: what it is told this tick —
        // spawns, despawns, hits, then positions last — in one buffer.
        for (to, mut mails) in boxes {
            let batch = position_of.remove(&to);
            let Some(s) = ctx.session(wire_id(to)) else { continue };
            let view = view_of(to);
            if view != Sees::All {
                // go-game's client: no spawns or despawns, nothing about monsters.
                mails.retain(|m| match m {
                    Mail::Spawn(_) | Mail::Despawn(_) => false,
                    Mail::Attack(a) => !is_monster(a.user_id) && !is_monster(a.obj_id),
                    Mail::Move(_) | Mail::Stats(_) => true,
                });
            }
            let wire = s.wire();
            if wire.text {
                for m in mails {
                    match m {
                        Mail::Spawn(list) => {
                            s.push(ids::SPAWN, &pb::SpawnResp { list: list.into_iter().map(entity_of).collect() });
                        }
                        Mail::Despawn(ids_) => s.push(ids::DESPAWN, &pb::DespawnResp { ids: ids_ }),
                        Mail::Move(site_list) => s.push(ids::reply(ids::MOVE), &pb::MoveResp { site_list }),
                        Mail::Attack(a) => s.push(ids::reply(ids::ATTACK), &a),
                        Mail::Stats(st) => s.push(ids::PLAYER_STATS, &st),
                    }
                }
                for b in batch.into_iter().flatten().map(|i| positions(i, wire, view)).filter(|b| !b.is_empty()) {
                    s.push_bytes(b);
                }
                continue;
            }
            let mut buf = BytesMut::new();
            for m in mails {
                match m {
                    Mail::Spawn(list) => spawn_parts.encode_into(wire, list, &mut buf),
                    Mail::Despawn(ids_) => wire.encode_into(ids::DESPAWN, &pb::DespawnResp { ids: ids_ }, &mut buf),
                    Mail::Move(site_list) => {
                        wire.encode_into(ids::reply(ids::MOVE), &pb::MoveResp { site_list }, &mut buf);
                    }
                    Mail::Attack(a) => wire.encode_into(ids::reply(ids::ATTACK), &a, &mut buf),
                    Mail::Stats(st) => wire.encode_into(ids::PLAYER_STATS, &st, &mut buf),
                }
            }
            for i in batch.into_iter().flatten() {
                buf.extend_from_slice(&positions(i, wire, view));
            }
            if !buf.is_empty() {
                s.push_bytes(buf.freeze());
            }
        }
        // Players told nothing but positions get the shared bytes as they are.
        for (to, batches) in position_of {
            if let Some(s) = ctx.session(wire_id(to)) {
                let (wire, view) = (s.wire(), view_of(to));
                for i in batches {
                    let b = positions(i, wire, view);
                    if !b.is_empty() {
                        s.push_bytes(b);
                    }
                }
            }
        }
        updates
    }
}

fn frames_msg(room_id: i64, frames: &[Frame]) -> pb::LockstepFrames {
    pb::LockstepFrames {
        room_id,
        frames: frames
            .iter()
            .map(|f| pb::LockstepFrame {
                number: i64::try_from(f.number).unwrap_or(i64::MAX),
                inputs: f
                    .inputs
                    .iter()
                    .map(|(id, data)| pb::PlayerInput { user_id: wire_id(*id), data: data.clone() })
                    .collect(),
                members_changed: f.members.is_some(),
                members: f.members.iter().flatten().map(|id| wire_id(*id)).collect(),
            })
            .collect(),
    }
}

fn error(session: &Session, req_id: u32, code: rsgame_kit::Code, msg: &str) {
    if !session.error_frames() {
        return;
    }
    let e = pb::ErrorResp { req_id, code: code.as_u32() as i32, msg: msg.into() };
    session.push(ids::ERROR, &e);
}

/// The first thing a player entering any room is told.
fn send_greeting(session: &Session, greet: Greet) {
    match greet {
        Greet::Login(info) => session.push(ids::reply(ids::GAME_LOGIN), &info),
        Greet::Enter(resp) => session.push(ids::reply(ids::ENTER_ROOM), &resp),
    }
}

/// What a lockstep room takes from its players.
pub(crate) enum LockstepCmd {
    /// An input for the frame being built.
    Input(Vec<u8>),
    /// Send me the frames from this one on.
    Sync(u64),
}

/// A lockstep room, written as a game would write one: a [`rsgame_gate::Room`] on the
/// framework's public room API. It closes a frame every 1/fps and sends it to every player;
/// a joiner gets the kept frames first; a dropped player stays (the world times its grace)
/// and gets what it missed when it comes back.
pub(crate) struct LockstepRoom {
    room_id: i64,
    ls: Lockstep,
    /// The frame each disconnected player was at, for its catch-up on return.
    away_since: HashMap<i64, u64>,
}

impl LockstepRoom {
    pub(crate) fn new(room_id: i64, ls: Lockstep) -> LockstepRoom {
        LockstepRoom { room_id, ls, away_since: HashMap::new() }
    }

    /// Sends `player` the frames from `from` on, in bundles of at most 300 so no single
    /// message is huge.
    fn catch_up(&self, ctx: &RoomCtx, player: i64, from: u64) -> Result<(), rsgame_kit::Error> {
        let frames =
            self.ls.since(from).map_err(|e| rsgame_kit::Error::msg(rsgame_kit::Code::NotFound, e.to_string()))?;
        for chunk in frames.chunks(300) {
            ctx.send(player, ids::LOCKSTEP_FRAMES, &frames_msg(self.room_id, chunk));
        }
        Ok(())
    }
}

impl Room for LockstepRoom {
    type Input = LockstepCmd;
    /// The greeting, sent before the frames to catch up on.
    type Join = Greet;
    /// The world's disconnect hook reports closes: it also times the reconnect grace.
    const WATCH_CONNECTIONS: bool = false;

    fn tick_every(&self) -> Option<Duration> {
        Some(Duration::from_secs(1) / self.ls.config().fps.max(1))
    }

    fn join(&mut self, ctx: &mut RoomCtx, player: i64, greet: Greet) -> Result<(), rsgame_kit::Error> {
        let missed = self
            .ls
            .join(PlayerId::new(player).entity())
            .map_err(|e| rsgame_kit::Error::msg(rsgame_kit::Code::Forbidden, e.to_string()))?;
        if let Some(session) = ctx.session(player) {
            send_greeting(session, greet);
        }
        for chunk in missed.chunks(300) {
            ctx.send(player, ids::LOCKSTEP_FRAMES, &frames_msg(self.room_id, chunk));
        }
        Ok(())
    }

    fn disconnected(&mut self, _ctx: &mut RoomCtx, player: i64) -> bool {
        self.away_since.insert(player, self.ls.next_frame());
        false
    }

    fn rejoin(&mut self, ctx: &mut RoomCtx, player: i64, greet: Greet) {
        if let Some(session) = ctx.session(player) {
            send_greeting(session, greet);
        }
        // A second login that took over a connected player has no mark: everything kept.
        let from = self.away_since.remove(&player).unwrap_or_else(|| self.ls.oldest());
        if let (Err(e), Some(session)) = (self.catch_up(ctx, player, from), ctx.session(player)) {
            error(session, ids::LOCKSTEP_SYNC, e.code(), &e.to_string());
        }
    }

    fn leave(&mut self, _ctx: &mut RoomCtx, player: i64) {
        self.ls.leave(PlayerId::new(player).entity());
        self.away_since.remove(&player);
    }

    fn input(&mut self, ctx: &mut RoomCtx, player: i64, cmd: LockstepCmd) -> Result<(), rsgame_kit::Error> {
        match cmd {
            LockstepCmd::Input(data) => self
                .ls
                .input(PlayerId::new(player).entity(), data)
                .map_err(|e| rsgame_kit::Error::bad_param(e.to_string())),
            LockstepCmd::Sync(from) => self.catch_up(ctx, player, from),
        }
    }

    fn tick(&mut self, ctx: &mut RoomCtx) {
        let frame = self.ls.step();
        ctx.broadcast(ids::LOCKSTEP_FRAMES, &frames_msg(self.room_id, std::slice::from_ref(&frame)));
    }
}

/// Rows per transaction of a write-behind save.
const SAVE_CHUNK: usize = 200;

/// How long kept rows wait for a retry when no new batch comes to carry them.
const UNSAVED_RETRY: Duration = Duration::from_secs(5);

/// How often a last save (a leave, the shutdown) is tried before it is reported unsaved.
const LAST_SAVE_TRIES: u32 = 4;

/// Rows whose periodic save failed, kept (newest value per player) for the next batch.
#[derive(Default)]
struct Unsaved {
    places: HashMap<i64, Place>,
    hps: HashMap<i64, i64>,
    /// Players whose last save failed after every try: reported at the next barrier.
    lost: HashSet<i64>,
}

impl Unsaved {
    /// Folds the rows still waiting into `b`, where `b` has nothing newer for a player.
    fn merge_into(&mut self, b: &mut SaveBatch) {
        let have: HashSet<i64> = b.places.iter().map(|(id, _)| *id).collect();
        b.places.extend(self.places.drain().filter(|(id, _)| !have.contains(id)));
        let have: HashSet<i64> = b.hps.iter().map(|(id, _)| *id).collect();
        b.hps.extend(self.hps.drain().filter(|(id, _)| !have.contains(id)));
    }

    /// Whether no row waits for a retry.
    fn is_empty(&self) -> bool {
        self.places.is_empty() && self.hps.is_empty()
    }

    fn players(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self.places.keys().chain(self.hps.keys()).chain(self.lost.iter()).copied().collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Writes `rows` with `write`, trying again with backoff (`tries` times in all); the error
/// of the last try when none succeeded.
async fn write_with_retry<T, F, Fut>(what: &str, rows: &[T], tries: u32, write: F) -> Result<(), String>
where
    F: Fn(&[T]) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut attempt = 0u32;
    loop {
        match write(rows).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                attempt += 1;
                metrics::counter!(crate::metrics::SAVE_ERRORS).increment(1);
                tracing::warn!(what, attempt, rows = rows.len(), error = %e, "world save failed");
                if attempt >= tries {
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_millis(200u64 << attempt.min(5))).await;
            }
        }
    }
}

/// Runs the saver: batches written in order, one at a time (a later position never lands
/// before an earlier one). A big batch goes in transactions of [`SAVE_CHUNK`] rows with a
/// short pause between them: one transaction of thousands of rows kept an embedded
/// database's thread busy long enough to stretch the scene ticks that shared its core.
///
/// Failures are kept, not dropped: a periodic batch's failed rows ride along with the next
/// batch (newer values win); a last save (a player leaving, the shutdown) is tried
/// [`LAST_SAVE_TRIES`] times and then reported, by name, at the next barrier and in the log.
pub(crate) async fn saver(
    mut rx: mpsc::UnboundedReceiver<SaveMsg>,
    store: crate::store::WorldStore,
    game: Arc<dyn rsgame_game::Game>,
) {
    let mut unsaved = Unsaved::default();
    loop {
        // Kept rows are tried again after a while even when nothing new comes to save (an
        // idle scene sends no batches).
        let retry = async {
            if unsaved.is_empty() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(UNSAVED_RETRY).await;
        };
        let msg = tokio::select! {
            m = rx.recv() => m,
            () = retry => Some(SaveMsg::Batch(SaveBatch { places: Vec::new(), hps: Vec::new(), last: false })),
        };
        let Some(msg) = msg else { break };
        let mut b = match msg {
            SaveMsg::Batch(b) => b,
            SaveMsg::Barrier(done) => {
                // The world may have stopped waiting (its handler was cancelled): nothing lost.
                let _ = done.send(unsaved.players());
                continue;
            }
        };
        let started = Instant::now();
        unsaved.merge_into(&mut b);
        let tries = if b.last { LAST_SAVE_TRIES } else { 1 };
        // Who was written and who was not, over the whole batch: a player's place and hit
        // points may fall in different chunks.
        let (mut written, mut failed) = (HashSet::new(), HashSet::new());
        let chunks = b.places.len().max(b.hps.len()).div_ceil(SAVE_CHUNK).max(1);
        for c in 0..chunks {
            let part = |v: usize| (c * SAVE_CHUNK).min(v)..((c + 1) * SAVE_CHUNK).min(v);
            let places = &b.places[part(b.places.len())];
            let hps = &b.hps[part(b.hps.len())];
            let placed = write_with_retry("places", places, tries, |rows| {
                let store = store.clone();
                let rows = rows.to_vec();
                async move { store.save_places(&rows).await.map_err(|e| e.to_string()) }
            })
            .await;
            let healed = write_with_retry("hit points", hps, tries, |rows| {
                let game = game.clone();
                let rows = rows.to_vec();
                async move { game.save_hp(&rows).await.map_err(|e| e.to_string()) }
            })
            .await;
            match placed {
                Ok(()) => written.extend(places.iter().map(|(id, _)| *id)),
                Err(_) if b.last => failed.extend(places.iter().map(|(id, _)| *id)),
                Err(_) => unsaved.places.extend(places.iter().cloned()),
            }
            match healed {
                Ok(()) => written.extend(hps.iter().map(|(id, _)| *id)),
                Err(_) if b.last => failed.extend(hps.iter().map(|(id, _)| *id)),
                Err(_) => unsaved.hps.extend(hps.iter().copied()),
            }
            if c + 1 < chunks {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        for id in written.difference(&failed) {
            unsaved.lost.remove(id);
        }
        if !failed.is_empty() {
            let mut players: Vec<i64> = failed.iter().copied().collect();
            players.sort_unstable();
            tracing::error!(players = ?players, "world state not saved after {LAST_SAVE_TRIES} tries");
            unsaved.lost.extend(failed);
        }
        metrics::gauge!(crate::metrics::UNSAVED_PLAYERS).set(unsaved.players().len() as f64);
        metrics::histogram!(crate::metrics::SAVE_SECONDS).record(started.elapsed().as_secs_f64());
    }
}

/// How often one reward is tried before it waits for the next retry round.
const REWARD_TRIES: u32 = 3;

/// How long failed rewards wait between retry rounds.
const REWARD_RETRY: Duration = Duration::from_secs(5);

/// Whether a refusal would be the same on every try (the player is gone, an amount is
/// invalid, a balance at its limit): only outages and overload are worth trying again.
fn lasting(e: &rsgame_kit::Error) -> bool {
    let c = e.code();
    !(c.is_internal()
        || matches!(c, rsgame_kit::Code::Unavailable | rsgame_kit::Code::Timeout | rsgame_kit::Code::TooManyRequests))
}

/// Grants one reward, `tries` times at most with backoff; a lasting refusal is not tried
/// again.
async fn grant(
    game: &dyn rsgame_game::Game,
    j: &RewardJob,
    tries: u32,
) -> Result<rsgame_game::logic::Player, rsgame_kit::Error> {
    let mut attempt = 0u32;
    loop {
        match game
            .reward(
                j.user,
                rsgame_game::logic::Grant { exp: j.exp, coins: j.coins, score: j.score },
                "kill",
                &j.reference,
            )
            .await
        {
            Ok(p) => return Ok(p),
            Err(e) => {
                attempt += 1;
                if lasting(&e) || attempt >= tries {
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_millis(200u64 << attempt)).await;
            }
        }
    }
}

/// Grants `j` (`tries` times at most); a transient failure hands it back.
async fn settle(game: &dyn rsgame_game::Game, j: RewardJob, tries: u32) -> Option<RewardJob> {
    match grant(game, &j, tries).await {
        Ok(p) => {
            tell_rewarded(game, j, p).await;
            None
        }
        Err(e) if lasting(&e) => {
            metrics::counter!(crate::metrics::REWARD_ERRORS).increment(1);
            tracing::error!(user = j.user, reference = %j.reference, error = %e, "kill reward refused for good");
            None
        }
        Err(e) => {
            metrics::counter!(crate::metrics::REWARD_ERRORS).increment(1);
            tracing::warn!(user = j.user, reference = %j.reference, error = %e, "kill reward not granted yet: kept for a retry");
            Some(j)
        }
    }
}

/// Runs a rewarder: grants kill rewards through the game service's ledger, in order, and
/// tells the room the player's new numbers. A grant is idempotent by its reference, so a
/// retry after a lost answer never pays twice. While grants fail (the game service or its
/// database is away), new rewards queue behind the failed ones and a retry round (one try
/// each, stopped at the first failure) runs every [`REWARD_RETRY`], so an outage costs one
/// try per round, not one per reward; the shutdown's flush runs a last round and reports
/// what is still not granted.
pub(crate) async fn rewarder(mut rx: mpsc::UnboundedReceiver<RewardMsg>, game: Arc<dyn rsgame_game::Game>) {
    let mut failed: std::collections::VecDeque<RewardJob> = std::collections::VecDeque::new();
    let mut next_round = tokio::time::Instant::now();
    loop {
        let round = async {
            if failed.is_empty() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep_until(next_round).await;
        };
        let msg = tokio::select! {
            m = rx.recv() => m,
            () = round => Some(RewardMsg::Retry),
        };
        let Some(msg) = msg else { break };
        let done = match msg {
            RewardMsg::Job(j) if failed.is_empty() => {
                if let Some(j) = settle(game.as_ref(), j, REWARD_TRIES).await {
                    failed.push_back(j);
                    next_round = tokio::time::Instant::now() + REWARD_RETRY;
                }
                None
            }
            RewardMsg::Job(j) => {
                failed.push_back(j);
                None
            }
            RewardMsg::Retry => None,
            RewardMsg::Flush(done) => Some(done),
        };
        if !failed.is_empty() && (done.is_some() || tokio::time::Instant::now() >= next_round) {
            // In order; the first that fails again ends the round.
            while let Some(j) = failed.pop_front() {
                if let Some(j) = settle(game.as_ref(), j, 1).await {
                    failed.push_front(j);
                    break;
                }
            }
            next_round = tokio::time::Instant::now() + REWARD_RETRY;
        }
        metrics::gauge!(crate::metrics::REWARDS_PENDING).set(failed.len() as f64);
        if let Some(done) = done {
            // Handed over, so the flush can name them; nothing is kept past a flush.
            let _ = done.send(failed.drain(..).collect());
        }
    }
}

/// Tells the scene a player's new numbers after a granted reward.
async fn tell_rewarded(game: &dyn rsgame_game::Game, j: RewardJob, p: rsgame_game::logic::Player) {
    // A level-up changes attack and defence: read the totals with equipment again.
    let stats = if p.level != j.level {
        match game.pack(j.user).await {
            Ok(pack) => Stats::from_pack(&pack),
            Err(e) => {
                // Granted and stored; only the live numbers wait for the next read.
                tracing::warn!(user = j.user, error = %e, "numbers after a level-up not read");
                return;
            }
        }
    } else {
        Stats { hp: p.hp, max_hp: p.max_hp, level: p.level, exp: p.exp, coins: p.coins, attack: -1, defence: -1 }
    };
    let Some(room) = j.room.upgrade() else { return };
    let (id, killed, exp, coins) = (PlayerId::new(j.user).entity(), j.killed, j.exp, j.coins);
    if room.call(move |r, ctx| r.rewarded(ctx, id, killed, exp, coins, stats)).await.is_err() {
        tracing::debug!(user = j.user, "scene ended before its reward's numbers arrived");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WorldConfig;
    use crate::testdb::{database, game};
    use rsgame_game::Game as _;

    fn batch(user: i64, x: f32, last: bool) -> SaveMsg {
        let place = Place { scene_id: 1000, x, z: 100.0 };
        SaveMsg::Batch(SaveBatch { places: vec![(user, place)], hps: vec![(user, 50)], last })
    }

    async fn barrier(tx: &mpsc::UnboundedSender<SaveMsg>) -> Vec<i64> {
        let (done, wait) = oneshot::channel();
        tx.send(SaveMsg::Barrier(done)).expect("saver running");
        wait.await.expect("answered")
    }

    #[tokio::test]
    async fn a_failed_save_is_kept_and_written_later_and_a_last_one_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = database(&dir).await;
        let store = crate::store::WorldStore::new(db.clone());
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(saver(rx, store.clone(), game(&db)));

        // The table is away: a periodic save fails and is kept, not dropped.
        db.raw("ALTER TABLE world_state RENAME TO world_state_away").await.expect("rename");
        tx.send(batch(1, 110.0, false)).expect("queued");
        assert_eq!(barrier(&tx).await, [1], "player 1 waits for a retry");
        // Back: the next batch (another player) carries player 1's kept row along.
        db.raw("ALTER TABLE world_state_away RENAME TO world_state").await.expect("rename back");
        tx.send(batch(2, 120.0, false)).expect("queued");
        assert_eq!(barrier(&tx).await, Vec::<i64>::new(), "all saved");
        assert_eq!(store.place(1).await.expect("read").map(|p| p.x), Some(110.0));
        assert_eq!(store.place(2).await.expect("read").map(|p| p.x), Some(120.0));

        // A newer value for a kept player wins over the kept one.
        db.raw("ALTER TABLE world_state RENAME TO world_state_away").await.expect("rename");
        tx.send(batch(1, 130.0, false)).expect("queued");
        db.raw("ALTER TABLE world_state_away RENAME TO world_state").await.expect("rename back");
        tx.send(batch(1, 140.0, false)).expect("queued");
        assert_eq!(barrier(&tx).await, Vec::<i64>::new());
        assert_eq!(store.place(1).await.expect("read").map(|p| p.x), Some(140.0));

        // A last save (a player leaving) is tried with backoff, then reported by player.
        db.raw("ALTER TABLE world_state RENAME TO world_state_away").await.expect("rename");
        tx.send(batch(3, 150.0, true)).expect("queued");
        assert_eq!(barrier(&tx).await, [3], "reported unsaved");
        db.raw("ALTER TABLE world_state_away RENAME TO world_state").await.expect("rename back");
        tx.send(batch(3, 160.0, true)).expect("queued");
        assert_eq!(barrier(&tx).await, Vec::<i64>::new(), "saved at last: no longer reported");
    }

    #[tokio::test]
    async fn a_failed_reward_is_retried_and_reported_at_the_flush_never_paid_twice() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = database(&dir).await;
        let game = game(&db);
        let coins = game.player(5).await.expect("player").coins;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(rewarder(rx, game.clone()));
        // A scene that has ended: the reward still counts; only the live numbers go nowhere.
        let spec = crate::data::parse(crate::data::SAMPLE, &WorldConfig::default()).expect("sample").remove(0);
        let (save_tx, _save_rx) = mpsc::unbounded_channel();
        let (reward_tx, _reward_rx) = mpsc::unbounded_channel();
        let env = RoomEnv { saver: save_tx, rewards: reward_tx, save_every: Duration::from_secs(60), run: "t".into() };
        let room = rsgame_gate::room::spawn_with(|me| SceneRoom::new(Scene::new(spec.config), true, env, me), 8);
        let weak = room.downgrade();
        drop(room);
        let job = |reference: &str| RewardJob {
            room: weak.clone(),
            user: 5,
            killed: MONSTER_BASE + 1,
            exp: 1,
            coins: 3,
            score: 0,
            level: 1,
            reference: reference.to_owned(),
        };
        let flush = || async {
            let (done, wait) = oneshot::channel();
            tx.send(RewardMsg::Flush(done)).expect("rewarder running");
            wait.await.expect("answered").into_iter().map(|j| j.reference).collect::<Vec<_>>()
        };

        // The ledger is away: the grant fails and is kept.
        db.raw("ALTER TABLE game_ledger RENAME TO game_ledger_away").await.expect("rename");
        tx.send(RewardMsg::Job(job("kill:t:1000:1:1"))).expect("queued");
        // Back (after its first try at least; whether its own retries or the next job's
        // round grants it): each granted once, whatever the retries.
        tokio::time::sleep(Duration::from_millis(50)).await;
        db.raw("ALTER TABLE game_ledger_away RENAME TO game_ledger").await.expect("rename back");
        tx.send(RewardMsg::Job(job("kill:t:1000:1:2"))).expect("queued");
        tx.send(RewardMsg::Job(job("kill:t:1000:1:2"))).expect("queued again");
        assert_eq!(flush().await, Vec::<String>::new());
        assert_eq!(game.player(5).await.expect("player").coins, coins + 6, "two kills, each paid once");
        // Failing through the flush's own retry: the flush names it.
        db.raw("ALTER TABLE game_ledger RENAME TO game_ledger_away").await.expect("rename");
        tx.send(RewardMsg::Job(job("kill:t:1000:1:3"))).expect("queued");
        assert_eq!(flush().await, ["kill:t:1000:1:3"]);
    }
}
