//! How a module call fails. Every failure names what failed, the phase, the
//! cause and a hint: "failed to load" with no detail is a bug.

use std::fmt;
use std::time::Duration;

use orch_config::Timeouts;

/// The phase of a module's life in which something failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// `cargo build`.
    Build,
    /// Copying the artifact and `dlopen`.
    Load,
    /// Reading and checking the module's ABI descriptor.
    AbiCheck,
    /// Creating the instance.
    Create,
    /// `Module::initialize`.
    Initialize,
    /// `Module::start`.
    Start,
    /// `Module::on_event`.
    Event,
    /// `Module::save_state`.
    SaveState,
    /// `Module::shutdown`.
    Shutdown,
    /// Swapping in a new generation.
    Reload,
    /// Reading and checking the module's topic types.
    Types,
}

impl Phase {
    /// The phase as users read it in logs and events (`initialize`, `abi-check`).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Build => "build",
            Phase::Load => "load",
            Phase::AbiCheck => "abi-check",
            Phase::Create => "create",
            Phase::Initialize => "initialize",
            Phase::Start => "start",
            Phase::Event => "on_event",
            Phase::SaveState => "save_state",
            Phase::Shutdown => "shutdown",
            Phase::Reload => "reload",
            Phase::Types => "types",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a module call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The module returned an error.
    Error(String),
    /// The module panicked (message and location).
    Panic(String),
    /// The call did not return within its timeout.
    Timeout(Duration),
    /// The host could not make the call (missing file, symbol, ABI, ...).
    Host(String),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Error(message) => write!(f, "returned an error: {message}"),
            Cause::Panic(message) => write!(f, "{message}"),
            Cause::Timeout(limit) => write!(
                f,
                "did not return within {} (timeout)",
                orch_sdk::duration::human(*limit)
            ),
            Cause::Host(message) => f.write_str(message),
        }
    }
}

/// A module that failed in a phase, with the cause and a hint for the fix.
#[derive(Debug, Clone, thiserror::Error)]
#[error("module '{module}' failed in phase {phase}: {cause}\n  hint: {hint}")]
pub struct ModuleFailure {
    /// The module's name in `config/modules.yaml`.
    pub module: String,
    /// The phase.
    pub phase: Phase,
    /// What happened.
    pub cause: Cause,
    /// What the user can do about it.
    pub hint: String,
}

impl ModuleFailure {
    /// A failure with the default hint for its phase and cause.
    pub fn new(module: impl Into<String>, phase: Phase, cause: Cause) -> Self {
        let hint = default_hint(phase, &cause);
        Self {
            module: module.into(),
            phase,
            cause,
            hint,
        }
    }

    /// The same failure with a more specific hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = hint.into();
        self
    }
}

fn default_hint(phase: Phase, cause: &Cause) -> String {
    match (phase, cause) {
        (_, Cause::Timeout(_)) => format!(
            "the module's {phase} is stuck or slow: look for a blocking call or endless loop \
             there, or raise `timeouts.{}` in config/main.yaml",
            phase.timeout_key()
        ),
        (_, Cause::Panic(_)) => {
            format!("fix the panic in the module's {phase}; the message above gives the location")
        }
        (Phase::Initialize, _) => {
            "check the module's `config` in config/modules.yaml and its initialize()".into()
        }
        _ => format!("see the module's {phase} code"),
    }
}

impl Phase {
    /// The `timeouts` key in `config/main.yaml` that bounds this phase: the
    /// one place that says which timeout applies to which phase.
    pub fn timeout_key(self) -> &'static str {
        match self {
            Phase::Load | Phase::AbiCheck | Phase::Create | Phase::Types => "load",
            Phase::Initialize => "initialize",
            Phase::Start => "start",
            Phase::Event => "event",
            Phase::SaveState | Phase::Reload => "reload",
            Phase::Shutdown => "shutdown",
            Phase::Build => "build",
        }
    }

    /// The timeout of this phase in `timeouts` (the value of [`Phase::timeout_key`]).
    pub fn timeout(self, timeouts: &Timeouts) -> Duration {
        match self.timeout_key() {
            "load" => timeouts.load,
            "initialize" => timeouts.initialize,
            "start" => timeouts.start,
            "event" => timeouts.event,
            "shutdown" => timeouts.shutdown,
            "build" => timeouts.build,
            _ => timeouts.reload,
        }
    }
}
