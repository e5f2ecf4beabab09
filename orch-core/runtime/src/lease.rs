//! Singleton modules (`singleton: true`): the bridge keeps each one's lease
//! in the cluster and tells the main loop when this node got or lost it
//! ([`LeaseChange`]); the main loop starts or stops the module. While it
//! runs, its exported events carry its lease's revision as a fencing token
//! ([`Fences`]), so importers can drop the events of a holder that lost the
//! lease without knowing it yet.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// What the bridge tells the main loop about a singleton's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseChange {
    /// This node holds `module`'s lease now: start it; its events carry
    /// `fence`.
    Acquired {
        /// The module.
        module: String,
        /// The lease's revision when taken.
        fence: u64,
    },
    /// This node lost (or could not renew in time) `module`'s lease: stop it.
    Lost {
        /// The module.
        module: String,
        /// Why, for the log.
        reason: String,
    },
}

/// The fence each running singleton's events carry, by module name: set
/// by the main loop before it starts the module, read by the bridge's
/// export. Also where the main loop hands back a lease it cannot use (the
/// module did not start here), for the bridge to release.
#[derive(Debug, Clone, Default)]
pub struct Fences {
    fences: Arc<Mutex<HashMap<String, u64>>>,
    given_up: Arc<Mutex<HashSet<String>>>,
}

impl Fences {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.fences.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// This node holds `module`'s lease but cannot run it: the bridge
    /// releases the lease (so another node takes it) and waits before it
    /// tries to take it again.
    pub fn give_up(&self, module: &str) {
        self.clear(module);
        self.given_up
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(module.to_owned());
    }

    /// Whether the main loop gave `module`'s lease up (once: the mark is
    /// taken).
    pub fn take_given_up(&self, module: &str) -> bool {
        self.given_up
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(module)
    }

    /// `module`'s events carry `fence` from now on.
    pub fn set(&self, module: &str, fence: u64) {
        self.lock().insert(module.to_owned(), fence);
    }

    /// `module`'s events carry no fence any more.
    pub fn clear(&self, module: &str) {
        self.lock().remove(module);
    }

    /// The fence of `module`'s events, if it is a running singleton.
    pub fn get(&self, module: &str) -> Option<u64> {
        self.lock().get(module).copied()
    }
}
