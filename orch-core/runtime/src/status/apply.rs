//! The board as a bus subscriber: the host's own events (`module.crashed`,
//! `module.reload_failed`, ...) update the rows they name, in the publisher's
//! thread, at once.

use std::sync::Arc;
use std::time::Duration;

use orch_sdk::events::{
    self, ModuleCircuitClosed, ModuleCircuitOpen, ModuleCrashed, ModuleDeadLetter, ModuleError,
    ModuleFailed, ModuleOverflow, ModuleReloadFailed, ModuleReloaded, ModuleRestarted,
    ModuleUnloaded,
};
use serde::de::DeserializeOwned;

use super::{Entry, LastError, ModuleState, StatusBoard, now_ms};
use crate::bus::{Admission, BusEvent, Delivered, EventSink};

/// The topics the board follows.
pub const FOLLOWED: &[&str] = &["module.*", events::APP_STARTED];

impl StatusBoard {
    /// The sink to register on the bus and subscribe to `FOLLOWED`.
    pub fn sink(&self) -> Arc<dyn EventSink> {
        Arc::new(BoardSink(self.clone()))
    }

    /// The patterns its sink must be subscribed to.
    pub fn followed_topics() -> &'static [&'static str] {
        FOLLOWED
    }

    /// Applies one host event.
    fn apply(&self, topic: &str, payload: &[u8]) {
        self.count_health(topic);
        match topic {
            events::APP_STARTED => self.app_started(),
            events::MODULE_RELOADED => self.with::<ModuleReloaded>(
                payload,
                |e| &e.name,
                |entry, e| {
                    entry.reloads += 1;
                    entry.generation = e.generation;
                    entry.state = ModuleState::Running;
                    let build = Duration::from_secs_f64(e.build_ms.max(0.0) / 1e3);
                    let swap = Duration::from_secs_f64(e.swap_ms.max(0.0) / 1e3);
                    if !build.is_zero() {
                        entry.reload_times.build.observe(build);
                    }
                    entry.reload_times.swap.observe(swap);
                },
            ),
            events::MODULE_RELOAD_FAILED => self.with::<ModuleReloadFailed>(
                payload,
                |e| &e.name,
                |entry, e| {
                    entry.reload_failures += 1;
                    entry.last_error = Some(error(&e.phase, &e.error));
                    if entry.state == ModuleState::Reloading {
                        entry.state = ModuleState::Running;
                    }
                },
            ),
            events::MODULE_ERROR => self.with::<ModuleError>(
                payload,
                |e| &e.name,
                |entry, e| {
                    let message = match &e.topic {
                        Some(topic) => format!("handling '{topic}': {}", e.error),
                        None => e.error.clone(),
                    };
                    entry.last_error = Some(error(&e.phase, &message));
                },
            ),
            events::MODULE_CRASHED => self.with::<ModuleCrashed>(
                payload,
                |e| &e.name,
                |entry, e| {
                    entry.crashes += 1;
                    entry.last_error = Some(error("crash", &e.reason));
                    entry.state = ModuleState::Restarting;
                    entry.running_since = None;
                    entry.counters.set_pid(0);
                },
            ),
            events::MODULE_RESTARTED => self.with::<ModuleRestarted>(
                payload,
                |e| &e.name,
                |entry, _| {
                    entry.restarts += 1;
                    entry.state = ModuleState::Running;
                    entry.running_since = Some(std::time::Instant::now());
                },
            ),
            events::MODULE_FAILED => self.with::<ModuleFailed>(
                payload,
                |e| &e.name,
                |entry, e| {
                    entry.state = ModuleState::Failed;
                    entry.running_since = None;
                    entry.counters.set_pid(0);
                    let message = format!("gave up after {} restarts: {}", e.restarts, e.reason);
                    entry.last_error = Some(error("crash", &message));
                },
            ),
            events::MODULE_UNLOADED => self.with::<ModuleUnloaded>(
                payload,
                |e| &e.name,
                |entry, _| {
                    // An operator's restart stays `restarting` until it runs again.
                    if entry.state != ModuleState::Restarting {
                        entry.state = ModuleState::Stopped;
                    }
                    entry.running_since = None;
                    entry.mailbox = None;
                    entry.counters.set_pid(0);
                },
            ),
            events::MODULE_OVERFLOW => self.with::<ModuleOverflow>(
                payload,
                |e| &e.name,
                |entry, e| {
                    entry.overflows += e.dropped;
                },
            ),
            events::MODULE_DEAD_LETTER => self.with::<ModuleDeadLetter>(
                payload,
                |e| &e.name,
                |entry, _| {
                    entry.dead_letters += 1;
                },
            ),
            events::MODULE_CIRCUIT_OPEN => self.with::<ModuleCircuitOpen>(
                payload,
                |e| &e.name,
                |entry, _| {
                    entry.circuit_open = true;
                },
            ),
            events::MODULE_CIRCUIT_CLOSED => self.with::<ModuleCircuitClosed>(
                payload,
                |e| &e.name,
                |entry, _| {
                    entry.circuit_open = false;
                },
            ),
            _ => {}
        }
    }

    /// Parses `payload` as `E` and applies `f` to the row `name_of` names.
    /// Counts the events a rollout's health gate reads, whichever module.
    fn count_health(&self, topic: &str) {
        let mut board = self.lock();
        let health = &mut board.health;
        match topic {
            events::MODULE_CRASHED => health.crashes += 1,
            events::MODULE_RELOAD_FAILED => health.reload_failures += 1,
            events::MODULE_CIRCUIT_OPEN => health.circuit_opens += 1,
            _ => {}
        }
    }

    fn with<E: DeserializeOwned>(
        &self,
        payload: &[u8],
        name_of: impl Fn(&E) -> &String,
        f: impl FnOnce(&mut Entry, &E),
    ) {
        let Ok(event) = serde_json::from_slice::<E>(payload) else {
            return;
        };
        let mut board = self.lock();
        if let Some(entry) = board
            .modules
            .iter_mut()
            .find(|e| &e.name == name_of(&event))
        {
            f(entry, &event);
        }
    }
}

fn error(phase: &str, message: &str) -> LastError {
    LastError {
        phase: phase.to_owned(),
        message: message.to_owned(),
        at_ms: now_ms(),
    }
}

/// The board's subscription: applies each event as it is published.
struct BoardSink(StatusBoard);

impl EventSink for BoardSink {
    fn deliver(&self, event: &Arc<BusEvent>, _admission: Admission) -> Delivered {
        self.0.apply(event.topic(), event.payload());
        Delivered::Accepted
    }
}
