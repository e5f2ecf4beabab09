//! `bridge.nats.presence`: every node's record in one key-value bucket with
//! a TTL (the cluster view, `node_joined` / `node_lost`, singleton leases).

use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use super::check::Checker;
use super::merge::merge_by_key;

/// `bridge.nats.presence`: every node keeps a record in one KV bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceSettings {
    /// `bucket`: the KV bucket (created if missing; default
    /// `<prefix with . as _>_nodes`).
    pub bucket: String,
    /// `ttl`: a node silent this long is lost (default 6s); records are
    /// written every third of it.
    pub ttl: std::time::Duration,
}

/// The default `presence.ttl`.
pub const DEFAULT_PRESENCE_TTL: std::time::Duration = std::time::Duration::from_secs(6);

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawPresence {
    bucket: Option<Spanned<String>>,
    ttl: Option<Spanned<Value>>,
}
merge_by_key!(RawPresence { bucket, ttl });

/// `presence`: the bucket (a name token) and the TTL (at least 1s).
pub(crate) fn presence(
    c: &mut Checker,
    raw: &Spanned<RawPresence>,
    prefix: &str,
) -> PresenceSettings {
    let bucket = raw
        .value
        .bucket
        .as_ref()
        .and_then(|b| crate::bridge_tokens::name_token(c, "bridge.nats.presence.bucket", b))
        .unwrap_or_else(|| format!("{}_nodes", prefix.replace('.', "_")));
    let ttl = c.duration(
        "bridge.nats.presence.ttl",
        raw.value.ttl.as_ref(),
        DEFAULT_PRESENCE_TTL,
    );
    let ttl = match raw.value.ttl.as_ref() {
        Some(at) if ttl < std::time::Duration::from_secs(1) => {
            c.error(
                &at.referenced,
                "`bridge.nats.presence.ttl` is shorter than 1s",
                "records are written every third of it: write at least `ttl: 1s` (default 6s)",
            );
            DEFAULT_PRESENCE_TTL
        }
        _ => ttl,
    };
    PresenceSettings { bucket, ttl }
}
