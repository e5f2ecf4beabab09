//! What the process's signal handling shares with the supervisor: a flag that
//! cancels a start-up in progress, and the step the supervisor is in, so a
//! shutdown that overruns `timeouts.shutdown_total` can name what is stuck.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::Phase;

/// Shared between the signal thread and the supervisor. Cheap to clone.
#[derive(Clone, Default)]
pub struct Control {
    cancel: Arc<AtomicBool>,
    step: Arc<Mutex<Option<String>>>,
}

impl Control {
    /// Asks a start-up in progress to stop before its next step.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Release);
    }

    /// Whether the start-up was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Acquire)
    }

    /// What the supervisor is doing now: `module 'x' (phase shutdown)`.
    pub fn current_step(&self) -> Option<String> {
        self.step.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Runs `f` as the step `module` is in during `phase`, for
    /// [`Control::current_step`].
    pub(crate) fn in_step<R>(&self, module: &str, phase: Phase, f: impl FnOnce() -> R) -> R {
        self.set_step(Some(format!("module '{module}' (phase {phase})")));
        let outcome = f();
        self.set_step(None);
        outcome
    }

    fn set_step(&self, step: Option<String>) {
        *self.step.lock().unwrap_or_else(|e| e.into_inner()) = step;
    }
}
