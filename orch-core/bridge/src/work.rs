//! Shared work (`bridge.nats.work`): each group's jobs go to one node of
//! those whose modules subscribe to them.
//!
//! - A module's publish on a work topic is diverted on its own node (see
//!   `Bus::divert`) to the outbox, which publishes it as
//!   `orch-work.<prefix>.<group>.<topic>` ([`subject`]): outside
//!   `<prefix>.>`, so the events stream and `import: [">"]` never see jobs.
//! - On JetStream ([`pull`]) the group has a work-queue stream of its own
//!   ([`stream_name`]) and one shared durable consumer named after it. Each
//!   node with a subscriber pulls, never asking for more than
//!   `min(max_in_flight - held, free mailbox slots)`, so a slow or full node
//!   takes less and the others take its share. A job is acknowledged once
//!   its handlers let go, with progress acknowledgements while it is held;
//!   after [`MAX_DELIVER`] deliveries it goes to the dead-letter subject
//!   ([`dead_subject`]) and `module.dead_letter` ([`dead`]). Handled jobs
//!   are recorded in a key-value bucket the nodes share ([`handled`]), so a
//!   redelivery that lands on another node after a crash is recognised.
//! - On core NATS ([`queue`]) the nodes form a queue group: at most once.

pub mod dead;
pub mod handled;
pub mod pull;
pub mod queue;

use std::sync::Arc;
use std::time::Duration;

use orch_config::WorkGroup;
use orch_runtime::bus::Bus;
use tokio::sync::{oneshot, watch};

/// The first token of every work subject.
pub const WORK_ROOT: &str = "orch-work";

/// The first token of every dead-letter subject.
pub const DEAD_ROOT: &str = "orch-dead";

/// How long a job may be held without a word before the stream offers it
/// to another node: held jobs are kept alive by progress acknowledgements
/// every third of this, so only a node that died (or froze) loses them.
pub const ACK_WAIT: Duration = Duration::from_secs(30);

/// Deliveries of one job at most; after the last one fails it is a dead
/// letter.
pub const MAX_DELIVER: i64 = 5;

/// Jobs held by all nodes of a group together, at most (the consumer's
/// `max_ack_pending`): above the largest `max_in_flight` times a few
/// nodes.
pub const MAX_ACK_PENDING: i64 = 65_536;

/// Jobs a group's stream holds at most: a publisher's export waits (and
/// its outbox fills, by its own overflow policy) while the queue is full.
pub const MAX_QUEUED: i64 = 1_000_000;

/// How long a job a local mailbox refused waits before it is offered again
/// (to any node), after its `delivered`-th delivery: 250 ms, doubling, at
/// most 10 s. Shorter than an import's back-off: another node may have the
/// room or the subscriber this one lacked.
pub fn retry_delay(delivered: i64) -> Duration {
    let doublings = u32::try_from(delivered.clamp(1, 8) - 1).unwrap_or(0);
    (Duration::from_millis(250) * (1 << doublings)).min(Duration::from_secs(10))
}

/// The subject prefix of `group`'s jobs: `orch-work.<prefix>.<group>`.
pub fn subject_prefix(prefix: &str, group: &str) -> String {
    format!("{WORK_ROOT}.{prefix}.{group}")
}

/// The subject a job on `topic` of `group` is published on.
pub fn subject(prefix: &str, group: &str, topic: &str) -> String {
    format!("{WORK_ROOT}.{prefix}.{group}.{topic}")
}

/// The subject a job given up is published on.
pub fn dead_subject(prefix: &str, group: &str, topic: &str) -> String {
    format!("{DEAD_ROOT}.{prefix}.{group}.{topic}")
}

/// The work-queue stream of `group` (JetStream).
pub fn stream_name(events_stream: &str, group: &str) -> String {
    format!("{events_stream}_WORK_{group}")
}

/// The key-value bucket of `group`'s handled jobs (JetStream).
pub fn handled_bucket(events_stream: &str, group: &str) -> String {
    format!("{events_stream}_WORK_{group}_DONE")
}

/// The group a topic's jobs belong to: the first whose patterns match.
pub fn group_of<'a>(groups: &'a [WorkGroup], topic: &str) -> Option<&'a WorkGroup> {
    groups
        .iter()
        .find(|g| g.topics.iter().any(|p| orch_sdk::topic::matches(p, topic)))
}

/// The room this node has for `group`'s jobs: the least free mailbox room
/// (and capacity) among the subscribers of its topics; `None` when no
/// module subscribes.
pub fn room(bus: &Bus, group: &WorkGroup) -> Option<orch_runtime::bus::Room> {
    group
        .topics
        .iter()
        .filter_map(|t| bus.room_for(t))
        .reduce(|a, b| orch_runtime::bus::Room {
            free: a.free.min(b.free),
            capacity: a.capacity.min(b.capacity),
        })
}

pub use crate::stats::WorkStats;

/// Every group's counters, in the configuration's order.
pub type AllStats = Arc<Vec<(String, Arc<WorkStats>)>>;

/// Shared work on this node: what running every group needs.
pub(crate) struct Jobs {
    pub(crate) settings: orch_config::NatsSettings,
    pub(crate) client: async_nats::Client,
    pub(crate) bus: Bus,
    pub(crate) me: crate::node::Identity,
    pub(crate) imported: Arc<crate::stats::ImportStats>,
    pub(crate) fences: orch_runtime::lease::Fences,
    pub(crate) stats: AllStats,
}

/// Recent job ids a group remembers on this node (the shared record covers
/// the others).
const RECENT_JOB_IDS: usize = 10_000;

impl Jobs {
    /// Each group's stream is made at once (a publisher needs it before
    /// imports begin), and its jobs are taken once imports begin (`go`),
    /// until they stop.
    pub(crate) async fn run(
        self,
        go: futures_util::future::Shared<oneshot::Receiver<()>>,
        stopped: watch::Receiver<bool>,
    ) {
        if self.settings.work.is_empty() {
            return std::future::pending::<()>().await;
        }
        let run = async {
            match &self.settings.jetstream {
                Some(js) => self.pull(js, go).await,
                None => {
                    if go.await.is_err() {
                        return;
                    }
                    let queues = self.each(|group, stats| {
                        queue::run(
                            self.client.clone(),
                            group.clone(),
                            self.importer(group),
                            stats,
                        )
                    });
                    futures_util::future::join_all(queues).await;
                }
            }
        };
        futures_util::future::select(Box::pin(run), Box::pin(crate::until_set(stopped))).await;
        std::future::pending::<()>().await
    }

    /// JetStream: the streams, then the pullers.
    async fn pull(
        &self,
        js: &orch_config::JetStreamSettings,
        go: futures_util::future::Shared<oneshot::Receiver<()>>,
    ) {
        let context = async_nats::jetstream::new(self.client.clone());
        let prefix = &self.settings.subject_prefix;
        let streams = self.settings.work.iter().map(|g| {
            pull::open_stream(
                &context,
                stream_name(&js.stream, &g.group),
                subject_prefix(prefix, &g.group),
                js.replicas,
            )
        });
        futures_util::future::join_all(streams).await;
        if go.await.is_err() {
            return;
        }
        let pullers = self.each(|group, stats| {
            pull::Puller {
                context: context.clone(),
                events_stream: js.stream.clone(),
                replicas: js.replicas,
                group: group.clone(),
                importer: self.importer(group),
                stats: Arc::clone(&stats),
                dead: dead::DeadLetters {
                    client: self.client.clone(),
                    bus: self.bus.clone(),
                    prefix: prefix.clone(),
                    group: group.group.clone(),
                    stats,
                    said: Arc::new(orch_runtime::pace::Pacer::new(Duration::from_secs(10))),
                },
            }
            .run()
        });
        futures_util::future::join_all(pullers).await;
    }

    /// `make` for every group with its counters.
    fn each<'a, F: 'a>(
        &'a self,
        make: impl Fn(&'a WorkGroup, Arc<WorkStats>) -> F + 'a,
    ) -> impl Iterator<Item = F> + 'a {
        self.settings
            .work
            .iter()
            .zip(self.stats.iter())
            .map(move |(group, (_, stats))| make(group, Arc::clone(stats)))
    }

    /// The reader of `group`'s jobs.
    fn importer(&self, group: &WorkGroup) -> Arc<crate::import::Importer> {
        Arc::new(crate::import::Importer {
            bus: self.bus.clone(),
            prefix: subject_prefix(&self.settings.subject_prefix, &group.group),
            me: self.me.clone(),
            stats: Arc::clone(&self.imported),
            recent: Arc::new(std::sync::Mutex::new(crate::dedup::RecentIds::new(
                RECENT_JOB_IDS,
                RECENT_JOB_IDS * 128,
            ))),
            pending: Arc::default(),
            names: std::sync::Mutex::default(),
            namesake_said: orch_runtime::pace::Pacer::new(crate::import::NAMESAKE_SAID_EVERY),
            fences_seen: std::sync::Mutex::default(),
            local_fences: self.fences.clone(),
            refusals: Arc::new(crate::refusal::Refusals::new(Arc::clone(&self.imported))),
            jobs: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_travel_outside_the_events_prefix_and_find_their_group() {
        assert_eq!(
            subject("orch.demo", "resizers", "jobs.resize"),
            "orch-work.orch.demo.resizers.jobs.resize"
        );
        assert!(!subject("orch", "g", "a").starts_with("orch."));
        assert_eq!(dead_subject("orch", "g", "a.b"), "orch-dead.orch.g.a.b");
        assert_eq!(stream_name("ORCH", "g-1"), "ORCH_WORK_g-1");
        let groups = [
            WorkGroup {
                group: "a".into(),
                topics: vec!["jobs.*".into()],
                max_in_flight: 1,
            },
            WorkGroup {
                group: "b".into(),
                topics: vec!["jobs.x".into(), "mail.>".into()],
                max_in_flight: 1,
            },
        ];
        assert_eq!(group_of(&groups, "jobs.x").map(|g| &*g.group), Some("a"));
        assert_eq!(group_of(&groups, "mail.a.b").map(|g| &*g.group), Some("b"));
        assert!(group_of(&groups, "other").is_none());
    }

    #[test]
    fn a_refused_job_comes_back_soon_and_is_given_up_within_seconds() {
        assert_eq!(retry_delay(1), Duration::from_millis(250));
        assert_eq!(retry_delay(2), Duration::from_millis(500));
        assert_eq!(retry_delay(i64::MAX), Duration::from_secs(10));
        let total: Duration = (1..MAX_DELIVER).map(retry_delay).sum();
        assert!(total < ACK_WAIT, "{total:?}");
    }

    #[test]
    fn the_peak_of_held_jobs_is_kept() {
        let group = WorkGroup {
            group: "g".into(),
            topics: vec!["a".into()],
            max_in_flight: 4,
        };
        let stats = WorkStats::new(&group, true);
        stats.hold();
        stats.hold();
        stats.release();
        stats.hold();
        stats.release();
        stats.release();
        stats.release();
        let counts = stats.counts("g");
        assert_eq!((counts.in_flight, counts.in_flight_peak), (0, 2));
        assert_eq!(counts.max_in_flight, 4);
    }
}
