//! Layering an environment's overlay over a base file, on the raw (located)
//! structs: a value the overlay writes replaces the base's, with its own
//! place in the overlay file; a mapping section merges key by key.

use serde_json::Value;
use serde_saphyr::Spanned;

/// Something an environment's overlay can be layered over.
pub(crate) trait Merge {
    /// Layers `overlay` over `self`: what the overlay sets wins.
    fn merge(&mut self, overlay: Self);
}

/// An optional key: absent in the overlay keeps the base; present in both
/// merges (a leaf is replaced, a section merges key by key).
impl<T: Merge> Merge for Option<T> {
    fn merge(&mut self, overlay: Self) {
        match (self.as_mut(), overlay) {
            (Some(base), Some(overlay)) => base.merge(overlay),
            (None, Some(overlay)) => *self = Some(overlay),
            (_, None) => {}
        }
    }
}

/// A value: replaced whole, with the overlay's place.
impl Merge for Spanned<Value> {
    fn merge(&mut self, overlay: Self) {
        *self = overlay;
    }
}

/// A string: replaced whole, with the overlay's place.
impl Merge for Spanned<String> {
    fn merge(&mut self, overlay: Self) {
        *self = overlay;
    }
}

/// A list: replaced whole (its items are not matched up).
impl<T> Merge for Vec<T> {
    fn merge(&mut self, overlay: Self) {
        *self = overlay;
    }
}

/// A located section (`bridge.nats`, `notify.webhook`): its keys merge; the
/// section keeps the base's place (messages about the section as a whole
/// point there). Located leaves (`Spanned<Value>`, `Spanned<String>`) are
/// replaced by their own impls above.
impl<T: Merge> Merge for Spanned<T> {
    fn merge(&mut self, overlay: Self) {
        self.value.merge(overlay.value);
    }
}

/// Implements [`Merge`] for a raw struct, key by key. Every field must be
/// listed: the destructuring fails to compile when one is forgotten.
macro_rules! merge_by_key {
    ($raw:ident { $($field:ident),* $(,)? }) => {
        impl $crate::merge::Merge for $raw {
            fn merge(&mut self, overlay: Self) {
                let $raw { $($field),* } = overlay;
                $( $crate::merge::Merge::merge(&mut self.$field, $field); )*
            }
        }
    };
}
pub(crate) use merge_by_key;

/// Layers a JSON `overlay` over `base`: mappings merge key by key, at any
/// depth; anything else (a list, a scalar, a mapping over a non-mapping)
/// replaces the base value.
pub(crate) fn merge_json(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) => merge_json(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct RawInner {
        a: Option<Spanned<Value>>,
        b: Option<Spanned<Value>>,
    }
    merge_by_key!(RawInner { a, b });

    #[derive(Debug, Default, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct RawOuter {
        name: Option<Spanned<String>>,
        inner: Option<RawInner>,
        located: Option<Spanned<RawInner>>,
        list: Option<Vec<Spanned<String>>>,
    }
    merge_by_key!(RawOuter {
        name,
        inner,
        located,
        list
    });

    fn parse(text: &str) -> RawOuter {
        serde_saphyr::from_str(text).expect("valid")
    }

    #[test]
    fn overlay_values_win_and_sections_merge_key_by_key() {
        let mut base =
            parse("name: base\ninner: {a: 1, b: 2}\nlocated:\n  a: 1\n  b: 2\nlist: [x, y]\n");
        let overlay = parse("\n\n\n\n\n\ninner: {b: 3}\nlocated: {a: 5}\nlist: [z]\n");
        base.merge(overlay);
        assert_eq!(base.name.as_ref().map(|n| n.value.as_str()), Some("base"));
        let inner = base.inner.as_ref().expect("inner");
        assert_eq!(inner.a.as_ref().map(|v| &v.value), Some(&json!(1)));
        let b = inner.b.as_ref().expect("b");
        assert_eq!((b.value.clone(), b.referenced.line()), (json!(3), 7));
        let located = base.located.as_ref().expect("located");
        assert_eq!(located.referenced.line(), 4, "the section keeps its place");
        let a = located.value.a.as_ref().expect("a");
        assert_eq!((a.value.clone(), a.referenced.line()), (json!(5), 8));
        assert_eq!(
            located.value.b.as_ref().map(|v| v.referenced.line()),
            Some(5)
        );
        let list: Vec<&str> = base
            .list
            .iter()
            .flatten()
            .map(|s| s.value.as_str())
            .collect();
        assert_eq!(list, ["z"]);
    }

    #[test]
    fn a_section_only_in_the_overlay_is_taken_whole() {
        let mut base = parse("name: base\n");
        base.merge(parse("inner: {a: 1}\n"));
        assert!(base.inner.and_then(|i| i.a).is_some());
    }

    #[test]
    fn json_mappings_merge_deep_and_the_rest_is_replaced() {
        let mut base =
            json!({"a": 1, "deep": {"x": 1, "y": {"z": 1}}, "list": [1, 2], "m": {"k": 1}});
        merge_json(
            &mut base,
            json!({"deep": {"y": {"w": 2}}, "list": [3], "m": "flat", "new": true}),
        );
        assert_eq!(
            base,
            json!({"a": 1, "deep": {"x": 1, "y": {"z": 1, "w": 2}}, "list": [3], "m": "flat", "new": true})
        );
    }
}
