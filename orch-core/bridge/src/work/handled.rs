//! The handled-jobs record the nodes of a group share: a key-value bucket
//! where a job's key (its origin and message id) is created once its
//! handlers let go, before it is acknowledged. A job delivered again (its
//! node died before the acknowledgement arrived) is looked up there, on
//! whichever node it lands, and not handled twice. Only redeliveries are
//! looked up: a first delivery cannot have been handled.
//!
//! The record narrows, not closes, the window: a node that dies after a
//! handler returned and before the create reached the server leaves a job
//! that is handled again (with `delivery_count() >= 2`, so handlers can be
//! idempotent).

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;

/// How long a handled job is remembered: longer than a job can be offered
/// again (`MAX_DELIVER` deliveries, each after at most `ACK_WAIT` plus a
/// back-off of a minute).
pub const REMEMBERED: Duration = Duration::from_secs(15 * 60);

/// The bucket's size at most: when full, records fail (said, paced) and
/// jobs are acknowledged without one until old ones expire.
pub const MAX_BYTES: i64 = 256 * 1024 * 1024;

/// Opens the group's bucket, creating it when missing.
pub async fn open(context: &jetstream::Context, bucket: &str) -> Result<kv::Store, String> {
    if let Ok(store) = context.get_key_value(bucket).await {
        return Ok(store);
    }
    context
        .create_key_value(kv::Config {
            bucket: bucket.to_owned(),
            description: "cargo-orch shared work: jobs handled".into(),
            history: 1,
            max_age: REMEMBERED,
            max_bytes: MAX_BYTES,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("cannot open or create the bucket '{bucket}': {e}"))
}

/// The key of a job tracked as `<origin> <id>`: both are caps-checked
/// tokens; anything a key may not hold is written as `=XX`.
pub fn key(tracked: &str) -> String {
    let mut key = String::with_capacity(tracked.len() + 8);
    for byte in tracked.replacen(' ', ".", 1).bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.') {
            key.push(char::from(byte));
        } else {
            key.push_str(&format!("={byte:02X}"));
        }
    }
    key
}

/// Whether the job was handled already (by any node). A record that
/// cannot be read counts as not handled: the job is handled (again).
pub async fn seen(store: &kv::Store, tracked: &str) -> bool {
    matches!(store.get(key(tracked)).await, Ok(Some(_)))
}

/// Records the job as handled; `Err` says why it could not be (the job is
/// acknowledged anyway: its handlers ran).
pub async fn mark(store: &kv::Store, tracked: &str) -> Result<(), String> {
    match store.create(key(tracked), Bytes::new()).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_for_any_message_id() {
        assert_eq!(key("node-a node-a-12-00ff"), "node-a.node-a-12-00ff");
        assert_eq!(key("n x/y z"), "n.x=2Fy=20z");
        assert!(
            key("a b.c*>")
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.=".contains(&b))
        );
    }
}
