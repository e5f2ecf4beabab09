//! Arguments of the verbs that work on the workspace: build, test, run, read logs.

use std::path::PathBuf;

use clap::Args;

use super::TrustArgs;

/// `cargo orch logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only the lines this module wrote (its name in modules.yaml).
    #[arg(value_name = "MODULE")]
    pub module: Option<String>,

    /// Keep printing lines as they are written, until Ctrl-C.
    #[arg(long, short)]
    pub follow: bool,

    /// Only lines written in this last stretch of time (`10m`, `2h`, `30s`).
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,

    /// Only lines of this level or above: trace, debug, info, warn, error.
    #[arg(long, value_name = "LEVEL")]
    pub level: Option<String>,
}

/// `cargo orch run`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("bundle_source").args(["bundle", "from_nats"]))]
pub struct RunArgs {
    /// Rebuild and hot-reload a module when its sources change (overrides hot_reload).
    #[arg(long, conflicts_with = "no_watch")]
    pub watch: bool,

    /// Do not watch sources even if config/main.yaml sets hot_reload: true.
    #[arg(long)]
    pub no_watch: bool,

    /// Build the modules with the release profile.
    #[arg(long)]
    pub release: bool,

    /// Listen for `cargo orch status` and the other control verbs on this
    /// Unix socket (default: target/orch/control/PID.sock).
    #[arg(long, value_name = "PATH")]
    pub control_socket: Option<PathBuf>,

    /// Skip `cargo build` and load the libraries of the last build as they are
    /// (fast restarts; the modules must have been built with the same profile).
    #[arg(long, conflicts_with = "watch")]
    pub no_build: bool,

    /// Run this bundle (an archive from `cargo orch bundle`, or a folder it
    /// was unpacked into) instead of the workspace: no cargo, no sources and
    /// no Rust toolchain needed. It is verified before anything loads.
    #[arg(long, value_name = "FILE|DIR", conflicts_with_all = ["watch", "release", "no_build"])]
    pub bundle: Option<PathBuf>,

    #[command(flatten)]
    pub trust: TrustArgs,

    /// Where an archive is unpacked, into a folder named after its app,
    /// version and digest (default: beside the archive; with --from-nats,
    /// where archives are downloaded too, default: this folder).
    #[arg(long, value_name = "DIR", requires = "bundle_source")]
    pub unpack_dir: Option<PathBuf>,

    /// Run the release of --app that the NATS server at URL holds for this
    /// node (pushed with `cargo orch push`), verified as --bundle is, and
    /// follow it: when the node's desired release or the current one
    /// changes, it is fetched, verified and deployed.
    #[arg(long, value_name = "URL", requires = "app", conflicts_with_all = ["watch", "release", "no_build"])]
    pub from_nats: Option<String>,

    /// With --from-nats: the application (its app.name).
    #[arg(long, value_name = "NAME", requires = "from_nats")]
    pub app: Option<String>,

    /// With --from-nats: this node's id (its desired release, its presence
    /// record; default: $ORCH_NODE, else the host name).
    #[arg(long, value_name = "NAME", requires = "from_nats")]
    pub node: Option<String>,

    /// With --from-nats: a NATS user's credentials file.
    #[arg(long, value_name = "FILE", requires = "from_nats")]
    pub creds: Option<PathBuf>,
}

/// `cargo orch test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The modules to test, by name in modules.yaml (default: every enabled module).
    #[arg(value_name = "MODULE", conflicts_with = "all")]
    pub modules: Vec<String>,

    /// Test every module declared in modules.yaml, disabled ones included.
    #[arg(long)]
    pub all: bool,

    /// Also write the report as JUnit XML to FILE (folders created as needed).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Print the report as JSON on stdout, and nothing else there.
    #[arg(long)]
    pub json: bool,

    /// Run each test binary in one process, as `cargo test` does, instead of each test
    /// in a process of its own: fewer process starts, but a crash fails the whole
    /// binary and tests get no time of their own.
    #[arg(long)]
    pub fast: bool,

    /// Run a failing test up to N more times; one that passes on a retry is reported
    /// as flaky.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub retries: u32,

    /// Never stop a test (for debugging); by default a test is killed after
    /// `test.timeout` of its module, else `timeouts.test` of main.yaml (60s).
    #[arg(long)]
    pub no_timeout: bool,

    /// Doc tests run by default, as `cargo test --doc` runs them; this leaves them out.
    #[arg(long)]
    pub no_doc: bool,

    /// Arguments for every test binary, e.g. `-- --include-ignored` or a test name filter.
    #[arg(last = true, value_name = "TEST_ARGS")]
    pub test_args: Vec<String>,
}

/// `cargo orch new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The module's name, also its package name: lowercase ASCII letters, digits,
    /// `-` and `_`, starting with a letter.
    #[arg(value_name = "NAME", required_unless_present = "list_templates")]
    pub name: Option<String>,

    /// The template to render (see --list-templates).
    #[arg(long, short, value_name = "TEMPLATE", default_value = "basic")]
    pub template: String,

    /// The module's folder, inside the workspace (default: modules-backend/NAME).
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,

    /// Do not declare the module in config/modules.yaml.
    #[arg(long)]
    pub no_register: bool,

    /// Print the module templates, one line each, and exit.
    #[arg(long, conflicts_with_all = ["name", "path", "no_register"])]
    pub list_templates: bool,
}

/// `cargo orch check`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("bundle_source").args(["bundle"]))]
pub struct CheckArgs {
    /// Build the modules with the release profile.
    #[arg(long, conflicts_with = "bundle")]
    pub release: bool,

    /// Also print the log: each phase's timing and what the modules log.
    #[arg(long, short)]
    pub verbose: bool,

    /// Verify this bundle instead (nothing is built, loaded or run): every
    /// file's size and SHA-256 against its manifest, and the manifest's
    /// signature against --trusted-key. A folder is checked as unpacked.
    #[arg(long, value_name = "FILE|DIR")]
    pub bundle: Option<PathBuf>,

    #[command(flatten)]
    pub trust: TrustArgs,
}

/// `cargo orch list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON (an object with a `modules` array) for scripts.
    #[arg(long)]
    pub json: bool,

    /// Compare with the release build instead of the debug build.
    #[arg(long)]
    pub release: bool,
}

/// `cargo orch init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The new workspace's folder (created when missing; it must not hold a
    /// Cargo.toml).
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
}

/// `cargo orch graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// The output: dot (Graphviz), mermaid, or svg (laid out here, no
    /// Graphviz needed); default: from --out's extension, else dot.
    #[arg(long, value_enum)]
    pub format: Option<GraphFormat>,

    /// Write it to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Draw a running orchestrator's real subscriptions, with the events
    /// each edge carried so far (per sender and topic), over the contracts.
    #[arg(long)]
    pub live: bool,

    /// Which orchestrator, with --live.
    #[command(flatten)]
    pub target: super::control::TargetArgs,
}

/// What `cargo orch graph` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// Graphviz's DOT language.
    Dot,
    /// A Mermaid flowchart.
    Mermaid,
    /// An SVG picture.
    Svg,
}
