//! The world's rooms, written on the framework's public room API ([`rsgame_gate::room`]): a
//! scene ([`SceneRoom`]: its simulation, fixed tick, AOI delivery and write-behind saves) or
//! a lockstep room ([`LockstepRoom`]: frames at a fixed rate). The world moves players
//! between places with [`RoomMsg`]s, which small adapters turn into room-API joins, leaves
//! and calls; players' moves, attacks and lockstep inputs go straight to the room handles.
//! Nothing else touches a room's state, so it needs no locks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rsgame_gate::room::{Room, RoomCtx, RoomHandle};
use rsgame_gate::{Session, Wire};
use rsgame_kit::telemetry::metrics::FastHistogram;
use rsgame_proto::{ids, pb};
use tokio::sync::{mpsc, oneshot};

use crate::aoi::{EntityId, MONSTER_BASE};
use crate::lockstep::{Frame, Lockstep};
use crate::scene::{Command, Kind, Out, Scene, View};
use crate::store::Place;

/// Room messages queued before a sender waits (a scene drains them every tick).
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

/// What a room task is asked to do.
pub(crate) enum RoomMsg {
    /// A player enters at (x, z) with these numbers.
    /// `greeted` fires once the greeting is queued, so what the caller sends next follows it.
    Join { id: EntityId, name: String, x: f32, z: f32, stats: Stats, session: Session, greet: Greet, greeted: Ack },
    /// A player already in the room has a new connection (a reconnect or a second login).
    Attach { id: EntityId, session: Session, greet: Greet, greeted: Ack },
    /// The player leaves; `done` fires once its state is saved.
    Leave { id: EntityId, done: oneshot::Sender<()> },
    /// A kill reward was granted: the player's new numbers.
    Rewarded { id: EntityId, killed: EntityId, exp: i64, coins: i64, stats: Stats },
    /// Save everything now; `done` fires once it is written.
    Flush { done: oneshot::Sender<()> },
    /// End the task (an empty created room).
    Stop,
}

/// Fired when a step is done (dropping it says the same to a waiting caller).
pub(crate) type Ack = oneshot::Sender<()>;

/// A write-behind batch for the saver.
pub(crate) struct SaveBatch {
    pub places: Vec<(i64, Place)>,
    pub hps: Vec<(i64, i64)>,
    pub done: Option<oneshot::Sender<()>>,
}

/// A kill reward for the rewarder.
pub(crate) struct RewardJob {
    pub room: mpsc::Sender<RoomMsg>,
    pub user: i64,
    pub killed: EntityId,
    pub exp: i64,
    pub coins: i64,
    pub level: i64,
    pub reference: String,
}

/// What the rewarder is asked to do.
pub(crate) enum RewardMsg {
    /// Grant a kill's reward.
    Job(RewardJob),
    /// Fire once every reward queued before is granted (graceful shutdown).
    Flush(oneshot::Sender<()>),
}

/// What every room task needs from the world.
#[derive(Clone)]
pub(crate) struct RoomEnv {
    pub saver: mpsc::UnboundedSender<SaveBatch>,
    pub rewards: mpsc::UnboundedSender<RewardMsg>,
    pub save_every: Duration,
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
        id: v.id as i64,
        kind: if v.kind == Kind::Player { 1 } else { 2 },
        name: v.name,
        site: Some(site(v.x, v.z)),
        hp: v.hp,
        max_hp: v.max_hp,
    }
}

/// An entity's position in a batch: (id, x, z).
type Site = (EntityId, f32, f32);

/// One receiver's messages of a tick, in the order they happened, consecutive ones of a kind
/// merged into one frame.
enum Mail {
    Spawn(Vec<pb::Entity>),
    Despawn(Vec<i64>),
    Move(Vec<pb::UserSite>),
    Attack(pb::AttackResp),
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
            metrics::gauge!("world_tick_p50_seconds", "scene" => label.clone()).set(at(0.5));
            metrics::gauge!("world_tick_p99_seconds", "scene" => label.clone()).set(at(0.99));
            metrics::gauge!("world_tick_max_seconds", "scene" => label).set(at(1.0));
        }
    }
}

/// What a scene takes from its players: the simulation's commands (move, attack, respawn).
pub(crate) enum SceneInput {
    Cmd(Command),
}

/// A player about to be added: what the world knows of it, stashed (with a [`RoomHandle::call`])
/// just before its join or rejoin so both happen in one step of the scene's task.
enum Arrival {
    Join { name: String, x: f32, z: f32, stats: Stats, greet: Greet },
    Return { greet: Greet },
}

/// A scene, on the framework's public room API: the simulation with its fixed tick, AOI
/// delivery (each position batch encoded once per wire and cell) and write-behind saves.
pub(crate) struct SceneRoom {
    pub scene: Scene,
    /// Permanent scenes save places; a created room's places mean nothing after it closes.
    pub permanent: bool,
    pub env: RoomEnv,
    /// The world's channel to this scene, for the rewarder's answers.
    pub me: mpsc::Sender<RoomMsg>,
    stats: HashMap<EntityId, Stats>,
    saved: HashMap<EntityId, (f32, f32, i64)>,
    arrivals: HashMap<EntityId, Arrival>,
    label: String,
    hist: Arc<FastHistogram>,
    window: TickWindow,
    last_save: Instant,
}

impl SceneRoom {
    pub(crate) fn new(scene: Scene, permanent: bool, env: RoomEnv, me: mpsc::Sender<RoomMsg>) -> SceneRoom {
        let hz = scene.config().tick_hz.max(1);
        let label = scene.config().id.to_string();
        let hist = FastHistogram::register(
            "world_tick_seconds",
            "Time one scene tick takes: simulation and delivery.",
            &[("scene", &label)],
        );
        SceneRoom {
            scene,
            permanent,
            env,
            me,
            stats: HashMap::new(),
            saved: HashMap::new(),
            arrivals: HashMap::new(),
            label,
            hist,
            window: TickWindow::new(hz as usize * 10),
            last_save: Instant::now(),
        }
    }

    /// The player leaves the scene; `done` fires once its state is saved. Idempotent: the
    /// room API's own leave, right after, finds nothing left to do.
    fn depart(&mut self, id: EntityId, done: Option<oneshot::Sender<()>>) {
        let last = self.scene.get(id).map(|v| (v.x, v.z, v.hp));
        let Some((x, z, hp)) = last else {
            if let Some(d) = done {
                let _ = d.send(());
            }
            return;
        };
        self.scene.apply(Command::Leave { id });
        self.stats.remove(&id);
        self.saved.remove(&id);
        self.players_gauge();
        let places = if self.permanent { vec![(id as i64, self.place(x, z))] } else { Vec::new() };
        let _ = self.env.saver.send(SaveBatch { places, hps: vec![(id as i64, hp)], done });
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

    fn rewarded(&mut self, ctx: &RoomCtx, id: EntityId, killed: EntityId, exp: i64, coins: i64, mut stats: Stats) {
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
        let reward = pb::AttackResp {
            user_id: id as i64,
            obj_id: killed as i64,
            status: 202,
            exp,
            coin: coins,
            ..Default::default()
        };
        ctx.send(id as i64, ids::reply(ids::ATTACK), &reward);
        self.push_stats(ctx, id);
    }
}

impl Room for SceneRoom {
    type Input = SceneInput;

    fn tick_every(&self) -> Option<Duration> {
        Some(Duration::from_secs(1) / self.scene.config().tick_hz.max(1))
    }

    fn join(&mut self, ctx: &mut RoomCtx, player: i64) -> Result<(), rsgame_kit::Error> {
        let id = player as EntityId;
        let Some(Arrival::Join { name, x, z, stats, greet }) = self.arrivals.remove(&id) else {
            return Err(rsgame_kit::Error::msg(rsgame_kit::Code::Forbidden, "enter the scene through the world"));
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
        if let Some(session) = ctx.session(player) {
            self.greet(id, session, greet);
        }
        self.players_gauge();
        Ok(())
    }

    fn rejoin(&mut self, ctx: &mut RoomCtx, player: i64) {
        let id = player as EntityId;
        let greet = match self.arrivals.remove(&id) {
            Some(Arrival::Return { greet } | Arrival::Join { greet, .. }) => greet,
            None => return,
        };
        let (Some(session), Some(_)) = (ctx.session(player), self.scene.get(id)) else { return };
        self.greet(id, session, greet);
        // A new connection knows nothing: everything in view, now.
        let list: Vec<pb::Entity> = self.scene.in_view(id).iter().map(entity).collect();
        if !list.is_empty() {
            let _ = session.send(ids::SPAWN, &pb::SpawnResp { list });
        }
    }

    fn disconnected(&mut self, _ctx: &mut RoomCtx, _player: i64) -> bool {
        // The player stays in the scene through the world's reconnect grace.
        false
    }

    fn leave(&mut self, _ctx: &mut RoomCtx, player: i64) {
        self.depart(player as EntityId, None);
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
            metrics::counter!("world_entity_updates_total", "scene" => self.label.clone()).increment(updates);
        }
        if self.last_save.elapsed() >= self.env.save_every {
            self.last_save = Instant::now();
            self.save(false, None);
        }
    }
}

/// Drives a scene from the world's room messages (as [`lockstep_adapter`] does a lockstep
/// room): what a join needs is stashed on the scene's task, then the room API adds the
/// player, so the greeting, the entity and the first view happen in one step. Moves,
/// attacks and respawns do not pass through here: the handlers tell the room handle.
pub(crate) async fn scene_adapter(room: RoomHandle<SceneRoom>, mut rx: mpsc::Receiver<RoomMsg>) {
    while let Some(msg) = rx.recv().await {
        match msg {
            RoomMsg::Join { id, name, x, z, stats, session, greet, greeted } => {
                let arrival = Arrival::Join { name, x, z, stats, greet };
                if room.call(move |r, _| drop(r.arrivals.insert(id, arrival))).await.is_ok()
                    && let Err(e) = room.join(id as i64, session.clone()).await
                {
                    error(&session, ids::ENTER_ROOM, e.code(), &e.to_string());
                }
                let _ = greeted.send(());
            }
            RoomMsg::Attach { id, session, greet, greeted } => {
                let arrival = Arrival::Return { greet };
                if room.call(move |r, _| drop(r.arrivals.insert(id, arrival))).await.is_ok() {
                    let _ = room.join(id as i64, session).await;
                }
                let _ = greeted.send(());
            }
            RoomMsg::Leave { id, done } => {
                let _ = room.call(move |r, _| r.depart(id, Some(done))).await;
                room.leave(id as i64).await;
            }
            RoomMsg::Rewarded { id, killed, exp, coins, stats } => {
                let _ = room.call(move |r, ctx| r.rewarded(ctx, id, killed, exp, coins, stats)).await;
            }
            RoomMsg::Flush { done } => {
                let _ = room.call(move |r, _| r.save(true, Some(done))).await;
            }
            RoomMsg::Stop => break,
        }
    }
}

impl SceneRoom {
    fn place(&self, x: f32, z: f32) -> Place {
        Place { scene_id: self.scene.config().id, x, z }
    }

    fn players_gauge(&self) {
        metrics::gauge!("world_players", "scene" => self.scene.config().id.to_string()).set(self.stats.len() as f64);
    }

    fn greet(&self, id: EntityId, session: &Session, greet: Greet) {
        let Some(v) = self.scene.get(id) else { return };
        match greet {
            Greet::Login(mut info) => {
                info.position = Some(site(v.x, v.z));
                let _ = session.send(ids::reply(ids::GAME_LOGIN), &info);
            }
            Greet::Enter(resp) => {
                let _ = session.send(ids::reply(ids::ENTER_ROOM), &resp);
            }
        }
        // The authoritative position, then the numbers.
        let me = pb::UserSite { user_id: id as i64, site: Some(site(v.x, v.z)), action: "spawn".into() };
        let _ = session.send(ids::reply(ids::MOVE), &pb::MoveResp { site_list: vec![me] });
        if let Some(st) = self.stats.get(&id) {
            let st = Stats { hp: v.hp, max_hp: v.max_hp, ..*st };
            let _ = session.send(ids::PLAYER_STATS, &st.message(id as i64));
        }
    }

    fn push_stats(&self, ctx: &RoomCtx, id: EntityId) {
        let (Some(v), Some(st)) = (self.scene.get(id), self.stats.get(&id)) else { return };
        let st = Stats { hp: v.hp, max_hp: v.max_hp, ..*st };
        ctx.send(id as i64, ids::PLAYER_STATS, &st.message(id as i64));
    }

    /// Queues the players whose place or hp changed since the last save (all with `all`).
    fn save(&mut self, all: bool, done: Option<oneshot::Sender<()>>) {
        let mut places = Vec::new();
        let mut hps = Vec::new();
        for v in self.scene.players() {
            let now = (v.x, v.z, v.hp);
            if !all && self.saved.get(&v.id) == Some(&now) {
                continue;
            }
            if self.permanent {
                places.push((v.id as i64, Place { scene_id: self.scene.config().id, x: v.x, z: v.z }));
            }
            hps.push((v.id as i64, v.hp));
        }
        for v in self.scene.players() {
            self.saved.insert(v.id, (v.x, v.z, v.hp));
        }
        if places.is_empty() && hps.is_empty() {
            if let Some(d) = done {
                let _ = d.send(());
            }
            return;
        }
        let _ = self.env.saver.send(SaveBatch { places, hps, done });
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
                        Some(Mail::Spawn(v)) => v.push(entity_of(view)),
                        _ => b.push(Mail::Spawn(vec![entity_of(view)])),
                    }
                }
                Out::Despawn { to, id } => {
                    let b = boxes.entry(to).or_default();
                    match b.last_mut() {
                        Some(Mail::Despawn(v)) => v.push(id as i64),
                        _ => b.push(Mail::Despawn(vec![id as i64])),
                    }
                }
                Out::Positions { to, moves } => {
                    updates += (moves.len() * to.len()) as u64;
                    batches.push((to, moves));
                }
                Out::Corrected { to, x, z } => {
                    let me = pb::UserSite { user_id: to as i64, site: Some(site(x, z)), action: "correct".into() };
                    let b = boxes.entry(to).or_default();
                    match b.last_mut() {
                        Some(Mail::Move(v)) => v.push(me),
                        _ => b.push(Mail::Move(vec![me])),
                    }
                }
                Out::Hit { to, attacker, target, damage, target_hp } => {
                    let a = pb::AttackResp {
                        user_id: attacker as i64,
                        obj_id: target as i64,
                        status: 200,
                        hurt: damage,
                        obj_hp: target_hp,
                        ..Default::default()
                    };
                    boxes.entry(to).or_default().push(Mail::Attack(a));
                }
                Out::Died { to, id } => {
                    let a = pb::AttackResp { obj_id: id as i64, status: 201, ..Default::default() };
                    boxes.entry(to).or_default().push(Mail::Attack(a));
                }
                Out::Reward { to, killed, exp, coins } => {
                    let level = self.stats.get(&to).map_or(0, |s| s.level);
                    let reference =
                        format!("scene:{}:{}:{}", self.scene.config().id, killed - MONSTER_BASE, self.scene.now());
                    let job =
                        RewardJob { room: self.me.clone(), user: to as i64, killed, exp, coins, level, reference };
                    let _ = self.env.rewards.send(RewardMsg::Job(job));
                }
            }
        }
        // Each position batch encoded once per wire format, shared by its cell's players.
        let mut position_of: HashMap<EntityId, usize> = HashMap::new();
        let mut encoded: Vec<Vec<(Wire, Bytes)>> = Vec::with_capacity(batches.len());
        let mut resps: Vec<pb::MoveResp> = Vec::with_capacity(batches.len());
        for (i, (to, moves)) in batches.into_iter().enumerate() {
            let site_list = moves
                .into_iter()
                .map(|(id, x, z)| pb::UserSite { user_id: id as i64, site: Some(site(x, z)), action: String::new() })
                .collect();
            resps.push(pb::MoveResp { site_list });
            encoded.push(Vec::with_capacity(1));
            for t in to {
                position_of.insert(t, i);
            }
        }
        let mut positions = |i: usize, wire: Wire| -> Bytes {
            if let Some((_, b)) = encoded[i].iter().find(|(w, _)| *w == wire) {
                return b.clone();
            }
            let b = wire.encode(ids::reply(ids::MOVE), &resps[i]);
            encoded[i].push((wire, b.clone()));
            b
        };
        // One queue entry per player and tick on frame wires: what it is told this tick —
        // spawns, despawns, hits, then positions last — in one buffer.
        for (to, mails) in boxes {
            let batch = position_of.remove(&to);
            let Some(s) = ctx.session(to as i64) else { continue };
            let wire = s.wire();
            if wire.text {
                for m in mails {
                    let _ = match m {
                        Mail::Spawn(list) => s.send(ids::SPAWN, &pb::SpawnResp { list }),
                        Mail::Despawn(ids_) => s.send(ids::DESPAWN, &pb::DespawnResp { ids: ids_ }),
                        Mail::Move(site_list) => s.send(ids::reply(ids::MOVE), &pb::MoveResp { site_list }),
                        Mail::Attack(a) => s.send(ids::reply(ids::ATTACK), &a),
                    };
                }
                if let Some(i) = batch {
                    let _ = s.send_bytes(positions(i, wire));
                }
                continue;
            }
            let mut buf = BytesMut::new();
            for m in mails {
                match m {
                    Mail::Spawn(list) => wire.encode_into(ids::SPAWN, &pb::SpawnResp { list }, &mut buf),
                    Mail::Despawn(ids_) => wire.encode_into(ids::DESPAWN, &pb::DespawnResp { ids: ids_ }, &mut buf),
                    Mail::Move(site_list) => {
                        wire.encode_into(ids::reply(ids::MOVE), &pb::MoveResp { site_list }, &mut buf);
                    }
                    Mail::Attack(a) => wire.encode_into(ids::reply(ids::ATTACK), &a, &mut buf),
                }
            }
            if let Some(i) = batch {
                buf.extend_from_slice(&positions(i, wire));
            }
            let _ = s.send_bytes(buf.freeze());
        }
        // Players told nothing but positions get the shared bytes as they are.
        for (to, i) in position_of {
            if let Some(s) = ctx.session(to as i64) {
                let _ = s.send_bytes(positions(i, s.wire()));
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
                number: f.number as i64,
                inputs: f
                    .inputs
                    .iter()
                    .map(|(id, data)| pb::PlayerInput { user_id: *id as i64, data: data.clone() })
                    .collect(),
            })
            .collect(),
    }
}

fn error(session: &Session, req_id: u32, code: rsgame_kit::Code, msg: &str) {
    let e = pb::ErrorResp { req_id, code: code.as_u32() as i32, msg: msg.into() };
    let _ = session.send(ids::ERROR, &e);
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

    fn tick_every(&self) -> Option<Duration> {
        Some(Duration::from_secs(1) / self.ls.config().fps.max(1))
    }

    fn join(&mut self, ctx: &mut RoomCtx, player: i64) -> Result<(), rsgame_kit::Error> {
        let missed = self
            .ls
            .join(player as EntityId)
            .map_err(|e| rsgame_kit::Error::msg(rsgame_kit::Code::Forbidden, e.to_string()))?;
        for chunk in missed.chunks(300) {
            ctx.send(player, ids::LOCKSTEP_FRAMES, &frames_msg(self.room_id, chunk));
        }
        Ok(())
    }

    fn disconnected(&mut self, _ctx: &mut RoomCtx, player: i64) -> bool {
        self.away_since.insert(player, self.ls.next_frame());
        false
    }

    fn rejoin(&mut self, ctx: &mut RoomCtx, player: i64) {
        let from = self.away_since.remove(&player).unwrap_or(0);
        if let (Err(e), Some(session)) = (self.catch_up(ctx, player, from), ctx.session(player)) {
            error(session, ids::LOCKSTEP_SYNC, e.code(), &e.to_string());
        }
    }

    fn leave(&mut self, _ctx: &mut RoomCtx, player: i64) {
        self.ls.leave(player as EntityId);
        self.away_since.remove(&player);
    }

    fn input(&mut self, ctx: &mut RoomCtx, player: i64, cmd: LockstepCmd) -> Result<(), rsgame_kit::Error> {
        match cmd {
            LockstepCmd::Input(data) => {
                self.ls.input(player as EntityId, data).map_err(|e| rsgame_kit::Error::bad_param(e.to_string()))
            }
            LockstepCmd::Sync(from) => self.catch_up(ctx, player, from),
        }
    }

    fn tick(&mut self, ctx: &mut RoomCtx) {
        let frame = self.ls.step();
        ctx.broadcast(ids::LOCKSTEP_FRAMES, &frames_msg(self.room_id, std::slice::from_ref(&frame)));
    }
}

/// Drives a lockstep room from the world's room messages: the world moves players between
/// scenes and rooms with [`RoomMsg`]s whatever the room's kind; here they become the room
/// API's joins and leaves. Inputs do not pass through here: the handlers call the room
/// handle directly, so a refused input is answered as the handler's error.
pub(crate) async fn lockstep_adapter(room: RoomHandle<LockstepRoom>, mut rx: mpsc::Receiver<RoomMsg>) {
    while let Some(msg) = rx.recv().await {
        match msg {
            RoomMsg::Join { id, session, greet, greeted, .. } | RoomMsg::Attach { id, session, greet, greeted } => {
                // The greeting first, then what the room sends (the frames to catch up on).
                match greet {
                    Greet::Login(info) => {
                        let _ = session.send(ids::reply(ids::GAME_LOGIN), &info);
                    }
                    Greet::Enter(resp) => {
                        let _ = session.send(ids::reply(ids::ENTER_ROOM), &resp);
                    }
                }
                // The world checked the room's capacity under its lock, so this is not refused.
                if let Err(e) = room.join(id as i64, session.clone()).await {
                    error(&session, ids::ENTER_ROOM, e.code(), &e.to_string());
                }
                let _ = greeted.send(());
            }
            RoomMsg::Leave { id, done } => {
                room.leave(id as i64).await;
                let _ = done.send(());
            }
            RoomMsg::Flush { done } => {
                let _ = done.send(());
            }
            RoomMsg::Stop => break,
            RoomMsg::Rewarded { .. } => {}
        }
    }
}

/// Rows per transaction of a write-behind save.
const SAVE_CHUNK: usize = 200;

/// Runs the saver: batches written in order, one at a time (a later position never lands
/// before an earlier one). A big batch goes in transactions of [`SAVE_CHUNK`] rows with a
/// short pause between them: one transaction of thousands of rows kept an embedded
/// database's thread busy long enough to stretch the scene ticks that shared its core.
pub(crate) async fn saver(
    mut rx: mpsc::UnboundedReceiver<SaveBatch>,
    store: crate::store::WorldStore,
    game: Arc<dyn rsgame_game::Game>,
) {
    while let Some(b) = rx.recv().await {
        let started = Instant::now();
        let chunks = b.places.len().max(b.hps.len()).div_ceil(SAVE_CHUNK).max(1);
        for c in 0..chunks {
            let part = |v: usize| (c * SAVE_CHUNK).min(v)..((c + 1) * SAVE_CHUNK).min(v);
            let places = &b.places[part(b.places.len())];
            let hps = &b.hps[part(b.hps.len())];
            // A failed write is retried a few times: positions are only worth saving while fresh.
            for attempt in 0..3u32 {
                match (store.save_places(places).await, game.save_hp(hps).await) {
                    (Ok(()), Ok(())) => break,
                    (p, h) => {
                        metrics::counter!("world_save_errors_total").increment(1);
                        tracing::warn!(
                            attempt,
                            places = places.len(),
                            places_error = ?p.err().map(|e| e.to_string()),
                            hp_error = ?h.err().map(|e| e.to_string()),
                            "world save failed"
                        );
                        tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                    }
                }
            }
            if c + 1 < chunks {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        metrics::histogram!("world_save_seconds").record(started.elapsed().as_secs_f64());
        if let Some(d) = b.done {
            let _ = d.send(());
        }
    }
}

/// Runs a rewarder: grants kill rewards through the game service, in order, and tells the
/// room the player's new numbers.
pub(crate) async fn rewarder(mut rx: mpsc::UnboundedReceiver<RewardMsg>, game: Arc<dyn rsgame_game::Game>) {
    while let Some(m) = rx.recv().await {
        let j = match m {
            RewardMsg::Job(j) => j,
            RewardMsg::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let granted = game.reward(j.user, j.exp, j.coins, "kill", &j.reference).await;
        let p = match granted {
            Ok(p) => p,
            Err(e) => {
                metrics::counter!("world_reward_errors_total").increment(1);
                tracing::error!(user = j.user, reference = %j.reference, exp = j.exp, coins = j.coins, error = %e, "kill reward not granted");
                continue;
            }
        };
        // A level-up changes attack and defence: read the totals with equipment again.
        let stats = if p.level != j.level {
            match game.pack(j.user).await {
                Ok(pack) => Stats::from_pack(&pack),
                Err(_) => continue,
            }
        } else {
            Stats { hp: p.hp, max_hp: p.max_hp, level: p.level, exp: p.exp, coins: p.coins, attack: -1, defence: -1 }
        };
        let _ = j
            .room
            .send(RoomMsg::Rewarded { id: j.user as EntityId, killed: j.killed, exp: j.exp, coins: j.coins, stats })
            .await;
    }
}
