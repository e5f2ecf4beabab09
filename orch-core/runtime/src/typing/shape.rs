//! Reading JSON Schemas as schemars writes them, for [`super::compat`] and
//! [`super::validate`]: `$ref`s followed (percent-encoded names too),
//! `allOf` merged into one object, a union next to fields of its own (a
//! `#[serde(flatten)]`ed enum) expanded into branches that carry those
//! fields, enums and constants as sets of values, and a step budget that
//! bounds the work on hostile or deeply recursive schemas.

use std::borrow::Cow;
use std::cell::Cell;

use serde_json::{Map, Value};

/// How deep a check follows nested and recursive types.
pub const MAX_DEPTH: usize = 32;

/// How many schema nodes one check may visit; past it the check gives up
/// and lets the pair through (a false refusal is worse than none).
pub const MAX_STEPS: usize = 200_000;

/// Counts the nodes a check visits.
#[derive(Default)]
pub struct Budget {
    used: Cell<usize>,
}

impl Budget {
    /// Takes one step; `false` once the budget is spent.
    pub fn step(&self) -> bool {
        let used = self.used.get() + 1;
        self.used.set(used);
        used <= MAX_STEPS
    }

    /// Whether the check ran out of steps.
    pub fn spent(&self) -> bool {
        self.used.get() > MAX_STEPS
    }
}

/// A `$ref`'s JSON pointer with `%XX` escapes decoded.
fn decoded(pointer: &str) -> Cow<'_, str> {
    if !pointer.contains('%') {
        return Cow::Borrowed(pointer);
    }
    let bytes = pointer.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// `schema` with a `$ref` (`#/$defs/Name`) followed in `root`, a few hops.
pub fn resolve<'a>(root: &'a Value, mut schema: &'a Value) -> &'a Value {
    for _ in 0..8 {
        let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let Some(target) = reference
            .strip_prefix('#')
            .and_then(|pointer| root.pointer(&decoded(pointer)))
        else {
            break;
        };
        schema = target;
    }
    schema
}

/// Adds `part`'s fields to the object schema `into` (properties and
/// required fields joined; other keys kept where `into` has none).
fn merge_into(into: &mut Map<String, Value>, part: &Value) {
    let Some(part) = part.as_object() else {
        return;
    };
    for (key, value) in part {
        match key.as_str() {
            "properties" => {
                let target = into
                    .entry("properties")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let (Some(target), Some(source)) = (target.as_object_mut(), value.as_object()) {
                    for (name, schema) in source {
                        target.entry(name.clone()).or_insert_with(|| schema.clone());
                    }
                }
            }
            "required" => {
                let mut names: Vec<Value> = into
                    .get("required")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for name in value.as_array().into_iter().flatten() {
                    if !names.contains(name) {
                        names.push(name.clone());
                    }
                }
                into.insert("required".into(), Value::Array(names));
            }
            "$defs" | "definitions" | "$schema" | "title" | "description" | "$ref" => {}
            _ => {
                into.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
    }
}

/// `schema` resolved, with `allOf` merged and a union that has fields of
/// its own expanded into branches carrying them.
pub fn normalize<'a>(root: &'a Value, schema: &'a Value) -> Cow<'a, Value> {
    let schema = resolve(root, schema);
    let Some(object) = schema.as_object() else {
        return Cow::Borrowed(schema);
    };
    if let Some(parts) = object.get("allOf").and_then(Value::as_array) {
        let mut merged = object.clone();
        merged.remove("allOf");
        for part in parts {
            merge_into(&mut merged, resolve(root, part));
        }
        return Cow::Owned(Value::Object(merged));
    }
    let union = ["anyOf", "oneOf"]
        .into_iter()
        .find(|key| object.get(*key).is_some_and(Value::is_array));
    let has_fields = object.contains_key("properties") || object.contains_key("required");
    if let (Some(key), true) = (union, has_fields) {
        let mut base = object.clone();
        let options = base.remove(key).unwrap_or_default();
        let expanded: Vec<Value> = options
            .as_array()
            .into_iter()
            .flatten()
            .map(|option| {
                let mut merged = base.clone();
                merge_into(&mut merged, resolve(root, option));
                Value::Object(merged)
            })
            .collect();
        let mut union = Map::new();
        union.insert(key.to_owned(), Value::Array(expanded));
        return Cow::Owned(Value::Object(union));
    }
    Cow::Borrowed(schema)
}

/// The branches of a union (`anyOf` or `oneOf`).
pub fn branches(schema: &Value) -> Option<&Vec<Value>> {
    schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
}

/// The JSON types a schema allows; empty when it does not say.
pub fn types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ if schema.get("properties").is_some() => vec!["object"],
        _ => Vec::new(),
    }
}

/// The values a schema allows when it lists them (`enum`, or one `const`).
pub fn values(schema: &Value) -> Option<Vec<&Value>> {
    if let Some(list) = schema.get("enum").and_then(Value::as_array) {
        return Some(list.iter().collect());
    }
    schema.get("const").map(|value| vec![value])
}

/// A schema that accepts anything (`true`, `{}`, or only annotations).
pub fn accepts_anything(schema: &Value) -> bool {
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

/// `path.field` (or `field` at the top).
pub fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refs_with_escapes_resolve_and_all_of_merges() {
        let root = json!({"$defs": {"Gen<T>": {"type": "integer"}}});
        let reference = json!({"$ref": "#/$defs/Gen%3CT%3E"});
        assert_eq!(resolve(&root, &reference), &json!({"type": "integer"}));
        let all = json!({"allOf": [
            {"properties": {"a": {}}, "required": ["a"]},
            {"properties": {"b": {}}, "required": ["b"]}
        ]});
        let merged = normalize(&all, &all);
        assert_eq!(merged["required"], json!(["a", "b"]));
    }

    #[test]
    fn a_flattened_enum_gives_each_branch_the_outer_fields() {
        let schema = json!({
            "type": "object",
            "properties": {"id": {"type": "integer"}},
            "required": ["id"],
            "oneOf": [
                {"properties": {"kind": {"const": "a"}}, "required": ["kind"]},
                {"properties": {"kind": {"const": "b"}}, "required": ["kind"]}
            ]
        });
        let expanded = normalize(&schema, &schema);
        let options = branches(&expanded).expect("a union");
        assert_eq!(options.len(), 2);
        for option in options {
            assert_eq!(option["required"], json!(["id", "kind"]));
        }
    }

    #[test]
    fn the_budget_runs_out() {
        let budget = Budget::default();
        assert!((0..MAX_STEPS).all(|_| budget.step()));
        assert!(!budget.step());
        assert!(budget.spent());
    }
}
