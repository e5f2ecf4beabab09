//! Arguments of the verbs that talk to a running orchestrator.

use std::path::PathBuf;

use clap::Args;

/// Which running orchestrator a control verb talks to.
#[derive(Debug, Args)]
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
