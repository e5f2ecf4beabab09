//! The rollout controller's lock: one key per application in a bucket whose
//! entries expire after [`LOCK_TTL`] (`ORCH_ROLLOUT_LOCKS`), taken with a
//! create and renewed by revision (compare-and-set), as singleton leases
//! are. Two operators cannot run two controllers of one application; a
//! controller that died leaves a lock that expires on the server.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};

use super::super::ReleaseError;

/// The bucket of controller locks.
pub const LOCKS_BUCKET: &str = "ORCH_ROLLOUT_LOCKS";
/// A lock not renewed for this long expires on the server.
pub const LOCK_TTL: Duration = Duration::from_secs(10);
/// A holder renews this often...
pub const RENEW_EVERY: Duration = Duration::from_secs(2);
/// ...and stops acting once it has not renewed for this long (before the
/// server can let another controller take it).
const GIVE_UP_AFTER: Duration = Duration::from_secs(6);

/// A lock this controller holds.
pub struct Lock {
    store: kv::Store,
    key: String,
    holder: String,
    revision: u64,
    renewed: Instant,
    lost: bool,
}

fn failed(action: &str, error: impl std::fmt::Display) -> ReleaseError {
    ReleaseError::new(
        format!("{action}: {error}"),
        "check that this user may use the ORCH_ROLLOUT_LOCKS bucket",
    )
}

async fn open(context: &jetstream::Context) -> Result<kv::Store, ReleaseError> {
    if let Ok(store) = context.get_key_value(LOCKS_BUCKET).await {
        return Ok(store);
    }
    context
        .create_key_value(kv::Config {
            bucket: LOCKS_BUCKET.into(),
            description: "cargo-orch rollout controllers: one lock per application".into(),
            history: 1,
            max_age: LOCK_TTL,
            ..Default::default()
        })
        .await
        .map_err(|e| failed("cannot create the rollout locks bucket", e))
}

impl Lock {
    /// Takes the lock `key` for `holder`, or says who holds it.
    pub async fn take(
        context: &jetstream::Context,
        key: &str,
        holder: &str,
    ) -> Result<Self, ReleaseError> {
        let store = open(context).await?;
        match store.create(key, holder.as_bytes().to_vec().into()).await {
            Ok(revision) => Ok(Self {
                store,
                key: key.to_owned(),
                holder: holder.to_owned(),
                revision,
                renewed: Instant::now(),
                lost: false,
            }),
            Err(e) if e.kind() != kv::CreateErrorKind::AlreadyExists => {
                Err(ReleaseError::transient(
                    format!("cannot take the rollout lock: {e}"),
                    "check the server and that this user may write ORCH_ROLLOUT_LOCKS",
                ))
            }
            Err(_) => {
                let other = store
                    .get(key)
                    .await
                    .ok()
                    .flatten()
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
                    .unwrap_or_else(|| "another controller".into());
                Err(ReleaseError::new(
                    format!("another rollout controller runs ({other})"),
                    format!(
                        "wait for it (cargo orch rollout APP --status), or, if it died, for its \
                         lock to expire ({}s)",
                        LOCK_TTL.as_secs()
                    ),
                ))
            }
        }
    }

    /// Renews when due; an error when the lock was lost (the caller must
    /// stop acting at once).
    pub async fn keep(&mut self) -> Result<(), ReleaseError> {
        if self.renewed.elapsed() < RENEW_EVERY {
            return Ok(());
        }
        match self
            .store
            .update(
                &self.key,
                self.holder.as_bytes().to_vec().into(),
                self.revision,
            )
            .await
        {
            Ok(revision) => {
                self.revision = revision;
                self.renewed = Instant::now();
                Ok(())
            }
            Err(e) if self.renewed.elapsed() < GIVE_UP_AFTER => {
                tracing::warn!("cannot renew the rollout lock ({e}); trying again");
                Ok(())
            }
            Err(e) => {
                self.lost = true;
                Err(failed("lost the rollout lock", e))
            }
        }
    }

    /// Was it lost (another controller may hold it now)?
    pub fn is_lost(&self) -> bool {
        self.lost
    }

    /// Gives the lock back.
    pub async fn release(self) {
        let _ = self
            .store
            .delete_expect_revision(&self.key, Some(self.revision))
            .await;
    }
}
