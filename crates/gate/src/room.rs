//! Rooms: a game's own state and rules, owned by one task, with its own tick.
//!
//! A [`Room`] is plain single-threaded game logic — a board game, a match, an arena. [`spawn`]
//! gives it a task and returns a [`RoomHandle`] that message handlers use from any session:
//! players join and leave, inputs are queued in arrival order, and the room answers through
//! [`RoomCtx`] (to one player, or to everyone in it). Nothing in a room is shared or locked:
//! the task applies one command at a time and calls [`Room::tick`] at the room's own rate.
//!
//! ```
//! use rsgame_gate::room::{self, Room, RoomCtx};
//! use rsgame_kit::Error;
//!
//! /// Counts presses; tells everyone the total once a second.
//! #[derive(Default)]
//! struct Counter(u64);
//!
//! impl Room for Counter {
//!     type Input = ();
//!     type Join = ();
//!     fn tick_every(&self) -> Option<std::time::Duration> {
//!         Some(std::time::Duration::from_secs(1))
//!     }
//!     fn input(&mut self, _ctx: &mut RoomCtx, _player: i64, _input: ()) -> Result<(), Error> {
//!         self.0 += 1;
//!         Ok(())
//!     }
//!     fn tick(&mut self, ctx: &mut RoomCtx) {
//!         let total = rsgame_proto::pb::Ping { sn: self.0 as i64 };
//!         ctx.broadcast(2000, &total);
//!     }
//! }
//!
//! # async fn demo(session: rsgame_gate::Session) -> Result<(), Error> {
//! let counter = room::spawn(Counter::default(), 64);
//! counter.join(7, session, ()).await?;
//! counter.input(7, ()).await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::time::Duration;

use rsgame_kit::{Code, Error};
use tokio::sync::{mpsc, oneshot};

use crate::codec::Message;
use crate::router::{RouteError, RouterBuilder};
use crate::session::Session;

/// A room's rules and state. Every method runs on the room's own task, one at a time.
pub trait Room: Send + 'static {
    /// What players send to the room (decoded by the handler that forwards it).
    type Input: Send + 'static;

    /// What a player brings when it joins (Colyseus' join options): its name, where it
    /// stands, what it should be greeted with. `()` for a room that needs nothing. It is
    /// the one way in, so the room never has to look a joiner up elsewhere.
    type Join: Send + 'static;

    /// Whether the room watches its players' connections and hears of a close by itself
    /// (the default). A room whose owner already observes disconnects (a world timing a
    /// reconnect grace from the gate's disconnect hook) says `false` and reports them with
    /// [`RoomHandle::disconnected`], so a close is seen once.
    const WATCH_CONNECTIONS: bool = true;

    /// How often [`Room::tick`] runs; `None` (the default): never — a turn-based room
    /// acts on inputs alone.
    fn tick_every(&self) -> Option<Duration> {
        None
    }

    /// A player asks to join. It is already among [`RoomCtx::players`] (so the room can send
    /// it the state); an error refuses it (the caller gets the error, so a handler that
    /// returns it sends the client an ErrorResp with its code and message).
    fn join(&mut self, ctx: &mut RoomCtx, player: i64, join: Self::Join) -> Result<(), Error> {
        let _ = (ctx, player, join);
        Ok(())
    }

    /// A player left (asked to, or its connection closed and [`Room::disconnected`] said so).
    fn leave(&mut self, ctx: &mut RoomCtx, player: i64) {
        let _ = (ctx, player);
    }

    /// A player's connection closed. `true` (the default) makes it a leave. `false` keeps the
    /// player in the room, unreachable, until it joins again from a new connection
    /// ([`Room::rejoin`]) or something calls [`RoomHandle::leave`] — the shape of a reconnect
    /// grace period, which the caller times.
    fn disconnected(&mut self, ctx: &mut RoomCtx, player: i64) -> bool {
        let _ = (ctx, player);
        true
    }

    /// A player already in the room joined again from a new connection (a reconnect, or a
    /// second login taking over): its session has been swapped; the room may send it what it
    /// missed; `join` is what the new connection brought. [`Room::join`] is not called again.
    fn rejoin(&mut self, ctx: &mut RoomCtx, player: i64, join: Self::Join) {
        let _ = (ctx, player, join);
    }

    /// A player's input, in the order inputs arrived. An error goes back to the sender.
    fn input(&mut self, ctx: &mut RoomCtx, player: i64, input: Self::Input) -> Result<(), Error>;

    /// Called every [`Room::tick_every`].
    fn tick(&mut self, ctx: &mut RoomCtx) {
        let _ = ctx;
    }
}

/// A player in a room.
struct Member {
    /// `None` while disconnected but kept (see [`Room::disconnected`]).
    session: Option<Session>,
    /// Dropping it stops the task that watches the session for its close.
    _watch: Option<oneshot::Sender<()>>,
}

/// What a room can do while it runs: see its players, send to them, close itself.
pub struct RoomCtx {
    /// A hash map: a real-time room looks its players up thousands of times a tick.
    members: HashMap<i64, Member>,
    closing: bool,
}

impl RoomCtx {
    /// The players in the room, connected or kept while away, in ascending id order (the
    /// same order on every run: deterministic games depend on it).
    pub fn players(&self) -> impl Iterator<Item = i64> + use<> {
        let mut ids: Vec<i64> = self.members.keys().copied().collect();
        ids.sort_unstable();
        ids.into_iter()
    }

    /// `player`'s connection, for a room that sends in its own way (say, bytes encoded once
    /// and shared by many players); None when it is away or not here.
    pub fn session(&self, player: i64) -> Option<&Session> {
        self.members.get(&player).and_then(|m| m.session.as_ref())
    }

    /// Whether `player` is in the room with a live connection.
    pub fn is_connected(&self, player: i64) -> bool {
        self.members.get(&player).is_some_and(|m| m.session.is_some())
    }

    /// How many players are in the room.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the room is empty.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Sends `msg` as message `id` to one player; false when it is not here or cannot take
    /// it (its connection is closing, or its queue is full: a slow consumer is cut off).
    pub fn send<M: Message>(&self, player: i64, id: u32, msg: &M) -> bool {
        self.members.get(&player).and_then(|m| m.session.as_ref()).is_some_and(|s| s.send(id, msg).is_ok())
    }

    /// Sends `msg` to every player in the room (encoded once per wire format); returns how
    /// many took it.
    pub fn broadcast<M: Message>(&self, id: u32, msg: &M) -> usize {
        crate::server::send_many(self.members.values().filter_map(|m| m.session.as_ref()), id, msg)
    }

    /// Ends the room after the current call: its players are let go (their sessions stay
    /// open) and its handle refuses everything from then on.
    pub fn close(&mut self) {
        self.closing = true;
    }
}

/// Work for the room's task: a boxed call on the room itself.
type Call<R> = Box<dyn FnOnce(&mut R, &mut RoomCtx) + Send>;

enum Cmd<R: Room> {
    Join(i64, Session, R::Join, oneshot::Sender<Result<(), Error>>),
    /// A player leaves (the sender, if any, fires once the room has let it go).
    Leave(i64, Option<oneshot::Sender<()>>),
    /// A player's connection closed: it leaves, or stays away (see [`Room::disconnected`]),
    /// only if that connection (by session id) is still its own — a closed old connection
    /// must not take out the player's new one.
    Closed(i64, u64),
    Input(i64, R::Input, oneshot::Sender<Result<(), Error>>),
    /// An input nobody waits for (its error, if any, is dropped).
    Tell(i64, R::Input),
    Call(Call<R>),
}

/// A running room: cheap to clone, usable from any handler.
pub struct RoomHandle<R: Room> {
    tx: mpsc::Sender<Cmd<R>>,
}

impl<R: Room> Clone for RoomHandle<R> {
    fn clone(&self) -> Self {
        RoomHandle { tx: self.tx.clone() }
    }
}

/// A handle that does not keep its room alive: for a room that hands itself to work that
/// answers later (a reward granted by another service), so the room can still end with its
/// last real handle.
pub struct WeakRoomHandle<R: Room> {
    tx: mpsc::WeakSender<Cmd<R>>,
}

impl<R: Room> Clone for WeakRoomHandle<R> {
    fn clone(&self) -> Self {
        WeakRoomHandle { tx: self.tx.clone() }
    }
}

impl<R: Room> WeakRoomHandle<R> {
    /// The room's handle, while it runs.
    pub fn upgrade(&self) -> Option<RoomHandle<R>> {
        self.tx.upgrade().map(|tx| RoomHandle { tx })
    }
}

fn gone() -> Error {
    Error::msg(Code::NotFound, "the room is closed")
}

/// Why a command was not queued: the queue is full (refused, not awaited) or the room ended.
fn refused<T>(e: mpsc::error::TrySendError<T>) -> Error {
    match e {
        mpsc::error::TrySendError::Full(_) => Error::msg(Code::TooManyRequests, "the room is busy: try again"),
        mpsc::error::TrySendError::Closed(_) => gone(),
    }
}

impl<R: Room> RoomHandle<R> {
    /// Adds `player` on `session`, bringing `join` (a player already in the room just moves
    /// to the new session: [`Room::rejoin`]). Its connection closing later takes it out of
    /// the room, or marks it away ([`Room::disconnected`]).
    pub async fn join(&self, player: i64, session: Session, join: R::Join) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Join(player, session, join, tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Takes `player` out and returns once the room has run its [`Room::leave`] (at once when
    /// it was not in, or the room has ended).
    pub async fn leave(&self, player: i64) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Leave(player, Some(tx))).await.is_ok() {
            // Dropped unanswered only when the room ended: the player is out either way.
            let _ = rx.await;
        }
    }

    /// Tells the room that `player`'s connection `session_id` closed, for a room that does
    /// not watch connections itself ([`Room::WATCH_CONNECTIONS`] false). Queued in order with
    /// the rest; a stale id (the player has a newer connection) changes nothing.
    pub async fn disconnected(&self, player: i64, session_id: u64) {
        // An ended room has no player to mark.
        let _ = self.tx.send(Cmd::Closed(player, session_id)).await;
    }

    /// Queues `player`'s input and waits for the room's verdict. A full queue refuses
    /// rather than waits, so one flooding client cannot stall its handler task.
    pub async fn input(&self, player: i64, input: R::Input) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.tx.try_send(Cmd::Input(player, input, tx)).map_err(refused)?;
        rx.await.map_err(|_| gone())?
    }

    /// Queues `player`'s input without waiting for the verdict (a refused input is dropped):
    /// for the hot path of real-time games, where a move per player and tick must cost no
    /// more than a queue entry. Errs only when the queue is full or the room has ended.
    pub fn tell(&self, player: i64, input: R::Input) -> Result<(), Error> {
        self.tx.try_send(Cmd::Tell(player, input)).map_err(refused)
    }

    /// Runs `f` on the room's task, between its other commands, in order with them: for
    /// work that is not a player's input (a save, a server-side event, data to stash before a
    /// join). Waits for room in the queue.
    pub async fn call(&self, f: impl FnOnce(&mut R, &mut RoomCtx) + Send + 'static) -> Result<(), Error> {
        self.tx.send(Cmd::Call(Box::new(f))).await.map_err(|_| gone())
    }

    /// A handle that does not keep the room alive.
    pub fn downgrade(&self) -> WeakRoomHandle<R> {
        WeakRoomHandle { tx: self.tx.downgrade() }
    }

    /// Whether the room has ended.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Names a connection's player by its session id: for rooms open to anyone connected.
pub fn by_session(session: &Session) -> Result<i64, Error> {
    Ok(session.id() as i64)
}

/// Names a connection's player by the account bound to it (`Session::bind_user`, after a
/// login); a connection that has not logged in is refused.
pub fn by_user(session: &Session) -> Result<i64, Error> {
    session.user().ok_or_else(|| Error::msg(Code::Unauthorized, "log in first"))
}

impl<R: Room> RoomHandle<R>
where
    R::Input: Message,
    R::Join: Default,
{
    /// Routes message `id` (body ignored, decoded as `M`) to joining this room, as the player
    /// `player` names ([`by_session`], [`by_user`] or your own), bringing the default join.
    pub fn join_on<M: Message>(
        &self,
        routes: &mut RouterBuilder,
        id: u32,
        player: fn(&Session) -> Result<i64, Error>,
    ) -> Result<(), RouteError> {
        let room = self.clone();
        routes.route(id, move |session, _: M| {
            let room = room.clone();
            async move { room.join(player(&session)?, session, Default::default()).await }
        })?;
        Ok(())
    }

    /// Routes message `id`, decoded as the room's input, to this room as `player`'s input.
    pub fn input_on(
        &self,
        routes: &mut RouterBuilder,
        id: u32,
        player: fn(&Session) -> Result<i64, Error>,
    ) -> Result<(), RouteError> {
        let room = self.clone();
        routes.route(id, move |session, input: R::Input| {
            let room = room.clone();
            async move { room.input(player(&session)?, input).await }
        })?;
        Ok(())
    }
}

/// Starts `room` on its own task; `queue` bounds the commands waiting for it. The room runs
/// until it calls [`RoomCtx::close`] or every handle is dropped (its players' connections do
/// not keep it alive).
pub fn spawn<R: Room>(room: R, queue: usize) -> RoomHandle<R> {
    spawn_with(|_| room, queue)
}

/// As [`spawn`], for a room that needs a handle to itself (a [`WeakRoomHandle`], so that it
/// does not keep itself alive): `make` gets it and returns the room.
pub fn spawn_with<R: Room>(make: impl FnOnce(WeakRoomHandle<R>) -> R, queue: usize) -> RoomHandle<R> {
    let (tx, rx) = mpsc::channel(queue.max(1));
    let room = make(WeakRoomHandle { tx: tx.downgrade() });
    tokio::spawn(run(room, rx, tx.downgrade()));
    RoomHandle { tx }
}

/// Watches `session` for its close and tells the room, until the returned sender drops (the
/// player left or rejoined elsewhere, or the room ended). It holds only a weak sender: a
/// connection does not keep a room alive.
fn watch<R: Room>(me: &mpsc::WeakSender<Cmd<R>>, player: i64, session: &Session) -> oneshot::Sender<()> {
    let (stop, stopped) = oneshot::channel::<()>();
    let (me, watched) = (me.clone(), session.clone());
    tokio::spawn(async move {
        tokio::select! {
            () = watched.closed() => {
                // A room that ended meanwhile has nobody to take out.
                if let Some(tx) = me.upgrade() {
                    let _ = tx.send(Cmd::Closed(player, watched.id())).await;
                }
            }
            _ = stopped => {}
        }
    });
    stop
}

async fn run<R: Room>(mut room: R, mut rx: mpsc::Receiver<Cmd<R>>, me: mpsc::WeakSender<Cmd<R>>) {
    let mut ctx = RoomCtx { members: HashMap::new(), closing: false };
    let mut ticker = room.tick_every().map(|every| {
        let mut t = tokio::time::interval(every.max(Duration::from_millis(1)));
        // A slow tick is not followed by a burst of catch-up ticks.
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    while !ctx.closing {
        let tick = async {
            match ticker.as_mut() {
                Some(t) => {
                    t.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let cmd = tokio::select! {
            cmd = rx.recv() => cmd,
            () = tick => {
                room.tick(&mut ctx);
                continue;
            }
        };
        let Some(cmd) = cmd else { break };
        match cmd {
            Cmd::Join(player, session, join, reply) => {
                // A player already here on another connection (a reconnect) keeps its place:
                // only its session changes (its old watcher stops), and `rejoin` is called.
                let known = ctx.members.contains_key(&player);
                let watch = R::WATCH_CONNECTIONS.then(|| watch(&me, player, &session));
                ctx.members.insert(player, Member { session: Some(session), _watch: watch });
                let verdict = if known {
                    room.rejoin(&mut ctx, player, join);
                    Ok(())
                } else {
                    // In the room while its join runs, so the room can greet it.
                    let verdict = room.join(&mut ctx, player, join);
                    if verdict.is_err() {
                        ctx.members.remove(&player);
                    }
                    verdict
                };
                // The joiner stopped waiting (its handler was cancelled): the verdict stands.
                let _ = reply.send(verdict);
            }
            Cmd::Leave(player, done) => {
                // Asked to leave: it goes, connected or not.
                if ctx.members.remove(&player).is_some() {
                    room.leave(&mut ctx, player);
                }
                if let Some(done) = done {
                    // Nobody waiting is fine: the leave happened.
                    let _ = done.send(());
                }
            }
            Cmd::Closed(player, closed) => {
                let current = ctx.members.get(&player).and_then(|m| m.session.as_ref().map(Session::id));
                // Only if it is still the player's connection.
                if current == Some(closed) {
                    if room.disconnected(&mut ctx, player) {
                        ctx.members.remove(&player);
                        room.leave(&mut ctx, player);
                    } else if let Some(m) = ctx.members.get_mut(&player) {
                        *m = Member { session: None, _watch: None };
                    }
                }
            }
            Cmd::Tell(player, input) => {
                // Nobody waits for a told input's verdict: a refused one is dropped by design.
                if ctx.members.contains_key(&player) {
                    let _ = room.input(&mut ctx, player, input);
                }
            }
            Cmd::Call(f) => f(&mut room, &mut ctx),
            Cmd::Input(player, input, reply) => {
                let verdict = if ctx.members.contains_key(&player) {
                    room.input(&mut ctx, player, input)
                } else {
                    Err(Error::msg(Code::Forbidden, "join the room first"))
                };
                // The sender stopped waiting: the input was applied or refused regardless.
                let _ = reply.send(verdict);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Wire;
    use crate::config::BodyCodec;
    use crate::frame::Layout;
    use crate::session::{CloseReason, Outbox, Transport};
    use rsgame_proto::pb;

    fn session(id: u64) -> (Session, Outbox) {
        let addr = "127.0.0.1:9".parse().expect("addr");
        Session::new(id, addr, Transport::Tcp, Wire::frames(Layout::Zinx, BodyCodec::Protobuf), 64)
    }

    /// A room of at most two that echoes each input to everyone and ticks a counter.
    #[derive(Default)]
    struct Duo {
        ticks: i64,
        left: Vec<i64>,
    }

    impl Room for Duo {
        type Input = i64;
        type Join = ();
        fn tick_every(&self) -> Option<Duration> {
            Some(Duration::from_millis(10))
        }
        fn join(&mut self, ctx: &mut RoomCtx, _player: i64, (): ()) -> Result<(), Error> {
            if ctx.len() > 2 { Err(Error::msg(Code::Forbidden, "full")) } else { Ok(()) }
        }
        fn leave(&mut self, ctx: &mut RoomCtx, player: i64) {
            self.left.push(player);
            ctx.broadcast(2000, &pb::Ping { sn: -player });
        }
        fn input(&mut self, ctx: &mut RoomCtx, _player: i64, n: i64) -> Result<(), Error> {
            if n < 0 {
                return Err(Error::bad_param("negative"));
            }
            if n == 99 {
                ctx.close();
            }
            ctx.broadcast(2000, &pb::Ping { sn: n });
            Ok(())
        }
        fn tick(&mut self, ctx: &mut RoomCtx) {
            self.ticks += 1;
            if self.ticks == 3 {
                ctx.send(1, 2000, &pb::Ping { sn: 1000 });
            }
        }
    }

    async fn next_sn(rx: &mut Outbox) -> i64 {
        let bytes = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await.expect("in time").expect("a frame");
        let msg: pb::Ping = prost::Message::decode(&bytes[8..]).expect("ping");
        msg.sn
    }

    #[tokio::test]
    async fn joins_inputs_ticks_leaves_and_close() {
        let h = spawn(Duo::default(), 16);
        let (s1, mut r1) = session(1);
        let (s2, mut r2) = session(2);
        let (s3, _r3) = session(3);
        h.join(1, s1.clone(), ()).await.expect("first");
        h.join(2, s2.clone(), ()).await.expect("second");
        let full = h.join(3, s3, ()).await.expect_err("a third is refused by the room's rule");
        assert_eq!(full.code(), Code::Forbidden);
        // The tick reached player 1 alone.
        assert_eq!(next_sn(&mut r1).await, 1000);
        // Inputs in order, to everyone; a refused input is the sender's error only.
        h.input(1, 5).await.expect("input");
        h.input(2, 6).await.expect("input");
        assert_eq!(h.input(1, -1).await.expect_err("refused").code(), Code::BadParam);
        assert_eq!((next_sn(&mut r1).await, next_sn(&mut r1).await), (5, 6));
        assert_eq!((next_sn(&mut r2).await, next_sn(&mut r2).await), (5, 6));
        // Not a member: refused.
        assert_eq!(h.input(3, 1).await.expect_err("outsider").code(), Code::Forbidden);
        // A closed connection is a leave, told to those who stay.
        s2.close(CloseReason::ClientClosed);
        assert_eq!(next_sn(&mut r1).await, -2);
        // A player who reconnects keeps its place; its old connection closing later does not
        // take it out.
        let (s1b, mut r1b) = session(11);
        h.join(1, s1b, ()).await.expect("rejoin");
        s1.close(CloseReason::ClientClosed);
        tokio::time::sleep(Duration::from_millis(50)).await;
        h.input(1, 7).await.expect("still in");
        assert_eq!(next_sn(&mut r1b).await, 7);
        // Fire-and-forget inputs and calls run in order with the rest.
        h.tell(1, 8).expect("told");
        h.tell(1, -5).expect("a refused told input is dropped, not answered");
        h.call(|duo, ctx| {
            duo.ticks = -100;
            assert!(ctx.session(1).is_some() && ctx.session(2).is_none(), "1 here, 2 gone");
            ctx.broadcast(2000, &pb::Ping { sn: 77 });
        })
        .await
        .expect("call");
        assert_eq!((next_sn(&mut r1b).await, next_sn(&mut r1b).await), (8, 77));
        // The room closes itself: the handle refuses from then on.
        h.input(1, 99).await.expect("last input");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(h.is_closed());
        assert_eq!(h.input(1, 1).await.expect_err("closed").code(), Code::NotFound);
    }

    /// Keeps disconnected players (a grace period) and tells a returning one its count.
    #[derive(Default)]
    struct Patient {
        rejoins: i64,
    }

    impl Room for Patient {
        type Input = ();
        type Join = ();
        fn input(&mut self, _: &mut RoomCtx, _: i64, _: ()) -> Result<(), Error> {
            Ok(())
        }
        fn disconnected(&mut self, _: &mut RoomCtx, _: i64) -> bool {
            false
        }
        fn rejoin(&mut self, ctx: &mut RoomCtx, player: i64, (): ()) {
            self.rejoins += 1;
            ctx.send(player, 2000, &pb::Ping { sn: self.rejoins });
        }
        fn leave(&mut self, ctx: &mut RoomCtx, player: i64) {
            ctx.broadcast(2000, &pb::Ping { sn: -player });
        }
    }

    #[tokio::test]
    async fn a_room_can_keep_disconnected_players_until_they_return_or_are_let_go() {
        let h = spawn(Patient::default(), 16);
        let (s1, _r1) = session(1);
        let (s2, mut r2) = session(2);
        h.join(1, s1.clone(), ()).await.expect("join");
        h.join(2, s2, ()).await.expect("join");
        s1.close(CloseReason::ClientClosed);
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Still in (no leave told to player 2), but its inputs need a connection to come from.
        h.input(1, ()).await.expect("kept while away");
        let (s1b, mut r1b) = session(3);
        h.join(1, s1b, ()).await.expect("back");
        assert_eq!(next_sn(&mut r1b).await, 1, "rejoin, not a second join");
        // The caller ends the grace: now it leaves.
        h.leave(1).await;
        assert_eq!(next_sn(&mut r2).await, -1);
    }

    /// Counts its ticks where the test can see them.
    struct Ticker(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl Room for Ticker {
        type Input = ();
        type Join = ();
        fn tick_every(&self) -> Option<Duration> {
            Some(Duration::from_millis(5))
        }
        fn input(&mut self, _: &mut RoomCtx, _: i64, _: ()) -> Result<(), Error> {
            Ok(())
        }
        fn tick(&mut self, _: &mut RoomCtx) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[tokio::test]
    async fn a_room_ends_with_its_last_handle_even_with_players_connected() {
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = spawn(Ticker(ticks.clone()), 4);
        let (s, _r) = session(1);
        h.join(1, s.clone(), ()).await.expect("join");
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(ticks.load(std::sync::atomic::Ordering::Relaxed) > 0);
        drop(h);
        tokio::time::sleep(Duration::from_millis(30)).await;
        let stopped = ticks.load(std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(ticks.load(std::sync::atomic::Ordering::Relaxed), stopped, "no idle room ticking on");
        assert!(!s.is_closed(), "the player's connection is not the room's to close");
    }
}
