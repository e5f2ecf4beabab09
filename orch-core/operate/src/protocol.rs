//! The control protocol: one JSON request line, one JSON response line, on
//! a Unix socket (`cargo orch status`, `reload`, `restart`, `stop`, `start`).

use orch_runtime::status::{BridgeSnapshot, Deployment, ModuleStatus};
use serde::{Deserialize, Serialize};

/// The largest request line a server reads, in bytes.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Request {
    /// Every module's row and the bridge's state.
    Status,
    /// Rebuild module `module` and swap it to a new generation, as a save would.
    Reload {
        /// The module's name in modules.yaml.
        module: String,
    },
    /// Stop module `module` and start it again from its library.
    Restart {
        /// The module's name.
        module: String,
    },
    /// Shut module `module` down and unload it.
    Stop {
        /// The module's name.
        module: String,
    },
    /// Load and start module `module` (one that is stopped or failed).
    Start {
        /// The module's name.
        module: String,
    },
    /// Swap in the modules and configuration of another bundle (a bundle
    /// run only): the orchestrator verifies it with its own trusted keys.
    Deploy {
        /// The bundle's archive (or unpacked folder) on this machine.
        bundle: std::path::PathBuf,
    },
    /// Go back to the bundle that ran before the last deploy.
    Rollback,
    /// Follow the events whose topic matches `pattern`: the answer is a
    /// stream of [`Response::Tapped`] lines until the client hangs up (or
    /// `count` were sent).
    Tap {
        /// A topic pattern (`test.>`).
        pattern: String,
        /// Stop after this many events.
        #[serde(default)]
        count: Option<u64>,
        /// Whole payloads (for `cargo orch record`), not cut to
        /// [`TAP_PAYLOAD_BYTES`]; the tap's queue is then bounded in bytes
        /// too ([`FULL_TAP_QUEUE_BYTES`]).
        #[serde(default)]
        full: bool,
    },
    /// Publish one event into the running orchestrator, as `source`.
    Emit {
        /// The topic (the same rules as a module's publish).
        topic: String,
        /// The JSON payload, as text.
        payload: String,
        /// Who it comes from (never a declared module's name).
        source: String,
    },
}

impl Request {
    /// The verb (`reload`), as the CLI and the log name it.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Reload { .. } => "reload",
            Self::Restart { .. } => "restart",
            Self::Stop { .. } => "stop",
            Self::Start { .. } => "start",
            Self::Deploy { .. } => "deploy",
            Self::Rollback => "rollback",
            Self::Emit { .. } => "emit",
            Self::Tap { .. } => "tap",
        }
    }
}

/// What a server answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Response {
    /// The status report.
    Status(Box<StatusReport>),
    /// The action was carried out; `message` says what happened.
    Done {
        /// One line (`module 'ticker' runs generation 3`).
        message: String,
    },
    /// The action failed or was refused.
    Error {
        /// What went wrong, naming the module and the phase.
        message: String,
        /// What to do about it.
        hint: Option<String>,
        /// A request the orchestrator did not understand or cannot take
        /// (an unknown module, a module in the wrong state): exit code 2.
        usage: bool,
    },
    /// One event a tap saw.
    Tapped(Box<TapEvent>),
}

/// An event as `cargo orch tap` shows it: the payload scrubbed of the
/// configuration's secrets and cut to [`TAP_PAYLOAD_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TapEvent {
    /// Its topic.
    pub topic: String,
    /// The module that published it; `None` for the host.
    pub source: Option<String>,
    /// The node it came from, when imported through the bridge.
    pub origin: Option<String>,
    /// Its id on the bus.
    pub id: u64,
    /// When it was published, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The payload as text (lossy UTF-8), scrubbed, at most
    /// [`TAP_PAYLOAD_BYTES`].
    pub payload: String,
    /// The payload's whole size in bytes.
    pub payload_bytes: u64,
    /// Events this tap dropped so far (its queue was full).
    pub dropped: u64,
}

/// The most payload bytes a full tap holds for its client at once.
pub const FULL_TAP_QUEUE_BYTES: usize = 16 * 1024 * 1024;

/// The most payload bytes a tap copies of one event.
pub const TAP_PAYLOAD_BYTES: usize = 4096;

impl Response {
    /// A failed action.
    pub fn error(message: impl Into<String>, hint: Option<String>) -> Self {
        Self::Error {
            message: message.into(),
            hint,
            usage: false,
        }
    }

    /// A refused request (wrong module name or state).
    pub fn refused(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::Error {
            message: message.into(),
            hint: Some(hint.into()),
            usage: true,
        }
    }
}

/// One orchestrator's answer to `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// `app.name` from main.yaml.
    pub app: String,
    /// `app.version`.
    pub version: String,
    /// The orchestrator's pid.
    pub pid: u32,
    /// The environment overlay (`--env`), if any.
    pub environment: Option<String>,
    /// Seconds since the orchestrator started.
    pub uptime_secs: f64,
    /// `app.started` was published and no module is failed.
    pub ready: bool,
    /// Every module that ever started, in start order.
    pub modules: Vec<ModuleStatus>,
    /// The NATS bridge, when main.yaml has one.
    pub bridge: Option<BridgeSnapshot>,
    /// The bundle it runs (`run --bundle`): version, commit, digests.
    #[serde(default)]
    pub bundle: Option<Deployment>,
}
