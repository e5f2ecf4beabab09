//! Drives the real module code through its lifecycle with the SDK's test
//! harness, which applies the host's rules (no publishing before `start`,
//! delivery only to subscribed topics). Run with `cargo test -p {{crate_name}}`.

use orch_sdk::events::APP_STARTED;
use orch_sdk::serde_json::json;
use orch_sdk::testing::ModuleHarness;

// The module's public items: its type and constants.
use {{crate_ident}}::*;

#[test]
fn initialize_reads_the_greeting_and_subscribes() {
    let mut harness = ModuleHarness::new({{type_name}}::default());
    harness.initialize(json!({"greeting": "bonjour"})).unwrap();
    assert_eq!(harness.module().greeting(), "bonjour");
    assert_eq!(harness.host().subscriptions(), vec![APP_STARTED]);
    assert!(harness.host().published().is_empty());
}

#[test]
fn runs_its_lifecycle_and_counts_events() {
    let mut harness = ModuleHarness::new({{type_name}}::default());
    harness.initialize(json!({})).unwrap();
    assert_eq!(harness.module().greeting(), "hello");
    harness.start().unwrap();
    assert!(harness.module().is_started());
    let delivered = harness
        .deliver(
            APP_STARTED,
            &json!({"modules": ["a", "b"], "startup_ms": 12.5}),
        )
        .unwrap();
    assert!(delivered);
    assert!(!harness.deliver("other.topic", &json!({})).unwrap());
    assert_eq!(harness.module().events(), 1);
    harness.shutdown().unwrap();
    assert!(!harness.module().is_started());
}

#[test]
fn a_greeting_of_the_wrong_type_is_an_error_naming_the_key() {
    let mut harness = ModuleHarness::new({{type_name}}::default());
    let error = harness.initialize(json!({"greeting": 5})).unwrap_err();
    assert!(error.to_string().contains("greeting"), "{error}");
}

#[test]
fn keeps_its_count_across_a_reload() {
    let mut old = ModuleHarness::new({{type_name}}::default());
    old.initialize(json!({})).unwrap();
    old.start().unwrap();
    old.deliver(APP_STARTED, &json!({"modules": [], "startup_ms": 1.0}))
        .unwrap();
    let state = old.save_state().unwrap();

    let mut new = ModuleHarness::new({{type_name}}::default());
    new.initialize_with_state(json!({}), state).unwrap();
    assert_eq!(new.module().events(), 1);
}
