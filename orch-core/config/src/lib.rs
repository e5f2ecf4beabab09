//! The application configuration: `config/main.yaml` and `config/modules.yaml`.
//!
//! Both files are parsed and validated completely before anything runs: every
//! problem of both files is collected into one [`ConfigErrors`], each with its
//! file, line, column and a hint. `main.yaml` is optional (all defaults);
//! `modules.yaml` is required.
//!
//! Every string value may use `${VAR}` or `${VAR:-default}`, expanded after
//! parsing (so a variable's value can never inject YAML); `$${` is a literal
//! `${`. Variables come from the process environment first, then from the
//! workspace's `.env` file. Values of secret-looking keys (see
//! [`is_secret_key`]) are gathered in [`AppConfig::secrets`] so logs can be
//! scrubbed of them, and [`ModuleSpec::redacted_config`] is safe to print.
//!
//! An environment (`--env prod`, [`load_layered`]) layers the files of
//! `config/prod/` over the base files before they are validated as one.

mod bridge;
mod bridge_jetstream;
mod bridge_presence;
mod bridge_requests;
mod bridge_tokens;
mod bridge_work;
mod check;
mod delivery;
mod environment;
mod error;
mod load;
mod merge;
mod metrics;
mod module_limits;
mod notify;
pub mod raw_main;
mod variables;
mod webhook_url;

pub use bridge::{
    BridgeSettings, DEFAULT_PRESENCE_TTL, DEFAULT_SUBJECT_PREFIX, JetStreamSettings, NatsAuth,
    NatsSettings, NatsTls, PresenceSettings, WorkGroup,
};
pub use bridge_work::{DEFAULT_MAX_IN_FLIGHT, MAX_IN_FLIGHT};
pub(crate) use delivery::ModuleDefaults;
pub use delivery::{CircuitBreakerSettings, DEFAULT_MAX_EVENT_BYTES, MailboxSettings, Overflow};
pub use environment::environments;
pub use metrics::{DEFAULT_METRICS_LISTEN, MetricsSettings};
pub use module_limits::{MIN_MEMORY_MAX, ModuleLimits};
pub use notify::{DEFAULT_WEBHOOK_EVENTS, NotifySettings, WebhookSettings};
mod main_file;
mod modules_file;
mod order;
mod redact;
mod source;
mod suggest;
#[cfg(test)]
mod tests;
pub mod workspace;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{ConfigError, ConfigErrors};
pub use redact::{is_secret_key, redact_json};

use crate::workspace::Workspace;

/// The whole, validated configuration.
#[derive(Clone)]
pub struct AppConfig {
    /// `main.yaml`.
    pub main: MainConfig,
    /// Every module declared in `modules.yaml`, in file order, disabled ones included.
    pub modules: Vec<ModuleSpec>,
    /// The folder the files were read from.
    pub config_dir: PathBuf,
    /// The environment layered over the base files (`--env prod`: the
    /// folder `config_dir/prod`), `None` without one.
    pub environment: Option<String>,
    /// Every secret value (after `${VAR}` expansion, at least 4 characters),
    /// longest first, to scrub from logs.
    pub secrets: Vec<String>,
}

impl AppConfig {
    /// The enabled modules in startup order: declared order refined by
    /// `depends_on` (a stable topological sort: among the modules whose
    /// dependencies have started, the earliest declared goes first).
    pub fn startup_order(&self) -> Vec<&ModuleSpec> {
        let enabled: Vec<&ModuleSpec> = self.modules.iter().filter(|m| m.enabled).collect();
        order::stable_order(&order::dependency_graph(&enabled))
            .into_iter()
            .map(|i| enabled[i])
            .collect()
    }

    /// The module declared as `name`.
    pub fn module(&self, name: &str) -> Option<&ModuleSpec> {
        self.modules.iter().find(|m| m.name == name)
    }
}

impl fmt::Debug for AppConfig {
    /// Shows the secrets' count, never their values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppConfig")
            .field("main", &self.main)
            .field("modules", &self.modules)
            .field("config_dir", &self.config_dir)
            .field("environment", &self.environment)
            .field("secrets", &format_args!("<{} hidden>", self.secrets.len()))
            .finish()
    }
}

/// `config/main.yaml`.
#[derive(Debug, Clone, PartialEq)]
pub struct MainConfig {
    /// `app`: the application's name and version.
    pub app: AppInfo,
    /// `hot_reload`: rebuild and swap modules on saved edits (also `--watch`).
    pub hot_reload: bool,
    /// `timeouts`: per phase, per module.
    pub timeouts: Timeouts,
    /// `resources`: memory and thread budgeting.
    pub resources: ResourceSettings,
    /// `logging`: level, format and log files.
    pub logging: LoggingSettings,
    /// `mailbox`: the default capacity and overflow policy of every module's
    /// mailbox (a module's own `mailbox:` in modules.yaml overrides it).
    pub mailbox: MailboxSettings,
    /// `max_event_bytes`: the largest payload the bus accepts (default 16 MiB).
    pub max_event_bytes: u64,
    /// `circuit_breaker`: the default for every module's handler.
    pub circuit_breaker: CircuitBreakerSettings,
    /// `limits`: the default of what each module may take.
    pub limits: ModuleLimits,
    /// `bridge`: events shared with other orchestrators through NATS;
    /// `None` (the default): everything stays in-process.
    pub bridge: Option<BridgeSettings>,
    /// `metrics`: where the metrics endpoint listens; `None` (the default):
    /// no endpoint.
    pub metrics: Option<MetricsSettings>,
    /// `notify`: alerts sent out of the process (default: none).
    pub notify: NotifySettings,
}

impl Default for MainConfig {
    fn default() -> Self {
        Self {
            app: AppInfo::default(),
            hot_reload: false,
            timeouts: Timeouts::default(),
            resources: ResourceSettings::default(),
            logging: LoggingSettings::default(),
            mailbox: MailboxSettings::default(),
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            circuit_breaker: CircuitBreakerSettings::default(),
            limits: ModuleLimits::default(),
            bridge: None,
            metrics: None,
            notify: NotifySettings::default(),
        }
    }
}

/// `app` in `main.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppInfo {
    /// Application name (default `cargo-orch-app`).
    pub name: String,
    /// Application version (default `0.1.0`).
    pub version: String,
}

impl Default for AppInfo {
    fn default() -> Self {
        Self {
            name: "cargo-orch-app".to_owned(),
            version: "0.1.0".to_owned(),
        }
    }
}

/// `timeouts` in `main.yaml`: how long each phase of a module may take.
/// Written as `250ms`, `5s`, `2m` or a number of seconds; never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Copying the artifact, `dlopen` and the ABI check (default 5 s).
    pub load: Duration,
    /// `Module::initialize` (default 5 s).
    pub initialize: Duration,
    /// `Module::start` (default 5 s).
    pub start: Duration,
    /// One `Module::on_event` call (default 5 s).
    pub event: Duration,
    /// `Module::shutdown` (default 5 s).
    pub shutdown: Duration,
    /// Swapping in a new generation, `save_state` included (default 5 s).
    pub reload: Duration,
    /// One `cargo build` (default 10 min).
    pub build: Duration,
    /// How long a publish waits for a full mailbox whose policy is `block`
    /// (default 1 s).
    pub publish: Duration,
    /// From SIGINT/SIGTERM to the end of the process, whatever modules do
    /// (default 30 s): past it the process exits, naming what is stuck.
    pub shutdown_total: Duration,
    /// One test of `cargo orch test` (default 60 s): past it the test is
    /// killed and reported as timed out; a module's `test.timeout` wins.
    pub test: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let five = Duration::from_secs(5);
        Self {
            load: five,
            initialize: five,
            start: five,
            event: five,
            shutdown: five,
            reload: five,
            build: Duration::from_secs(600),
            publish: Duration::from_secs(1),
            shutdown_total: Duration::from_secs(30),
            test: Duration::from_secs(60),
        }
    }
}

/// `resources` in `main.yaml`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResourceSettings {
    /// Share of memory kept for the system, in `[0, 1)` (default 0.2).
    pub reserved_memory_fraction: f64,
    /// Memory budgeted per module process, in MB, above 0 (default 256).
    pub memory_per_process_mb: u64,
    /// Worker threads per CPU core, above 0 (default 4).
    pub threads_per_core: u32,
    /// How often resource usage is sampled (default 60 s).
    pub usage_interval: Duration,
}

impl Default for ResourceSettings {
    fn default() -> Self {
        Self {
            reserved_memory_fraction: 0.2,
            memory_per_process_mb: 256,
            threads_per_core: 4,
            usage_interval: Duration::from_secs(60),
        }
    }
}

/// `logging` in `main.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggingSettings {
    /// Level or filter (default `info`); `RUST_LOG`, when set, wins.
    pub level: String,
    /// Console format (default human).
    pub format: LogFormat,
    /// Folder of the log files. [`load`] resolves it against the workspace
    /// root; the default value is the relative `logs`.
    pub dir: PathBuf,
    /// Log file name inside `dir` (default `app.log`).
    pub file: String,
    /// Size at which the log file rotates, in MB (default 10).
    pub max_size_mb: u64,
    /// Rotated files kept (default 5).
    pub max_files: usize,
}

impl Default for LoggingSettings {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Human,
            dir: PathBuf::from("logs"),
            file: "app.log".to_owned(),
            max_size_mb: 10,
            max_files: 5,
        }
    }
}

/// `logging.format`: `human` or `json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Readable lines for a terminal.
    #[default]
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// One entry of `modules.yaml`.
#[derive(Clone, PartialEq, Default)]
pub struct ModuleSpec {
    /// The module's name, unique in the file.
    pub name: String,
    /// The cargo package that builds it (resolved from `package`, `path` or the name).
    pub package: String,
    /// Whether it runs (default true).
    pub enabled: bool,
    /// Its own settings: always a JSON object, `${VAR}`s expanded.
    pub config: serde_json::Value,
    /// Names of the modules that must start before it.
    pub depends_on: Vec<String>,
    /// `test`: how `cargo orch test` builds and runs its tests.
    pub test: TestSettings,
    /// Line of the entry in `modules.yaml`, for messages.
    pub line: u32,
    /// `isolation`: in the orchestrator's process (default) or a child host process.
    pub isolation: Isolation,
    /// `restart`, `max_restarts`, `restart_window`, `heartbeat`: how an isolated
    /// module is supervised.
    pub supervision: Supervision,
    /// `publishes` / `subscribes`: the topics the module declares, enforced by
    /// the host.
    pub contract: Contract,
    /// `mailbox`: its capacity and overflow policy (defaults from main.yaml).
    pub mailbox: MailboxSettings,
    /// `circuit_breaker`: when its failing handler stops getting events
    /// (defaults from main.yaml).
    pub circuit_breaker: CircuitBreakerSettings,
    /// `limits`: rates, subscriptions, memory and processes it may take
    /// (defaults from main.yaml).
    pub limits: ModuleLimits,
    /// `singleton`: runs on one node of the cluster at a time, the one that
    /// holds its lease (needs `bridge.nats.presence` in main.yaml).
    pub singleton: bool,
}

/// The topics a module may publish and subscribe to, as `modules.yaml`
/// declares them; `None` for a list that is not declared (anything goes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Contract {
    /// `publishes:` topic patterns.
    pub publishes: Option<Vec<String>>,
    /// `subscribes:` topic patterns.
    pub subscribes: Option<Vec<String>>,
}

/// Where a module runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Loaded into the orchestrator's own process (`in-process`, the default).
    #[default]
    InProcess,
    /// Loaded into a child host process of its own (`process`): a crash there
    /// never takes the orchestrator down.
    Process,
}

/// When a crashed isolated module is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// After any exit, clean or not (`always`).
    Always,
    /// After a crash, a kill or a non-zero exit (`on-failure`, the default).
    #[default]
    OnFailure,
    /// Never: it stays down (`never`).
    Never,
}

/// How an isolated module is supervised: OTP-like restart intensity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Supervision {
    /// `restart`: which exits are followed by a restart.
    pub restart: RestartPolicy,
    /// `max_restarts`: more restarts than this within `restart_window` give up
    /// (`module.failed`). Default 5.
    pub max_restarts: u32,
    /// `restart_window`: default 60 s.
    pub restart_window: Duration,
    /// `heartbeat`: a child that answers no heartbeat for this long (a handler
    /// that loops, a frozen process) is killed and restarted. Default 5 s.
    pub heartbeat: Duration,
}

impl Default for Supervision {
    fn default() -> Self {
        Self {
            restart: RestartPolicy::OnFailure,
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
            heartbeat: Duration::from_secs(5),
        }
    }
}

/// A module's `test:` mapping in `modules.yaml`, used by `cargo orch test` only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TestSettings {
    /// Arguments appended (after `--`) to each of the module's test binaries,
    /// e.g. `--include-ignored` or a test name filter.
    pub args: Vec<String>,
    /// Cargo features of the module's package enabled for its test build
    /// (passed as `--features <package>/<feature>`).
    pub features: Vec<String>,
    /// How long one of its tests may run before it is killed and reported as
    /// timed out; `None` takes `timeouts.test` of `main.yaml`.
    pub timeout: Option<Duration>,
}

impl ModuleSpec {
    /// `config` with the values of secret-looking keys replaced by `"***"`
    /// (recursively): safe to log.
    pub fn redacted_config(&self) -> serde_json::Value {
        redact_json(&self.config)
    }
}

impl fmt::Debug for ModuleSpec {
    /// Shows the redacted config, so debug output never leaks secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModuleSpec")
            .field("name", &self.name)
            .field("package", &self.package)
            .field("enabled", &self.enabled)
            .field("config", &self.redacted_config())
            .field("depends_on", &self.depends_on)
            .field("test", &self.test)
            .field("line", &self.line)
            .field("isolation", &self.isolation)
            .field("supervision", &self.supervision)
            .field("contract", &self.contract)
            .field("mailbox", &self.mailbox)
            .field("circuit_breaker", &self.circuit_breaker)
            .field("limits", &self.limits)
            .finish()
    }
}

/// Reads and validates `config_dir/main.yaml` (optional) and
/// `config_dir/modules.yaml` (required), without an environment. `${VAR}`s
/// come from the process environment, then from `.env` in the workspace root
/// (read without changing the process environment).
pub fn load(config_dir: &Path, workspace: &Workspace) -> Result<AppConfig, ConfigErrors> {
    load_layered(config_dir, None, workspace)
}

/// [`load`] with the variable lookup injected (`env(name)`), for tests and
/// embedders.
pub fn load_with_env(
    config_dir: &Path,
    workspace: &Workspace,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AppConfig, ConfigErrors> {
    load_layered_with_vars(config_dir, None, workspace, env)
}

/// [`load`] with an environment (`--env prod`): `config_dir/<environment>/main.yaml`
/// and `config_dir/<environment>/modules.yaml`, each optional, are layered
/// over the base files and the result is validated as one.
///
/// - The folder `config_dir/<environment>` must exist, and the name must be
///   a plain folder name (ASCII letters, digits, `-` and `_`).
/// - `main.yaml`: every key the overlay sets replaces the base one; mapping
///   sections (`timeouts`, `logging`, `bridge.nats`, ...) merge key by key;
///   lists are replaced whole.
/// - `modules.yaml`: each entry of the overlay's `modules:` changes the base
///   entry of the same `name` (an environment never declares a module): its
///   keys replace the base ones, mappings (`config` at any depth, `mailbox`,
///   `limits`, ...) merge key by key, lists are replaced.
///
/// Every error names the file its value comes from, with that file's line.
/// `None` is [`load`].
pub fn load_layered(
    config_dir: &Path,
    environment: Option<&str>,
    workspace: &Workspace,
) -> Result<AppConfig, ConfigErrors> {
    let (vars, dotenv_error) = variables::read_dotenv(&workspace.root.join(".env"));
    let lookup = |name: &str| std::env::var(name).ok().or_else(|| vars.get(name).cloned());
    let result = load_layered_with_vars(config_dir, environment, workspace, &lookup);
    let Some(dotenv_error) = dotenv_error else {
        return result;
    };
    let mut errors = result.err().map(|e| e.0).unwrap_or_default();
    errors.insert(0, dotenv_error);
    Err(ConfigErrors(errors))
}

/// [`load_layered`] with the variable lookup injected (`vars(name)`), for
/// tests and embedders.
pub fn load_layered_with_vars(
    config_dir: &Path,
    environment: Option<&str>,
    workspace: &Workspace,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<AppConfig, ConfigErrors> {
    load::load(config_dir, environment, workspace, vars)
}

/// The packages of `modules`, each once, in the modules' order (two modules
/// may share a package): what one `cargo build -p ...` must build.
pub fn packages_of<'a>(modules: impl IntoIterator<Item = &'a ModuleSpec>) -> Vec<String> {
    let mut packages: Vec<String> = Vec::new();
    for spec in modules {
        if !packages.contains(&spec.package) {
            packages.push(spec.package.clone());
        }
    }
    packages
}
