//! How a child host ends: asked or killed, its threads joined, its copies
//! removed, and the reason told (killed for what, or its exit and last
//! words), with what it handled and died before answering.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;
use orch_wire::protocol::Frame;

use super::{ChildProcess, ExitKind, ExitReason, Incoming, Shared, Signal};

impl ChildProcess {
    /// Ends it as [`ChildProcess::end`] does, and says how many more events
    /// (after the replies the actor took) it handled without error and died
    /// before answering: its note in the shared segment, bounded by the
    /// requests sent (0 over pipes, where every answer is written at once).
    pub(in crate::isolation) fn end_after_crash(self) -> (String, ExitKind, u64) {
        let note = self.down.as_ref().map(|down| {
            let ring = down.ring.lock().unwrap_or_else(|e| e.into_inner());
            ring.0.handled_note()
        });
        let (taken, shared) = (self.taken.get(), Arc::clone(&self.shared));
        let (reason, kind) = self.end();
        // Read once the child is gone: the note moves no more.
        let sent = shared.requests_sent.load(Ordering::Acquire);
        let handled = note.map_or(0, |note| {
            let noted = note.read();
            if noted > taken && noted <= sent {
                noted - taken
            } else {
                0
            }
        });
        (reason, kind, handled)
    }

    /// Ends it (if it still runs) and its threads, and says why it ended: the
    /// reason it was killed for, or its exit status, with its notable last words
    /// on stderr (a panic or runtime message), read to the end first.
    pub(in crate::isolation) fn end(self) -> (String, ExitKind) {
        let shared = Arc::clone(&self.shared);
        let memory_max = self.memory_max;
        self.finish(false);
        let (mut reason, kind) = Self::reason(&shared);
        if let Some(bytes) = memory_max
            && reason.contains("memory allocation of")
        {
            reason.push_str(&format!(
                " (its `limits.memory_max` is {} MiB: raise it if the module needs more)",
                bytes >> 20
            ));
        }
        (reason, kind)
    }

    fn reason(shared: &Shared) -> (String, ExitKind) {
        let exit = *shared.exit.lock().unwrap_or_else(|e| e.into_inner());
        let status = exit.map_or_else(|| "ended".to_owned(), |e| e.to_string());
        let killed_for = shared.killed_for();
        let last_words = shared
            .last_words
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let killed_by_us = killed_for.is_some()
            || (shared.pipe_broke.load(Ordering::SeqCst)
                && exit.is_some_and(|e| e.is_signal(Signal::SIGKILL)));
        let mut reason = match killed_for {
            Some(why) => format!("{why}; {status}"),
            None if killed_by_us => format!("its input pipe broke; {status}"),
            None => status,
        };
        if let Some(words) = last_words {
            reason.push_str(&format!(": {words}"));
        }
        let clean = exit.is_some_and(ExitReason::is_success) && !killed_for_any(shared);
        let kind = if clean {
            ExitKind::Clean
        } else {
            ExitKind::Failure
        };
        (reason, kind)
    }

    /// Waits (bounded) until the reader has seen the end and reaped the child.
    pub(in crate::isolation) fn wait_dead(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .replies
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(Incoming::Dead) | Err(RecvTimeoutError::Disconnected) => return true,
                Ok(Incoming::Reply(..) | Incoming::Handled(..)) => {}
                Err(RecvTimeoutError::Timeout) => return false,
            }
        }
    }

    /// Ends the child (asking first when `polite`) and its threads.
    pub(in crate::isolation) fn finish(mut self, polite: bool) {
        let dead = polite && self.send(&Frame::Exit) && self.wait_dead(Duration::from_secs(2));
        let reaped = self
            .shared
            .exit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if !dead && !reaped {
            self.shared.kill("stopped by the orchestrator".into());
            self.wait_dead(Duration::from_secs(2));
        }
        drop(self.stop_heartbeat.take());
        drop(self.writer.take());
        drop(self.down.take());
        // Bounded: a process the module started may hold the child's stderr
        // (if it left the group) and keep its reader from ending.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && self.threads.iter().any(|t| !t.is_finished()) {
            std::thread::sleep(Duration::from_millis(5));
        }
        for thread in self.threads.drain(..) {
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                tracing::warn!(
                    "a thread serving an isolated module's child did not end within 2 s \
                     (its output is still held open); left to end on its own"
                );
            }
        }
        // The child is gone (reaped, its group killed): nothing maps its copy
        // of the library any more but helpers that left the group, and
        // removing a mapped file leaves their mapping intact.
        if let Err(e) = std::fs::remove_dir_all(&self.copies)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove {}: {e}", self.copies.display());
        }
    }
}

fn killed_for_any(shared: &Shared) -> bool {
    shared.killed_for().is_some()
}
