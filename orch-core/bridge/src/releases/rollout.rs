//! A rollout: a new release moved across the nodes one batch at a time,
//! each batch gated on its nodes' health, halted (and with `auto_revert`
//! reverted) when a batch is not healthy by its deadline. Its state lives in
//! the releases bucket (`<app>.rollout`), so `--status` and a restarted
//! controller see the same thing; operators' `--pause`, `--resume` and
//! `--abort` are requests written there, carried out by the controller.
//!
//! - [`gate`]: one node's health verdict;
//! - [`lock`]: one controller per application;
//! - [`nodes`]: what the controller reads of the nodes and does to them;
//! - [`controller`]: the loop.

pub mod controller;
pub mod gate;
pub mod lock;
pub mod nodes;

use std::collections::BTreeMap;
use std::time::Duration;

use orch_runtime::status::NodeHealth;
use serde::{Deserialize, Serialize};

use super::record::Pointer;

/// How the rollout moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutOptions {
    /// Nodes in the first batches (the canary), gated before any other.
    pub canary: usize,
    /// At most this many nodes change at once (every batch's size).
    pub max_unavailable: usize,
    /// A node must be healthy this long to count.
    #[serde(with = "millis")]
    pub min_healthy: Duration,
    /// A batch not healthy this long after it began halts the rollout.
    #[serde(with = "millis")]
    pub healthy_deadline: Duration,
    /// Return the changed nodes to the previous release on a halt.
    pub auto_revert: bool,
}

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Moving.
    Running,
    /// Held between batches by an operator.
    Paused,
    /// Every node runs the new release; it is current.
    Succeeded,
    /// Halted: a batch was not healthy (reverted with `auto_revert`).
    Failed,
    /// Stopped by an operator; the changed nodes went back.
    Aborted,
}

impl Phase {
    /// Is it over?
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Aborted)
    }

    /// As status shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Aborted => "aborted",
        }
    }
}

/// What an operator asked of a running rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Start no new batch.
    Pause,
    /// Go on.
    Resume,
    /// Stop, and return the changed nodes to the previous release.
    Abort,
}

/// A rollout as the releases bucket holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutState {
    /// `app.name`.
    pub app: String,
    /// The release rolled out.
    pub to: Pointer,
    /// The release that was current when it began (what a revert returns to).
    pub from: Pointer,
    /// How it moves.
    pub options: RolloutOptions,
    /// The bucket of the nodes' presence records.
    pub presence_bucket: String,
    /// The nodes, batch by batch.
    pub batches: Vec<Vec<String>>,
    /// Batches done.
    pub step: usize,
    /// Where it is.
    pub phase: Phase,
    /// Why it stopped (or what it waits for).
    #[serde(default)]
    pub reason: Option<String>,
    /// Nodes whose desired release it set.
    #[serde(default)]
    pub changed: Vec<String>,
    /// Nodes a revert returned to `from`.
    #[serde(default)]
    pub reverted: Vec<String>,
    /// When the current batch began (ms since the epoch): its deadline
    /// holds across a controller's restart.
    #[serde(default)]
    pub batch_started_ms: Option<u64>,
    /// The current batch's nodes' health counts when it began (or when
    /// each was first seen).
    #[serde(default)]
    pub baselines: BTreeMap<String, Baseline>,
    /// Every batch is healthy; the release is being made current (a
    /// controller started again finishes it; an abort is too late).
    #[serde(default)]
    pub finishing: bool,
    /// An operator's request not yet carried out.
    #[serde(default)]
    pub request: Option<Request>,
    /// The controller running it.
    #[serde(default)]
    pub controller: String,
}

impl RolloutState {
    /// A line for status: version, phase, step and reason.
    pub fn summary(&self) -> String {
        format!(
            "rollout of {} {} -> {}: {} (batch {} of {}){}",
            self.app,
            self.from.version,
            self.to.version,
            self.phase.as_str(),
            match self.phase {
                Phase::Succeeded => self.batches.len(),
                _ => (self.step + 1).min(self.batches.len()),
            },
            self.batches.len(),
            self.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )
    }
}

/// A node's health counts as the gate compares them: those of one run of
/// the node (a node that restarted, say into a new host, counts afresh).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    /// The run of the node the counts are of.
    pub incarnation: String,
    /// Its counts then.
    pub health: NodeHealth,
}

impl Baseline {
    /// What `record`'s counts are compared with: this baseline for the same
    /// run of the node, zero for a later one.
    pub fn for_run(&self, incarnation: &str) -> NodeHealth {
        if self.incarnation == incarnation {
            self.health
        } else {
            NodeHealth::default()
        }
    }
}

/// A failure of the server or the network on `action`.
fn nats(action: &str, error: impl std::fmt::Display) -> super::ReleaseError {
    super::ReleaseError::transient(
        format!("{action}: {error}"),
        "check the server and that this user may write the ORCH_RELEASES bucket",
    )
}

/// The batches for `nodes` (sorted): the canary's nodes first, in batches
/// of at most `max_unavailable`, then the rest the same way.
pub fn plan(nodes: &[String], options: &RolloutOptions) -> Vec<Vec<String>> {
    let size = options.max_unavailable.max(1);
    let canary = options.canary.min(nodes.len());
    let (first, rest) = nodes.split_at(canary);
    first
        .chunks(size)
        .chain(rest.chunks(size))
        .map(<[String]>::to_vec)
        .collect()
}

/// Durations as milliseconds in JSON.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(canary: usize, max_unavailable: usize) -> RolloutOptions {
        RolloutOptions {
            canary,
            max_unavailable,
            min_healthy: Duration::from_secs(1),
            healthy_deadline: Duration::from_secs(10),
            auto_revert: true,
        }
    }

    #[test]
    fn a_node_that_restarted_is_counted_from_zero() {
        let baseline = Baseline {
            incarnation: "run-1".into(),
            health: NodeHealth {
                crashes: 4,
                ..NodeHealth::default()
            },
        };
        assert_eq!(baseline.for_run("run-1").crashes, 4);
        assert_eq!(baseline.for_run("run-2"), NodeHealth::default());
    }

    #[test]
    fn the_canary_goes_first_and_no_batch_exceeds_max_unavailable() {
        let nodes: Vec<String> = (1..=5).map(|i| format!("n{i}")).collect();
        let batches = plan(&nodes, &options(1, 2));
        assert_eq!(
            batches,
            vec![vec!["n1"], vec!["n2", "n3"], vec!["n4", "n5"]]
                .into_iter()
                .map(|b| b.into_iter().map(String::from).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        );
        let batches = plan(&nodes, &options(3, 2));
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![2, 1, 2]
        );
        assert_eq!(plan(&nodes, &options(0, 9)).len(), 1);
        assert!(plan(&[], &options(1, 1)).is_empty());
    }
}
