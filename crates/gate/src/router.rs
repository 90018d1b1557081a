//! The router: one handler per message id, registered at start-up, with before / after hooks
//! for cross-cutting rules ("log in first", metrics).
//!
//! A handler is an async fn of the session and the decoded message returning
//! `rsgame_kit::Result<()>`; it answers by sending on the session. An error becomes an
//! ErrorResp frame with the error's code and public message. Messages of one session are
//! dispatched one after another, in order; sessions run in parallel.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::config::BodyCodec;
use futures_util::FutureExt as _;
use rsgame_proto::ids;

use crate::codec::{DecodeError, Message, decode_body};
use crate::session::Session;

/// Message ids are small integers chosen by us, not by an attacker-controlled key space that
/// could be crafted for collisions in a table this small and fixed: a multiplicative hash
/// beats SipHash on the per-message lookup.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        // Fold the high half back so both the bucket bits (low) and the tag bits (high) vary.
        let x = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 29);
    }
}

type Routes = HashMap<u32, Route, std::hash::BuildHasherDefault<IdHasher>>;

type BoxFuture = Pin<Box<dyn Future<Output = rsgame_kit::Result<()>> + Send>>;
type Erased = Box<dyn Fn(Session, &[u8], BodyCodec) -> Result<BoxFuture, DecodeError> + Send + Sync>;
type ErasedSync = Box<dyn Fn(&Session, &[u8], BodyCodec) -> Result<rsgame_kit::Result<()>, DecodeError> + Send + Sync>;
type BeforeHook = Box<dyn Fn(&Session, u32) -> rsgame_kit::Result<()> + Send + Sync>;
type AfterHook = Box<dyn Fn(&Session, u32, Duration, &Outcome) + Send + Sync>;

/// What a dispatch came to; after hooks see it.
#[derive(Debug)]
pub enum Outcome {
    /// The handler returned `Ok`.
    Handled,
    /// The id has no handler.
    UnknownId,
    /// The body did not decode as the handler's message.
    BadBody(DecodeError),
    /// A before hook refused the message.
    Refused(rsgame_kit::Error),
    /// The handler returned an error.
    Failed(rsgame_kit::Error),
    /// The handler panicked.
    Panicked,
}

/// A handler that awaits (boxed, one allocation per message), or one that answers at once
/// and needs no future at all.
enum Handler {
    Async(Erased),
    Sync(ErasedSync),
}

struct Route {
    id: u32,
    handler: Handler,
    latency: Arc<rsgame_kit::telemetry::metrics::FastHistogram>,
}

/// A start-up error in building the router.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Two handlers for one id.
    #[error("message id {0} has two handlers")]
    Duplicate(u32),
    /// An id the gate reserves for itself.
    #[error("message id {0} is reserved by the gate")]
    Reserved(u32),
}

/// Builds a [`Router`]. The gate's own Ping handler (1000 → 2000) is registered already.
pub struct RouterBuilder {
    routes: Routes,
    before: Vec<BeforeHook>,
    after: Vec<AfterHook>,
}

impl Default for RouterBuilder {
    fn default() -> Self {
        let mut b = RouterBuilder { routes: Routes::default(), before: Vec::new(), after: Vec::new() };
        b.insert_sync(ids::PING, crate::ping::ping);
        b
    }
}

impl RouterBuilder {
    /// A builder with the Ping handler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for message `id`, decoding bodies as `M`.
    pub fn route<M, F, Fut>(&mut self, id: u32, handler: F) -> Result<&mut Self, RouteError>
    where
        M: Message,
        F: Fn(Session, M) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = rsgame_kit::Result<()>> + Send + 'static,
    {
        self.free(id)?;
        self.insert(id, handler);
        Ok(self)
    }

    /// Registers a handler that does its work without awaiting (answers from memory, hands
    /// the message to a room's queue): it runs in the connection task with no future to
    /// allocate, which matters for messages a client sends many times a second.
    pub fn route_sync<M, F>(&mut self, id: u32, handler: F) -> Result<&mut Self, RouteError>
    where
        M: Message,
        F: Fn(&Session, M) -> rsgame_kit::Result<()> + Send + Sync + 'static,
    {
        self.free(id)?;
        self.insert_sync(id, handler);
        Ok(self)
    }

    /// Whether `id` may take a handler: not the gate's own, not taken.
    fn free(&self, id: u32) -> Result<(), RouteError> {
        if id == ids::ERROR {
            return Err(RouteError::Reserved(id));
        }
        if self.routes.contains_key(&id) {
            return Err(RouteError::Duplicate(id));
        }
        Ok(())
    }

    fn insert_sync<M, F>(&mut self, id: u32, handler: F)
    where
        M: Message,
        F: Fn(&Session, M) -> rsgame_kit::Result<()> + Send + Sync + 'static,
    {
        let erased: ErasedSync = Box::new(move |session, body, codec| {
            let msg: M = decode_body(codec, body)?;
            Ok(handler(session, msg))
        });
        self.routes.insert(id, Route { id, handler: Handler::Sync(erased), latency: Self::latency(id) });
    }

    fn latency(id: u32) -> Arc<rsgame_kit::telemetry::metrics::FastHistogram> {
        rsgame_kit::telemetry::metrics::FastHistogram::register(
            crate::metrics::HANDLER_SECONDS,
            crate::metrics::HANDLER_HELP,
            &[("id", &id.to_string())],
        )
    }

    fn insert<M, F, Fut>(&mut self, id: u32, handler: F)
    where
        M: Message,
        F: Fn(Session, M) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = rsgame_kit::Result<()>> + Send + 'static,
    {
        // The body is decoded before the handler's future exists, so the future owns the
        // message and never the frame's bytes.
        let erased: Erased = Box::new(move |session, body, codec| {
            let msg: M = decode_body(codec, body)?;
            Ok(Box::pin(handler(session, msg)))
        });
        self.routes.insert(id, Route { id, handler: Handler::Async(erased), latency: Self::latency(id) });
    }

    /// Adds a check run before every handler, e.g. "log in first". An error refuses the
    /// message: the client gets an ErrorResp and the handler does not run.
    pub fn before(
        &mut self,
        hook: impl Fn(&Session, u32) -> rsgame_kit::Result<()> + Send + Sync + 'static,
    ) -> &mut Self {
        self.before.push(Box::new(hook));
        self
    }

    /// Adds a hook run after every dispatch with its duration and outcome.
    pub fn after(&mut self, hook: impl Fn(&Session, u32, Duration, &Outcome) + Send + Sync + 'static) -> &mut Self {
        self.after.push(Box::new(hook));
        self
    }

    /// The finished router.
    pub fn build(self) -> Router {
        Router { routes: self.routes, before: self.before, after: self.after }
    }
}

/// Runs a synchronous handler; a panic in it (or in decoding for it) is an outcome that ends
/// this session only.
fn run_sync(h: &ErasedSync, session: &Session, body: &[u8], codec: BodyCodec) -> Outcome {
    match std::panic::catch_unwind(AssertUnwindSafe(|| h(session, body, codec))) {
        Ok(Ok(Ok(()))) => Outcome::Handled,
        Ok(Ok(Err(e))) => Outcome::Failed(e),
        Ok(Err(e)) => Outcome::BadBody(e),
        Err(_) => Outcome::Panicked,
    }
}

/// Message id → handler. Immutable once built; shared by every connection.
pub struct Router {
    routes: Routes,
    before: Vec<BeforeHook>,
    after: Vec<AfterHook>,
}

impl Router {
    /// A builder.
    pub fn builder() -> RouterBuilder {
        RouterBuilder::new()
    }

    /// Whether `id` has a handler.
    pub fn has(&self, id: u32) -> bool {
        self.routes.contains_key(&id)
    }

    /// Runs the handler for one message of `session`. Never panics: a panicking handler is
    /// reported as [`Outcome::Panicked`]. `started` is when the message became ready (the
    /// caller's [`mono_ns`](rsgame_kit::time::mono_ns) reading); the return is the outcome
    /// and the time it ended, which the caller passes as the next message's start — one
    /// clock read per message.
    pub async fn dispatch(
        &self,
        session: &Session,
        id: u32,
        body: &[u8],
        codec: BodyCodec,
        started: u64,
    ) -> (Outcome, u64) {
        let route = self.routes.get(&id);
        let outcome = match route {
            Some(route) => self.run(route, session, body, codec).await,
            None => Outcome::UnknownId,
        };
        self.finish(route, session, id, outcome, started)
    }

    /// [`dispatch`](Self::dispatch) without a future, for the connection's own task: runs a
    /// synchronous handler (or answers an unknown id) at once with its replies captured into
    /// `out`, and gives back `None` for a handler that awaits, which the caller then
    /// dispatches. The frequent messages (Ping, Move) take this path: no future is polled,
    /// no capture is set up and torn down around a poll.
    pub(crate) fn dispatch_now(
        &self,
        session: &Session,
        id: u32,
        body: &[u8],
        codec: BodyCodec,
        started: u64,
        out: &mut crate::session::capture::Out,
    ) -> Option<(Outcome, u64)> {
        let route = self.routes.get(&id);
        let outcome = match route {
            None => Outcome::UnknownId,
            Some(Route { handler: Handler::Async(_), .. }) => return None,
            Some(route @ Route { handler: Handler::Sync(h), .. }) => match self.allowed(route, session) {
                Err(e) => Outcome::Refused(e),
                Ok(()) => crate::session::capture::capturing(session.key(), out, || run_sync(h, session, body, codec)),
            },
        };
        Some(self.finish(route, session, id, outcome, started))
    }

    /// Times the dispatch and runs the after hooks: one clock read per message.
    fn finish(
        &self,
        route: Option<&Route>,
        session: &Session,
        id: u32,
        outcome: Outcome,
        started: u64,
    ) -> (Outcome, u64) {
        let end = rsgame_kit::time::mono_ns();
        let elapsed = end.saturating_sub(started);
        if let Some(route) = route {
            route.latency.record_ns(elapsed);
        }
        for hook in &self.after {
            hook(session, id, Duration::from_nanos(elapsed), &outcome);
        }
        (outcome, end)
    }

    /// The before hooks' verdict on one message.
    fn allowed(&self, route: &Route, session: &Session) -> rsgame_kit::Result<()> {
        self.before.iter().try_for_each(|hook| hook(session, route.id))
    }

    async fn run(&self, route: &Route, session: &Session, body: &[u8], codec: BodyCodec) -> Outcome {
        if let Err(e) = self.allowed(route, session) {
            return Outcome::Refused(e);
        }
        let handler = match &route.handler {
            Handler::Async(h) => h,
            Handler::Sync(h) => return run_sync(h, session, body, codec),
        };
        // The handler is user code: a panic in it (or in decoding for it) must end this
        // session only.
        let fut = match std::panic::catch_unwind(AssertUnwindSafe(|| handler(session.clone(), body, codec))) {
            Ok(Ok(fut)) => fut,
            Ok(Err(e)) => return Outcome::BadBody(e),
            Err(_) => return Outcome::Panicked,
        };
        match AssertUnwindSafe(fut).catch_unwind().await {
            Ok(Ok(())) => Outcome::Handled,
            Ok(Err(e)) => Outcome::Failed(e),
            Err(_) => Outcome::Panicked,
        }
    }
}
