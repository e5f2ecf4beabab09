//! Typed topics: the payload types modules declare (see the orch-typed
//! crate), read from their libraries without running them here, and the
//! check that a publisher's payloads can be read by every subscriber.
//!
//! - [`compat`]: one publisher schema against one subscriber schema;
//! - [`read`]: a library's types, read by a throwaway child host process;
//! - [`describe`]: what that child does (loads the library, calls the symbol);
//! - [`validate`]: one payload against a schema (`cargo orch tap --validate`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod compat;
pub mod describe;
mod elf;
pub mod read;
mod shape;
pub mod validate;

pub use compat::Mismatch;

use crate::error::{Cause, ModuleFailure, Phase};

/// The most bytes a module's types document may take.
pub const MAX_TYPES_BYTES: usize = 4 * 1024 * 1024;

/// The payload types one module declares.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TopicTypes {
    /// Topic (or pattern) it publishes -> the payload's JSON Schema.
    #[serde(default)]
    pub publishes: BTreeMap<String, Value>,
    /// Pattern it subscribes to -> the payload's JSON Schema.
    #[serde(default)]
    pub subscribes: BTreeMap<String, Value>,
}

impl TopicTypes {
    /// The types document a module exported (`{"version": 1, ...}`).
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() > MAX_TYPES_BYTES {
            return Err(format!(
                "its topic types are {} bytes, more than {MAX_TYPES_BYTES}",
                bytes.len()
            ));
        }
        #[derive(Deserialize)]
        struct Document {
            version: u32,
            #[serde(flatten)]
            types: TopicTypes,
        }
        let document: Document = serde_json::from_slice(bytes)
            .map_err(|e| format!("its topic types are not a types document: {e}"))?;
        if document.version != 1 {
            return Err(format!(
                "its topic types are format version {}, this host reads version 1 \
                 (rebuild the module against this orch-typed)",
                document.version
            ));
        }
        for topic in document.types.publishes.keys() {
            orch_sdk::topic::validate_pattern(topic)
                .map_err(|e| format!("a typed topic it publishes: {e}"))?;
        }
        for pattern in document.types.subscribes.keys() {
            orch_sdk::topic::validate_pattern(pattern)
                .map_err(|e| format!("a typed topic it subscribes to: {e}"))?;
        }
        Ok(document.types)
    }

    /// The schema `topic` (a topic or a pattern) is published with: the
    /// entry for exactly it, else the most specific one that overlaps it.
    pub fn published(&self, topic: &str) -> Option<(&str, &Value)> {
        if let Some((key, schema)) = self.publishes.get_key_value(topic) {
            return Some((key, schema));
        }
        let literal_tokens = |pattern: &str| {
            pattern
                .split('.')
                .filter(|t| *t != "*" && *t != ">")
                .count()
        };
        self.publishes
            .iter()
            .filter(|(key, _)| orch_sdk::topic::overlap(key, topic))
            .max_by_key(|(key, _)| (literal_tokens(key), key.len()))
            .map(|(key, schema)| (key.as_str(), schema))
    }

    /// The name of the type on `topic` (its schema's `title`), if typed.
    pub fn type_name(schema: &Value) -> &str {
        schema.get("title").and_then(Value::as_str).unwrap_or("?")
    }
}

/// A publisher whose payloads a subscriber could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeConflict {
    /// The publishing module.
    pub publisher: String,
    /// The topic as the publisher types it.
    pub topic: String,
    /// The subscribing module.
    pub subscriber: String,
    /// The pattern as the subscriber types it.
    pub pattern: String,
    /// Each field that breaks.
    pub mismatches: Vec<Mismatch>,
}

impl fmt::Display for TypeConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' publishes {} in a shape '{}' (subscribed to {}) cannot read: ",
            self.publisher, self.topic, self.subscriber, self.pattern
        )?;
        for (index, mismatch) in self.mismatches.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            match mismatch.field.as_str() {
                "" => write!(f, "the payload: {}", mismatch.problem)?,
                field => write!(f, "field `{field}`: {}", mismatch.problem)?,
            }
        }
        Ok(())
    }
}

/// Every conflict between what `publisher` publishes and what `subscriber`
/// reads, on topics both type (a module is not checked against itself).
pub fn conflicts(
    (publisher, sent): (&str, &TopicTypes),
    (subscriber, read): (&str, &TopicTypes),
) -> Vec<TypeConflict> {
    if publisher == subscriber {
        return Vec::new();
    }
    let mut found = Vec::new();
    for (topic, written) in &sent.publishes {
        for (pattern, wanted) in &read.subscribes {
            if !orch_sdk::topic::overlap(topic, pattern) {
                continue;
            }
            let mismatches = compat::mismatches(written, wanted);
            if !mismatches.is_empty() {
                found.push(TypeConflict {
                    publisher: publisher.to_owned(),
                    topic: topic.clone(),
                    subscriber: subscriber.to_owned(),
                    pattern: pattern.clone(),
                    mismatches,
                });
            }
        }
    }
    found
}

/// Every conflict of module `name` (with `types`) against `others`, both
/// ways: what it publishes to them and what they publish to it.
pub fn conflicts_of<'a>(
    (name, types): (&str, &TopicTypes),
    others: impl IntoIterator<Item = (&'a str, &'a TopicTypes)>,
) -> Vec<TypeConflict> {
    let mut found = Vec::new();
    for (other, theirs) in others {
        found.extend(conflicts((name, types), (other, theirs)));
        found.extend(conflicts((other, theirs), (name, types)));
    }
    found
}

/// Refuses module `name` in phase `types` when `conflicts` is not empty.
pub fn refuse(name: &str, conflicts: Vec<TypeConflict>) -> Result<(), ModuleFailure> {
    if conflicts.is_empty() {
        return Ok(());
    }
    let text: Vec<String> = conflicts.iter().map(ToString::to_string).collect();
    Err(
        ModuleFailure::new(name, Phase::Types, Cause::Host(text.join("\n"))).with_hint(
            "change the payload type so the other side can still read it (add fields as \
             Option, keep the names a subscriber needs), or change both sides together",
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_document_is_checked_before_it_is_used() {
        let good = br#"{"version":1,"publishes":{"test.ping":{"type":"object"}},"subscribes":{}}"#;
        let types = TopicTypes::parse(good).expect("parses");
        assert!(types.publishes.contains_key("test.ping"));
        assert!(
            TopicTypes::parse(br#"{"version":2,"publishes":{}}"#)
                .unwrap_err()
                .contains("version 2")
        );
        assert!(TopicTypes::parse(br#"{"version":1,"publishes":{"bad topic":{}}}"#).is_err());
        assert!(TopicTypes::parse(b"not json").is_err());
    }

    #[test]
    fn conflicts_name_both_modules_the_topic_and_the_field() {
        let schema = |field: &str| {
            json!({"title": "Ping", "type": "object",
                   "properties": {field: {"type": "integer"}}, "required": [field]})
        };
        let producer = TopicTypes {
            publishes: [("test.ping".to_owned(), schema("sequence"))].into(),
            ..TopicTypes::default()
        };
        let consumer = TopicTypes {
            subscribes: [("test.*".to_owned(), schema("seq"))].into(),
            ..TopicTypes::default()
        };
        let found = conflicts_of(("producer", &producer), [("consumer", &consumer)]);
        assert_eq!(found.len(), 1, "{found:?}");
        let text = found[0].to_string();
        assert!(
            text.contains("'producer' publishes test.ping")
                && text.contains("'consumer' (subscribed to test.*)")
                && text.contains("field `seq`"),
            "{text}"
        );
        // The most specific typed topic wins.
        let both = TopicTypes {
            publishes: [
                ("test.*".to_owned(), schema("a")),
                ("test.ping".to_owned(), schema("b")),
                ("test.ping.>".to_owned(), schema("c")),
            ]
            .into(),
            ..TopicTypes::default()
        };
        assert_eq!(both.published("test.ping").map(|p| p.0), Some("test.ping"));
        assert_eq!(both.published("test.pong").map(|p| p.0), Some("test.*"));
        assert_eq!(
            both.published("test.ping.x").map(|p| p.0),
            Some("test.ping.>")
        );
        assert_eq!(both.published("other"), None);
        // Another topic, or the module itself: nothing to check.
        let elsewhere = TopicTypes {
            subscribes: [("other.*".to_owned(), schema("seq"))].into(),
            ..TopicTypes::default()
        };
        assert!(conflicts_of(("producer", &producer), [("c", &elsewhere)]).is_empty());
        assert!(conflicts(("p", &producer), ("p", &consumer)).is_empty());
    }
}
