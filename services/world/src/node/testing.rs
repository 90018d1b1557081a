//! A world for the node's unit tests: a real [`World`] on a temporary SQLite database with
//! the game service in process, a directory of made-up accounts, and players on detached
//! sessions whose frames the test reads. No sockets, no process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::config::WorldConfig;
use bytes::BytesMut;
use rsgame_gate::{FrameCodec, Layout, Outbox};
use rsgame_kit::auth::{Auth, Jwt};

use super::*;

/// Accounts by id; an unknown id is [`Code::NotFound`], as the usercenter answers.
#[derive(Default)]
pub(super) struct FakeDirectory(Mutex<HashMap<i64, Profile>>);

#[async_trait::async_trait]
impl Directory for FakeDirectory {
    async fn profile(&self, user_id: i64) -> Result<Profile> {
        lock(&self.0).get(&user_id).cloned().ok_or_else(|| Error::new(Code::NotFound))
    }
}

pub(super) struct Fixture {
    pub world: World,
    pub jwt: Arc<Jwt>,
    pub db: Db,
    directory: Arc<FakeDirectory>,
    next_session: std::sync::atomic::AtomicU64,
    _dir: tempfile::TempDir,
}

/// A player on a detached session.
pub(super) struct Player {
    pub id: i64,
    pub session: Session,
    out: Outbox,
    buf: BytesMut,
}

const T: Duration = Duration::from_secs(5);

impl Fixture {
    /// A world with the sample scenes (monsters removed, so nothing moves on its own) and
    /// `cfg`'s settings; accounts 1 to 9 exist.
    pub async fn new(cfg: WorldConfig) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = crate::testdb::database(&dir).await;
        let game = crate::testdb::game(&db);
        let crate::data::WorldData { mut scenes, modes } =
            crate::data::parse_all(crate::data::SAMPLE, &cfg).expect("sample world");
        for s in &mut scenes {
            s.config.monsters.clear();
        }
        let directory = Arc::new(FakeDirectory::default());
        for id in 1..=9 {
            let profile =
                Profile { username: format!("user{id}"), nickname: format!("Nick{id}"), ..Profile::default() };
            lock(&directory.0).insert(id, profile);
        }
        let jwt =
            Arc::new(Jwt::new(b"node-unit-tests-signing-key-0123456789", Duration::from_secs(600), Duration::ZERO));
        let world = World::start(WorldDeps {
            cfg,
            scenes,
            modes,
            auth: Auth { jwt: jwt.clone(), revocations: None },
            game,
            directory: directory.clone(),
            db: db.clone(),
            cluster: None,
            presence: None,
            accounts: None,
        });
        Fixture { world, jwt, db, directory, next_session: 1.into(), _dir: dir }
    }

    /// Makes account `id` known to the directory.
    pub fn add_account(&self, id: i64) {
        let profile = Profile { username: format!("user{id}"), nickname: format!("Nick{id}"), ..Profile::default() };
        lock(&self.directory.0).insert(id, profile);
    }

    /// A fresh connection, not logged in.
    pub fn connect(&self, id: i64) -> Player {
        let n = self.next_session.fetch_add(1, Ordering::Relaxed);
        let (session, out) = Session::detached(n, 4096);
        Player { id, session, out, buf: BytesMut::new() }
    }

    pub fn token(&self, id: i64) -> String {
        self.jwt.issue(id).expect("token").0.access_token
    }

    /// Logs `id` in on a new connection asking for `caps` (empty: as go-game's client).
    pub async fn login(&self, id: i64, caps: &str) -> Player {
        let mut p = self.connect(id);
        let msg = pb::GameLogin { user_id: id, token: self.token(id), plat: "test".into(), param: caps.into() };
        self.world.clone().login(p.session.clone(), msg).await.expect("login");
        p.expect::<pb::UserInfo>(ids::reply(ids::GAME_LOGIN)).await;
        p
    }

    /// Waits, polling, until `cond` holds.
    pub async fn until(&self, what: &str, mut cond: impl FnMut(&World) -> bool) {
        let deadline = tokio::time::Instant::now() + T;
        while !cond(&self.world) {
            assert!(tokio::time::Instant::now() < deadline, "not in time: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Player {
    /// The next frame, if one comes within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<(u32, bytes::Bytes)> {
        let codec = FrameCodec::new(Layout::Zinx, 1 << 24);
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(f) = codec.decode(&mut self.buf).expect("frames") {
                return Some((f.id, f.body));
            }
            let more = tokio::time::timeout_at(deadline, self.out.recv()).await.ok()??;
            self.buf.extend_from_slice(&more);
        }
    }

    /// Waits for message `id`, skipping others.
    pub async fn expect<M: prost::Message + Default>(&mut self, id: u32) -> M {
        self.expect_where(id, |_: &M| true).await
    }

    /// Waits for message `id` whose body passes `ok`, skipping others.
    pub async fn expect_where<M: prost::Message + Default>(&mut self, id: u32, ok: impl Fn(&M) -> bool) -> M {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (got, body) = self.next(left).await.unwrap_or_else(|| panic!("player {}: no {id} in time", self.id));
            if got == id {
                let m = M::decode(body).expect("decodes");
                if ok(&m) {
                    return m;
                }
            }
        }
    }

    /// The ids of what arrives within `within`.
    pub async fn ids_within(&mut self, within: Duration) -> Vec<u32> {
        self.frames_within(within).await.into_iter().map(|(id, _)| id).collect()
    }

    /// What arrives within `within`.
    pub async fn frames_within(&mut self, within: Duration) -> Vec<(u32, bytes::Bytes)> {
        let deadline = tokio::time::Instant::now() + within;
        let mut v = Vec::new();
        while let Some(f) = self.next(deadline.saturating_duration_since(tokio::time::Instant::now())).await {
            v.push(f);
        }
        v
    }
}
