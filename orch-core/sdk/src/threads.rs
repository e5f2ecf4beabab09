//! Threads of a module that the host knows: started with
//! [`Context::spawn`](crate::Context::spawn), told to stop when the module
//! shuts down (after its `shutdown` returns), and joined within the host's
//! `timeouts.shutdown`; one that does not stop is named in the log. A thread
//! started this way keeps the OS name of the generation that started it, so
//! the host also sees it if it never stops (and keeps its code loaded).

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Publisher;

/// Tells a thread started with [`Context::spawn`](crate::Context::spawn) that
/// its module is shutting down. Check it in the thread's loop, or wait on it
/// instead of sleeping.
#[derive(Clone, Default)]
pub struct StopToken {
    state: Arc<(Mutex<bool>, Condvar)>,
}

impl StopToken {
    /// Whether the thread should end now.
    pub fn is_stopped(&self) -> bool {
        *self.state.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps up to `timeout`, waking at once when the stop comes; returns
    /// whether the thread should end.
    pub fn wait(&self, timeout: Duration) -> bool {
        let (stopped, changed) = &*self.state;
        let guard = stopped.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = changed
            .wait_timeout_while(guard, timeout, |stopped| !*stopped)
            .unwrap_or_else(|e| e.into_inner());
        *guard
    }

    /// Asks the thread to stop.
    pub(crate) fn stop(&self) {
        let (stopped, changed) = &*self.state;
        *stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        changed.notify_all();
    }
}

impl std::fmt::Debug for StopToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StopToken(stopped: {})", self.is_stopped())
    }
}

/// The body of a module thread.
pub type ThreadBody = Box<dyn FnOnce(StopToken, Publisher) + Send + 'static>;

/// The threads one module instance started.
#[derive(Default)]
pub(crate) struct ModuleThreads {
    running: Vec<(String, StopToken, JoinHandle<()>)>,
}

impl ModuleThreads {
    /// Starts thread `name` running `body`. It is not given an OS name of its
    /// own, so it keeps the one the host gave this generation's threads.
    pub(crate) fn spawn(
        &mut self,
        name: &str,
        publisher: Publisher,
        body: ThreadBody,
    ) -> crate::Result<()> {
        if self.running.iter().any(|(running, ..)| running == name) {
            return Err(format!("the module already runs a thread named '{name}'").into());
        }
        let token = StopToken::default();
        let thread_token = token.clone();
        let thread_name = name.to_owned();
        let handle = std::thread::Builder::new()
            .spawn(move || {
                let outcome =
                    panic::catch_unwind(AssertUnwindSafe(|| body(thread_token, publisher)));
                if let Err(payload) = outcome {
                    let message = payload
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a non-string panic".to_owned());
                    tracing::error!("thread '{thread_name}' panicked: {message}");
                }
            })
            .map_err(|e| format!("cannot start thread '{name}': {e}"))?;
        self.running.push((name.to_owned(), token, handle));
        Ok(())
    }

    /// Asks every thread to stop and joins them, waiting `within` at most in
    /// all; logs each one that did not stop (it is left running) and returns
    /// their names.
    pub(crate) fn stop_all(&mut self, within: Duration) -> Vec<String> {
        for (_, token, _) in &self.running {
            token.stop();
        }
        let deadline = Instant::now() + within;
        while Instant::now() < deadline && self.running.iter().any(|(_, _, h)| !h.is_finished()) {
            std::thread::sleep(Duration::from_millis(2));
        }
        let mut stuck = Vec::new();
        for (name, _, handle) in self.running.drain(..) {
            if handle.is_finished() {
                let _ = handle.join();
            } else {
                tracing::warn!(
                    "thread '{name}' did not stop within {} of shutdown (phase shutdown): it \
                     is left running; end it when its StopToken says so",
                    crate::duration::human(within)
                );
                stuck.push(name);
            }
        }
        stuck
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiting_thread_wakes_at_once_when_stopped() {
        let token = StopToken::default();
        let waiting = token.clone();
        let started = Instant::now();
        let thread = std::thread::spawn(move || waiting.wait(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(20));
        token.stop();
        assert!(thread.join().expect("joined"));
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(token.is_stopped());
    }
}
