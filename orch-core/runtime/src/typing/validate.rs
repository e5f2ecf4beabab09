//! Whether one payload fits a JSON Schema (the subset schemars writes:
//! types, properties, required fields, unknown fields refused, items,
//! enums and constants, minimum and maximum, `$ref`s, unions). What
//! `cargo orch tap --validate` reports per event.

use serde_json::Value;

use super::compat::Mismatch;
use super::shape::{Budget, MAX_DEPTH, accepts_anything, branches, join, normalize, types};

/// Everything in `payload` that `schema` does not allow (empty: it fits).
pub fn validate(payload: &Value, schema: &Value) -> Vec<Mismatch> {
    let mut found = Vec::new();
    let budget = Budget::default();
    check(payload, (schema, schema), "", (0, &budget), &mut found);
    if budget.spent() {
        // Too much work to judge: nothing is claimed.
        return Vec::new();
    }
    found
}

fn is_type(value: &Value, name: &str) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "number" => value.is_number(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => true,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check(
    value: &Value,
    (schema, root): (&Value, &Value),
    path: &str,
    (depth, budget): (usize, &Budget),
    found: &mut Vec<Mismatch>,
) {
    if depth > MAX_DEPTH || !budget.step() {
        return;
    }
    let normalized = normalize(root, schema);
    let schema = normalized.as_ref();
    if accepts_anything(schema) {
        return;
    }
    if schema == &Value::Bool(false) {
        found.push(mismatch(path, "nothing is allowed here".to_owned()));
        return;
    }
    if let Some(options) = branches(schema) {
        let mut best: Option<Vec<Mismatch>> = None;
        for option in options {
            let mut these = Vec::new();
            check(value, (option, root), path, (depth + 1, budget), &mut these);
            if these.is_empty() {
                return;
            }
            if best.as_ref().is_none_or(|b| these.len() < b.len()) {
                best = Some(these);
            }
        }
        found.extend(best.unwrap_or_default());
        return;
    }
    let allowed = types(schema);
    if !allowed.is_empty() && !allowed.iter().any(|t| is_type(value, t)) {
        found.push(mismatch(
            path,
            format!("is {}, the type says {}", kind(value), allowed.join(" or ")),
        ));
        return;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        found.push(mismatch(
            path,
            format!("{value} is not one of the allowed values"),
        ));
    }
    if let Some(constant) = schema.get("const")
        && constant != value
    {
        found.push(mismatch(path, format!("must be {constant}")));
    }
    if let Some(number) = value.as_f64() {
        if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64)
            && number < minimum
        {
            found.push(mismatch(
                path,
                format!("{number} is below the minimum {minimum}"),
            ));
        }
        if let Some(maximum) = schema.get("maximum").and_then(Value::as_f64)
            && number > maximum
        {
            found.push(mismatch(
                path,
                format!("{number} is above the maximum {maximum}"),
            ));
        }
    }
    match value {
        Value::Object(fields) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            for name in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !fields.contains_key(name) {
                    found.push(mismatch(
                        &join(path, name),
                        "is required but missing".to_owned(),
                    ));
                }
            }
            let others = schema.get("additionalProperties");
            for (name, field) in fields {
                match properties.and_then(|p| p.get(name)) {
                    Some(wanted) => check(
                        field,
                        (wanted, root),
                        &join(path, name),
                        (depth + 1, budget),
                        found,
                    ),
                    None if others == Some(&Value::Bool(false)) => found.push(mismatch(
                        &join(path, name),
                        "is not a field of the type (unknown fields are refused)".to_owned(),
                    )),
                    None => {
                        if let Some(wanted) = others.filter(|o| o.is_object()) {
                            check(
                                field,
                                (wanted, root),
                                &join(path, name),
                                (depth + 1, budget),
                                found,
                            );
                        }
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(wanted) = schema
                .get("items")
                .filter(|i| i.is_object() || i.is_boolean())
            {
                for (index, item) in items.iter().enumerate() {
                    check(
                        item,
                        (wanted, root),
                        &format!("{path}[{index}]"),
                        (depth + 1, budget),
                        found,
                    );
                }
            }
        }
        _ => {}
    }
}

fn mismatch(path: &str, problem: String) -> Mismatch {
    Mismatch {
        field: path.to_owned(),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reading() -> Value {
        json!({
            "type": "object",
            "properties": {
                "seq": {"type": "integer", "minimum": 0},
                "unit": {"$ref": "#/$defs/Unit"},
                "note": {"type": ["string", "null"]},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["seq", "unit"],
            "additionalProperties": false,
            "$defs": {"Unit": {"type": "string", "enum": ["c", "f"]}}
        })
    }

    #[test]
    fn a_fitting_payload_passes() {
        let payload = json!({"seq": 3, "unit": "c", "note": null, "tags": ["a"]});
        assert_eq!(validate(&payload, &reading()), vec![]);
    }

    #[test]
    fn every_misfit_is_named_by_its_field() {
        let payload = json!({"seq": -1.5, "unit": "k", "tags": [1], "extra": true});
        let fields: Vec<String> = validate(&payload, &reading())
            .into_iter()
            .map(|m| m.field)
            .collect();
        for wanted in ["seq", "unit", "tags[0]", "extra"] {
            assert!(fields.iter().any(|f| f == wanted), "{wanted}: {fields:?}");
        }
        let missing = validate(&json!({"unit": "c"}), &reading());
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].field, "seq");
        assert!(missing[0].problem.contains("missing"));
    }
}
