//! Bundles through NATS: `cargo orch push` stores a signed bundle in a
//! JetStream object store and records it in a key-value bucket of releases;
//! `run --from-nats` fetches the release its node should run and follows
//! it. The archives are checked on both ends: the pusher compares the
//! store's digest with its own, every download is compared with the
//! record's SHA-256 (and the object store's), and the host then verifies
//! the bundle's signature with its own trusted keys before anything loads.
//!
//! - [`record`]: the bucket's keys and values;
//! - [`store`]: push, read, download;
//! - [`follow`]: a node watching its release;
//! - [`rollout`]: a new release across the nodes, batch by batch, gated on
//!   their health.
//!
//! The client runs on a current-thread runtime of its own; every call here
//! blocks with a deadline.

pub mod follow;
pub mod record;
pub mod rollout;
pub mod store;

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::ConnectOptions;
use tokio::sync::watch;

pub use follow::Follow;
pub use record::{Pointer, ReleaseRecord};
use store::Buckets;

/// Why a release operation failed: what happened, and how to fix it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ReleaseError {
    /// What happened, naming the key, object or server.
    pub message: String,
    /// How to fix it.
    pub hint: String,
    /// The server or the network failed (try again later), as opposed to
    /// what it holds being refused.
    pub transient: bool,
}

impl ReleaseError {
    /// An error with its hint: what the store holds is refused.
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: hint.into(),
            transient: false,
        }
    }

    /// The server or the network failed; trying again may work.
    pub fn transient(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            transient: true,
            ..Self::new(message, hint)
        }
    }
}

/// The server to reach and who this client is.
#[derive(Debug, Clone)]
pub struct ReleaseServer {
    /// `nats://host:port` (user and password, or a token, may be in it).
    pub url: String,
    /// A `.creds` file (a NATS user's JWT and nkey seed).
    pub creds: Option<PathBuf>,
    /// This client's name on the server, and its inbox prefix
    /// (`_INBOX.<name>`, as a bridge's).
    pub name: String,
}

/// A bundle to push, read and checked by the caller.
#[derive(Debug, Clone)]
pub struct PushRequest {
    /// `app.name` from its manifest.
    pub app: String,
    /// `app.version` from its manifest.
    pub version: String,
    /// The SHA-256 of its manifest.
    pub digest: String,
    /// The SHA-256 of the archive's bytes.
    pub archive_sha256: String,
    /// The archive.
    pub bytes: Vec<u8>,
    /// The key id of its signature, if signed.
    pub signed_by: Option<String>,
    /// Make it the current release (a first push always does).
    pub make_current: bool,
    /// The presence bucket its main.yaml names.
    pub presence_bucket: Option<String>,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushOutcome {
    /// The archive was stored (false: that very bundle was there already).
    pub stored: bool,
    /// It is the current release now.
    pub current: bool,
    /// The version that was current before, if any.
    pub previous_current: Option<String>,
}

/// The release a node should run, and why.
#[derive(Debug, Clone)]
pub struct Wanted {
    /// Its record.
    pub record: ReleaseRecord,
    /// `current` or `desired for node <node>`.
    pub source: String,
}

/// A downloaded release.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The archive on disk (digests checked; the signature is not yet).
    pub path: PathBuf,
    /// Its record.
    pub record: ReleaseRecord,
    /// `current` or `desired for node <node>`.
    pub source: String,
}

/// A connection to the releases: blocking calls, each with a deadline.
pub struct ReleaseClient {
    runtime: tokio::runtime::Runtime,
    context: async_nats::jetstream::Context,
    server: String,
}

/// How long a call may take, a download included.
pub const CALL_DEADLINE: Duration = Duration::from_secs(300);

impl ReleaseClient {
    /// Connects, or says why not within `timeout`.
    pub fn connect(server: &ReleaseServer, timeout: Duration) -> Result<Self, ReleaseError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("orch-releases")
            .build()
            .map_err(|e| ReleaseError::new(format!("cannot build a runtime: {e}"), "retry"))?;
        let unreachable = |e: String| {
            ReleaseError::new(
                format!("cannot connect to NATS at {}: {e}", server.url),
                "check the URL, that nats-server runs with -js, and the credentials",
            )
        };
        let client = runtime.block_on(async {
            let mut options = ConnectOptions::new()
                .name(format!("cargo-orch releases {}", server.name))
                .custom_inbox_prefix(format!("_INBOX.{}", server.name))
                .max_reconnects(None)
                .connection_timeout(timeout);
            if let Some(creds) = &server.creds {
                options = options.credentials_file(creds).await.map_err(|e| {
                    ReleaseError::new(
                        format!("cannot read the credentials {}: {e}", creds.display()),
                        "give a .creds file of a NATS user (nsc generate creds)",
                    )
                })?;
            }
            tokio::time::timeout(timeout, options.connect(server.url.as_str()))
                .await
                .map_err(|_| unreachable(format!("no answer within {timeout:?}")))?
                .map_err(|e| unreachable(e.to_string()))
        })?;
        // The context spawns its acknowledgement task: inside the runtime.
        let context = runtime.block_on(async { async_nats::jetstream::new(client) });
        Ok(Self {
            runtime,
            context,
            server: server.url.clone(),
        })
    }

    fn call<T>(
        &self,
        what: &str,
        work: impl std::future::Future<Output = Result<T, ReleaseError>>,
    ) -> Result<T, ReleaseError> {
        self.runtime.block_on(async {
            tokio::time::timeout(CALL_DEADLINE, work)
                .await
                .unwrap_or_else(|_| {
                    Err(ReleaseError::transient(
                        format!("{what} took more than {CALL_DEADLINE:?} at {}", self.server),
                        "check the server's health and the network, then retry",
                    ))
                })
        })
    }

    /// Stores `request`'s archive (unless that very bundle is there) and
    /// records it; it becomes current when asked, or when nothing is. A
    /// version already pushed with other bytes is refused.
    pub fn push(&self, request: &PushRequest) -> Result<PushOutcome, ReleaseError> {
        self.call("the push", async {
            let buckets = Buckets::open(&self.context, true).await?;
            buckets.push(request).await
        })
    }

    /// The release `node` of `app` should run now, if any was pushed.
    pub fn wanted(&self, app: &str, node: &str) -> Result<Option<Wanted>, ReleaseError> {
        self.call("reading the releases", async {
            let buckets = Buckets::open(&self.context, false).await?;
            buckets.wanted(app, node).await
        })
    }

    /// Downloads `wanted`'s archive into `dir`, digests checked.
    pub fn download(&self, wanted: Wanted, dir: &Path) -> Result<Fetched, ReleaseError> {
        self.call("the download", async {
            let buckets = Buckets::open(&self.context, false).await?;
            let path = buckets.download(&wanted.record, dir).await?;
            Ok(Fetched {
                path,
                record: wanted.record,
                source: wanted.source,
            })
        })
    }

    /// Runs what `start` asks of the application's rollout (a new one, a
    /// resumed one, or an operator's request), reporting every step; a
    /// rollout runs as long as its batches take (each bounded by its
    /// deadline) and its pauses last.
    pub fn rollout(
        &self,
        start: rollout::controller::Start,
        report: &(dyn Fn(&str) + Sync),
    ) -> Result<rollout::controller::Driven, ReleaseError> {
        self.runtime.block_on(async {
            let buckets = Buckets::open(&self.context, false).await?;
            rollout::controller::drive(&self.context, &buckets, start, report).await
        })
    }

    /// The application's rollout as the bucket holds it.
    pub fn rollout_state(&self, app: &str) -> Result<Option<rollout::RolloutState>, ReleaseError> {
        self.call("reading the rollout", async {
            let buckets = Buckets::open(&self.context, false).await?;
            Ok(rollout::controller::read(&buckets, app)
                .await?
                .map(|(state, _)| state))
        })
    }

    /// Follows the node's release from now on, on a thread of its own,
    /// until the [`Follower`] is dropped.
    pub fn follow<T: Send + 'static>(self, follow: Follow<T>) -> Result<Follower, ReleaseError> {
        let buckets = self.call("opening the releases", async {
            Buckets::open(&self.context, false).await
        })?;
        let (stop, stopped) = watch::channel(false);
        let runtime = self.runtime;
        let thread = std::thread::Builder::new()
            .name("orch-releases".into())
            .spawn(move || runtime.block_on(follow::run(buckets, follow, stopped)))
            .map_err(|e| ReleaseError::new(format!("cannot start its thread: {e}"), "retry"))?;
        Ok(Follower {
            stop,
            _thread: thread,
        })
    }
}

/// A node following its release; stops when dropped (a download under
/// way is left to end with the process).
pub struct Follower {
    stop: watch::Sender<bool>,
    _thread: std::thread::JoinHandle<()>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
