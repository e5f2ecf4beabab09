//! Drives the real module code through its lifecycle with the SDK's test
//! harness, which applies the host's rules (no publishing before `start`,
//! delivery only to subscribed topics). Run with `cargo test -p {{crate_name}}`.

use orch_sdk::serde_json::json;
use orch_sdk::testing::ModuleHarness;

// The module's public items: its type and constants.
use {{crate_ident}}::*;

#[test]
fn subscribes_in_initialize_and_counts_what_it_receives() {
    let mut harness = ModuleHarness::new({{type_name}}::default());
    harness.initialize(json!({})).unwrap();
    assert_eq!(harness.host().subscriptions(), vec![DEFAULT_TOPIC]);
    harness.start().unwrap();
    for seq in 1..=3 {
        let delivered = harness
            .deliver(DEFAULT_TOPIC, &json!({"message": "hello", "seq": seq}))
            .unwrap();
        assert!(delivered);
    }
    assert!(!harness.deliver("other.topic", &json!({})).unwrap());
    assert_eq!(harness.module().received(), 3);
    let last = Incoming {
        message: Some("hello".into()),
        seq: Some(3),
    };
    assert_eq!(harness.module().last(), Some(&last));
}

#[test]
fn follows_the_configured_pattern() {
    let mut harness = ModuleHarness::new({{type_name}}::default());
    harness.initialize(json!({"topic": "sensor.*"})).unwrap();
    harness.start().unwrap();
    assert!(harness.deliver("sensor.temperature", &json!({})).unwrap());
    assert!(!harness.deliver("test.ping", &json!({})).unwrap());
    assert_eq!(harness.module().received(), 1);
}

#[test]
fn a_payload_that_does_not_fit_is_an_error_naming_the_topic() {
    let mut harness = ModuleHarness::new({{type_name}}::default());
    harness.initialize(json!({})).unwrap();
    let error = harness
        .deliver(DEFAULT_TOPIC, &json!({"seq": "not a number"}))
        .unwrap_err();
    assert!(error.to_string().contains(DEFAULT_TOPIC), "{error}");
    assert_eq!(harness.module().received(), 0);
}

#[test]
fn keeps_its_count_across_a_reload() {
    let mut old = ModuleHarness::new({{type_name}}::default());
    old.initialize(json!({})).unwrap();
    old.deliver(DEFAULT_TOPIC, &json!({"message": "a"}))
        .unwrap();
    let state = old.save_state().unwrap();

    let mut new = ModuleHarness::new({{type_name}}::default());
    new.initialize_with_state(json!({}), state).unwrap();
    assert_eq!(new.module().received(), 1);
}
