//! What the controller does to the nodes and reads of them: their
//! presence records, their desired keys, the current release at the end,
//! and a revert.

use std::collections::BTreeMap;
use std::time::Instant;

use futures_util::StreamExt as _;
use orch_runtime::status::NodeRecord;

use super::RolloutState;
use super::lock::Lock;
use super::nats;
use crate::releases::ReleaseError;
use crate::releases::record::{self, Pointer};
use crate::releases::store::{Buckets, short};

/// Presence keys read at most per look (a bucket of junk keys costs no
/// more).
const MAX_PRESENCE_KEYS: usize = 2_000;

/// How often a revert looks whether the nodes are back.
const TICK: std::time::Duration = std::time::Duration::from_millis(250);

/// The presence records of the bucket, by node.
pub async fn records(
    buckets: &Buckets,
    bucket: &str,
) -> Result<BTreeMap<String, NodeRecord>, ReleaseError> {
    let context = buckets.context();
    let store = context
        .get_key_value(bucket)
        .await
        .map_err(|e| nats(&format!("cannot open the presence bucket {bucket}"), e))?;
    let mut keys = store
        .keys()
        .await
        .map_err(|e| nats(&format!("cannot list {bucket}"), e))?;
    let mut found = BTreeMap::new();
    let mut read = 0;
    while let Some(Ok(key)) = keys.next().await {
        read += 1;
        if read > MAX_PRESENCE_KEYS {
            break;
        }
        if let Ok(Some(value)) = store.get(key.as_str()).await
            && let Ok(record) = crate::presence::parse_record(&key, &value)
        {
            found.insert(key, record);
        }
    }
    Ok(found)
}

/// `<app>.desired.<node>` = `to`.
pub async fn desire(
    buckets: &Buckets,
    app: &str,
    node: &str,
    to: &Pointer,
) -> Result<(), ReleaseError> {
    let key = record::desired_key(app, node);
    let bytes = serde_json::to_vec(to).unwrap_or_default();
    buckets
        .releases
        .put(key.as_str(), bytes.into())
        .await
        .map(|_| ())
        .map_err(|e| nats(&format!("cannot write {key}"), e))
}

/// The new release becomes current; the changed nodes' desired keys go
/// (they follow the current release again). The nodes whose key could not
/// be removed.
pub async fn finish(buckets: &Buckets, state: &RolloutState) -> Result<Vec<String>, ReleaseError> {
    let key = record::current_key(&state.app);
    let bytes = serde_json::to_vec(&state.to).unwrap_or_default();
    buckets
        .releases
        .put(key.as_str(), bytes.into())
        .await
        .map_err(|e| nats(&format!("cannot write {key}"), e))?;
    let mut left = Vec::new();
    for node in &state.changed {
        let removed = buckets
            .releases
            .delete(record::desired_key(&state.app, node).as_str())
            .await;
        if removed.is_err() {
            left.push(node.clone());
        }
    }
    Ok(left)
}

/// Returns every changed node to the release that was current (its
/// desired key goes; the current one was never changed), and waits (at
/// most the healthy deadline) until they run it: the nodes that did.
pub async fn revert(
    buckets: &Buckets,
    lock: &mut Lock,
    state: &RolloutState,
    report: &(dyn Fn(&str) + Sync),
) -> Result<Vec<String>, ReleaseError> {
    for node in &state.changed {
        let key = record::desired_key(&state.app, node);
        buckets
            .releases
            .delete(key.as_str())
            .await
            .map_err(|e| nats(&format!("cannot delete {key}"), e))?;
    }
    report(&format!(
        "reverting {} to {} (digest {})",
        state.changed.join(", "),
        state.from.version,
        short(&state.from.digest)
    ));
    let deadline = Instant::now() + state.options.healthy_deadline;
    loop {
        lock.keep().await?;
        let records = records(buckets, &state.presence_bucket).await?;
        let back: Vec<String> = state
            .changed
            .iter()
            .filter(|n| {
                records
                    .get(*n)
                    .is_some_and(|r| r.bundle_digest.as_deref() == Some(state.from.digest.as_str()))
            })
            .cloned()
            .collect();
        if back.len() == state.changed.len() || Instant::now() >= deadline {
            return Ok(back);
        }
        tokio::time::sleep(TICK).await;
    }
}
