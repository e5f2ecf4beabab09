//! The built-in system events: a constant for every topic the host publishes
//! and a serde type for each payload, shared by the host (which publishes them)
//! and by modules (which subscribe to them): `event.data::<AppStarted>()`.
//! The `app.*`, `module.*` and `bridge.*` namespaces are the host's.
//!
//! Fields are declared in alphabetical order, so a payload's bytes are the
//! same as the host has always published (keys sorted).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A system event payload and the topic it is published on.
pub trait SystemEvent: Serialize + DeserializeOwned {
    /// The topic (`app.started`).
    const TOPIC: &'static str;
}

/// Every module has started; nothing published before this was missed.
pub const APP_STARTED: &str = "app.started";
/// The orchestrator is shutting down; `shutdown` calls follow.
pub const APP_SHUTDOWN: &str = "app.shutdown";
/// A module was loaded and initialized.
pub const MODULE_LOADED: &str = "module.loaded";
/// A module was shut down and unloaded.
pub const MODULE_UNLOADED: &str = "module.unloaded";
/// A module failed in a phase (an event, a lifecycle call).
pub const MODULE_ERROR: &str = "module.error";
/// A module was swapped to a new generation.
pub const MODULE_RELOADED: &str = "module.reloaded";
/// A reload failed; the old generation goes on.
pub const MODULE_RELOAD_FAILED: &str = "module.reload_failed";
/// An isolated module's child host died.
pub const MODULE_CRASHED: &str = "module.crashed";
/// An isolated module runs again after a crash.
pub const MODULE_RESTARTED: &str = "module.restarted";
/// A module stays down: an isolated module's restart policy gave up, or a
/// mailbox with `overflow: fail` overflowed.
pub const MODULE_FAILED: &str = "module.failed";
/// A module's mailbox was full and events were dropped or refused (at most
/// one report a second per module).
pub const MODULE_OVERFLOW: &str = "module.overflow";
/// An event a module did not get (its mailbox was full, its circuit open, or
/// its handler stuck), for any module that subscribes.
pub const MODULE_DEAD_LETTER: &str = "module.dead_letter";
/// A module's handler kept failing: its events go to the dead letters.
pub const MODULE_CIRCUIT_OPEN: &str = "module.circuit_open";
/// A module's handler succeeded again on a trial event: its events flow again.
pub const MODULE_CIRCUIT_CLOSED: &str = "module.circuit_closed";
/// The NATS bridge connected (or connected again) to a server.
pub const BRIDGE_CONNECTED: &str = "bridge.connected";
/// The NATS bridge lost its server; exported events wait in its outbox.
pub const BRIDGE_DISCONNECTED: &str = "bridge.disconnected";
/// Another node's presence record appeared (`bridge.nats.presence`).
pub const BRIDGE_NODE_JOINED: &str = "bridge.node_joined";
/// Another node stopped (its record deleted) or fell silent past the TTL.
pub const BRIDGE_NODE_LOST: &str = "bridge.node_lost";

/// `app.started`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppStarted {
    /// The running modules, in startup order.
    pub modules: Vec<String>,
    /// From the start of loading to now, in milliseconds.
    pub startup_ms: f64,
}

/// `app.shutdown`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppShutdown {
    /// Why (`SIGINT received`).
    pub reason: String,
}

/// `module.loaded`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleLoaded {
    /// Its `config` from modules.yaml, secrets redacted.
    pub config: serde_json::Value,
    /// The module's name.
    pub name: String,
}

/// `module.unloaded`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleUnloaded {
    /// The module's name.
    pub name: String,
}

/// `module.error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleError {
    /// What happened.
    pub error: String,
    /// What to do about it, when the host knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The module's name.
    pub name: String,
    /// The phase (`on_event`, `initialize`, ...).
    pub phase: String,
    /// The event's topic, for a failure in `on_event`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

/// `module.reloaded`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleReloaded {
    /// How long the build took, in milliseconds.
    pub build_ms: f64,
    /// The generation now running.
    pub generation: u32,
    /// The module's name.
    pub name: String,
    /// How long the swap took, in milliseconds.
    pub swap_ms: f64,
}

/// `module.reload_failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleReloadFailed {
    /// What happened (the first compiler error, the panic message, ...).
    pub error: String,
    /// What to do about it.
    pub hint: String,
    /// The module's name.
    pub name: String,
    /// The phase that failed (`build`, `initialize`, ...).
    pub phase: String,
}

/// `module.crashed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleCrashed {
    /// The generation that crashed.
    pub generation: u32,
    /// The module's name.
    pub name: String,
    /// How its child host ended.
    pub reason: String,
}

/// `module.restarted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleRestarted {
    /// The module's name.
    pub name: String,
    /// Restarts so far.
    pub restarts: u32,
}

/// `module.failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleFailed {
    /// The module's name.
    pub name: String,
    /// How its child host last ended.
    pub reason: String,
    /// Restarts before it gave up.
    pub restarts: u32,
}

/// `module.overflow`: events dropped or refused since the last report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleOverflow {
    /// The mailbox's capacity.
    pub capacity: u64,
    /// Events dropped (or publishes refused) since the last report.
    pub dropped: u64,
    /// The module whose mailbox was full.
    pub name: String,
    /// Its `mailbox.overflow` policy (`block`, `drop-oldest`, ...).
    pub policy: String,
}

/// `module.dead_letter`: one event a module did not get.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleDeadLetter {
    /// The event's payload (`null` if it was not JSON).
    pub data: serde_json::Value,
    /// The event's id.
    pub id: u64,
    /// The module that did not get it.
    pub name: String,
    /// Why: the mailbox's overflow policy (`block`, `drop-oldest`,
    /// `drop-newest`, `fail`), `circuit-open` or `stuck-handler`.
    pub reason: String,
    /// Who published it: a module, or `host`.
    pub source: String,
    /// The event's topic.
    pub topic: String,
}

/// `module.circuit_open`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleCircuitOpen {
    /// The last failure.
    pub error: String,
    /// Consecutive failures.
    pub failures: u32,
    /// The module.
    pub name: String,
    /// How long until one event is tried, in milliseconds.
    pub reset_ms: u64,
}

/// `module.circuit_closed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleCircuitClosed {
    /// The module.
    pub name: String,
}

/// `bridge.connected`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgeConnected {
    /// The server (`host:port`).
    pub server: String,
}

/// `bridge.disconnected`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgeDisconnected {
    /// The server it was connected to (`host:port`).
    pub server: String,
}

/// `bridge.node_joined`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgeNodeJoined {
    /// The node's id.
    pub node: String,
    /// Its incarnation (changes when it restarts).
    pub incarnation: String,
    /// The application version it runs.
    pub version: String,
}

/// `bridge.node_lost`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgeNodeLost {
    /// The node's id.
    pub node: String,
    /// Its incarnation.
    pub incarnation: String,
    /// `stopped` (it deleted its record) or `expired` (silent past the TTL).
    pub reason: String,
}

macro_rules! topics {
    ($($event:ty => $topic:ident),* $(,)?) => {
        $(impl SystemEvent for $event {
            const TOPIC: &'static str = $topic;
        })*

        /// Every built-in topic.
        pub const ALL: &[&str] = &[$($topic),*];
    };
}

topics! {
    AppStarted => APP_STARTED,
    AppShutdown => APP_SHUTDOWN,
    ModuleLoaded => MODULE_LOADED,
    ModuleUnloaded => MODULE_UNLOADED,
    ModuleError => MODULE_ERROR,
    ModuleReloaded => MODULE_RELOADED,
    ModuleReloadFailed => MODULE_RELOAD_FAILED,
    ModuleCrashed => MODULE_CRASHED,
    ModuleRestarted => MODULE_RESTARTED,
    ModuleFailed => MODULE_FAILED,
    ModuleOverflow => MODULE_OVERFLOW,
    ModuleDeadLetter => MODULE_DEAD_LETTER,
    ModuleCircuitOpen => MODULE_CIRCUIT_OPEN,
    ModuleCircuitClosed => MODULE_CIRCUIT_CLOSED,
    BridgeConnected => BRIDGE_CONNECTED,
    BridgeDisconnected => BRIDGE_DISCONNECTED,
    BridgeNodeJoined => BRIDGE_NODE_JOINED,
    BridgeNodeLost => BRIDGE_NODE_LOST,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_is_valid_and_in_a_reserved_namespace() {
        for topic in ALL {
            assert!(crate::topic::validate_topic(topic).is_ok(), "{topic}");
            let namespace = topic.split('.').next().unwrap_or_default();
            assert!(
                crate::topic::RESERVED_NAMESPACES.contains(&namespace),
                "{topic}"
            );
        }
    }

    #[test]
    fn optional_fields_are_left_out_of_the_payload() {
        let event = ModuleError {
            name: "m".into(),
            phase: "on_event".into(),
            topic: Some("t.x".into()),
            error: "boom".into(),
            hint: None,
        };
        let json = serde_json::to_value(&event).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"name": "m", "phase": "on_event", "topic": "t.x", "error": "boom"})
        );
    }
}
