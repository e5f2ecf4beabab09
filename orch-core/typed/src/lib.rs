//! Typed topics: a module names the Rust type of the payloads it publishes
//! or subscribes to, and exports their JSON Schemas (derived with
//! [schemars](https://docs.rs/schemars)) with its library. The host reads
//! them before it loads the module, and at every reload, and refuses a
//! generation whose events a subscriber could no longer read (or that could
//! no longer read what it is sent), naming the module, topic and field.
//!
//! ```ignore
//! #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
//! struct Ping { seq: u64, note: Option<String> }
//!
//! orch_sdk::export_module!(Producer);
//! orch_typed::export_topic_types! {
//!     publishes { "test.ping" => Ping }
//!     subscribes { }
//! }
//! ```
//!
//! Untyped topics keep working: a topic no module types is not checked.

pub use schemars;

use orch_sdk::abi::{ByteSink, STATUS_OK, STATUS_PANIC, Status};

/// The format version of the document [`export_topic_types!`] writes.
pub const FORMAT_VERSION: u32 = 1;

/// The JSON Schema of what `T` serializes to: a publisher's payload (a
/// `#[serde(default)]` field is still always sent, a `skip_serializing` one
/// never is).
pub fn sent_schema_of<T: schemars::JsonSchema>() -> serde_json::Value {
    schemars::generate::SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}

/// The JSON Schema of what `T` deserializes from: a subscriber's payload
/// (a `#[serde(default)]` field may be left out).
pub fn read_schema_of<T: schemars::JsonSchema>() -> serde_json::Value {
    schemars::generate::SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}

/// The document of a module's topic types: `{"version": 1, "publishes":
/// {topic: schema}, "subscribes": {pattern: schema}}`.
pub fn document(
    publishes: Vec<(&str, serde_json::Value)>,
    subscribes: Vec<(&str, serde_json::Value)>,
) -> serde_json::Value {
    let map =
        |pairs: Vec<(&str, serde_json::Value)>| -> serde_json::Map<String, serde_json::Value> {
            pairs
                .into_iter()
                .map(|(topic, schema)| (topic.to_owned(), schema))
                .collect()
        };
    serde_json::json!({
        "version": FORMAT_VERSION,
        "publishes": map(publishes),
        "subscribes": map(subscribes),
    })
}

/// Writes the document `make` builds into `out`; a panic is caught and
/// reported (never unwinds into the host).
#[doc(hidden)]
pub fn write_document(out: ByteSink<'_>, make: fn() -> serde_json::Value) -> Status {
    match std::panic::catch_unwind(make) {
        Ok(document) => {
            out.write(document.to_string().as_bytes());
            STATUS_OK
        }
        Err(_) => STATUS_PANIC,
    }
}

/// Exports the module's topic types (the symbol
/// [`orch_sdk::abi::TYPES_SYMBOL`]): `publishes { TOPIC => Type, ... }` and
/// `subscribes { PATTERN => Type, ... }`; each type derives
/// `schemars::JsonSchema`.
#[macro_export]
macro_rules! export_topic_types {
    (
        publishes { $($pub_topic:literal => $pub_ty:ty),* $(,)? }
        subscribes { $($sub_topic:literal => $sub_ty:ty),* $(,)? }
    ) => {
        /// The cargo-orch topic types of this module (JSON, written to `out`).
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub extern "C" fn orch_module_topic_types_v1(
            out: $crate::__sdk::abi::ByteSink<'_>,
        ) -> $crate::__sdk::abi::Status {
            fn make() -> $crate::__json::Value {
                $crate::document(
                    ::std::vec![$(($pub_topic, $crate::sent_schema_of::<$pub_ty>())),*],
                    ::std::vec![$(($sub_topic, $crate::read_schema_of::<$sub_ty>())),*],
                )
            }
            $crate::write_document(out, make)
        }
    };
}

#[doc(hidden)]
pub use orch_sdk as __sdk;
#[doc(hidden)]
pub use serde_json as __json;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Ping {
        seq: u64,
        note: Option<String>,
    }

    #[test]
    fn the_document_holds_each_topic_schema() {
        let document = document(vec![("test.ping", sent_schema_of::<Ping>())], vec![]);
        assert_eq!(document["version"], 1);
        let ping = &document["publishes"]["test.ping"];
        // A publisher always sends an Option field (as null when None).
        assert_eq!(ping["required"], serde_json::json!(["seq", "note"]));
        assert!(ping["properties"]["note"].is_object(), "{ping}");
        assert_eq!(document["subscribes"], serde_json::json!({}));
    }

    #[derive(schemars::JsonSchema, serde::Serialize, serde::Deserialize)]
    #[allow(dead_code)]
    struct Defaulted {
        #[serde(default)]
        count: u64,
    }

    #[test]
    fn a_defaulted_field_is_always_sent_but_may_be_left_out_when_read() {
        assert_eq!(
            sent_schema_of::<Defaulted>()["required"],
            serde_json::json!(["count"])
        );
        assert!(read_schema_of::<Defaulted>().get("required").is_none());
    }
}
