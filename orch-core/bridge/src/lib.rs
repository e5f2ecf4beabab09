//! # orch-bridge: events shared between orchestrators through NATS
//!
//! With a `bridge.nats` section in `config/main.yaml`, the orchestrator
//! exports the events of its modules on the `export` topics to NATS subjects
//! `<prefix>.<topic>` (the payload's bytes unchanged, the envelope in
//! headers) and delivers the messages of the `import` subjects to its local
//! subscribers. Local subscribers are still served in-process, never through
//! the broker.
//!
//! - [`outbox`]: exported events wait in a mailbox of the bridge's own, with
//!   the same capacity and overflow policies as a module's, while the broker
//!   is away;
//! - [`export`]: core NATS (at most once) or JetStream (stored once: every try
//!   carries the same `Nats-Msg-Id`);
//! - [`import`]: the origin check (an event never comes back to the node it
//!   left, and never loops between nodes: imported events are not exported),
//!   a window of recent ids (bounded by count and bytes, keyed by origin
//!   and id), acknowledgement after local delivery ([`durable`] on
//!   JetStream); events reach the mailboxes from the runtime itself, and
//!   only what a full `block` mailbox holds up waits on a delivery thread;
//!   on core NATS, [`core_import`] reads all the client receives into
//!   queues bounded in bytes ([`backlog`]); [`names`] remembers the names and topics its messages
//!   repeat; [`caps`] bounds what a peer's headers may hold, and
//!   [`refusal`] tells lasting refusals (terminated) from passing ones;
//! - [`connection`]: reconnects with back-off for ever, and says so on the bus
//!   (`bridge.connected` / `bridge.disconnected`);
//! - [`work`]: shared work, each job of a group handled by one node of
//!   those whose modules subscribe to it;
//! - [`presence`]: with `presence:`, this node's record in a key-value bucket
//!   with a TTL, the others' watched (`bridge.node_joined` /
//!   `bridge.node_lost`), and the cluster view `cargo orch status --cluster`
//!   shows;
//! - [`releases`]: bundles through NATS (`cargo orch push`, `run
//!   --from-nats`): an object store of archives, a bucket of releases.
//!
//! The client (async-nats) runs on a current-thread tokio runtime of the
//! bridge's own thread; nothing of it reaches the rest of the host.

pub mod backlog;
pub mod caps;
pub mod connection;
pub mod core_import;
pub mod dedup;
mod delivery;
pub mod durable;
pub mod envelope;
pub mod export;
pub mod held;
pub mod import;
pub mod lease;
pub mod names;
pub mod node;
pub mod outbox;
pub mod presence;
mod probe;
pub mod refusal;
pub mod releases;
pub mod requests;
mod service;
pub mod stats;
pub mod stream;
pub mod work;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use orch_config::NatsSettings;
use orch_runtime::bus::Bus;
use orch_runtime::mailbox::Mailbox;
use orch_runtime::status::StatusBoard;
use orch_runtime::timers::TimerService;
use tokio::sync::{oneshot, watch};

use connection::Link;
use export::{ExportStats, Target};
use import::{Importer, RECENT_ID_BYTES, RECENT_IDS};
pub use orch_runtime::status::{BridgeSnapshot, BridgeStatus};
use outbox::Outbox;
pub use probe::BridgeProbe;
use stats::ImportStats;

/// Why the bridge cannot run.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// A setting that cannot be used as it is.
    #[error("bridge.nats: {0}")]
    Config(String),
    /// The client refused the connection settings.
    #[error("bridge.nats: cannot connect: {0}")]
    Connect(String),
    /// The bridge's own runtime or threads.
    #[error("bridge: {0}")]
    Runtime(String),
}

/// A running bridge.
pub struct Bridge {
    node: String,
    link: Arc<Link>,
    bus: Bus,
    outbox: Option<Outbox>,
    import: Option<oneshot::Sender<()>>,
    stop_import: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
    exported: Arc<ExportStats>,
    imported: Arc<ImportStats>,
    view: Arc<std::sync::Mutex<presence::View>>,
    /// Requests across nodes (`serve`, `ask`): see [`requests`].
    requests: requests::Plan,
    /// Shared work's counters, per group.
    work: work::AllStats,
}

/// What the bridge reports of the node in its presence record.
#[derive(Clone)]
pub struct NodeInfo {
    /// Its modules' states (and the bundle it runs).
    pub board: StatusBoard,
    /// `app.name`.
    pub app: String,
    /// `app.version`.
    pub version: String,
    /// The singleton modules whose leases this node tries to hold (with
    /// `presence:`).
    pub singletons: Vec<String>,
    /// Where lease changes go (the main loop starts and stops the modules).
    pub leases: Option<crossbeam_channel::Sender<orch_runtime::lease::LeaseChange>>,
    /// The fences of this node's running singletons (their events carry them).
    pub fences: orch_runtime::lease::Fences,
}

impl Bridge {
    /// Starts the bridge: its outbox takes the exported topics from now on
    /// (so nothing a module publishes while starting is missed), and it
    /// connects in the background. Imports begin with
    /// [`Bridge::start_import`], once every local subscriber is there.
    /// `state_dir` keeps what must outlive the process (the window of
    /// handled JetStream message ids), `None` to keep nothing.
    pub fn start(
        settings: &NatsSettings,
        bus: &Bus,
        timers: TimerService,
        publish_timeout: Duration,
        state_dir: Option<&std::path::Path>,
        info: NodeInfo,
    ) -> Result<Self, BridgeError> {
        let node = settings.node.clone().unwrap_or_else(node::default_node);
        // Every other node would refuse this one's events.
        caps::name("bridge.nats.node", &node).map_err(|e| {
            BridgeError::Config(format!(
                "{e}: it names this orchestrator in every message; write a shorter id"
            ))
        })?;
        let link = Arc::new(Link::default());
        let mailbox = Mailbox::new("bridge".into(), settings.outbox, publish_timeout);
        let exported = Arc::new(ExportStats::default());
        let work_topics = settings.work.iter().flat_map(|g| g.topics.iter().cloned());
        let outbox_topics: Vec<String> =
            settings.export.iter().cloned().chain(work_topics).collect();
        let outbox = Outbox::open(bus, mailbox, timers, &outbox_topics)?;
        let events = outbox.reader(Arc::clone(&link));
        for topic in settings.work.iter().flat_map(|g| &g.topics) {
            bus.divert(outbox.subscriber(), topic)
                .map_err(|e| BridgeError::Config(format!("work topic '{topic}': {e}")))?;
        }
        let durable_work = settings.jetstream.is_some();
        let work: work::AllStats = Arc::new(
            settings
                .work
                .iter()
                .map(|g| {
                    (
                        g.group.clone(),
                        Arc::new(work::WorkStats::new(g, durable_work)),
                    )
                })
                .collect(),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(4)
            .thread_name("orch-bridge-deliver")
            .build()
            .map_err(|e| BridgeError::Runtime(format!("cannot build its runtime: {e}")))?;
        let (stop, stopped) = watch::channel(false);
        let (stop_import, import_stopped) = watch::channel(false);
        let (import, import_go) = oneshot::channel();
        let imported = Arc::new(ImportStats::default());
        let view = Arc::new(std::sync::Mutex::new(presence::View::default()));
        let (requests, requests_setup) = requests::Plan::new(settings);
        let run = Run {
            info,
            view: Arc::clone(&view),
            requests: requests_setup,
            settings: settings.clone(),
            state_dir: state_dir.map(std::path::Path::to_path_buf),
            me: node::Identity::new(node.clone()),
            link: Arc::clone(&link),
            bus: bus.clone(),
            exported: Arc::clone(&exported),
            imported: Arc::clone(&imported),
            work: Arc::clone(&work),
        };
        let thread = std::thread::Builder::new()
            .name("orch-bridge".into())
            .spawn(move || {
                runtime.block_on(run.serve(events, import_go, import_stopped, stopped));
            })
            .map_err(|e| BridgeError::Runtime(format!("cannot start its thread: {e}")))?;
        tracing::info!(
            "[BRIDGE] node '{node}': NATS {} ({}), exports [{}], imports [{}]",
            settings.servers.join(", "),
            if settings.jetstream.is_some() {
                "JetStream: at least once"
            } else {
                "core NATS: at most once"
            },
            settings.export.join(", "),
            settings.import.join(", "),
        );
        for group in &settings.work {
            if durable_work {
                tracing::info!(
                    "[BRIDGE] work group '{}' [{}]: one node takes each job (JetStream: at \
                     least once, at most {} held here)",
                    group.group,
                    group.topics.join(", "),
                    group.max_in_flight
                );
            } else {
                tracing::warn!(
                    "[BRIDGE] work group '{}' [{}]: one node takes each job through a core NATS \
                     queue group, at most once: a job held by a node that stops or dies is \
                     lost (add `jetstream:` for at least once)",
                    group.group,
                    group.topics.join(", ")
                );
            }
        }
        Ok(Self {
            node,
            link,
            bus: bus.clone(),
            outbox: Some(outbox),
            import: Some(import),
            stop_import,
            stop,
            thread: Some(thread),
            exported,
            imported,
            view,
            requests,
            work,
        })
    }

    /// This orchestrator's node id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Whether a connection is up.
    pub fn is_connected(&self) -> bool {
        self.link.is_connected()
    }

    /// Exported events waiting in the outbox, or taken from it and not yet
    /// published.
    pub fn outbox_len(&self) -> usize {
        let in_hand = self.exported.in_hand.load(Ordering::Acquire);
        self.outbox.as_ref().map_or(0, Outbox::len) + usize::try_from(in_hand).unwrap_or(0)
    }

    /// A handle that reads the bridge's state from any thread (status, metrics).
    pub fn probe(&self) -> BridgeProbe {
        BridgeProbe {
            node: self.node.clone(),
            link: Arc::clone(&self.link),
            outbox: self.outbox.as_ref().map(Outbox::mailbox),
            exported: Arc::clone(&self.exported),
            imported: Arc::clone(&self.imported),
            view: Arc::clone(&self.view),
            requests: self.request_stats_shared(),
            work: Arc::clone(&self.work),
        }
    }

    /// The export counters.
    pub fn exported(&self) -> &ExportStats {
        &self.exported
    }

    /// The import counters.
    pub fn imported(&self) -> &ImportStats {
        &self.imported
    }

    /// Begins delivering imported messages (after `app.started`: every
    /// local subscriber is registered, so none misses the first ones).
    pub fn start_import(&mut self) {
        if let Some(go) = self.import.take() {
            let _ = go.send(());
        }
    }

    /// Stops delivering imported messages (before the local modules shut
    /// down: a JetStream message is then left for the next run, not
    /// acknowledged into a mailbox that is going away).
    pub fn stop_import(&mut self) {
        self.import = None;
        let _ = self.stop_import.send(true);
    }

    /// Stops the bridge: while connected, the outbox and the shared-work
    /// jobs the modules handled while draining (their acknowledgements) get
    /// up to `timeout`; what still waits then is named, the rest stops.
    pub fn shutdown(mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let unsettled =
            |work: &work::AllStats| -> u64 { work.iter().map(|(_, w)| w.unsettled()).sum() };
        while (self.outbox_len() > 0 || unsettled(&self.work) > 0)
            && self.link.is_connected()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let left = unsettled(&self.work);
        if left > 0 {
            tracing::warn!(
                "[BRIDGE] {left} shared-work job(s) not acknowledged at shutdown: the stream \
                 offers them to another node after its ack wait"
            );
        }
        if let Some(outbox) = self.outbox.take() {
            let in_hand = self.exported.in_hand.load(Ordering::Acquire);
            let left = outbox.close(&self.bus) + usize::try_from(in_hand).unwrap_or(0);
            if left > 0 {
                tracing::warn!(
                    "[BRIDGE] {left} exported event(s) still in the outbox at shutdown are not sent"
                );
            }
        }
        self.requests.unwire();
        self.link.close();
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let until = Instant::now() + Duration::from_secs(3);
            while !thread.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                tracing::warn!("[BRIDGE] its thread did not end within the shutdown deadline");
            }
        }
    }
}

/// What the bridge's thread runs.
struct Run {
    info: NodeInfo,
    view: Arc<std::sync::Mutex<presence::View>>,
    settings: NatsSettings,
    /// Where the window of handled ids is kept (JetStream).
    state_dir: Option<std::path::PathBuf>,
    me: node::Identity,
    link: Arc<Link>,
    bus: Bus,
    exported: Arc<ExportStats>,
    imported: Arc<ImportStats>,
    /// What serving and asking requests needs, once wired.
    requests: oneshot::Receiver<requests::Setup>,
    /// Shared work's counters, per group.
    work: work::AllStats,
}

impl Run {
    async fn serve(
        self,
        events: outbox::OutboxReader,
        import_go: oneshot::Receiver<()>,
        import_stopped: watch::Receiver<bool>,
        stopped: watch::Receiver<bool>,
    ) {
        let client = match connection::connect(
            &self.settings,
            &self.me.name,
            Arc::clone(&self.link),
            self.bus.clone(),
        )
        .await
        {
            Ok(client) => client,
            Err(e) => {
                tracing::error!("[BRIDGE] {e}; events stay in-process");
                return;
            }
        };
        tokio::spawn(warn_until_connected(
            Arc::clone(&self.link),
            self.settings.servers.join(", "),
        ));
        let prefix = self.settings.subject_prefix.clone();
        let holder = format!("{}:{}", self.me.name, self.me.incarnation);
        let import_go = futures_util::FutureExt::shared(import_go);
        let jobs = work::Jobs {
            settings: self.settings.clone(),
            client: client.clone(),
            bus: self.bus.clone(),
            me: self.me.clone(),
            imported: Arc::clone(&self.imported),
            fences: self.info.fences.clone(),
            stats: Arc::clone(&self.work),
        }
        .run(import_go.clone(), import_stopped.clone());
        let work = async {
            let (target, stream) = match &self.settings.jetstream {
                Some(js) => {
                    let context = jetstream::new(client.clone());
                    let stream = stream::open(&context, &js.stream, &prefix, js.replicas).await;
                    (Target::JetStream(context), Some(stream))
                }
                None => (Target::Core(client.clone()), None),
            };
            let export = export::run(
                events,
                target,
                prefix.clone(),
                self.settings.work.clone(),
                self.me.clone(),
                Arc::clone(&self.exported),
                self.info.fences.clone(),
            );
            let import = async {
                if import_go.await.is_err() || self.settings.import.is_empty() {
                    return std::future::pending::<()>().await;
                }
                let durable = self
                    .settings
                    .jetstream
                    .as_ref()
                    .map(|js| js.durable.clone().unwrap_or_else(|| self.me.name.clone()));
                let recent = match (&durable, &self.state_dir) {
                    (Some(durable), Some(dir)) => {
                        let path = dir.join(format!("{durable}.ids"));
                        dedup::RecentIds::persistent(&path, RECENT_IDS, RECENT_ID_BYTES)
                            .unwrap_or_else(|e| {
                                tracing::warn!(
                                    "[BRIDGE] cannot keep handled ids in {}: {e}; a redelivery \
                                     after a crash may be handled twice",
                                    path.display()
                                );
                                dedup::RecentIds::new(RECENT_IDS, RECENT_ID_BYTES)
                            })
                    }
                    _ => dedup::RecentIds::new(RECENT_IDS, RECENT_ID_BYTES),
                };
                let importer = Importer {
                    bus: self.bus.clone(),
                    prefix: prefix.clone(),
                    me: self.me.clone(),
                    stats: Arc::clone(&self.imported),
                    recent: Arc::new(std::sync::Mutex::new(recent)),
                    pending: Arc::default(),
                    names: std::sync::Mutex::default(),
                    namesake_said: orch_runtime::pace::Pacer::new(import::NAMESAKE_SAID_EVERY),
                    fences_seen: std::sync::Mutex::default(),
                    local_fences: self.info.fences.clone(),
                    refusals: Arc::new(refusal::Refusals::new(Arc::clone(&self.imported))),
                    jobs: false,
                };
                let patterns = self.settings.import.clone();
                let run = async {
                    match (stream, durable) {
                        (Some(stream), Some(durable)) => {
                            let max_payload = client.server_info().max_payload;
                            durable::run_jetstream(
                                stream,
                                durable,
                                patterns,
                                importer,
                                max_payload,
                            )
                            .await;
                        }
                        _ => core_import::run(client.clone(), patterns, importer).await,
                    }
                };
                futures_util::future::select(Box::pin(run), Box::pin(until_set(import_stopped)))
                    .await;
                std::future::pending::<()>().await
            };
            let presence = async {
                match &self.settings.presence {
                    Some(settings) => {
                        presence::Presence {
                            settings: settings.clone(),
                            me: presence::Me {
                                node: self.me.name.clone(),
                                incarnation: self.me.incarnation.to_string(),
                            },
                            board: self.info.board.clone(),
                            app: (self.info.app.clone(), self.info.version.clone()),
                            bus: self.bus.clone(),
                            view: Arc::clone(&self.view),
                        }
                        .run(jetstream::new(client.clone()))
                        .await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let requests = requests::run(
                client.clone(),
                prefix.clone(),
                self.me.clone(),
                self.requests,
            );
            let leases = async {
                let (Some(settings), Some(changes)) = (&self.settings.presence, &self.info.leases)
                else {
                    return std::future::pending::<()>().await;
                };
                let holders = self.info.singletons.iter().map(|module| {
                    lease::run(
                        jetstream::new(client.clone()),
                        settings.clone(),
                        module.clone(),
                        holder.clone(),
                        changes.clone(),
                        self.info.fences.clone(),
                    )
                });
                futures_util::future::join_all(holders).await;
                std::future::pending::<()>().await
            };
            futures_util::future::join(
                futures_util::future::join5(export, import, presence, requests, leases),
                jobs,
            )
            .await;
        };
        futures_util::future::select(Box::pin(work), Box::pin(until_set(stopped))).await;
        if let Some(settings) = &self.settings.presence {
            lease::release_all(
                &jetstream::new(client.clone()),
                settings,
                &self.info.singletons,
                &holder,
            )
            .await;
            presence::delete_own(
                &jetstream::new(client.clone()),
                settings,
                &self.me.name,
                Duration::from_secs(1),
            )
            .await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
    }
}

/// Names the servers the bridge cannot reach, 5 s after the start and then
/// every 30 s, until a first connection: the orchestrator runs on meanwhile,
/// and exported events wait in the outbox.
async fn warn_until_connected(link: Arc<Link>, servers: String) {
    let mut wait = Duration::from_secs(5);
    let mut waited = Duration::ZERO;
    loop {
        tokio::time::sleep(wait).await;
        waited += wait;
        if !link.server().is_empty() {
            return;
        }
        tracing::warn!(
            "[BRIDGE] cannot reach NATS at {servers} after {} s: still trying with back-off; \
             the modules run on, exported events wait in the outbox (check the url and \
             that the server runs)",
            waited.as_secs()
        );
        wait = Duration::from_secs(30);
    }
}

/// Resolves once `flag` is set (or its sender is gone).
pub(crate) async fn until_set(mut flag: watch::Receiver<bool>) {
    while !*flag.borrow() {
        if flag.changed().await.is_err() {
            return;
        }
    }
}
