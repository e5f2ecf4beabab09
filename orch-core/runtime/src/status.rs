//! What an operator asks of a running orchestrator: for every module its
//! state, generation, pid, uptime, traffic, mailbox, restarts and last error.
//!
//! The [`StatusBoard`] is told the few things only the supervisor knows (a
//! module starting, running, reloading, stopped) and learns the rest from the
//! host's own events (`module.crashed`, `module.reload_failed`, ...), which it
//! takes as a bus subscriber ([`StatusBoard::sink`]). Hot paths only bump the
//! atomics of [`ModuleCounters`]. Reading it never waits for the supervisor, so
//! `cargo orch status` answers while a module is reloading.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use orch_config::Isolation;
use serde::{Deserialize, Serialize};

use crate::bus::{Bus, SubscriberId, WeakBus};
use crate::mailbox::MailboxGauge;

mod apply;
mod bridge;
mod counters;
mod custom;
mod edges;
mod handler_clock;
#[cfg(test)]
mod tests;

pub use bridge::{
    BridgeSnapshot, BridgeStatus, ClusterNode, MAX_RECORD_MODULES, MAX_RECORD_TEXT,
    MAX_REFUSAL_TEXT, NodeHealth, NodeModule, NodeRecord, RefusedRelease, RequestCounts,
    WorkCounts,
};
pub use counters::{HANDLER_BUCKETS, Histogram, HistogramSnapshot, ModuleCounters};
pub use custom::{CustomMetric, CustomMetrics, MetricNames};
pub use edges::{EdgeCount, EdgeTable, EdgeTally, MAX_EDGES, Sender};
pub use handler_clock::HandlerClock;
pub use orch_wire::metric::{MAX_METRICS_PER_MODULE, MetricKind, MetricSample};

/// Where a module is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModuleState {
    /// Loading, initializing or starting.
    Starting,
    /// Handling events.
    Running,
    /// Being rebuilt and swapped to a new generation (the old one runs).
    Reloading,
    /// Its child host died and is being restarted, or an operator restarts it.
    Restarting,
    /// Left out: it failed to start, or its restarts were used up.
    Failed,
    /// Stopped by an operator or by an edit of modules.yaml.
    Stopped,
}

impl ModuleState {
    /// The lowercase name (`running`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Reloading => "reloading",
            Self::Restarting => "restarting",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }
}

/// The last thing that went wrong with a module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastError {
    /// The phase (`initialize`, `on_event`, `build`, `crash`, ...).
    pub phase: String,
    /// What happened (secrets scrubbed, as in every host event).
    pub message: String,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// One module's row, as `cargo orch status --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleStatus {
    /// The module's name in modules.yaml.
    pub name: String,
    /// Where it is in its life.
    pub state: ModuleState,
    /// The generation running (0 before the first one loaded).
    pub generation: u32,
    /// `in-process` or `process`.
    pub isolation: String,
    /// The child host's pid of an isolated module.
    pub pid: Option<u32>,
    /// Seconds since it last became running (none unless running or reloading).
    pub uptime_secs: Option<f64>,
    /// Events handed to its handler.
    pub events_in: u64,
    /// Events it published.
    pub events_out: u64,
    /// Events waiting in its mailbox.
    pub mailbox_depth: usize,
    /// Its mailbox's capacity.
    pub mailbox_capacity: usize,
    /// Events its mailbox dropped or refused (`module.overflow`).
    pub overflows: u64,
    /// Events it did not get (`module.dead_letter`).
    pub dead_letters: u64,
    /// Successful reloads.
    pub reloads: u64,
    /// Failed reloads (build errors included).
    pub reload_failures: u64,
    /// Deaths of its child host.
    pub crashes: u64,
    /// Restarts of its child host, or by an operator.
    pub restarts: u64,
    /// Whether its circuit breaker is open.
    pub circuit_open: bool,
    /// The last failure, with its phase.
    pub last_error: Option<LastError>,
    /// Handler calls at or below each of [`HANDLER_BUCKETS`] (cumulative),
    /// then all of them: what `cargo orch top` takes its p50/p99 from.
    #[serde(default)]
    pub handler_buckets: Vec<u64>,
    /// The patterns it is subscribed to on the bus now, sorted.
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// Events its handler was given, per sender and topic (at most
    /// [`MAX_EDGES`] pairs): the live graph's edges.
    #[serde(default)]
    pub received: Vec<EdgeCount>,
    /// Events of pairs past [`MAX_EDGES`].
    #[serde(default)]
    pub received_others: u64,
    /// The payload types its running generation declares (typed topics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub types: Option<crate::typing::TopicTypes>,
}

/// What the board keeps of one module besides its counters.
struct Entry {
    name: String,
    isolation: Isolation,
    state: ModuleState,
    generation: u32,
    running_since: Option<Instant>,
    counters: Arc<ModuleCounters>,
    mailbox: Option<MailboxGauge>,
    overflows: u64,
    dead_letters: u64,
    reloads: u64,
    reload_failures: u64,
    crashes: u64,
    restarts: u64,
    circuit_open: bool,
    last_error: Option<LastError>,
    types: Option<crate::typing::TopicTypes>,
    /// Reload durations, for the metrics: build and swap.
    reload_times: ReloadTimes,
}

/// Build and swap times of this module's reloads.
#[derive(Debug, Default)]
pub struct ReloadTimes {
    /// The builds before successful reloads.
    pub build: Histogram,
    /// The swaps.
    pub swap: Histogram,
}

struct Board {
    modules: Vec<Entry>,
    deployment: Option<Deployment>,
    health: NodeHealth,
    refused: Option<RefusedRelease>,
}

/// What a bundle run runs (`cargo orch run --bundle`): set at start and by
/// every `cargo orch deploy`; `None` for a run from a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// `app.name` of the bundle's main.yaml.
    pub app: String,
    /// `app.version`.
    pub version: String,
    /// The git commit it was built from (`-dirty` appended, `unknown`
    /// outside git).
    pub commit: String,
    /// The SHA-256 of its manifest: the bundle's digest.
    pub digest: String,
    /// The minisign key id its signature was made with; `None` when it ran
    /// unsigned (`--allow-unsigned`).
    pub signed_by: Option<String>,
    /// Each module's library: module name and the library's SHA-256, in
    /// startup order.
    pub libraries: Vec<(String, String)>,
}

/// The running orchestrator's view of its modules. Cheap to clone.
#[derive(Clone)]
pub struct StatusBoard {
    board: Arc<Mutex<Board>>,
    names: Arc<MetricNames>,
    app_started: Arc<AtomicBool>,
    bus: Arc<OnceLock<WeakBus>>,
}

impl Default for StatusBoard {
    fn default() -> Self {
        Self::new()
    }
}

impl StatusBoard {
    /// An empty board.
    pub fn new() -> Self {
        Self {
            board: Arc::new(Mutex::new(Board {
                modules: Vec::new(),
                deployment: None,
                health: NodeHealth::default(),
                refused: None,
            })),
            app_started: Arc::default(),
            names: Arc::default(),
            bus: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Module `name` begins to load; returns the counters its generations
    /// share (the same ones as before if it ran earlier: counts keep growing).
    pub fn starting(
        &self,
        name: &str,
        isolation: Isolation,
        mailbox: MailboxGauge,
    ) -> Arc<ModuleCounters> {
        let mut board = self.lock();
        let entry = match board.modules.iter().position(|e| e.name == name) {
            Some(index) => &mut board.modules[index],
            None => {
                board.modules.push(Entry::new(name, &self.names));
                let last = board.modules.len() - 1;
                &mut board.modules[last]
            }
        };
        entry.isolation = isolation;
        if entry.state != ModuleState::Restarting {
            entry.state = ModuleState::Starting;
        }
        entry.running_since = None;
        entry.mailbox = Some(mailbox);
        entry.circuit_open = false;
        entry.counters.set_pid(0);
        Arc::clone(&entry.counters)
    }

    /// Module `name` runs `generation`.
    pub fn running(&self, name: &str, generation: u32) {
        self.update(name, |entry| {
            entry.state = ModuleState::Running;
            entry.generation = generation;
            entry.running_since = Some(Instant::now());
        });
    }

    /// Sets module `name`'s state (the hot reloader's `reloading`, an
    /// operator's `restarting`).
    pub fn set_state(&self, name: &str, state: ModuleState) {
        self.update(name, |entry| {
            entry.state = state;
            if !matches!(state, ModuleState::Running | ModuleState::Reloading) {
                entry.running_since = None;
            }
        });
    }

    /// Module `name` is out: `Failed` with the error, or `Stopped`.
    pub fn out(&self, name: &str, state: ModuleState, error: Option<LastError>) {
        self.update(name, |entry| {
            entry.state = state;
            entry.running_since = None;
            entry.mailbox = None;
            entry.counters.set_pid(0);
            if error.is_some() {
                entry.last_error = error;
            }
        });
    }

    /// An operator restarted module `name` (counted with the crash restarts).
    pub fn count_restart(&self, name: &str) {
        self.update(name, |entry| entry.restarts += 1);
    }

    /// `app.started` was published.
    pub fn app_started(&self) {
        self.app_started.store(true, Ordering::Release);
    }

    /// Ready: `app.started` was published and no module is failed.
    pub fn is_ready(&self) -> bool {
        self.app_started.load(Ordering::Acquire)
            && !self
                .lock()
                .modules
                .iter()
                .any(|e| e.state == ModuleState::Failed)
    }

    /// Every module's row, in the order they first started, with its
    /// subscriptions when the board follows a bus ([`StatusBoard::follow_bus`]).
    pub fn snapshot(&self) -> Vec<ModuleStatus> {
        let rows: Vec<(ModuleStatus, Option<SubscriberId>)> = self
            .lock()
            .modules
            .iter()
            .map(|e| (e.status(), e.counters.subscriber()))
            .collect();
        // The bus is asked after the board's lock is let go: the bus hands
        // events to the board's sink under its own lock.
        let bus = self.bus.get().and_then(WeakBus::upgrade);
        rows.into_iter()
            .map(|(mut row, id)| {
                if let (Some(bus), Some(id)) = (&bus, id) {
                    row.subscriptions = bus.subscriptions_of(id);
                }
                row
            })
            .collect()
    }

    /// Lists each module's subscriptions on `bus` in [`StatusBoard::snapshot`]
    /// (held weakly: the bus holds the board's sink).
    pub fn follow_bus(&self, bus: &Bus) {
        let _ = self.bus.set(bus.downgrade());
    }

    /// `f` over every module's counters and reload times (for the metrics).
    pub fn for_each_module(&self, mut f: impl FnMut(&ModuleStatus, &ModuleCounters, &ReloadTimes)) {
        for entry in &self.lock().modules {
            f(&entry.status(), &entry.counters, &entry.reload_times);
        }
    }

    /// Records the payload types of module `name`'s running generation.
    pub fn set_types(&self, name: &str, types: Option<crate::typing::TopicTypes>) {
        self.update(name, |entry| entry.types = types);
    }

    /// Records what bundle runs (start and every deploy).
    pub fn set_deployment(&self, deployment: Option<Deployment>) {
        self.lock().deployment = deployment;
    }

    /// What bundle runs, for a bundle run.
    pub fn deployment(&self) -> Option<Deployment> {
        self.lock().deployment.clone()
    }

    /// What went wrong on this node since it started, counted.
    pub fn health(&self) -> NodeHealth {
        self.lock().health
    }

    /// The last release this node refused (`None` once it runs another).
    pub fn refused_release(&self) -> Option<RefusedRelease> {
        self.lock().refused.clone()
    }

    /// Records a refused release, or clears it.
    pub fn set_refused_release(&self, refused: Option<RefusedRelease>) {
        self.lock().refused = refused;
    }

    /// The state of module `name`, if it ever started.
    pub fn state_of(&self, name: &str) -> Option<ModuleState> {
        self.lock()
            .modules
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.state)
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut Entry)) {
        if let Some(entry) = self.lock().modules.iter_mut().find(|e| e.name == name) {
            f(entry);
        }
    }
}

impl Entry {
    fn new(name: &str, names: &Arc<MetricNames>) -> Self {
        Self {
            name: name.to_owned(),
            isolation: Isolation::InProcess,
            state: ModuleState::Starting,
            generation: 0,
            running_since: None,
            counters: Arc::new(ModuleCounters::with_names(Arc::clone(names))),
            mailbox: None,
            overflows: 0,
            dead_letters: 0,
            reloads: 0,
            reload_failures: 0,
            crashes: 0,
            restarts: 0,
            circuit_open: false,
            last_error: None,
            types: None,
            reload_times: ReloadTimes::default(),
        }
    }

    fn status(&self) -> ModuleStatus {
        let (mailbox_depth, mailbox_capacity) = self
            .mailbox
            .as_ref()
            .map_or((0, 0), |m| (m.len(), m.capacity()));
        let received = self.counters.edges().snapshot();
        ModuleStatus {
            name: self.name.clone(),
            state: self.state,
            generation: self.generation,
            isolation: match self.isolation {
                Isolation::InProcess => "in-process",
                Isolation::Process => "process",
            }
            .to_owned(),
            pid: self.counters.pid(),
            uptime_secs: self.running_since.map(|t| t.elapsed().as_secs_f64()),
            events_in: self.counters.events_in(),
            events_out: self.counters.events_out(),
            mailbox_depth,
            mailbox_capacity,
            overflows: self.overflows,
            dead_letters: self.dead_letters,
            reloads: self.reloads,
            reload_failures: self.reload_failures,
            crashes: self.crashes,
            restarts: self.restarts,
            circuit_open: self.circuit_open,
            last_error: self.last_error.clone(),
            handler_buckets: {
                let time = self.counters.handler_time();
                time.buckets
                    .iter()
                    .map(|&(_, count)| count)
                    .chain([time.count])
                    .collect()
            },
            subscriptions: Vec::new(),
            received: received.0,
            received_others: received.1,
            // A module that is down declares nothing now.
            types: self
                .types
                .clone()
                .filter(|_| !matches!(self.state, ModuleState::Failed | ModuleState::Stopped)),
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
