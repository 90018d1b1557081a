//! The [`World`] of a game node: who is online, which room each player is in, and the gate
//! handlers for go-game's game messages and rsgame's additions (docs/protocol.md).
//!
//! Every login's token is checked and must belong to the `userId` it claims. A player is in
//! exactly one room at a time: one of the permanent scenes (1000, 1001, 1002…) or a room a
//! player created (a small scene, or a lockstep room). Rooms are tasks (the private `room` module);
//! handlers only send them messages. A dropped connection leaves its player in the room for
//! `world.reconnect_grace_secs`; a login within that time resumes it (a second login from
//! elsewhere does the same and tells the first connection it was replaced). Positions and
//! hit points are saved write-behind every `world.save_secs`, on logout and leaving, and by
//! [`World::flush`] at shutdown; kill rewards go through the game service's ledger at once.
//!
//! Lock order: `players` before `rooms`; neither is held across an await.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use prost::Message as _;
use rsgame_game::Game;
use rsgame_gate::{CloseReason, RouteError, RouterBuilder, Session, send_many};
use rsgame_kit::auth::{Auth, constant_time_eq, hmac_sha256};
use rsgame_kit::config::WorldConfig;
use rsgame_kit::time::unix_ms;
use rsgame_kit::{Code, Error, Result};
use rsgame_proto::events::{SESSIONS_ENDED_TOPIC, SessionsEnded};
use rsgame_proto::pb::{ChatType, LogoutType};
use rsgame_proto::{ids, pb};
use rsgame_store::{Bus, Db};
use tokio::sync::{mpsc, oneshot};

use crate::aoi::EntityId;
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
    /// Where the usercenter announces accounts whose sessions were ended (a ban, log out
    /// everywhere), and this node's id: it reads every announcement, as a consumer group of
    /// its own, and closes those accounts' connections.
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
        uid: i64,
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
                h.join(uid, session.clone(), join).await
            }
            Handle::Lockstep(h) => h.join(uid, session.clone(), greet).await,
        }
    }

    async fn leave(&self, uid: i64) {
        match self {
            Handle::Scene(h) => h.leave(uid).await,
            Handle::Lockstep(h) => h.leave(uid).await,
        }
    }

    async fn disconnected(&self, uid: i64, session_id: u64) {
        match self {
            Handle::Scene(h) => h.disconnected(uid, session_id).await,
            Handle::Lockstep(h) => h.disconnected(uid, session_id).await,
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
    owner: i64,
    permanent: bool,
    members: BTreeSet<i64>,
    handle: Handle,
    chat: VecDeque<pb::ChatMsg>,
    /// Where players enter (a scene's respawn point) and how far around it.
    spawn: (f32, f32),
    spawn_radius: f32,
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
    players: Mutex<HashMap<i64, Online>>,
    rooms: Mutex<BTreeMap<i64, Room>>,
    /// One lock per account, held across every change of where its player is (login,
    /// logout, grace end, room moves, kicks): those await saves and room tasks, and two of
    /// them interleaving could leave the player in a room task it is no longer listed in.
    transitions: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    world_chat: Mutex<VecDeque<pb::ChatMsg>>,
    next_room: AtomicI64,
    generations: AtomicU64,
    /// Keys room passwords (never stored in the clear, compared in constant time).
    password_key: [u8; 32],
    cluster: Option<Arc<Cluster>>,
    /// Logins waiting for another node to confirm their player left it.
    leaving: Mutex<HashMap<i64, oneshot::Sender<()>>>,
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

fn status(ok: bool, msg: &str) -> (i32, String) {
    let status = if ok { pb::ReplyStatus::Ok } else { pb::ReplyStatus::Failed };
    (status as i32, msg.to_owned())
}

impl World {
    /// Starts the scenes' tasks, the saver and the rewarders.
    pub fn start(deps: WorldDeps) -> World {
        let WorldDeps { cfg, scenes, auth, game, directory, db, cluster, accounts } = deps;
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
                    owner: 0,
                    permanent: true,
                    members: BTreeSet::new(),
                    handle: Handle::Scene(handle),
                    chat: VecDeque::new(),
                    spawn,
                    spawn_radius,
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
            generations: AtomicU64::new(1),
            password_key,
            cluster,
            leaving: Mutex::new(HashMap::new()),
        }));
        if let Some(c) = world.0.cluster.clone() {
            tokio::spawn(world.clone().follow_cluster(c.clone()));
            tokio::spawn(world.clone().refresh_presence(c));
        }
        if let Some((bus, node)) = accounts {
            tokio::spawn(world.clone().follow_accounts(bus, node));
        }
        world
    }

    /// Closes the connections of accounts whose sessions the usercenter ended, until the bus
    /// subscription ends.
    async fn follow_accounts(self, bus: Bus, node: String) {
        let mut sub = subscribe(&bus, SESSIONS_ENDED_TOPIC, &node).await;
        while let Some(d) = sub.next().await {
            match SessionsEnded::decode(d.payload.as_slice()) {
                Ok(e) => self.end_sessions(e.user_id, e.before_ms).await,
                Err(e) => tracing::warn!(error = %e, "undecodable ended-sessions event dropped"),
            }
            if let Err(e) = d.ack().await {
                tracing::debug!(error = %e, "ended-sessions event not acknowledged");
            }
        }
    }

    /// Ends the stay of `uid` if it logged in before `before_ms`: its token was issued before
    /// its sessions were ended. A login after that (with a newer token) stays.
    async fn end_sessions(&self, uid: i64, before_ms: i64) {
        let t = self.transition(uid).await;
        let gone = {
            let mut players = lock(&self.0.players);
            match players.get(&uid) {
                Some(p) if p.since_ms < before_ms => players.remove(&uid),
                _ => None,
            }
        };
        let Some(p) = gone else { return };
        if let Some(s) = &p.session {
            s.push(ids::reply(ids::LOGOUT), &pb::LogoutResp { r#type: LogoutType::Ended as i32, user_id: uid });
            s.close(CloseReason::SessionEnded);
        }
        self.leave_node(uid, p.room).await;
        drop(t);
        self.notify_friends(uid, &p.profile, false, Some(&p.blocked)).await;
        tracing::info!(user = uid, "player's session ended: the account's sessions were ended");
        metrics::gauge!("world_online_players").set(self.online() as f64);
    }

    /// The rooms players created on this node (id, name), for the node directory.
    pub fn created_rooms(&self) -> Vec<(i64, String)> {
        lock(&self.0.rooms).iter().filter(|(_, r)| !r.permanent).map(|(id, r)| (*id, r.name.clone())).collect()
    }

    /// Handles what other nodes send, until the bus subscription ends.
    async fn follow_cluster(self, cluster: Arc<Cluster>) {
        let mut sub = subscribe(cluster.bus(), crate::cluster::TOPIC, cluster.node()).await;
        tracing::info!(node = cluster.node(), "following the other game nodes");
        while let Some(d) = sub.next().await {
            if let Some((what, sent_at, from)) = cluster.decode(&d.payload) {
                self.on_cluster(what, sent_at, from).await;
            }
            if let Err(e) = d.ack().await {
                tracing::debug!(error = %e, "cluster message not acknowledged");
            }
        }
    }

    /// Keeps the presence of every player on this node alive in the shared cache.
    async fn refresh_presence(self, cluster: Arc<Cluster>) {
        let mut tick = tokio::time::interval(cluster.presence_ttl() / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let here: Vec<i64> = lock(&self.0.players).keys().copied().collect();
            for uid in here {
                // Still here (not kicked to another node since the list was taken), so the
                // refresh cannot point presence back at this node wrongly.
                if lock(&self.0.players).contains_key(&uid) {
                    cluster.arrived(uid).await;
                }
            }
        }
    }

    /// One message from another node.
    async fn on_cluster(&self, what: What, sent_at: i64, from: String) {
        match what {
            What::World(m) => {
                let reply = pb::ChatMsgResp { msg_list: vec![m.clone()] };
                Self::remember(&mut lock(&self.0.world_chat), &m, self.0.cfg.chat_history);
                let sessions: Vec<Session> = lock(&self.0.players)
                    .values()
                    .filter(|p| !p.blocked.contains(&m.user_id))
                    .filter_map(|p| p.session.clone())
                    .collect();
                send_many(&sessions, ids::reply(ids::CHAT_MSG), &reply);
            }
            What::Private { to, stored, msg } => {
                let live = lock(&self.0.players)
                    .get(&to)
                    .filter(|p| !p.blocked.contains(&msg.user_id))
                    .and_then(|p| p.session.clone());
                let reply = pb::ChatMsgResp { msg_list: vec![msg] };
                if live.is_some_and(|s| s.send(ids::reply(ids::CHAT_MSG), &reply).is_ok())
                    && let Err(e) = self.0.store.mark_delivered(&[stored]).await
                {
                    tracing::warn!(user = to, error = %e, "private message not marked delivered: it comes again at login");
                }
            }
            What::Friend { user, info, followers, blocked } => {
                let sessions: Vec<Session> = {
                    let players = lock(&self.0.players);
                    followers
                        .iter()
                        .filter(|f| !blocked.contains(f))
                        .filter_map(|f| players.get(f))
                        .filter(|p| p.caps.has(Caps::FRIENDS) && !p.blocked.contains(&user))
                        .filter_map(|p| p.session.clone())
                        .collect()
                };
                send_many(&sessions, ids::FRIEND_STATUS, &info);
            }
            What::Kick { user } => {
                self.kick_here(user, sent_at).await;
                // Saved (or never here): the node that asked may load the place now.
                if let Some(c) = &self.0.cluster {
                    c.publish(What::Left { user, to: from }).await;
                }
            }
            What::Left { user, to } => {
                if self.0.cluster.as_ref().is_some_and(|c| c.node() == to)
                    && let Some(waiting) = lock(&self.0.leaving).remove(&user)
                {
                    // The login stopped waiting (it timed out): it loaded the last save anyway.
                    let _ = waiting.send(());
                }
            }
        }
    }

    /// Ends the stay of `uid` on this node: it logged in on another one at `sent_at`. A
    /// login here after that (the player came back) is newer and stays.
    async fn kick_here(&self, uid: i64, sent_at: i64) {
        let t = self.transition(uid).await;
        let gone = {
            let mut players = lock(&self.0.players);
            match players.get(&uid) {
                Some(p) if p.since_ms <= sent_at => players.remove(&uid),
                _ => None,
            }
        };
        let Some(p) = gone else { return };
        if let Some(s) = &p.session {
            s.push(ids::reply(ids::LOGOUT), &pb::LogoutResp { r#type: LogoutType::Elsewhere as i32, user_id: uid });
            s.close(CloseReason::Kicked);
        }
        self.leave_room(uid, p.room).await;
        drop(t);
        tracing::info!(user = uid, "player moved to another node");
        metrics::gauge!("world_online_players").set(self.online() as f64);
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
        route!(ids::GAME_LOGIN, login);
        route!(ids::LOGOUT, logout);
        route!(ids::MOVE, on_move);
        route!(ids::ATTACK, attack);
        route!(ids::RESPAWN, respawn);
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
        Ok(())
    }

    /// Players online (a dropped one inside its grace period included).
    pub fn online(&self) -> usize {
        lock(&self.0.players).len()
    }

    /// Grants the kill rewards queued so far, saves every player's place and hit points, and
    /// waits for the writes (graceful shutdown). Reports, by player, what could not be done.
    pub async fn flush(&self) -> std::result::Result<(), Unflushed> {
        let mut undone = Unflushed::default();
        // Kill rewards first (a level-up changes hit points); then every scene saves.
        let (done, granted) = oneshot::channel();
        let failed: Vec<RewardJob> = match self.0.env.rewards.send(RewardMsg::Flush(done)) {
            Ok(()) => granted.await.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        undone.rewards = failed.into_iter().map(|j| (j.user, j.reference)).collect();
        let scenes: Vec<RoomHandle<SceneRoom>> = lock(&self.0.rooms)
            .values()
            .filter_map(|r| match &r.handle {
                Handle::Scene(h) => Some(h.clone()),
                Handle::Lockstep(_) => None,
            })
            .collect();
        for h in scenes {
            // An ended scene has no players left to save.
            let _ = h.call(|r, _| r.save(true)).await;
        }
        undone.unsaved = self.saved().await;
        if undone == Unflushed::default() { Ok(()) } else { Err(undone) }
    }

    /// Waits until everything queued for the saver so far is written or given up on;
    /// returns the players whose latest state is not in the database.
    async fn saved(&self) -> Vec<i64> {
        let (done, wait) = oneshot::channel();
        if self.0.env.saver.send(SaveMsg::Barrier(done)).is_err() {
            return Vec::new();
        }
        wait.await.unwrap_or_default()
    }

    /// The gate's disconnect hook: the player stays for the grace period, then leaves.
    pub fn on_disconnect(&self, session: &Session, reason: CloseReason) {
        let (Some(uid), Some(LoginGen(generation))) = (session.user(), session.get::<LoginGen>()) else { return };
        // At shutdown the flush saves everyone; nobody is leaving.
        if reason == CloseReason::Shutdown {
            return;
        }
        let world = self.clone();
        let grace = Duration::from_secs(self.0.cfg.reconnect_grace_secs);
        tracing::debug!(user = uid, reason = ?reason, "player dropped; waiting for a reconnect");
        let (session_id, here) = (session.id(), session.get::<Here>());
        tokio::spawn(async move {
            {
                let _t = world.transition(uid).await;
                {
                    let mut players = lock(&world.0.players);
                    let Some(p) = players.get_mut(&uid).filter(|p| p.generation == generation) else { return };
                    p.session = None;
                }
                // The one place a close is seen: the room keeps the player, away, until it
                // comes back or the grace ends.
                if let Some(Here(h)) = here {
                    h.disconnected(uid, session_id).await;
                }
            }
            tokio::time::sleep(grace).await;
            world.expire(uid, generation).await;
        });
    }

    /// Ends a dropped player's stay if it did not come back.
    async fn expire(&self, uid: i64, generation: u64) {
        let _t = self.transition(uid).await;
        let gone = {
            let mut players = lock(&self.0.players);
            match players.get(&uid) {
                Some(p) if p.generation == generation && p.session.is_none() => players.remove(&uid),
                _ => None,
            }
        };
        if let Some(p) = gone {
            tracing::debug!(user = uid, "reconnect grace over: player leaves");
            self.leave_node(uid, p.room).await;
            self.notify_friends(uid, &p.profile, false, Some(&p.blocked)).await;
        }
    }

    /// Waits for, and holds, the account's transition lock.
    async fn transition(&self, uid: i64) -> tokio::sync::OwnedMutexGuard<()> {
        let m = lock(&self.0.transitions).entry(uid).or_default().clone();
        m.lock_owned().await
    }

    fn room_handle(&self, room: i64) -> Option<Handle> {
        lock(&self.0.rooms).get(&room).map(|r| r.handle.clone())
    }

    /// Ends a stay on this node: out of `room` (saved), and no longer present here for the
    /// cluster.
    async fn leave_node(&self, uid: i64, room: i64) {
        self.leave_room(uid, room).await;
        if let Some(c) = &self.0.cluster {
            c.left(uid).await;
        }
    }

    /// Takes the player out of `room` and waits until its state is saved; closes a created
    /// room left empty.
    async fn leave_room(&self, uid: i64, room: i64) {
        let (handle, close) = {
            let mut rooms = lock(&self.0.rooms);
            let Some(r) = rooms.get_mut(&room) else { return };
            r.members.remove(&uid);
            let close = !r.permanent && r.members.is_empty();
            let handle = r.handle.clone();
            if close {
                rooms.remove(&room);
            }
            (handle, close)
        };
        handle.leave(uid).await;
        if let Handle::Scene(_) = handle {
            // The scene queued the player's last state at its leave; the saver writes in
            // order, so once this answers, that state is written (or reported unsaved).
            let unsaved = self.saved().await;
            if unsaved.contains(&uid) {
                tracing::error!(user = uid, room, "player left with its state unsaved");
            }
        }
        if close {
            // The last handle goes with `handle`: the room's task ends.
            metrics::gauge!("world_rooms").decrement(1.0);
        }
    }

    /// The user bound to a logged-in session.
    fn me(session: &Session) -> Result<i64> {
        session.user().ok_or_else(|| Error::msg(Code::Unauthorized, "log in first (GameLogin)"))
    }

    /// The scene the connection's player stands in (moves in a lockstep room are refused).
    fn my_scene(session: &Session) -> Result<RoomHandle<SceneRoom>> {
        match session.get::<Here>() {
            Some(Here(Handle::Scene(h))) => Ok(h),
            _ => Err(Error::msg(Code::Failed, "not in a scene")),
        }
    }

    fn user_info(uid: i64, profile: &Profile, plat: &str, online: bool, room: i64) -> pb::UserInfo {
        pb::UserInfo {
            user_id: uid,
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

    /// Where a new player appears: within `radius` of the scene's respawn point, spread by
    /// account so a crowd does not stack on one spot (go-game: 160..210, 134..184). The
    /// scene clamps it to its bounds.
    fn spawn_point(uid: i64, at: (f32, f32), radius: f32) -> (f32, f32) {
        let h = (uid as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let unit = |bits: u64| (bits % 10_001) as f32 / 10_000.0 * 2.0 - 1.0;
        (at.0 + unit(h >> 7) * radius, at.1 + unit(h >> 35) * radius)
    }

    async fn login(self, session: Session, msg: pb::GameLogin) -> Result<()> {
        if session.user().is_some() {
            return Err(Error::msg(Code::Forbidden, "this connection is logged in already"));
        }
        let claims = self.0.auth.check(&msg.token).await.map_err(|e| {
            tracing::debug!(session = session.id(), reason = %e, "game login refused");
            Error::new(Code::TokenExpired)
        })?;
        if claims.user_id != msg.user_id {
            tracing::warn!(session = session.id(), claimed = msg.user_id, "game login with another account's token");
            return Err(Error::msg(Code::Forbidden, "the token belongs to another account"));
        }
        let uid = claims.user_id;
        if let Some(c) = &self.0.cluster
            && c.claim(uid).await.is_some()
        {
            // On another node: that stay ends (its connection hears "logged in elsewhere"),
            // and its place is saved before this node loads it, so moving between nodes loses
            // nothing; a node that does not answer in time (dead) left its last save.
            let (tx, rx) = oneshot::channel();
            lock(&self.0.leaving).insert(uid, tx);
            c.publish(What::Kick { user: uid }).await;
            if tokio::time::timeout(LEAVE_WAIT, rx).await.is_err() {
                tracing::debug!(user = uid, "the previous node did not confirm the player left");
            }
            lock(&self.0.leaving).remove(&uid);
        }
        let profile = self.0.directory.profile(uid).await?;
        let pack = self.0.game.pack(uid).await?;
        let place = self.0.store.place(uid).await?;
        let blocked: HashSet<i64> =
            self.0.store.relations(uid, BLACKLIST, 10_000).await?.into_iter().map(|(id, _)| id).collect();
        let generation = self.0.generations.fetch_add(1, Ordering::Relaxed);
        // A client that logs in as go-game's does is served exactly go-game's protocol.
        let caps = Caps::parse(&msg.param);
        session.set(caps);
        session.set_error_frames(caps.has(Caps::ERRORS));
        let _t = self.transition(uid).await;

        enum Plan {
            Resume { old: Option<Session>, room: i64 },
            Fresh { room: i64, x: f32, z: f32 },
        }
        let plan = {
            let mut players = lock(&self.0.players);
            if let Some(p) = players.get_mut(&uid) {
                let old = p.session.replace(session.clone());
                p.caps = caps;
                p.generation = generation;
                p.since_ms = unix_ms();
                p.blocked = blocked;
                Plan::Resume { old, room: p.room }
            } else {
                let mut rooms = lock(&self.0.rooms);
                // The saved scene if it still exists, else the first one at its start point.
                let (room, x, z) = match place {
                    Some(pl) if rooms.get(&i64::from(pl.scene_id)).is_some_and(|r| r.permanent) => {
                        (i64::from(pl.scene_id), pl.x, pl.z)
                    }
                    _ => {
                        let (spawn, radius) = rooms
                            .get(&self.0.default_scene)
                            .map_or(((185.0, 159.0), 25.0), |r| (r.spawn, r.spawn_radius));
                        let (x, z) = World::spawn_point(uid, spawn, radius);
                        (self.0.default_scene, x, z)
                    }
                };
                if let Some(r) = rooms.get_mut(&room) {
                    r.members.insert(uid);
                }
                drop(rooms);
                players.insert(
                    uid,
                    Online {
                        session: Some(session.clone()),
                        generation,
                        room,
                        home: room,
                        profile: profile.clone(),
                        since_ms: unix_ms(),
                        blocked,
                        chat: Bucket { tokens: f64::from(self.0.cfg.chat_burst), last: Instant::now() },
                        caps,
                    },
                );
                Plan::Fresh { room, x, z }
            }
        };
        session.bind_user(uid);
        session.set(LoginGen(generation));
        match plan {
            Plan::Resume { old, room } => {
                if let Some(old) = old.filter(|o| o.id() != session.id()) {
                    old.push(
                        ids::reply(ids::LOGOUT),
                        &pb::LogoutResp { r#type: LogoutType::Elsewhere as i32, user_id: uid },
                    );
                    old.close(CloseReason::Kicked);
                }
                tracing::info!(user = uid, room, "player resumed");
                let info = World::user_info(uid, &profile, &msg.plat, true, room);
                if let Some(h) = self.room_handle(room) {
                    h.enter(uid, &session, Greet::Login(info), None).await?;
                }
            }
            Plan::Fresh { room, x, z } => {
                tracing::info!(user = uid, room, "player entered the world");
                let info = World::user_info(uid, &profile, &msg.plat, true, room);
                if let Some(h) = self.room_handle(room) {
                    let name =
                        if profile.nickname.is_empty() { profile.username.clone() } else { profile.nickname.clone() };
                    // UserInfo first: what follows (offline messages) comes after it.
                    h.enter(uid, &session, Greet::Login(info), Some((name, x, z, Stats::from_pack(&pack)))).await?;
                }
                self.notify_friends(uid, &profile, true, None).await;
            }
        }
        metrics::gauge!("world_online_players").set(self.online() as f64);
        if let Some(c) = &self.0.cluster {
            c.arrived(uid).await;
        }
        self.deliver_offline(uid, &session).await;
        Ok(())
    }

    /// Private messages that arrived while the player was away.
    async fn deliver_offline(&self, uid: i64, session: &Session) {
        loop {
            let waiting = match self.0.store.undelivered(uid, 100).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(user = uid, error = %e, "offline messages not loaded");
                    return;
                }
            };
            if waiting.is_empty() {
                return;
            }
            let ids_: Vec<i64> = waiting.iter().map(|m| m.id).collect();
            let msg_list = waiting.into_iter().map(chat_msg).collect();
            if session.send(ids::reply(ids::CHAT_MSG), &pb::ChatMsgResp { msg_list }).is_err() {
                return; // gone again: they stay undelivered
            }
            if let Err(e) = self.0.store.mark_delivered(&ids_).await {
                tracing::warn!(user = uid, error = %e, "offline messages not marked delivered");
                return;
            }
            if ids_.len() < 100 {
                return;
            }
        }
    }

    /// Tells the online players who have `uid` as a friend, and whom `uid` has as a friend in
    /// turn, that it came or went. Consent runs both ways: adding someone is one-sided, so
    /// it must not let the adder watch them.
    async fn notify_friends(&self, uid: i64, profile: &Profile, online: bool, blocked: Option<&HashSet<i64>>) {
        let followers = match self.mutual_friends(uid).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(user = uid, error = %e, "friends not told");
                return;
            }
        };
        let mine = match blocked {
            Some(b) => b.clone(),
            None => lock(&self.0.players).get(&uid).map(|p| p.blocked.clone()).unwrap_or_default(),
        };
        let info = World::user_info(uid, profile, "", online, 0);
        if let Some(c) = &self.0.cluster {
            let what = What::Friend {
                user: uid,
                info: info.clone(),
                followers: followers.clone(),
                blocked: mine.iter().copied().collect(),
            };
            c.publish(what).await;
        }
        let sessions: Vec<Session> = {
            let players = lock(&self.0.players);
            // Not to those it blacklisted, nor to those who blacklisted it.
            followers
                .iter()
                .filter(|f| !mine.contains(f))
                .filter_map(|f| players.get(f))
                .filter(|p| p.caps.has(Caps::FRIENDS) && !p.blocked.contains(&uid))
                .filter_map(|p| p.session.clone())
                .collect()
        };
        send_many(&sessions, ids::FRIEND_STATUS, &info);
    }

    async fn logout(self, session: Session, _msg: pb::Logout) -> Result<()> {
        let uid = World::me(&session)?;
        let t = self.transition(uid).await;
        let gone = {
            let mut players = lock(&self.0.players);
            match session.get::<LoginGen>() {
                Some(LoginGen(g)) if players.get(&uid).is_some_and(|p| p.generation == g) => players.remove(&uid),
                _ => None,
            }
        };
        if let Some(p) = gone {
            self.leave_node(uid, p.room).await;
            drop(t);
            self.notify_friends(uid, &p.profile, false, Some(&p.blocked)).await;
            tracing::info!(user = uid, "player logged out");
        }
        metrics::gauge!("world_online_players").set(self.online() as f64);
        session.push(ids::reply(ids::LOGOUT), &pb::LogoutResp { r#type: LogoutType::Quit as i32, user_id: uid });
        session.close(CloseReason::Kicked);
        Ok(())
    }

    async fn on_move(self, session: Session, msg: pb::Move) -> Result<()> {
        let uid = World::me(&session)?;
        let site = msg.site.ok_or_else(|| Error::bad_param("site: required"))?;
        World::my_scene(&session)?
            .tell(uid, SceneInput::Cmd(Command::Move { id: uid as EntityId, x: site.x, z: site.z }))
    }

    async fn attack(self, session: Session, msg: pb::Attack) -> Result<()> {
        let uid = World::me(&session)?;
        if msg.obj_id <= 0 {
            return Err(Error::bad_param("objId: the target's id"));
        }
        let cmd = Command::Attack { id: uid as EntityId, target: msg.obj_id as EntityId };
        World::my_scene(&session)?.tell(uid, SceneInput::Cmd(cmd))
    }

    async fn respawn(self, session: Session, _msg: pb::Respawn) -> Result<()> {
        let uid = World::me(&session)?;
        World::my_scene(&session)?.tell(uid, SceneInput::Cmd(Command::Respawn { id: uid as EntityId }))
    }

    fn room_resp(&self, id: i64, r: &Room, players: &HashMap<i64, Online>, viewer: i64) -> pb::EnterRoomResp {
        // Scenes hold crowds: their member list is what the AOI shows, not this reply. Who is
        // in a private room is for its members only.
        let user_list = if r.permanent || (r.password.is_some() && !r.members.contains(&viewer)) {
            Vec::new()
        } else {
            r.members
                .iter()
                .map(|m| {
                    let p = players.get(m);
                    let profile = p.map(|p| p.profile.clone()).unwrap_or_default();
                    World::user_info(*m, &profile, "", p.is_some_and(|p| p.session.is_some()), id)
                })
                .collect()
        };
        pb::EnterRoomResp {
            room_id: id,
            r#type: r.kind_code,
            name: r.name.clone(),
            max_user: r.max_users,
            password: String::new(),
            image: String::new(),
            user_list,
        }
    }

    fn hash_password(&self, password: &str) -> [u8; 32] {
        hmac_sha256(&self.0.password_key, &[password.as_bytes()])
    }

    /// Moves a player into `target` (checked: exists, room for it, password), saving it out
    /// of the room it leaves. The caller holds the player's transition lock.
    async fn move_to(&self, uid: i64, session: &Session, target: i64, password: Option<&str>) -> Result<()> {
        // Everything that can fail on the way comes first, before the player is touched.
        let is_scene = lock(&self.0.rooms)
            .get(&target)
            .map(|r| matches!(r.handle, Handle::Scene(_)))
            .ok_or_else(|| Error::msg(Code::NotFound, "no such room"))?;
        let stats = if is_scene { Stats::from_pack(&self.0.game.pack(uid).await?) } else { Stats::default() };
        let (from, resp, handle, spawn) = {
            let mut players = lock(&self.0.players);
            let p = players.get(&uid).ok_or_else(|| Error::new(Code::Unauthorized))?;
            let from = p.room;
            if from == target {
                return Err(Error::msg(Code::Failed, "already in this room"));
            }
            let mut rooms = lock(&self.0.rooms);
            let r = rooms.get(&target).ok_or_else(|| Error::msg(Code::NotFound, "no such room"))?;
            if let Some(expected) = &r.password {
                let given = password.map(|p| self.hash_password(p)).unwrap_or_default();
                if !constant_time_eq(&given, expected) {
                    return Err(Error::msg(Code::Forbidden, "wrong room password"));
                }
            }
            if r.max_users > 0 && r.members.len() >= r.max_users as usize {
                return Err(Error::msg(Code::Forbidden, "the room is full"));
            }
            let r = rooms.get_mut(&target).ok_or_else(|| Error::new(Code::NotFound))?;
            r.members.insert(uid);
            let (handle, spawn, permanent) = (r.handle.clone(), (r.spawn, r.spawn_radius), r.permanent);
            let p = players.get_mut(&uid).ok_or_else(|| Error::new(Code::Unauthorized))?;
            p.room = target;
            if permanent {
                p.home = target;
            }
            let resp = rooms.get(&target).map(|r| self.room_resp(target, r, &players, uid)).unwrap_or_default();
            (from, resp, handle, spawn)
        };
        self.leave_room(uid, from).await;
        let name = lock(&self.0.players).get(&uid).map(|p| p.profile.nickname.clone()).unwrap_or_default();
        let (x, z) = World::spawn_point(uid, spawn.0, spawn.1);
        handle.enter(uid, session, Greet::Enter(resp), Some((name, x, z, stats))).await
    }

    async fn enter_room(self, session: Session, msg: pb::EnterRoom) -> Result<()> {
        let uid = World::me(&session)?;
        let _t = self.transition(uid).await;
        let password = (!msg.password.is_empty()).then_some(msg.password.as_str());
        self.move_to(uid, &session, msg.room_id, password).await
    }

    async fn create_room(self, session: Session, msg: pb::CreateRoom) -> Result<()> {
        let uid = World::me(&session)?;
        let name = msg.name.trim();
        if name.is_empty() || name.chars().count() > 32 || name.chars().any(char::is_control) {
            return Err(Error::bad_param("name: 1 to 32 characters"));
        }
        let (lockstep, private) = match pb::RoomType::try_from(msg.r#type) {
            Ok(pb::RoomType::Public) => (false, false),
            Ok(pb::RoomType::Private) => (false, true),
            Ok(pb::RoomType::Lockstep) => (true, false),
            Ok(pb::RoomType::PrivateLockstep) => (true, true),
            _ => return Err(Error::bad_param("type: 1 public, 2 private, 3 lockstep, 4 private lockstep")),
        };
        if private && (msg.password.is_empty() || msg.password.len() > 64) {
            return Err(Error::bad_param("password: 1 to 64 characters for a private room"));
        }
        let cap = self.0.cfg.max_room_users.max(2);
        let max_users = if msg.max_user <= 0 { cap } else { msg.max_user.clamp(2, cap) };
        let id = {
            let rooms = lock(&self.0.rooms);
            if rooms.values().filter(|r| !r.permanent).count() >= self.0.cfg.max_rooms {
                return Err(Error::msg(Code::TooManyRequests, "too many rooms on this node"));
            }
            self.0.next_room.fetch_add(1, Ordering::Relaxed)
        };
        let mut spawn = self.0.template.respawn;
        let handle = if lockstep {
            let ls = Lockstep::new(LockstepConfig {
                fps: self.0.cfg.lockstep_fps.clamp(1, 60),
                max_players: max_users as usize,
                max_input: 256,
                keep_frames: self.0.cfg.lockstep_keep_frames.max(1),
            });
            Handle::Lockstep(rsgame_gate::room::spawn(LockstepRoom::new(id, ls), QUEUE))
        } else {
            let mut cfg = self.0.template.clone();
            cfg.id = id as i32;
            spawn = cfg.respawn;
            let (scene, env) = (Scene::new(cfg), self.0.env.clone());
            Handle::Scene(rsgame_gate::room::spawn_with(|me| SceneRoom::new(scene, false, env, me), QUEUE))
        };
        let room = Room {
            name: name.to_owned(),
            kind_code: msg.r#type,
            password: private.then(|| self.hash_password(&msg.password)),
            max_users,
            owner: uid,
            permanent: false,
            members: BTreeSet::new(),
            handle,
            chat: VecDeque::new(),
            spawn,
            spawn_radius: 25.0,
        };
        let full = {
            let mut rooms = lock(&self.0.rooms);
            // Checked again where it is inserted: concurrent creations cannot pass the cap.
            let full = rooms.values().filter(|r| !r.permanent).count() >= self.0.cfg.max_rooms;
            if !full {
                rooms.insert(id, room);
            }
            full
        };
        if full {
            // Its handle was dropped with the refused entry: the room's task has ended.
            return Err(Error::msg(Code::TooManyRequests, "too many rooms on this node"));
        }
        metrics::gauge!("world_rooms").increment(1.0);
        tracing::info!(user = uid, room = id, r#type = msg.r#type, "room created");
        session.push(ids::reply(ids::CREATE_ROOM), &{
            let (status, msg) = status(true, &id.to_string());
            pb::CreateRoomResp { status, msg }
        });
        let entered = {
            let _t = self.transition(uid).await;
            self.move_to(uid, &session, id, private.then_some(msg.password.as_str())).await
        };
        if entered.is_err() {
            // Its creator could not enter: close it again, unless someone else did.
            let removed = {
                let mut rooms = lock(&self.0.rooms);
                match rooms.get(&id) {
                    Some(r) if r.members.is_empty() => rooms.remove(&id),
                    _ => None,
                }
            };
            if removed.is_some() {
                // Dropping the entry dropped the room's last handle.
                metrics::gauge!("world_rooms").decrement(1.0);
            }
        }
        entered
    }

    async fn room_list(self, session: Session, msg: pb::RoomList) -> Result<()> {
        let uid = World::me(&session)?;
        let room_list = {
            let players = lock(&self.0.players);
            let rooms = lock(&self.0.rooms);
            rooms
                .iter()
                .filter(|(_, r)| msg.r#type == pb::RoomType::Any as i32 || r.kind_code == msg.r#type)
                .take(500)
                .map(|(id, r)| self.room_resp(*id, r, &players, uid))
                .collect()
        };
        session.push(ids::reply(ids::ROOM_LIST), &pb::RoomListResp { room_list });
        Ok(())
    }

    async fn quit_room(self, session: Session, msg: pb::QuitRoom) -> Result<()> {
        let uid = World::me(&session)?;
        let target = if msg.user_id == 0 { uid } else { msg.user_id };
        let remark: String = msg.remark.chars().take(100).collect();
        // The target's transition lock: it may be moving, logging in or out right now.
        let _t = self.transition(target).await;
        let (room, home, target_session) = {
            let players = lock(&self.0.players);
            let me = players.get(&uid).ok_or_else(|| Error::new(Code::Unauthorized))?;
            let room = if msg.room_id == 0 { me.room } else { msg.room_id };
            let rooms = lock(&self.0.rooms);
            let r = rooms.get(&room).ok_or_else(|| Error::msg(Code::NotFound, "no such room"))?;
            if r.permanent {
                return Err(Error::msg(Code::Failed, "a scene cannot be quit: enter another room"));
            }
            if target != uid && r.owner != uid {
                return Err(Error::msg(Code::Forbidden, "only the room's owner can remove others"));
            }
            let t = players
                .get(&target)
                .filter(|t| t.room == room)
                .ok_or_else(|| Error::msg(Code::NotFound, "not in this room"))?;
            (room, t.home, t.session.clone())
        };
        let resp = pb::QuitRoomResp { user_id: target, remark: remark.clone() };
        match target_session {
            Some(ts) => {
                if target != uid {
                    ts.push(ids::reply(ids::QUIT_ROOM), &resp);
                    tracing::info!(owner = uid, user = target, room, "removed from room");
                }
                self.move_to(target, &ts, home, None).await?;
            }
            None => {
                // Dropped and in its grace period: its stay ends now; its next login starts
                // in its saved scene.
                let gone = {
                    let mut players = lock(&self.0.players);
                    match players.get(&target) {
                        Some(p) if p.session.is_none() && p.room == room => players.remove(&target),
                        _ => None,
                    }
                };
                if let Some(p) = gone {
                    self.leave_room(target, room).await;
                    self.notify_friends(target, &p.profile, false, Some(&p.blocked)).await;
                }
            }
        }
        session.push(ids::reply(ids::QUIT_ROOM), &resp);
        Ok(())
    }

    fn check_chat(&self, msg: &pb::ChatMsg) -> Result<()> {
        if !matches!(ChatType::try_from(msg.chat_type), Ok(ChatType::World | ChatType::Room | ChatType::Private)) {
            return Err(Error::bad_param("chatType: 1 world, 2 room, 3 private"));
        }
        if pb::ChatMsgType::try_from(msg.msg_type).is_err() || msg.msg_type == pb::ChatMsgType::None as i32 {
            return Err(Error::bad_param("msgType: 1 text … 6 video call"));
        }
        let len = msg.msg.chars().count();
        if len > self.0.cfg.chat_max_len {
            return Err(Error::bad_param(format!("msg: at most {} characters", self.0.cfg.chat_max_len)));
        }
        if msg.msg.chars().any(|c| c.is_control() && c != '\n') {
            return Err(Error::bad_param("msg: no control characters"));
        }
        if len == 0 && msg.url.is_empty() {
            return Err(Error::bad_param("msg: empty"));
        }
        // Attachments are the basic service's own uploads, by their relative link: no
        // arbitrary sites in other players' chat.
        if !msg.url.is_empty()
            && (msg.url.len() > 512
                || !msg.url.starts_with("/basic/")
                || msg.url.contains("..")
                || msg.url.chars().any(|c| c.is_control() || c.is_whitespace()))
        {
            return Err(Error::bad_param("url: a link to an upload (/basic/…)"));
        }
        Ok(())
    }

    fn remember(ring: &mut VecDeque<pb::ChatMsg>, m: &pb::ChatMsg, keep: usize) {
        ring.push_back(m.clone());
        while ring.len() > keep {
            ring.pop_front();
        }
    }

    async fn chat(self, session: Session, msg: pb::ChatMsg) -> Result<()> {
        let uid = World::me(&session)?;
        self.check_chat(&msg)?;
        let m = pb::ChatMsg {
            user_id: uid,
            obj_id: msg.obj_id,
            chat_type: msg.chat_type,
            msg_type: msg.msg_type,
            msg: msg.msg,
            url: msg.url,
            send_time: unix_ms(),
        };
        let (burst, per_min, keep) = (self.0.cfg.chat_burst, self.0.cfg.chat_per_min, self.0.cfg.chat_history);
        let reply = pb::ChatMsgResp { msg_list: vec![m.clone()] };
        match ChatType::try_from(m.chat_type) {
            Ok(ChatType::World | ChatType::Room) => {
                let sessions: Vec<Session> = {
                    let mut players = lock(&self.0.players);
                    let me = players.get_mut(&uid).ok_or_else(|| Error::new(Code::Unauthorized))?;
                    if !me.chat.take(burst, per_min) {
                        return Err(Error::msg(Code::TooManyRequests, "chatting too fast"));
                    }
                    let room = me.room;
                    let to: Vec<i64> = if m.chat_type == ChatType::World as i32 {
                        Self::remember(&mut lock(&self.0.world_chat), &m, keep);
                        players.keys().copied().collect()
                    } else {
                        let mut rooms = lock(&self.0.rooms);
                        let r = rooms.get_mut(&room).ok_or_else(|| Error::new(Code::NotFound))?;
                        Self::remember(&mut r.chat, &m, keep);
                        r.members.iter().copied().collect()
                    };
                    to.iter()
                        .filter(|t| **t != uid)
                        .filter_map(|t| players.get(t))
                        .filter(|p| !p.blocked.contains(&uid))
                        .filter_map(|p| p.session.clone())
                        .collect()
                };
                send_many(&sessions, ids::reply(ids::CHAT_MSG), &reply);
                if let Some(c) = self.0.cluster.as_ref().filter(|_| m.chat_type == ChatType::World as i32) {
                    c.publish(What::World(m.clone())).await;
                }
            }
            _ => {
                let to = m.obj_id;
                if to <= 0 || to == uid {
                    return Err(Error::bad_param("objId: another player's id"));
                }
                {
                    let mut players = lock(&self.0.players);
                    let me = players.get_mut(&uid).ok_or_else(|| Error::new(Code::Unauthorized))?;
                    if !me.chat.take(burst, per_min) {
                        return Err(Error::msg(Code::TooManyRequests, "chatting too fast"));
                    }
                }
                let online = lock(&self.0.players).get(&to).map(|p| (p.blocked.contains(&uid), p.session.clone()));
                let blocked = match &online {
                    Some((b, _)) => *b,
                    None => {
                        self.0.directory.profile(to).await?;
                        self.0.store.blocks(to, uid).await?
                    }
                };
                let here = online.is_some();
                let live = online.and_then(|(_, s)| s).filter(|_| !blocked);
                let delivered = live.as_ref().is_some_and(|s| s.send(ids::reply(ids::CHAT_MSG), &reply).is_ok());
                {
                    let stored = StoredChat {
                        id: 0,
                        from: uid,
                        to,
                        msg_type: m.msg_type,
                        msg: m.msg.clone(),
                        url: m.url.clone(),
                        sent_at: m.send_time,
                    };
                    // Kept either way, so the sender's history looks the same; a withheld one
                    // is never delivered nor shown to its receiver.
                    let state = match (blocked, delivered) {
                        (true, _) => crate::store::WITHHELD,
                        (false, true) => crate::store::DELIVERED,
                        (false, false) => crate::store::PENDING,
                    };
                    let id = self.0.store.store_chat(&stored, state).await?;
                    // Not here: the node the receiver is on delivers it and marks it.
                    if let Some(c) = self.0.cluster.as_ref().filter(|_| !here && state == crate::store::PENDING)
                        && c.where_is(to).await.is_some_and(|n| n != c.node())
                    {
                        c.publish(What::Private { to, stored: id, msg: m.clone() }).await;
                    }
                }
                // The sender learns nothing about a blacklist: its echo is the same.
            }
        }
        session.push(ids::reply(ids::CHAT_MSG), &reply);
        Ok(())
    }

    async fn chat_history(self, session: Session, msg: pb::ChatHistory) -> Result<()> {
        let uid = World::me(&session)?;
        let limit = msg.limit.clamp(1, 100) as usize;
        let before = if msg.before <= 0 { i64::MAX } else { msg.before };
        let recent = |ring: &VecDeque<pb::ChatMsg>, blocked: &HashSet<i64>| -> Vec<pb::ChatMsg> {
            let mut v: Vec<pb::ChatMsg> = ring
                .iter()
                .rev()
                .filter(|m| m.send_time < before && !blocked.contains(&m.user_id))
                .take(limit)
                .cloned()
                .collect();
            v.reverse();
            v
        };
        let msg_list = match ChatType::try_from(msg.chat_type) {
            Ok(ChatType::World | ChatType::Room) => {
                let players = lock(&self.0.players);
                let me = players.get(&uid).ok_or_else(|| Error::new(Code::Unauthorized))?;
                if msg.chat_type == ChatType::World as i32 {
                    recent(&lock(&self.0.world_chat), &me.blocked)
                } else {
                    let rooms = lock(&self.0.rooms);
                    rooms.get(&me.room).map(|r| recent(&r.chat, &me.blocked)).unwrap_or_default()
                }
            }
            Ok(ChatType::Private) => {
                if msg.obj_id <= 0 {
                    return Err(Error::bad_param("objId: the other player's id"));
                }
                let v = self.0.store.history(uid, msg.obj_id, before, limit as u64).await?;
                v.into_iter().map(chat_msg).collect()
            }
            _ => return Err(Error::bad_param("chatType: 1 world, 2 room, 3 private")),
        };
        session.push(ids::reply(ids::CHAT_HISTORY), &pb::ChatMsgResp { msg_list });
        Ok(())
    }

    /// Who has `uid` as a friend and is one of `uid`'s friends: the players who may see its
    /// status and room.
    async fn mutual_friends(&self, uid: i64) -> std::result::Result<Vec<i64>, rsgame_store::StoreError> {
        let followers = self.0.store.followers(uid, 5000).await?;
        if followers.is_empty() {
            return Ok(followers);
        }
        let mine: HashSet<i64> = self
            .0
            .store
            .relations(uid, 0, 5000)
            .await?
            .into_iter()
            .filter(|(_, kind)| *kind == crate::store::FRIEND || *kind == crate::store::TEMPORARY)
            .map(|(other, _)| other)
            .collect();
        Ok(followers.into_iter().filter(|f| mine.contains(f)).collect())
    }

    async fn add_friend(self, session: Session, msg: pb::AddFriend) -> Result<()> {
        let uid = World::me(&session)?;
        if pb::FriendType::try_from(msg.r#type).is_err() {
            return Err(Error::bad_param("type: 0 stranger, 1 friend, 2 blacklist, 3 temporary"));
        }
        if msg.user_id <= 0 || msg.user_id == uid {
            return Err(Error::bad_param("userId: another player's id"));
        }
        self.0.directory.profile(msg.user_id).await?;
        self.0.store.set_relation(uid, msg.user_id, msg.r#type).await?;
        if let Some(p) = lock(&self.0.players).get_mut(&uid) {
            if msg.r#type == BLACKLIST {
                p.blocked.insert(msg.user_id);
            } else {
                p.blocked.remove(&msg.user_id);
            }
        }
        let (status, text) = status(true, "ok");
        session.push(ids::reply(ids::ADD_FRIEND), &pb::AddFriendResp { status, msg: text });
        Ok(())
    }

    async fn my_friends(self, session: Session, msg: pb::MyFriend) -> Result<()> {
        let uid = World::me(&session)?;
        if pb::FriendType::try_from(msg.r#type).is_err() {
            return Err(Error::bad_param("type: 0 all, 1 friends, 2 blacklist, 3 temporary"));
        }
        let key = msg.search_key.trim().to_lowercase();
        let relations = self.0.store.relations(uid, msg.r#type, 500).await?;
        // Only those who have the asker as a friend too show whether and where they are.
        let consenting: HashSet<i64> = self.0.store.followers(uid, 5000).await?.into_iter().collect();
        let mut user_list = Vec::with_capacity(relations.len());
        for (other, _) in relations {
            // Who blacklisted the asker, or never befriended it, shows as offline to it, and
            // where it is stays hidden.
            let live = lock(&self.0.players).get(&other).map(|p| {
                let shown = p.session.is_some() && !p.blocked.contains(&uid) && consenting.contains(&other);
                (p.profile.clone(), shown, p.room)
            });
            let (profile, online, room) = match live {
                Some(v) => v,
                None => match self.0.directory.profile(other).await {
                    Ok(p) => (p, false, 0),
                    Err(_) => continue, // the account is gone
                },
            };
            if !key.is_empty()
                && !profile.username.to_lowercase().contains(&key)
                && !profile.nickname.to_lowercase().contains(&key)
            {
                continue;
            }
            user_list.push(World::user_info(other, &profile, "", online, if online { room } else { 0 }));
        }
        session.push(ids::reply(ids::MY_FRIEND), &pb::MyFriendResp { user_list });
        Ok(())
    }

    fn lockstep_room(session: &Session) -> Result<RoomHandle<LockstepRoom>> {
        match session.get::<Here>() {
            Some(Here(Handle::Lockstep(h))) => Ok(h),
            _ => Err(Error::msg(Code::Failed, "not in a lockstep room")),
        }
    }

    async fn lockstep_input(self, session: Session, msg: pb::LockstepInput) -> Result<()> {
        let uid = World::me(&session)?;
        World::lockstep_room(&session)?.input(uid, LockstepCmd::Input(msg.data)).await
    }

    async fn lockstep_sync(self, session: Session, msg: pb::LockstepSync) -> Result<()> {
        let uid = World::me(&session)?;
        let from = u64::try_from(msg.from).map_err(|_| Error::bad_param("from: a frame number"))?;
        World::lockstep_room(&session)?.input(uid, LockstepCmd::Sync(from)).await
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
    }
}
