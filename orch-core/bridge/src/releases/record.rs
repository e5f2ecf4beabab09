//! What the releases bucket holds: one record per pushed version of an
//! application, and pointers to the version a node should run (`current`
//! for every node, `desired.<node>` for one). Every value is JSON of a
//! bounded size; a value that is not is refused, never half-read.

use serde::{Deserialize, Serialize};

/// The key-value bucket of releases.
pub const RELEASES_BUCKET: &str = "ORCH_RELEASES";
/// The object store of bundle archives.
pub const BUNDLES_BUCKET: &str = "ORCH_BUNDLES";
/// A value of the releases bucket holds at most this many bytes (a
/// rollout's state of a few thousand nodes fits).
pub const MAX_VALUE_BYTES: usize = 256 * 1024;

/// One pushed bundle of an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// `app.name`.
    pub app: String,
    /// `app.version`.
    pub version: String,
    /// The bundle's digest: the SHA-256 of its manifest (what `status` and
    /// the presence record show).
    pub digest: String,
    /// The SHA-256 of the archive's bytes, checked after every download.
    pub archive_sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// The object holding the archive in [`BUNDLES_BUCKET`].
    pub object: String,
    /// The key id that signed it, when it is signed (as the pusher read it;
    /// every node checks the signature with its own keys).
    #[serde(default)]
    pub signed_by: Option<String>,
    /// Seconds since the Unix epoch when it was pushed.
    pub pushed_at: u64,
    /// The presence bucket its main.yaml names, where a rollout reads the
    /// nodes' records (when it has presence, written out).
    #[serde(default)]
    pub presence_bucket: Option<String>,
}

/// The release a node should run: a version and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    /// The version (its record is [`release_key`]).
    pub version: String,
    /// The bundle digest the record must have.
    pub digest: String,
}

/// `<app>.release.<version>`.
pub fn release_key(app: &str, version: &str) -> String {
    format!("{}.release.{}", key_part(app), key_part(version))
}

/// `<app>.current`: the release every node without a desired one runs.
pub fn current_key(app: &str) -> String {
    format!("{}.current", key_part(app))
}

/// `<app>.desired.<node>`: the release one node should run (a rollout sets it).
pub fn desired_key(app: &str, node: &str) -> String {
    format!("{}.desired.{}", key_part(app), key_part(node))
}

/// `<app>.rollout`: the state of the application's rollout.
pub fn rollout_key(app: &str) -> String {
    format!("{}.rollout", key_part(app))
}

/// `<app>.rollout-lock`: the controller that runs it.
pub fn rollout_lock_key(app: &str) -> String {
    format!("{}.rollout-lock", key_part(app))
}

/// The object name of an archive: app, version and digest, so two pushes
/// of one version with other bytes never overwrite each other.
pub fn object_name(app: &str, version: &str, digest: &str) -> String {
    format!("{app}/{version}/{digest}.tar")
}

/// One part of a key, written with the characters keys allow: letters,
/// digits, `-` and `_` as they are, anything else as `=XX` per byte (so a
/// dot in a version never splits a key, and two names never share a key).
pub fn key_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("={byte:02X}"));
        }
    }
    out
}

/// Reads a value of the bucket, bounded in size.
pub fn parse<T: for<'de> Deserialize<'de>>(key: &str, value: &[u8]) -> Result<T, String> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(format!(
            "{key}: {} bytes, more than {MAX_VALUE_BYTES}",
            value.len()
        ));
    }
    serde_json::from_slice(value).map_err(|e| format!("{key}: not a release value: {e}"))
}

/// Is `digest` 64 lowercase hex digits?
pub fn is_sha256_hex(digest: &str) -> bool {
    digest.len() == 64
        && digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl ReleaseRecord {
    /// Refuses a record whose fields cannot be what a push wrote.
    pub fn check(&self, app: &str, version: &str) -> Result<(), String> {
        if self.app != app || self.version != version {
            return Err(format!(
                "the record of {app} {version} names {} {}",
                self.app.escape_debug(),
                self.version.escape_debug()
            ));
        }
        if !is_sha256_hex(&self.digest) || !is_sha256_hex(&self.archive_sha256) {
            return Err("its digests are not SHA-256 hex".into());
        }
        if self.object != object_name(app, version, &self.digest) {
            return Err(format!(
                "it names object {}, not the one a push writes",
                self.object.escape_debug()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_dots_and_odd_characters_out_of_their_parts() {
        assert_eq!(release_key("shop", "1.2.0"), "shop.release.1=2E2=2E0");
        assert_eq!(current_key("my.app"), "my=2Eapp.current");
        assert_eq!(desired_key("shop", "node-1"), "shop.desired.node-1");
        assert_eq!(key_part("1.0+build=7"), "1=2E0=2Bbuild=3D7");
        assert_ne!(key_part("a.b"), key_part("a=2Eb"));
    }

    #[test]
    fn values_are_bounded_and_records_checked() {
        let big = vec![b' '; MAX_VALUE_BYTES + 1];
        assert!(parse::<Pointer>("k", &big).is_err());
        assert!(parse::<Pointer>("k", b"{\"version\":1}").is_err());
        let digest = "a".repeat(64);
        let record = ReleaseRecord {
            app: "shop".into(),
            version: "1.0.0".into(),
            digest: digest.clone(),
            archive_sha256: "b".repeat(64),
            size: 10,
            object: object_name("shop", "1.0.0", &digest),
            signed_by: None,
            pushed_at: 0,
            presence_bucket: None,
        };
        assert_eq!(record.check("shop", "1.0.0"), Ok(()));
        assert!(record.check("shop", "1.0.1").is_err());
        let forged = ReleaseRecord {
            object: "../elsewhere".into(),
            ..record.clone()
        };
        assert!(forged.check("shop", "1.0.0").is_err());
        let not_hex = ReleaseRecord {
            digest: "Z".repeat(64),
            ..record
        };
        assert!(not_hex.check("shop", "1.0.0").is_err());
    }
}
