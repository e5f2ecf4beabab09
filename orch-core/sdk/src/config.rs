//! A module's configuration: the `config` map of its entry in `config/modules.yaml`.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The module's `config` map, with `${VAR}` already replaced by the host.
#[derive(Debug, Clone, Default)]
pub struct Config {
    values: Map<String, Value>,
}

impl Config {
    /// A config over a JSON object (anything else counts as empty).
    pub fn new(value: Value) -> Self {
        match value {
            Value::Object(values) => Self { values },
            _ => Self::default(),
        }
    }

    /// Parses the JSON bytes the host hands over.
    pub fn from_json(bytes: &[u8]) -> crate::Result<Self> {
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        Ok(Self::new(serde_json::from_slice(bytes)?))
    }

    /// The whole map.
    pub fn values(&self) -> &Map<String, Value> {
        &self.values
    }

    /// Whether `key` is set.
    pub fn contains(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// The value of `key` as `T`, `None` when the key is absent or null (`key:`
    /// with no value in YAML); an error that names the key when its value has the
    /// wrong type.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> crate::Result<Option<T>> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => T::deserialize(value)
                .map(Some)
                .map_err(|e| format!("config key '{key}': {e}").into()),
        }
    }

    /// The value of `key`, or `default` when absent.
    pub fn get_or<T: DeserializeOwned>(&self, key: &str, default: T) -> crate::Result<T> {
        Ok(self.get(key)?.unwrap_or(default))
    }

    /// A duration: `"250ms"`, `"1.5s"`, `"2m"`, `"1h"`, or a number of seconds.
    pub fn duration(&self, key: &str) -> crate::Result<Option<Duration>> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => crate::duration::from_json(value)
                .map(Some)
                .map_err(|e| format!("config key '{key}': {e}").into()),
        }
    }

    /// The whole map deserialized into a struct of the module's own.
    pub fn deserialize<T: DeserializeOwned>(&self) -> crate::Result<T> {
        T::deserialize(Value::Object(self.values.clone()))
            .map_err(|e| format!("module config: {e}").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_counts_as_absent_and_wrong_types_name_the_key() {
        let config = Config::new(serde_json::json!({"rate": null, "count": "many", "every": "2s"}));
        assert_eq!(config.get::<u64>("rate").unwrap(), None);
        assert_eq!(config.get_or("missing", 7u64).unwrap(), 7);
        let err = config.get::<u64>("count").unwrap_err().to_string();
        assert!(err.contains("config key 'count'"), "{err}");
        assert_eq!(
            config.duration("every").unwrap(),
            Some(Duration::from_secs(2))
        );
        assert_eq!(config.duration("rate").unwrap(), None);
    }
}
