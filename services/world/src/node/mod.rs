//! The [`World`] of a game node: who is online, which room each player is in, and the gate
//! handlers for go-game's game messages and rsgame's additions (docs/protocol.md).
//!
//! Every login's token is checked and must belong to the `userId` it claims. A player is in
//! exactly one room at a time: one of the permanent scenes (1000, 1001, 1002…) or a room a
//! player created (a small scene, or a lockstep room). Rooms are the gate's `Room`s (the
//! private `room` module), held by their handles; handlers only talk to them through those. A dropped connection leaves its player in the room for
//! `world.reconnect_grace_secs`; a login within that time resumes it (a second login from
//! elsewhere does the same and tells the first connection it was replaced). Positions and
//! hit points are saved write-behind every `world.save_secs`, on logout and leaving, and by
//! [`World::flush`] at shutdown; kill rewards go through the game service's ledger at once.
//!
//! Lock order: `players` before `rooms`; neither is held across an await.
//!
//! This module holds the node's state and wiring (the [`World`], its start, the handler
//! table); each idea lives in its own submodule, with its unit tests on a real world over a
//! temporary database (`testing`):
//!
//! - `presence`: logins, resume and the reconnect grace, logouts, kicks, ended sessions.
//! - `rooms`: the room registry, moving between rooms, creating, listing, quitting, flush.
//! - `play`: moves, attacks, respawns and lockstep inputs, straight to the player's room.
//! - `chat`: world, room and private chat and its history.
//! - `friends`: relations, the friend list, online notices.
//! - `inbox`: what other game nodes send this one, and this node's presence.
//! - `changes`: the game service's changes to an online player, applied to the live player.
//! - `mail`: inbox notices pushed to the player they are for.
//! - `guild`: guild notices pushed to the members here, guild chat and its history.
//! - `matching`: the matchmaker's messages, passes and pushes, and the rooms of formed
//!   matches.
//! - `parties`: parties (create, invite, join, leave, kick), their pushes and chat.
//! - `servers`: this node's status for operators, their drain and close-room commands.
//! - `moderation`: mutes enforced, world and room chat logged for moderators, lines an
//!   operator removed dropped from history and screens.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::WorldConfig;
use rsgame_game::Game;
use rsgame_gate::{CloseReason, RouteError, RouterBuilder, Session, send_many};
use rsgame_kit::auth::{Auth, constant_time_eq, hmac_sha256};
use rsgame_kit::time::unix_ms;
use rsgame_kit::{Code, Error, Result};
use rsgame_proto::events::{SESSIONS_ENDED_TOPIC, SessionsEnded};
use rsgame_proto::pb::{ChatType, LogoutType};
use rsgame_proto::{ids, pb};
use rsgame_store::{Bus, Db};
use tokio::sync::{mpsc, oneshot};

use crate::aoi::PlayerId;
use crate::caps::Caps;
use crate::cluster::{Cluster, What};
use crate::data::SceneSpec;
use crate::lockstep::{Lockstep, LockstepConfig};
use crate::room::{
    Greet, LockstepCmd, LockstepRoom, QUEUE, RewardJob, RewardMsg, RoomEnv, SaveMsg, SceneInput, SceneJoin, SceneRoom,
    Stats,
};
use crate::scene::{Command, Scene};
use crate::store::{BLACKLIST, StoredChat, WorldStore};
use rsgame_gate::room::RoomHandle;

mod changes;
mod chat;
mod friends;
mod guild;
mod inbox;
mod mail;
mod matching;
mod moderation;
mod parties;
mod play;
mod presence;
mod rooms;
pub mod servers;
#[cfg(test)]
mod testing;

/// What the world shows of an account.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    /// Login name.
    pub username: String,
    /// Display name.
    pub nickname: String,
    /// 0 unknown, 1 male, 2 female.
    pub sex: i32,
    /// Avatar link.
    pub image: String,
}

/// Where the world reads accounts: usercenter, in process or over gRPC.
#[async_trait::async_trait]
pub trait Directory: Send + Sync {
    /// The account's public profile; [`Code::NotFound`] when there is no such account.
    async fn profile(&self, user_id: i64) -> Result<Profile>;
}

/// What a world needs.
pub struct WorldDeps {
    /// Settings.
    pub cfg: WorldConfig,
    /// The scenes (from `world.yaml`).
    pub scenes: Vec<SceneSpec>,
    /// The matchmaker's modes (from `world.yaml`).
    pub modes: Vec<crate::matchmaker::Mode>,
    /// Token checks (revocations included).
    pub auth: Auth,
    /// The game service: numbers, rewards, hit points.
    pub game: Arc<dyn Game>,
    /// Accounts.
    pub directory: Arc<dyn Directory>,
    /// The database (saved places, friends, private chat).
    pub db: Db,
    /// The other game nodes, when this is one of several (see [`crate::cluster`]).
    pub cluster: Option<Arc<Cluster>>,
    /// Where a node alone keeps its players' presence for other services (the guilds'
    /// online status), under the keys a cluster uses; a cluster keeps it itself.
    pub presence: Option<rsgame_store::Cache>,
    /// Where the usercenter announces accounts whose sessions were ended (a ban, log out
    /// everywhere) and the game service changes to players' numbers, and this node's id: it
    /// reads every announcement, as a consumer group of its own, closes those accounts'
    /// connections and applies the changes to its players.
    pub accounts: Option<(Bus, String)>,
}

/// The connection's login, so a late disconnect of a replaced connection changes nothing.
#[derive(Clone, Copy)]
struct LoginGen(u64);

/// A token bucket for chat.
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn take(&mut self, burst: u32, per_min: u32) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * f64::from(per_min) / 60.0;
        self.tokens = (self.tokens + refill).min(f64::from(burst.max(1)));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Online {
    /// None while the connection is gone and the grace period runs.
    session: Option<Session>,
    generation: u64,
    room: i64,
    /// The permanent scene a created room returns to.
    home: i64,
    profile: Profile,
    /// When its current connection logged in (ms since the epoch): a kick from another node
    /// sent before that is stale.
    since_ms: i64,
    /// Whom this player blacklisted: nothing from them reaches it.
    blocked: HashSet<i64>,
    chat: Bucket,
    /// What its client takes beyond go-game's protocol.
    caps: Caps,
}

/// A room's task, by kind. The world holds the only lasting handles: dropping a room's
/// entry ends it.
#[derive(Clone)]
enum Handle {
    Scene(RoomHandle<SceneRoom>),
    Lockstep(RoomHandle<LockstepRoom>),
}

/// Where a connection's player is, kept on its session so that moves, attacks and inputs
/// reach the room without the world's locks.
#[derive(Clone)]
struct Here(Handle);

impl Handle {
    /// Puts the player in the room: entering with `arrival` (its name, place and numbers;
    /// ignored by a lockstep room), or, without one, returning on a new connection.
    async fn enter(
        &self,
        uid: PlayerId,
        session: &Session,
        greet: Greet,
        arrival: Option<(String, f32, f32, Stats)>,
    ) -> Result<()> {
        session.set(Here(self.clone()));
        match self {
            Handle::Scene(h) => {
                let caps = session.get::<Caps>().unwrap_or_default();
                let join = match arrival {
                    Some((name, x, z, stats)) => SceneJoin::Enter { name, x, z, stats, greet, caps },
                    None => SceneJoin::Return { greet, caps },
                };
                h.join(uid.get(), session.clone(), join).await
            }
            Handle::Lockstep(h) => h.join(uid.get(), session.clone(), greet).await,
        }
    }

    async fn leave(&self, uid: PlayerId) {
        match self {
            Handle::Scene(h) => h.leave(uid.get()).await,
            Handle::Lockstep(h) => h.leave(uid.get()).await,
        }
    }

    async fn disconnected(&self, uid: PlayerId, session_id: u64) {
        match self {
            Handle::Scene(h) => h.disconnected(uid.get(), session_id).await,
            Handle::Lockstep(h) => h.disconnected(uid.get(), session_id).await,
        }
    }
}

/// What a shutdown's flush could not finish.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unflushed {
    /// Players whose latest place or hit points are not in the database.
    pub unsaved: Vec<i64>,
    /// Kill rewards not granted (player, reference).
    pub rewards: Vec<(i64, String)>,
}

impl std::fmt::Display for Unflushed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} players not saved {:?}; {} kill rewards not granted",
            self.unsaved.len(),
            self.unsaved,
            self.rewards.len()
        )
    }
}

impl std::error::Error for Unflushed {}

struct Room {
    name: String,
    /// go-game's type as created: 1 public, 2 private; rsgame: 3 lockstep, 4 private lockstep.
    kind_code: i32,
    password: Option<[u8; 32]>,
    max_users: i32,
    owner: PlayerId,
    permanent: bool,
    members: BTreeSet<PlayerId>,
    handle: Handle,
    chat: VecDeque<pb::ChatMsg>,
    /// Where players enter (a scene's respawn point) and how far around it.
    spawn: (f32, f32),
    spawn_radius: f32,
    /// A formed match's room: only its players enter, until their seats expire.
    seats: Option<Seats>,
}

/// The seats of a match's room.
struct Seats {
    players: BTreeSet<PlayerId>,
    /// ms since the epoch.
    until: i64,
    /// The match, for the record its players get when the room closes.
    record: crate::matchmaker::queue::MatchRecord,
    /// When the room opened, ms since the epoch.
    opened: i64,
}

struct Inner {
    cfg: WorldConfig,
    auth: Auth,
    game: Arc<dyn Game>,
    directory: Arc<dyn Directory>,
    store: WorldStore,
    env: RoomEnv,
    /// The scene new players start in, and its settings for created rooms.
    default_scene: i64,
    template: crate::scene::SceneConfig,
    players: Mutex<HashMap<PlayerId, Online>>,
    rooms: Mutex<BTreeMap<i64, Room>>,
    /// One lock per account, held across every change of where its player is (login,
    /// logout, grace end, room moves, kicks): those await saves and room tasks, and two of
    /// them interleaving could leave the player in a room task it is no longer listed in.
    transitions: Mutex<HashMap<PlayerId, Arc<tokio::sync::Mutex<()>>>>,
    world_chat: Mutex<VecDeque<pb::ChatMsg>>,
    next_room: AtomicI64,
    /// Every scene's layout (without monsters), for match rooms played in a copy of one.
    templates: HashMap<i32, crate::scene::SceneConfig>,
    matching: matching::Matching,
    parties: Arc<dyn crate::party::store::PartyStore>,
    party_seq: AtomicU64,
    generations: AtomicU64,
    /// Keys room passwords (never stored in the clear, compared in constant time).
    password_key: [u8; 32],
    cluster: Option<Arc<Cluster>>,
    /// Presence when alone (see [`WorldDeps::presence`]).
    presence: Option<rsgame_store::Cache>,
    /// Logins waiting for another node to confirm their player left it.
    leaving: Mutex<HashMap<PlayerId, oneshot::Sender<()>>>,
    /// The ids of the last player changes applied (in order, and as a set): a redelivered
    /// one is applied once.
    changes_seen: Mutex<(VecDeque<u64>, HashSet<u64>)>,
    /// Mutes and the chat log (see `moderation`).
    moderation: rsgame_game::moderation::Moderation,
    /// The moderators' log writer's queue (none when `world.chat_log_days` is 0).
    chat_log: Option<mpsc::Sender<rsgame_game::moderation::ChatLine>>,
    /// New game logins are refused (see `servers`).
    draining: std::sync::atomic::AtomicBool,
}

/// How long a login waits for the node the player was on to save it and let go.
const LEAVE_WAIT: Duration = Duration::from_secs(2);

/// The world of one game node. Cheap to clone.
#[derive(Clone)]
pub struct World(Arc<Inner>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data that is still consistent enough to
    // serve: the alternative is a node that refuses everyone.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A subscription to `topic` as `group`, tried again every second until the bus takes it.
async fn subscribe(bus: &Bus, topic: &str, group: &str) -> rsgame_store::Subscription {
    loop {
        match bus.subscribe(topic, group).await {
            Ok(s) => return s,
            Err(e) => {
                tracing::warn!(topic, error = %e, "bus subscription failed: retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Reads `topic` as `group` until the subscription ends: each event that decodes goes to
/// `apply`, an undecodable one is logged and dropped (`what` names them in the logs), and
/// each is acknowledged after.
async fn follow<E, F, Fut>(bus: &Bus, topic: &str, group: &str, what: &str, mut apply: F)
where
    E: prost::Message + Default,
    F: FnMut(E) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut sub = subscribe(bus, topic, group).await;
    while let Some(d) = sub.next().await {
        match E::decode(d.payload.as_slice()) {
            Ok(e) => apply(e).await,
            Err(e) => tracing::warn!(error = %e, "undecodable {what} event dropped"),
        }
        if let Err(e) = d.ack().await {
            tracing::debug!(error = %e, "{what} event not acknowledged");
        }
    }
}

fn status(ok: bool, msg: &str) -> (i32, String) {
    let status = if ok { pb::ReplyStatus::Ok } else { pb::ReplyStatus::Failed };
    (status as i32, msg.to_owned())
}

impl World {
    /// Starts the scenes' tasks, the saver and the rewarders.
    pub fn start(deps: WorldDeps) -> World {
        let WorldDeps { cfg, scenes, modes, auth, game, directory, db, cluster, presence, accounts } = deps;
        let moderation = rsgame_game::moderation::Moderation::new(db.clone());
        let chat_log = moderation::start_log(moderation.clone(), cfg.chat_log_days);
        let store = WorldStore::new(db);
        let (save_tx, save_rx) = mpsc::unbounded_channel();
        tokio::spawn(crate::room::saver(save_rx, store.clone(), game.clone()));
        let (reward_tx, reward_rx) = mpsc::unbounded_channel();
        tokio::spawn(crate::room::rewarder(reward_rx, game.clone()));
        let run = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        let run =
            hmac_sha256(run.as_bytes(), &[b"world run"])[..6].iter().map(|b| format!("{b:02x}")).collect::<String>();
        let env = RoomEnv {
            saver: save_tx,
            rewards: reward_tx,
            save_every: Duration::from_secs(cfg.save_secs.max(1)),
            run: run.into(),
        };
        let default_scene = scenes.first().map_or(1000, |s| i64::from(s.config.id));
        let mut template = scenes.first().map(|s| s.config.clone()).unwrap_or_else(|| {
            crate::data::parse(crate::data::SAMPLE, &cfg)
                .ok()
                .and_then(|v| v.into_iter().next())
                .map_or_else(|| unreachable_scene(&cfg), |s| s.config)
        });
        template.monsters.clear();
        template.pvp = false;
        let templates: HashMap<i32, crate::scene::SceneConfig> = scenes
            .iter()
            .map(|s| {
                let mut c = s.config.clone();
                c.monsters.clear();
                (c.id, c)
            })
            .collect();
        let matching = matching::Matching::new(modes, cluster.as_deref());
        let parties = parties::store(cluster.as_deref());
        let mut rooms = BTreeMap::new();
        for spec in scenes {
            let id = i64::from(spec.config.id);
            let (spawn, spawn_radius) = (spec.config.respawn, spec.spawn_radius);
            let (scene, env) = (Scene::new(spec.config), env.clone());
            let handle = rsgame_gate::room::spawn_with(|me| SceneRoom::new(scene, true, env, me), QUEUE);
            rooms.insert(
                id,
                Room {
                    name: spec.name,
                    kind_code: pb::RoomType::Public as i32,
                    password: None,
                    max_users: 0,
                    owner: PlayerId::new(0),
                    permanent: true,
                    members: BTreeSet::new(),
                    handle: Handle::Scene(handle),
                    chat: VecDeque::new(),
                    spawn,
                    spawn_radius,
                    seats: None,
                },
            );
        }
        let mut password_key = [0u8; 32];
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        password_key.copy_from_slice(&hmac_sha256(seed.as_bytes(), &[b"room passwords"]));
        let world = World(Arc::new(Inner {
            cfg,
            auth,
            game,
            directory,
            store,
            env,
            default_scene,
            template,
            players: Mutex::new(HashMap::new()),
            rooms: Mutex::new(rooms),
            transitions: Mutex::new(HashMap::new()),
            world_chat: Mutex::new(VecDeque::new()),
            next_room: AtomicI64::new(10_000),
            templates,
            matching,
            parties,
            party_seq: AtomicU64::new(1),
            generations: AtomicU64::new(1),
            password_key,
            presence: if cluster.is_some() { None } else { presence },
            cluster,
            leaving: Mutex::new(HashMap::new()),
            changes_seen: Mutex::new((VecDeque::new(), HashSet::new())),
            moderation,
            chat_log,
            draining: false.into(),
        }));
        if let Some(c) = world.0.cluster.clone() {
            tokio::spawn(world.clone().follow_cluster(c.clone()));
            tokio::spawn(world.clone().refresh_presence(c));
        }
        if world.0.presence.is_some() {
            tokio::spawn(world.clone().refresh_local_presence());
        }
        if let Some((bus, node)) = accounts {
            tokio::spawn(world.clone().follow_accounts(bus.clone(), node.clone()));
            tokio::spawn(world.clone().follow_changes(bus.clone(), node.clone()));
            tokio::spawn(world.clone().follow_mail(bus.clone(), node.clone()));
            tokio::spawn(world.clone().follow_removals(bus.clone(), node.clone()));
            let status_cache = world.0.cluster.as_ref().map(|c| c.cache().clone()).or_else(|| world.0.presence.clone());
            if let Some(cache) = status_cache {
                tokio::spawn(world.clone().follow_commands(bus.clone(), node.clone(), cache.clone()));
                tokio::spawn(world.clone().publish_status(cache, node.clone()));
            }
            tokio::spawn(world.clone().follow_guilds(bus, node));
        }
        if world.0.matching.has_modes() {
            tokio::spawn(world.clone().run_matchmaker());
        }
        world
    }

    /// Registers the handlers of every world message and the "log in first" rule.
    pub fn register(&self, r: &mut RouterBuilder) -> std::result::Result<(), RouteError> {
        r.before(|session, id| {
            if session.user().is_none() && id != ids::GAME_LOGIN && id != ids::PING {
                return Err(Error::msg(Code::Unauthorized, "log in first (GameLogin)"));
            }
            Ok(())
        });
        macro_rules! route {
            ($id:expr, $method:ident) => {{
                let w = self.clone();
                r.route($id, move |s, m| {
                    let w = w.clone();
                    async move { w.$method(s, m).await }
                })?;
            }};
        }
        macro_rules! route_sync {
            ($id:expr, $method:ident) => {{
                let w = self.clone();
                r.route_sync($id, move |s, m| w.$method(s, m))?;
            }};
        }
        route!(ids::GAME_LOGIN, login);
        route!(ids::LOGOUT, logout);
        route_sync!(ids::MOVE, on_move);
        route_sync!(ids::ATTACK, attack);
        route_sync!(ids::RESPAWN, respawn);
        route!(ids::ENTER_ROOM, enter_room);
        route!(ids::CREATE_ROOM, create_room);
        route!(ids::ROOM_LIST, room_list);
        route!(ids::QUIT_ROOM, quit_room);
        route!(ids::CHAT_MSG, chat);
        route!(ids::CHAT_HISTORY, chat_history);
        route!(ids::ADD_FRIEND, add_friend);
        route!(ids::MY_FRIEND, my_friends);
        route!(ids::LOCKSTEP_INPUT, lockstep_input);
        route!(ids::LOCKSTEP_SYNC, lockstep_sync);
        route!(ids::MATCH_ADD, match_add);
        route!(ids::MATCH_REMOVE, match_remove);
        route!(ids::PARTY_CREATE, party_create);
        route!(ids::PARTY_INVITE, party_invite);
        route!(ids::PARTY_JOIN, party_join);
        route!(ids::PARTY_LEAVE, party_leave);
        route!(ids::PARTY_KICK, party_kick);
        Ok(())
    }

    /// Players online (a dropped one inside its grace period included).
    pub fn online(&self) -> usize {
        lock(&self.0.players).len()
    }

    /// Waits for, and holds, the account's transition lock.
    async fn transition(&self, uid: PlayerId) -> tokio::sync::OwnedMutexGuard<()> {
        let m = lock(&self.0.transitions).entry(uid).or_default().clone();
        m.lock_owned().await
    }

    /// The user bound to a logged-in session.
    fn me(session: &Session) -> Result<PlayerId> {
        session.user().map(PlayerId::new).ok_or_else(|| Error::msg(Code::Unauthorized, "log in first (GameLogin)"))
    }

    fn user_info(user_id: i64, profile: &Profile, plat: &str, online: bool, room: i64) -> pb::UserInfo {
        pb::UserInfo {
            user_id,
            username: profile.username.clone(),
            nickname: profile.nickname.clone(),
            sex: profile.sex,
            image: profile.image.clone(),
            plat: plat.to_owned(),
            online: i32::from(online),
            room_id: room,
            position: None,
        }
    }
}

fn chat_msg(m: StoredChat) -> pb::ChatMsg {
    pb::ChatMsg {
        user_id: m.from,
        obj_id: m.to,
        chat_type: ChatType::Private as i32,
        msg_type: m.msg_type,
        msg: m.msg,
        url: m.url,
        send_time: m.sent_at,
    }
}

/// A last-resort scene template (the sample always parses; this keeps start-up total).
fn unreachable_scene(cfg: &WorldConfig) -> crate::scene::SceneConfig {
    crate::scene::SceneConfig {
        id: 1000,
        bounds: crate::aoi::Bounds { min_x: 85.0, min_z: 75.0, max_x: 410.0, max_z: 400.0 },
        cell: 32.5,
        go_game_grid: Some((10, 20)),
        tick_hz: cfg.tick_hz.max(1),
        max_speed: cfg.max_speed,
        monsters: Vec::new(),
        attack_range: cfg.attack_range,
        attack_cooldown: 1,
        pvp: false,
        respawn: (185.0, 159.0),
        safe_radius: 0.0,
        regen_per_sec: 0,
        regen_after_secs: 5,
        position_every: cfg.position_every_ticks.max(1),
        crowd: cfg.crowd(),
    }
}
