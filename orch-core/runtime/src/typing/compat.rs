//! Whether what a publisher sends can be read by a subscriber, from their
//! JSON Schemas (as schemars derives them from serde types).
//!
//! The subscriber's schema says what it needs: every field it requires must
//! be a field the publisher always sends, each field both know must have a
//! type the subscriber accepts (an integer is a number), an enum must not
//! gain values the subscriber does not know, and a subscriber that refuses
//! unknown fields (`deny_unknown_fields`) must not get new ones. Fields the
//! publisher adds are fine otherwise; so are optional fields either side
//! adds. What the subset below cannot judge (a publisher typed as any JSON,
//! schemas nested past [`MAX_DEPTH`]) is let through: a false refusal of a
//! reload is worse than a check that says nothing.

use serde_json::{Map, Value};

/// How deep the check follows nested and recursive types.
pub const MAX_DEPTH: usize = 32;

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
pub fn mismatches(publisher: &Value, subscriber: &Value) -> Vec<Mismatch> {
    let mut found = Vec::new();
    let sides = Sides {
        publisher,
        subscriber,
    };
    sides.compare(publisher, subscriber, "", 0, &mut found);
    found
}

/// The two root schemas, for `$ref`s.
struct Sides<'a> {
    publisher: &'a Value,
    subscriber: &'a Value,
}

/// `schema` with a `$ref` (`#/$defs/Name`, `#/definitions/Name`) followed in
/// `root`, up to a few hops.
pub(super) fn resolve<'a>(root: &'a Value, mut schema: &'a Value) -> &'a Value {
    for _ in 0..8 {
        let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let Some(target) = reference
            .strip_prefix('#')
            .and_then(|pointer| root.pointer(pointer))
        else {
            break;
        };
        schema = target;
    }
    schema
}

pub(super) fn branches(schema: &Value) -> Option<&Vec<Value>> {
    schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
}

/// The JSON types a schema allows; empty when it does not say.
pub(super) fn types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ if schema.get("properties").is_some() => vec!["object"],
        _ => Vec::new(),
    }
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

pub(super) fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// A schema that accepts anything (`true`, `{}`, or only annotations).
pub(super) fn accepts_anything(schema: &Value) -> bool {
    match schema {
        Value::Bool(b) => *b,
        Value::Object(map) => map.keys().all(|k| {
            matches!(
                k.as_str(),
                "$schema"
                    | "title"
                    | "description"
                    | "$comment"
                    | "default"
                    | "examples"
                    | "$defs"
                    | "definitions"
            )
        }),
        _ => false,
    }
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
        if depth > MAX_DEPTH {
            return;
        }
        let p = resolve(self.publisher, publisher);
        let s = resolve(self.subscriber, subscriber);
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
                if best.as_ref().is_none_or(|b| these.len() < b.len()) {
                    best = Some(these);
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
        if let (Some(sent), Some(known)) = (
            p.get("enum").and_then(Value::as_array),
            s.get("enum").and_then(Value::as_array),
        ) {
            let unknown: Vec<String> = sent
                .iter()
                .filter(|v| !known.contains(v))
                .map(Value::to_string)
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
    fn recursive_types_end() {
        let list = json!({
            "$ref": "#/$defs/Node",
            "$defs": {"Node": {"type": "object", "properties": {"next": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]}}}}
        });
        assert_eq!(mismatches(&list, &list), vec![]);
    }
}
