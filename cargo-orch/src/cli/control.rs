//! Arguments of the verbs that talk to a running orchestrator.

use std::path::PathBuf;

use clap::Args;

/// Which running orchestrator a control verb talks to.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// The orchestrator's pid (needed when several run in this workspace).
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,

    /// Talk to this control socket instead of looking in target/orch/control/.
    #[arg(long, value_name = "PATH", conflicts_with = "pid")]
    pub socket: Option<PathBuf>,

    /// How long to wait for the answer, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 900)]
    pub timeout: u64,
}

/// `cargo orch status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Which orchestrator.
    #[command(flatten)]
    pub target: TargetArgs,

    /// Print the report as JSON (one object per orchestrator, in an array).
    #[arg(long, conflicts_with = "watch")]
    pub json: bool,

    /// Refresh the table every second until Ctrl-C.
    #[arg(long)]
    pub watch: bool,

    /// Show the whole cluster as this node sees it (every node of its
    /// `bridge.nats.presence` bucket, each module's state); with --json,
    /// the nodes as an array.
    #[arg(long)]
    pub cluster: bool,
}

/// `cargo orch tap`.
#[derive(Debug, Args)]
pub struct TapArgs {
    /// A topic pattern: `test.>`, `sensor.*.raw`, `>` for everything.
    #[arg(value_name = "PATTERN")]
    pub pattern: String,

    /// One JSON object per event (a script's format).
    #[arg(long, conflicts_with = "rate")]
    pub json: bool,

    /// Stop after N events.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,

    /// Print events per second per topic, every second, instead of the events.
    #[arg(long)]
    pub rate: bool,

    /// Check each event against the payload type its publisher declares
    /// (typed topics): `fits TYPE`, or `DOES NOT FIT TYPE` with each field.
    #[arg(long, conflicts_with = "rate")]
    pub validate: bool,

    /// Which orchestrator.
    #[command(flatten)]
    pub target: TargetArgs,
}

/// `cargo orch top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// Print one table (rates over one second) and exit.
    #[arg(long)]
    pub once: bool,

    /// Which orchestrator.
    #[command(flatten)]
    pub target: TargetArgs,
}

/// `cargo orch record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// A topic pattern: `test.>`, `>` for everything.
    #[arg(value_name = "PATTERN")]
    pub pattern: String,

    /// The recording to write (gzip of JSON lines; written whole, or not at
    /// all: FILE.partial until it ends).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// Stop after N events.
    #[arg(long, value_name = "N", conflicts_with = "duration")]
    pub count: Option<u64>,

    /// Stop after this long (`30s`, `5m`); else at Ctrl-C.
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,

    /// Which orchestrator.
    #[command(flatten)]
    pub target: TargetArgs,
}

/// `cargo orch replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A recording from `cargo orch record`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Play at this many times the recorded pace (default 1).
    #[arg(long, value_name = "X", conflicts_with = "as_fast_as_possible")]
    pub speed: Option<f64>,

    /// Send each event as soon as the one before was taken.
    #[arg(long)]
    pub as_fast_as_possible: bool,

    /// The name the events come from (not a declared module's).
    #[arg(long, value_name = "NAME", default_value = "replay")]
    pub source: String,

    /// The orchestrator to replay into, by process id (as --pid).
    #[arg(long, value_name = "PID", conflicts_with_all = ["pid", "socket"])]
    pub into: Option<u32>,

    /// Which orchestrator.
    #[command(flatten)]
    pub target: TargetArgs,
}

/// `cargo orch emit`.
#[derive(Debug, Args)]
pub struct EmitArgs {
    /// The topic (outside the host's app.*, module.* and bridge.*).
    #[arg(value_name = "TOPIC")]
    pub topic: String,

    /// The payload: one JSON value (at most about 60 KiB).
    #[arg(value_name = "JSON")]
    pub json: String,

    /// The name the event comes from (not a declared module's).
    #[arg(long, value_name = "NAME", default_value = "cli")]
    pub source: String,

    /// Which orchestrator.
    #[command(flatten)]
    pub target: TargetArgs,
}

/// `cargo orch deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The bundle: an archive from `cargo orch bundle`, or a folder one was
    /// unpacked into.
    #[arg(value_name = "BUNDLE", required_unless_present = "rollback")]
    pub bundle: Option<PathBuf>,

    /// Go back to the bundle that ran before the last deploy.
    #[arg(long, conflicts_with = "bundle")]
    pub rollback: bool,

    /// Which orchestrator.
    #[command(flatten)]
    pub target: TargetArgs,
}

/// `cargo orch reload|restart|stop|start NAME`.
#[derive(Debug, Args)]
pub struct ModuleArgs {
    /// The module's name in modules.yaml.
    #[arg(value_name = "NAME")]
    pub module: String,

    /// Which orchestrator.
    #[command(flatten)]
    pub target: TargetArgs,
}
