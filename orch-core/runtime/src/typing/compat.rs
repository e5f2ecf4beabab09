//! Whether what a publisher sends can be read by a subscriber, from their
//! JSON Schemas (as schemars derives them from serde types: the
//! publisher's for serializing, the subscriber's for deserializing).
//!
//! The subscriber's schema says what it needs: every field it requires must
//! be a field the publisher always sends, each field both know must have a
//! type the subscriber accepts (an integer is a number), an enum (or a
//! constant, as schemars writes documented variants and enum tags) must not
//! gain values the subscriber does not know, and a subscriber that refuses
//! unknown fields (`deny_unknown_fields`) must not get new ones. Fields the
//! publisher adds are fine otherwise; so are optional fields either side
//! adds. What the subset below cannot judge (a publisher typed as any JSON,
//! a map, schemas nested past [`MAX_DEPTH`] or needing more than
//! [`MAX_STEPS`](super::shape::MAX_STEPS) steps) is let through: a false
//! refusal of a reload is worse than a check that says nothing.

use serde_json::{Map, Value};

pub use super::shape::MAX_DEPTH;
use super::shape::{Budget, accepts_anything, branches, join, normalize, types, values};

/// One way a published payload breaks its reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The field, as a path (`reading.unit`, `items[]`); empty for the
    /// payload itself.
    pub field: String,
    /// What is wrong, in words.
    pub problem: String,
}

/// Everything in a payload that `publisher` describes that a reader of
/// `subscriber` could not read. Each schema's `$ref`s resolve within itself.
/// A comparison too large to finish finds nothing (and says so in the log).
pub fn mismatches(publisher: &Value, subscriber: &Value) -> Vec<Mismatch> {
    let mut found = Vec::new();
    let sides = Sides {
        publisher,
        subscriber,
        budget: Budget::default(),
    };
    sides.compare(publisher, subscriber, "", 0, &mut found);
    if sides.budget.spent() {
        tracing::warn!(
            "a payload type comparison took more than {} steps and was let through",
            super::shape::MAX_STEPS
        );
        return Vec::new();
    }
    found
}

/// The two root schemas, for `$ref`s, and the work done so far.
struct Sides<'a> {
    publisher: &'a Value,
    subscriber: &'a Value,
    budget: Budget,
}

fn object<'a>(schema: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    schema.get(key).and_then(Value::as_object)
}

fn required(schema: &Value) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

impl Sides<'_> {
    fn compare(
        &self,
        publisher: &Value,
        subscriber: &Value,
        path: &str,
        depth: usize,
        found: &mut Vec<Mismatch>,
    ) {
        if depth > MAX_DEPTH || !self.budget.step() {
            return;
        }
        let p = normalize(self.publisher, publisher);
        let s = normalize(self.subscriber, subscriber);
        let (p, s) = (p.as_ref(), s.as_ref());
        if accepts_anything(s) || accepts_anything(p) {
            return;
        }
        let mut report = |problem: String| {
            found.push(Mismatch {
                field: path.to_owned(),
                problem,
            });
        };
        // Every payload the publisher's union allows must fit the reader.
        if let Some(options) = branches(p) {
            for option in options {
                self.compare(option, s, path, depth + 1, found);
            }
            return;
        }
        // The payload must fit one branch of the reader's union.
        if let Some(options) = branches(s) {
            let mut best: Option<Vec<Mismatch>> = None;
            for option in options {
                let mut these = Vec::new();
                self.compare(p, option, path, depth + 1, &mut these);
                let done = these.is_empty();
                if best.as_ref().is_none_or(|b| these.len() < b.len()) {
                    best = Some(these);
                }
                if done {
                    break;
                }
            }
            found.extend(best.unwrap_or_default());
            return;
        }
        let (sent, read) = (types(p), types(s));
        if !sent.is_empty() && !read.is_empty() {
            let unread: Vec<&str> = sent
                .iter()
                .copied()
                .filter(|t| !(read.contains(t) || (*t == "integer" && read.contains(&"number"))))
                .collect();
            if !unread.is_empty() {
                report(format!(
                    "published as {}, read as {}",
                    unread.join(" or "),
                    read.join(" or ")
                ));
                return;
            }
        }
        if let (Some(sent), Some(known)) = (values(p), values(s)) {
            let unknown: Vec<String> = sent
                .iter()
                .filter(|v| !known.contains(v))
                .map(|v| v.to_string())
                .collect();
            if !unknown.is_empty() {
                report(format!(
                    "the publisher may send {}, which the subscriber does not know",
                    unknown.join(", ")
                ));
            }
        }
        self.compare_objects(p, s, path, depth, found);
        if let (Some(p_items), Some(s_items)) = (p.get("items"), s.get("items")) {
            self.compare(p_items, s_items, &format!("{path}[]"), depth + 1, found);
        }
    }

    fn compare_objects(
        &self,
        p: &Value,
        s: &Value,
        path: &str,
        depth: usize,
        found: &mut Vec<Mismatch>,
    ) {
        let empty = Map::new();
        let sent = object(p, "properties").unwrap_or(&empty);
        let known = object(s, "properties").unwrap_or(&empty);
        if sent.is_empty() && known.is_empty() && s.get("required").is_none() {
            return;
        }
        // A map (no fields named, any allowed) may hold any field: nothing to judge.
        if sent.is_empty()
            && p.get("additionalProperties")
                .is_some_and(|a| a != &Value::Bool(false))
        {
            return;
        }
        let always_sent = required(p);
        for field in required(s) {
            let problem = if !sent.contains_key(field) {
                "the subscriber needs this field; the publisher does not send it (renamed or removed?)"
            } else if !always_sent.contains(&field) {
                "the subscriber needs this field; the publisher may leave it out"
            } else {
                continue;
            };
            found.push(Mismatch {
                field: join(path, field),
                problem: problem.to_owned(),
            });
        }
        for (field, read) in known {
            if let Some(written) = sent.get(field) {
                self.compare(written, read, &join(path, field), depth + 1, found);
            }
        }
        if s.get("additionalProperties") == Some(&Value::Bool(false)) {
            for field in sent.keys().filter(|f| !known.contains_key(*f)) {
                found.push(Mismatch {
                    field: join(path, field),
                    problem: "the subscriber refuses fields it does not know (deny_unknown_fields)"
                        .to_owned(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ping(fields: Value, required: &[&str]) -> Value {
        json!({"type": "object", "properties": fields, "required": required})
    }

    #[test]
    fn a_renamed_required_field_is_named() {
        let before = ping(json!({"seq": {"type": "integer"}}), &["seq"]);
        let after = ping(json!({"sequence": {"type": "integer"}}), &["sequence"]);
        let found = mismatches(&after, &before);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].field, "seq");
        assert!(found[0].problem.contains("does not send it"), "{found:?}");
    }

    #[test]
    fn an_added_optional_field_and_integers_read_as_numbers_pass() {
        let reader = ping(json!({"seq": {"type": "number"}}), &["seq"]);
        let writer = ping(
            json!({"seq": {"type": "integer"}, "note": {"type": ["string", "null"]}}),
            &["seq"],
        );
        assert_eq!(mismatches(&writer, &reader), vec![]);
    }

    #[test]
    fn types_optional_fields_enums_and_unknown_fields_are_checked() {
        let reader = json!({
            "type": "object",
            "properties": {
                "seq": {"type": "integer"},
                "unit": {"$ref": "#/$defs/Unit"},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["seq", "unit"],
            "additionalProperties": false,
            "$defs": {"Unit": {"type": "string", "enum": ["c", "f"]}}
        });
        let writer = json!({
            "type": "object",
            "properties": {
                "seq": {"type": "string"},
                "unit": {"type": "string", "enum": ["c", "f", "k"]},
                "tags": {"type": "array", "items": {"type": "integer"}},
                "extra": {"type": "boolean"}
            },
            "required": ["seq"]
        });
        let found: Vec<(String, String)> = mismatches(&writer, &reader)
            .into_iter()
            .map(|m| (m.field, m.problem))
            .collect();
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert!(fields.contains(&"seq"), "{found:?}");
        assert!(fields.contains(&"unit"), "{found:?}");
        assert!(fields.contains(&"tags[]"), "{found:?}");
        assert!(fields.contains(&"extra"), "{found:?}");
        assert!(
            found
                .iter()
                .any(|(f, p)| f == "unit" && p.contains("\"k\"")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|(f, p)| f == "unit" && p.contains("may leave it out")),
            "{found:?}"
        );
    }

    #[test]
    fn unions_and_untyped_sides_are_judged_fairly() {
        // Option<Struct> as schemars writes it, on both sides.
        let nested = |field: &str| {
            json!({
                "type": "object",
                "properties": {"inner": {"anyOf": [{"$ref": "#/$defs/In"}, {"type": "null"}]}},
                "$defs": {"In": {"type": "object", "properties": {field: {"type": "integer"}}, "required": [field]}}
            })
        };
        assert_eq!(mismatches(&nested("a"), &nested("a")), vec![]);
        let found = mismatches(&nested("b"), &nested("a"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].field, "inner.a");
        // A publisher typed as any JSON, a reader of any JSON: nothing to judge.
        assert_eq!(mismatches(&json!(true), &nested("a")), vec![]);
        assert_eq!(mismatches(&nested("a"), &json!({"title": "Any"})), vec![]);
    }

    #[test]
    fn documented_variants_written_as_constants_are_checked() {
        let unit = |variants: &[&str]| {
            let options: Vec<Value> = variants.iter().map(|v| json!({"const": v})).collect();
            json!({"type": "object", "properties": {"unit": {"oneOf": options}}, "required": ["unit"]})
        };
        assert_eq!(mismatches(&unit(&["c"]), &unit(&["c", "f"])), vec![]);
        let found = mismatches(&unit(&["c", "f", "k"]), &unit(&["c", "f"]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].problem.contains("\"k\""), "{found:?}");
    }

    #[test]
    fn a_flattened_enum_keeps_the_outer_fields() {
        let publisher = json!({
            "type": "object",
            "properties": {"id": {"type": "integer"}},
            "required": ["id"],
            "oneOf": [
                {"properties": {"kind": {"const": "a"}, "x": {"type": "integer"}}, "required": ["kind", "x"]},
                {"properties": {"kind": {"const": "b"}}, "required": ["kind"]}
            ]
        });
        let reads_id = json!({"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]});
        assert_eq!(mismatches(&publisher, &reads_id), vec![]);
        let reads_name = json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]});
        assert!(!mismatches(&publisher, &reads_name).is_empty());
    }

    #[test]
    fn a_hostile_schema_is_let_through_in_bounded_time() {
        let bomb = json!({"anyOf": [{"$ref": "#"}, {"$ref": "#"}, {"$ref": "#"}]});
        let reader = json!({"type": "object", "required": ["a"]});
        assert_eq!(mismatches(&bomb, &reader), vec![]);
        assert_eq!(mismatches(&reader, &bomb), vec![]);
        assert_eq!(super::super::validate::validate(&json!({}), &bomb), vec![]);
    }

    #[test]
    fn recursive_types_end() {
        let list = json!({
            "$ref": "#/$defs/Node",
            "$defs": {"Node": {"type": "object", "properties": {"next": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]}}}}
        });
        assert_eq!(mismatches(&list, &list), vec![]);
    }
}
