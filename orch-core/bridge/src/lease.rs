//! Singleton leases: one key per singleton module in a JetStream key-value
//! bucket (`<presence bucket>_leases`, entries expiring after the presence
//! TTL). A node takes a lease with a create (which fails while the key
//! exists), renews it every third of the TTL with an update that names the
//! revision it holds (compare-and-set), and deletes it on a clean stop.
//!
//! Safety comes from this node's monotonic clock, never the server's: a
//! holder that has not renewed for two thirds of the TTL gives the lease up
//! (the main loop stops the module) before the key can have expired and
//! another node can have taken it. A holder paused past that (SIGSTOP, a
//! VM pause) is caught by the fence: its events carry the revision of its
//! lease, and importers drop events with a lower one than they have seen.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use crossbeam_channel::Sender;
use orch_config::PresenceSettings;
use orch_runtime::lease::{Fences, LeaseChange};
use orch_runtime::pace::Pacer;

/// The bucket of the leases of `presence`'s cluster.
pub fn bucket(presence: &PresenceSettings) -> String {
    format!("{}_leases", presence.bucket)
}

async fn open(
    context: &jetstream::Context,
    presence: &PresenceSettings,
) -> Result<kv::Store, String> {
    let name = bucket(presence);
    if let Ok(store) = context.get_key_value(&name).await {
        return Ok(store);
    }
    context
        .create_key_value(kv::Config {
            bucket: name.clone(),
            description: "cargo-orch singleton leases: one key per singleton module".into(),
            history: 1,
            max_age: presence.ttl,
            storage: jetstream::stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("cannot open or create the lease bucket '{name}': {e}"))
}

/// Keeps trying to hold the lease of `module` for `holder` (this node's
/// `node:incarnation`), telling `changes` whenever this node gets or loses
/// it, until dropped.
pub async fn run(
    context: jetstream::Context,
    presence: PresenceSettings,
    module: String,
    holder: String,
    changes: Sender<LeaseChange>,
    fences: Fences,
) {
    let ttl = presence.ttl;
    let every = (ttl / 3).max(Duration::from_millis(100));
    let said = Pacer::new(Duration::from_secs(30));
    let store = loop {
        match open(&context, &presence).await {
            Ok(store) => break store,
            Err(e) => {
                if said.due() {
                    tracing::warn!("[SINGLETON] '{module}': {e}; trying again");
                }
                tokio::time::sleep(every).await;
            }
        }
    };
    loop {
        // Not the holder: try to take it.
        match store.create(&module, holder.clone().into()).await {
            Ok(revision) => {
                tracing::info!(
                    "[SINGLETON] '{module}': this node holds its lease (revision {revision})"
                );
                if changes
                    .send(LeaseChange::Acquired {
                        module: module.clone(),
                        fence: revision,
                    })
                    .is_err()
                {
                    return;
                }
                let ended = hold(&store, &module, &holder, revision, ttl, every, &fences).await;
                let (reason, given_up) = match ended {
                    Held::Lost(reason) => {
                        tracing::warn!("[SINGLETON] '{module}': lease lost: {reason}");
                        (reason, false)
                    }
                    Held::GivenUp(last) => {
                        let _ = store.delete_expect_revision(&module, Some(last)).await;
                        tracing::warn!(
                            "[SINGLETON] '{module}': lease released (the module did not start \
                             here); this node waits {} ms before it tries again",
                            (ttl * 2).as_millis()
                        );
                        ("the module did not start on this node".to_owned(), true)
                    }
                };
                if changes
                    .send(LeaseChange::Lost {
                        module: module.clone(),
                        reason,
                    })
                    .is_err()
                {
                    return;
                }
                if given_up {
                    // Another node's turn: taking it back at once would
                    // only fail here again.
                    tokio::time::sleep(ttl * 2).await;
                }
            }
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => {
                if said.due() {
                    tracing::warn!("[SINGLETON] '{module}': cannot take its lease: {e}");
                }
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// How holding a lease ended.
enum Held {
    /// Lost: why.
    Lost(String),
    /// The main loop gave it up (the module did not start here), held at
    /// this revision.
    GivenUp(u64),
}

/// Renews the lease taken at `revision` until it cannot or the main loop
/// gives it up.
async fn hold(
    store: &kv::Store,
    module: &str,
    holder: &str,
    mut revision: u64,
    ttl: Duration,
    every: Duration,
    fences: &Fences,
) -> Held {
    let give_up_after = ttl * 2 / 3;
    let mut renewed = Instant::now();
    let tick = every.min(Duration::from_millis(200));
    let mut since_renewal_try = Duration::ZERO;
    loop {
        tokio::time::sleep(tick).await;
        if fences.take_given_up(module) {
            return Held::GivenUp(revision);
        }
        since_renewal_try += tick;
        if since_renewal_try < every {
            continue;
        }
        since_renewal_try = Duration::ZERO;
        if renewed.elapsed() >= give_up_after {
            return Held::Lost(format!(
                "not renewed for {} ms (two thirds of the TTL): given up before it can expire",
                renewed.elapsed().as_millis()
            ));
        }
        let attempt = tokio::time::timeout(
            give_up_after.saturating_sub(renewed.elapsed()),
            store.update(module, holder.to_owned().into(), revision),
        )
        .await;
        match attempt {
            Ok(Ok(next)) => {
                revision = next;
                renewed = Instant::now();
            }
            Ok(Err(e)) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                return Held::Lost("another node holds it now".into());
            }
            Ok(Err(_)) | Err(_) => {
                // The deadline check above decides.
            }
        }
    }
}

/// Deletes the leases this node holds (a clean stop), so another node takes
/// them at once instead of after the TTL.
pub async fn release_all(
    context: &jetstream::Context,
    presence: &PresenceSettings,
    modules: &[String],
    holder: &str,
) {
    let release = async {
        let Ok(store) = context.get_key_value(bucket(presence)).await else {
            return;
        };
        for module in modules {
            if let Ok(Some(entry)) = store.entry(module.as_str()).await
                && entry.operation == kv::Operation::Put
                && entry.value.as_ref() == holder.as_bytes()
            {
                let _ = store
                    .delete_expect_revision(module.as_str(), Some(entry.revision))
                    .await;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), release).await;
}
