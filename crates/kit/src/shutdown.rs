//! Graceful shutdown: one signal that every component watches, and a list of hooks that
//! components register to finish their work (close the gate, save the world) before exit.
//!
//! Order: the signal stops listeners from accepting; in-flight requests finish; then hooks
//! run one by one, newest first (what started last stops first, like `defer`), each bounded
//! by what is left of the grace period; then logs are flushed and the process exits: 0 when
//! every hook finished, non-zero when one failed (a save that did not land) or was cut off.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

type HookFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Hook = Box<dyn FnOnce() -> HookFuture + Send>;

/// The process's shutdown signal and hook list. Cheap to clone; all clones share both.
#[derive(Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    hooks: Arc<Mutex<Vec<(String, Hook)>>>,
}

/// What became of one hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    /// Finished in time.
    Done(String),
    /// Was cut off when the grace period ran out.
    TimedOut(String),
    /// Never started: the grace period was already over.
    Skipped(String),
    /// Finished, reporting that its work was not all done (the reason).
    Failed(String, String),
}

impl HookOutcome {
    /// Whether the hook did all its work.
    pub fn is_done(&self) -> bool {
        matches!(self, HookOutcome::Done(_))
    }
}

impl Shutdown {
    /// A fresh, untriggered shutdown.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the shutdown: every watcher wakes.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether the shutdown has started.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves when the shutdown starts; for `select!` in accept loops and tasks.
    pub fn triggered(&self) -> impl Future<Output = ()> + Send + 'static {
        self.token.clone().cancelled_owned()
    }

    /// Registers a hook run after the signal, once the listeners have stopped.
    pub fn on_shutdown<F, Fut>(&self, name: impl Into<String>, hook: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_shutdown_checked(name, move || {
            let work = hook();
            async move {
                work.await;
                Ok(())
            }
        });
    }

    /// Registers a hook that can report failure (the reason): a save that did not land is
    /// not a clean exit. The process exits non-zero when such a hook fails.
    pub fn on_shutdown_checked<F, Fut>(&self, name: impl Into<String>, hook: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let hook: Hook = Box::new(move || Box::pin(hook()));
        if let Ok(mut hooks) = self.hooks.lock() {
            hooks.push((name.into(), hook));
        }
    }

    /// Runs the registered hooks, newest first, until `deadline`. Each hook runs once; a
    /// second call runs only hooks registered since.
    pub async fn run_hooks(&self, deadline: Instant) -> Vec<HookOutcome> {
        let hooks = match self.hooks.lock() {
            Ok(mut h) => std::mem::take(&mut *h),
            Err(_) => Vec::new(),
        };
        let mut outcomes = Vec::with_capacity(hooks.len());
        for (name, hook) in hooks.into_iter().rev() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left == Duration::ZERO {
                tracing::warn!(hook = %name, "shutdown hook skipped: grace period over");
                outcomes.push(HookOutcome::Skipped(name));
                continue;
            }
            match tokio::time::timeout(left, hook()).await {
                Ok(Ok(())) => {
                    tracing::info!(hook = %name, "shutdown hook done");
                    outcomes.push(HookOutcome::Done(name));
                }
                Ok(Err(reason)) => {
                    tracing::error!(hook = %name, %reason, "shutdown hook failed");
                    outcomes.push(HookOutcome::Failed(name, reason));
                }
                Err(_) => {
                    tracing::warn!(hook = %name, "shutdown hook cut off: grace period over");
                    outcomes.push(HookOutcome::TimedOut(name));
                }
            }
        }
        outcomes
    }
}

/// Waits for SIGINT or SIGTERM (Ctrl-C elsewhere) and returns the signal's name.
pub async fn signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            },
            _ => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn hooks_run_newest_first_within_grace() {
        let sd = Shutdown::new();
        let order = Arc::new(Mutex::new(Vec::new()));
        for name in ["db", "world", "gate"] {
            let order = order.clone();
            sd.on_shutdown(name, move || async move {
                order.lock().expect("lock").push(name);
            });
        }
        let out = sd.run_hooks(Instant::now() + Duration::from_secs(1)).await;
        assert_eq!(*order.lock().expect("lock"), ["gate", "world", "db"]);
        assert!(out.iter().all(|o| matches!(o, HookOutcome::Done(_))));
        assert!(sd.run_hooks(Instant::now() + Duration::from_secs(1)).await.is_empty(), "hooks run once");
    }

    #[tokio::test(start_paused = true)]
    async fn slow_hook_is_cut_off_and_later_ones_skipped() {
        let sd = Shutdown::new();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        sd.on_shutdown("after", move || async move {
            r.fetch_add(1, Ordering::SeqCst);
        });
        sd.on_shutdown("slow", || async { tokio::time::sleep(Duration::from_secs(60)).await });
        let start = Instant::now();
        let out = sd.run_hooks(start + Duration::from_secs(5)).await;
        assert_eq!(out, [HookOutcome::TimedOut("slow".into()), HookOutcome::Skipped("after".into())]);
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_hook_is_reported_and_the_rest_still_run() {
        let sd = Shutdown::new();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        sd.on_shutdown("db", move || async move {
            r.fetch_add(1, Ordering::SeqCst);
        });
        sd.on_shutdown_checked("world", || async { Err("2 players not saved".to_owned()) });
        let out = sd.run_hooks(Instant::now() + Duration::from_secs(5)).await;
        assert_eq!(
            out,
            [HookOutcome::Failed("world".into(), "2 players not saved".into()), HookOutcome::Done("db".into())]
        );
        assert!(!out[0].is_done() && out[1].is_done());
        assert_eq!(ran.load(Ordering::SeqCst), 1, "a failure does not skip the hooks after it");
    }

    #[tokio::test]
    async fn trigger_wakes_every_watcher() {
        let sd = Shutdown::new();
        let a = tokio::spawn(sd.triggered());
        let b = tokio::spawn(sd.clone().triggered());
        assert!(!sd.is_triggered());
        sd.trigger();
        a.await.expect("a");
        b.await.expect("b");
        assert!(sd.is_triggered());
    }
}
