//! Whether two main.yaml files say the same thing but for `app.version`: a
//! deploy applies a new version of the application live, while anything
//! else in main.yaml shapes the host and needs a restart. The files are
//! compared as YAML values, so comments, layout and quoting do not count.

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
}
