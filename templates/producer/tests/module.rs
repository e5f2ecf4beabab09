//! Drives the real module code through its lifecycle with the SDK's test
//! harness, which applies the host's rules (no publishing before `start`,
//! delivery only to subscribed topics). Run with `cargo test -p {{crate_name}}`.

use std::time::Duration;

use orch_sdk::Module;
use orch_sdk::serde_json::{self, json};
use orch_sdk::testing::ModuleHarness;

// The module's public items: its type and constants.
use {{crate_ident}}::*;

/// The ticks published on `topic`.
fn ticks<M: Module>(harness: &ModuleHarness<M>, topic: &str) -> Vec<Tick> {
    harness
        .host()
        .published_on(topic)
        .into_iter()
        .map(|value| serde_json::from_value(value).unwrap())
        .collect()
}

#[test]
fn publishes_on_start_then_on_every_timer_event() {
    let mut harness = ModuleHarness::new({{type_name}}::default());
    harness.initialize(json!({"interval": "250ms"})).unwrap();
    assert!(
        harness.host().published().is_empty(),
        "nothing before start"
    );
    harness.start().unwrap();

    let timers = harness.host().timers();
    assert_eq!(timers.len(), 1);
    assert_eq!(timers[0].topic, TIMER_TOPIC);
    assert_eq!(timers[0].interval, Duration::from_millis(250));
    assert!(timers[0].repeat);

    harness.fire_timer(TIMER_TOPIC).unwrap();
    harness.fire_timer(TIMER_TOPIC).unwrap();
    let seqs: Vec<u64> = ticks(&harness, DEFAULT_TOPIC)
        .iter()
        .map(|t| t.seq)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3]);
}

#[test]
fn uses_the_configured_topic_and_message() {
    let mut harness = ModuleHarness::new({{type_name}}::default());
    harness
        .initialize(json!({"topic": "sensor.reading", "message": "hi"}))
        .unwrap();
    harness.start().unwrap();
    let expected = Tick {
        seq: 1,
        message: "hi".into(),
    };
    assert_eq!(ticks(&harness, "sensor.reading"), vec![expected]);
}

#[test]
fn rejects_a_bad_interval_naming_the_key() {
    let mut harness = ModuleHarness::new({{type_name}}::default());
    let error = harness.initialize(json!({"interval": "soon"})).unwrap_err();
    assert!(error.to_string().contains("interval"), "{error}");
    let error = harness.initialize(json!({"interval": 0})).unwrap_err();
    assert!(error.to_string().contains("greater than zero"), "{error}");
}

#[test]
fn continues_the_sequence_across_a_reload() {
    let mut old = ModuleHarness::new({{type_name}}::default());
    old.initialize(json!({})).unwrap();
    old.start().unwrap();
    old.fire_timer(TIMER_TOPIC).unwrap();
    let state = old.save_state().unwrap();
    assert_eq!(state, Some(json!(2)));

    let mut new = ModuleHarness::new({{type_name}}::default());
    new.initialize_with_state(json!({}), state).unwrap();
    new.start().unwrap();
    assert_eq!(ticks(&new, DEFAULT_TOPIC)[0].seq, 3);
}
