//! A node following its release: the `current` and `desired.<node>` keys
//! watched; each time the release they name is not the one running, its
//! archive is downloaded (digests checked) and handed to the main loop,
//! which verifies and deploys it as `cargo orch deploy` does.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use futures_util::StreamExt as _;
use tokio::sync::watch;

use super::record::{self, Pointer};
use super::store::{Buckets, short};
use super::{Fetched, ReleaseError, Wanted};

/// How often a follower compares what runs with what is wanted, besides
/// at every change of its keys.
const RECHECK: Duration = Duration::from_secs(1);

/// What a follower needs; `T` is what the main loop takes.
pub struct Follow<T> {
    /// `app.name`.
    pub app: String,
    /// This node's id (its `desired.<node>` key).
    pub node: String,
    /// Where archives are downloaded to.
    pub dir: PathBuf,
    /// The digest of the bundle running now (the main loop writes it after
    /// every deploy).
    pub running: Arc<Mutex<String>>,
    /// Where downloaded releases go (the main loop).
    pub deliver: crossbeam_channel::Sender<T>,
    /// A downloaded release as the main loop takes it.
    pub into: fn(Fetched) -> T,
    /// A release refused before it reached the main loop (its download
    /// did not check), as the main loop takes it.
    pub refusal: fn(&Pointer, &ReleaseError) -> T,
    /// The release wanted is the one running (a refusal of another is
    /// moot now), as the main loop takes it.
    pub settled: fn(&Pointer) -> T,
}

/// The pause after a download that failed on the server or the network,
/// doubling up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// What the two keys say now.
#[derive(Default)]
struct Keys {
    desired: Option<(Pointer, u64)>,
    current: Option<(Pointer, u64)>,
}

impl Keys {
    /// The release wanted, where it comes from, and the revision that said so.
    fn wanted(&self, node: &str) -> Option<(Pointer, String, u64)> {
        match (&self.desired, &self.current) {
            (Some((pointer, revision)), _) => Some((
                pointer.clone(),
                format!("desired for node {node}"),
                *revision,
            )),
            (None, Some((pointer, revision))) => {
                Some((pointer.clone(), "current".into(), *revision))
            }
            (None, None) => None,
        }
    }
}

/// Follows until `stop` turns true; the watch is opened again (paced) when
/// it ends or cannot be opened.
pub async fn run<T>(buckets: Buckets, follow: Follow<T>, mut stop: watch::Receiver<bool>) {
    let desired_key = record::desired_key(&follow.app, &follow.node);
    let current_key = record::current_key(&follow.app);
    // The last release tried, by digest and the revision that named it: a
    // refused one is tried again only when the key is written again.
    let mut tried: Option<(String, u64)> = None;
    // The digest last reported settled (wanted and running).
    let mut settled: Option<String> = None;
    // After a transient failure: the pause, and when to try again.
    let mut retry: Option<(Duration, Instant)> = None;
    loop {
        let watching = buckets
            .releases
            .watch_many_with_history([desired_key.as_str(), current_key.as_str()])
            .await;
        let mut entries = match watching {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!("[RELEASE] cannot watch the releases bucket: {e}; trying again");
                if pause(&mut stop, Duration::from_secs(2)).await {
                    return;
                }
                continue;
            }
        };
        let mut keys = Keys::default();
        // Nothing is acted on before both keys' last values are in (the
        // watch's backlog drained, or a quiet second): a node must not take
        // `current` on its way to a `desired` that comes next.
        let mut caught_up = false;
        loop {
            // A look every second besides each change: a release handed to
            // the main loop may have been deployed after the keys moved on
            // (the node then runs what is no longer wanted).
            let entry = tokio::select! {
                _ = stop.changed() => return,
                entry = entries.next() => Some(entry),
                () = tokio::time::sleep(RECHECK) => None,
            };
            match entry {
                Some(entry) => {
                    let Some(Ok(entry)) = entry else { break };
                    caught_up |= entry.delta == 0;
                    let value = match entry.operation {
                        kv::Operation::Put => {
                            match record::parse::<Pointer>(&entry.key, &entry.value) {
                                Ok(pointer) => Some((pointer, entry.revision)),
                                Err(e) => {
                                    tracing::warn!("[RELEASE] {e}; ignored");
                                    continue;
                                }
                            }
                        }
                        kv::Operation::Delete | kv::Operation::Purge => None,
                    };
                    if entry.key == desired_key {
                        keys.desired = value;
                    } else if entry.key == current_key {
                        keys.current = value;
                    }
                }
                None => caught_up = true,
            }
            if !caught_up {
                continue;
            }
            let Some((pointer, source, revision)) = keys.wanted(&follow.node) else {
                continue;
            };
            let running = follow.running.lock().map(|d| d.clone()).unwrap_or_default();
            if pointer.digest == running {
                if settled.as_deref() != Some(running.as_str()) {
                    settled = Some(running);
                    if deliver(&follow.deliver, (follow.settled)(&pointer), &mut stop).await {
                        return;
                    }
                }
                continue;
            }
            settled = None;
            let attempt = (pointer.digest.clone(), revision);
            if tried.as_ref() == Some(&attempt) || retry.is_some_and(|(_, at)| Instant::now() < at)
            {
                continue;
            }
            tried = Some(attempt);
            tracing::info!(
                "[RELEASE] the {source} release is {} (digest {}): fetching it",
                pointer.version,
                short(&pointer.digest)
            );
            let wanted = pointer.clone();
            let fetched = tokio::select! {
                _ = stop.changed() => return,
                fetched = tokio::time::timeout(
                    super::CALL_DEADLINE,
                    fetch(&buckets, &follow, pointer, source),
                ) => fetched.unwrap_or_else(|_| Err(ReleaseError::transient(
                    format!("the download took more than {:?}", super::CALL_DEADLINE),
                    "check the server and the network; it is tried again",
                ))),
            };
            let event = match fetched {
                Ok(fetched) => {
                    retry = None;
                    (follow.into)(fetched)
                }
                Err(e) if e.transient => {
                    // Not a refusal: tried again after a pause that grows.
                    let wait = retry.map_or(RETRY_FIRST, |(last, _)| (last * 2).min(RETRY_MAX));
                    retry = Some((wait, Instant::now() + wait));
                    tried = None;
                    tracing::warn!(
                        "[RELEASE] cannot fetch {} now ({}); trying again in {wait:?}",
                        wanted.version,
                        e.message
                    );
                    continue;
                }
                Err(e) => {
                    tracing::error!(
                        "[RELEASE] {} refused, the running bundle goes on: {}; hint: {}",
                        wanted.version,
                        e.message,
                        e.hint
                    );
                    (follow.refusal)(&wanted, &e)
                }
            };
            if deliver(&follow.deliver, event, &mut stop).await {
                return;
            }
        }
        if pause(&mut stop, Duration::from_secs(1)).await {
            return;
        }
    }
}

async fn fetch<T>(
    buckets: &Buckets,
    follow: &Follow<T>,
    pointer: Pointer,
    source: String,
) -> Result<Fetched, super::ReleaseError> {
    let Wanted { record, source } = buckets.resolve(&follow.app, pointer, source).await?;
    let path = buckets.download(&record, &follow.dir).await?;
    Ok(Fetched {
        path,
        record,
        source,
    })
}

/// Hands `fetched` to the main loop; true when stopped first.
async fn deliver<T>(
    to: &crossbeam_channel::Sender<T>,
    mut fetched: T,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    loop {
        match to.try_send(fetched) {
            Ok(()) => return false,
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => return true,
            Err(crossbeam_channel::TrySendError::Full(back)) => fetched = back,
        }
        if pause(stop, Duration::from_millis(100)).await {
            return true;
        }
    }
}

/// Sleeps `period`; true when stopped first.
async fn pause(stop: &mut watch::Receiver<bool>, period: Duration) -> bool {
    tokio::select! {
        _ = stop.changed() => true,
        () = tokio::time::sleep(period) => *stop.borrow(),
    }
}
