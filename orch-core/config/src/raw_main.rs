//! What a main.yaml says as written, before `${VAR}`s are expanded and
//! without a workspace: for bundles, whose configuration is read where no
//! workspace is.
//!
//! - [`differs_beyond_version`]: a deploy applies a new version of the
//!   application live, while anything else in main.yaml shapes the host and
//!   needs a restart. The files are compared as YAML values, so comments,
//!   layout and quoting do not count.
//! - [`presence_bucket`]: the bucket a rollout reads the nodes' records from.

use serde_json::Value;

/// `true` when `old` and `new` (main.yaml texts) differ in more than
/// `app.version`; an error names the text that is not YAML.
pub fn differs_beyond_version(old: &str, new: &str) -> Result<bool, String> {
    let read = |text: &str, which: &str| -> Result<Value, String> {
        let mut value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_saphyr::from_str(text).map_err(|e| format!("the {which} main.yaml: {e}"))?
        };
        if let Some(app) = value.get_mut("app").and_then(Value::as_object_mut) {
            app.remove("version");
        }
        Ok(value)
    };
    Ok(read(old, "running")? != read(new, "new")?)
}

/// The presence bucket main.yaml names (`bridge.nats.presence.bucket`, or
/// its default from `subject_prefix`), when it has presence and the name is
/// written out (not a `${VAR}`).
pub fn presence_bucket(main_yaml: &str) -> Option<String> {
    let value: Value = serde_saphyr::from_str(main_yaml).ok()?;
    let nats = value.get("bridge")?.get("nats")?;
    let presence = nats.get("presence")?;
    let bucket = match presence.get("bucket").and_then(Value::as_str) {
        Some(bucket) => bucket.to_owned(),
        None => {
            let prefix = nats
                .get("subject_prefix")
                .and_then(Value::as_str)
                .unwrap_or(crate::bridge::DEFAULT_SUBJECT_PREFIX);
            format!("{}_nodes", prefix.replace('.', "_"))
        }
    };
    (!bucket.contains('$')).then_some(bucket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_version_may_change() {
        let old = "app: {name: shop, version: 1.0.0}\ntimeouts: {start: 5s}\n";
        let new = "# v2\napp:\n  name: shop\n  version: \"2.0.0\"\ntimeouts:\n  start: 5s\n";
        assert_eq!(differs_beyond_version(old, new), Ok(false));
        let retimed = "app: {name: shop, version: 2.0.0}\ntimeouts: {start: 9s}\n";
        assert_eq!(differs_beyond_version(old, retimed), Ok(true));
        let renamed = "app: {name: shop2, version: 1.0.0}\ntimeouts: {start: 5s}\n";
        assert_eq!(differs_beyond_version(old, renamed), Ok(true));
        assert!(differs_beyond_version(old, "app: [").is_err());
    }

    #[test]
    fn the_presence_bucket_is_named_or_defaulted() {
        let named =
            "bridge:\n  nats:\n    url: nats://h:4222\n    presence: {bucket: shop_nodes}\n";
        assert_eq!(presence_bucket(named).as_deref(), Some("shop_nodes"));
        let defaulted = "bridge:\n  nats:\n    subject_prefix: shop.eu\n    presence: {ttl: 3s}\n";
        assert_eq!(presence_bucket(defaulted).as_deref(), Some("shop_eu_nodes"));
        assert_eq!(presence_bucket("bridge:\n  nats: {url: x}\n"), None);
        let variable = "bridge:\n  nats:\n    presence: {bucket: \"${B}\"}\n";
        assert_eq!(presence_bucket(variable), None);
    }
}
