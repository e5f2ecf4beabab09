//! Bundles through NATS, as the command line sees them: `cargo orch push`
//! and `run --from-nats`. The store itself (a JetStream object store of
//! archives and a key-value bucket of releases) is orch-bridge's; only
//! `orch-networked` has it, behind [`Releases`].

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The server holding the releases, and who this client is.
#[derive(Debug, Clone)]
pub struct ReleaseServer {
    /// `nats://host:port`.
    pub url: String,
    /// A NATS user's `.creds` file.
    pub creds: Option<PathBuf>,
    /// This client's name (the node id for `run --from-nats`).
    pub name: String,
}

/// A bundle to push, already read and checked.
#[derive(Debug, Clone)]
pub struct BundleToPush {
    /// `app.name`.
    pub app: String,
    /// `app.version`.
    pub version: String,
    /// The SHA-256 of its manifest.
    pub digest: String,
    /// The SHA-256 of the archive.
    pub archive_sha256: String,
    /// The archive's bytes.
    pub bytes: Vec<u8>,
    /// The key id of its signature, as checked.
    pub signed_by: Option<String>,
    /// Make it the current release.
    pub make_current: bool,
    /// The presence bucket its main.yaml names (for a rollout).
    pub presence_bucket: Option<String>,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The archive was stored (false: that very bundle was there).
    pub stored: bool,
    /// It is the current release now.
    pub current: bool,
    /// The version that was current before.
    pub previous_current: Option<String>,
}

/// A release downloaded (its digests checked, its signature not yet).
#[derive(Debug, Clone)]
pub struct FetchedRelease {
    /// The archive.
    pub path: PathBuf,
    /// Its version.
    pub version: String,
    /// Its bundle digest (the SHA-256 of its manifest) as recorded.
    pub digest: String,
    /// `current` or `desired for node <node>`.
    pub source: String,
}

/// What a node following its release needs.
pub struct FollowSetup {
    /// `app.name`.
    pub app: String,
    /// This node's id.
    pub node: String,
    /// Where archives are downloaded to.
    pub dir: PathBuf,
    /// The digest running now, written after every deploy.
    pub running: Arc<Mutex<String>>,
    /// Where downloaded (or refused) releases go: the main loop.
    pub deliver: crossbeam_channel::Sender<FollowEvent>,
}

/// What a node's release follower tells the main loop.
#[derive(Debug, Clone)]
pub enum FollowEvent {
    /// A release downloaded, to verify and deploy.
    Fetched(FetchedRelease),
    /// A release refused before it could be deployed (its download did
    /// not check).
    Refused {
        /// Its version.
        version: String,
        /// Its digest, as its release names it.
        digest: String,
        /// Why.
        reason: String,
    },
    /// The release wanted is the one running: an earlier refusal is moot.
    Settled,
}

/// The releases on one server (implemented by `orch-networked`).
pub trait Releases: Send {
    /// Stores and records a bundle.
    fn push(&self, bundle: BundleToPush) -> anyhow::Result<Pushed>;
    /// Downloads into `dir` the release `node` of `app` should run now
    /// (`None`: nothing was pushed for `app`).
    fn fetch(
        &self,
        app: &str,
        node: &str,
        dir: &std::path::Path,
    ) -> anyhow::Result<Option<FetchedRelease>>;
    /// Follows the node's release until the returned value is dropped.
    fn follow(self: Box<Self>, setup: FollowSetup) -> anyhow::Result<Box<dyn Send>>;
    /// Runs (or asks the running controller for) what `request` says,
    /// reporting each step; the rollout as it ended or stands.
    fn rollout(
        &self,
        request: &RolloutRequest,
        report: &(dyn Fn(&str) + Sync),
    ) -> anyhow::Result<RolloutReport>;
    /// The application's rollout, if it ever had one.
    fn rollout_state(&self, app: &str) -> anyhow::Result<Option<RolloutReport>>;
}

/// What `cargo orch rollout` asks.
#[derive(Debug, Clone)]
pub struct RolloutRequest {
    /// `app.name`.
    pub app: String,
    /// The version to roll out (`None` with an operator's request).
    pub version: Option<String>,
    /// Nodes of the canary batches.
    pub canary: usize,
    /// Nodes changed at once, at most.
    pub max_unavailable: usize,
    /// How long a node must be healthy.
    pub min_healthy: std::time::Duration,
    /// How long a batch may take to be healthy.
    pub healthy_deadline: std::time::Duration,
    /// Return the changed nodes on a halt.
    pub auto_revert: bool,
    /// The presence bucket, if not the release's.
    pub presence_bucket: Option<String>,
    /// `pause`, `resume` or `abort`.
    pub operator: Option<OperatorRequest>,
    /// This controller's id.
    pub holder: String,
}

/// What an operator may ask of a running rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorRequest {
    /// Start no new batch.
    Pause,
    /// Go on.
    Resume,
    /// Stop and return the changed nodes.
    Abort,
}

/// A rollout as it stands.
#[derive(Debug, Clone)]
pub struct RolloutReport {
    /// `running`, `paused`, `succeeded`, `failed` or `aborted`.
    pub phase: String,
    /// One line: versions, phase, batch, reason.
    pub summary: String,
    /// The whole state, as the bucket holds it.
    pub state: serde_json::Value,
    /// The controller that acts on a request, when it was not this one.
    pub handed_to: Option<String>,
}
