//! `bridge.nats.serve` and `bridge.nats.ask`: requests across nodes.

use super::*;

const MODULES: &str = "modules:\n  - name: mod-a\n";

#[test]
fn serve_and_ask_are_read_and_are_enough_for_a_bridge() {
    let main = "\
bridge:
  nats:
    url: nats://127.0.0.1:4222
    serve: [orders.price, orders.stock, orders.price]
    ask: [\"orders.>\", stock.*]
";
    let config = Fixture::with(Some(main), Some(MODULES)).load();
    let nats = config.main.bridge.expect("bridge").nats;
    assert_eq!(nats.serve, ["orders.price", "orders.stock"], "each once");
    assert_eq!(nats.ask, ["orders.>", "stock.*"]);
    assert!(nats.export.is_empty() && nats.import.is_empty());
    let only_ask = "bridge:\n  nats:\n    url: nats://h:4222\n    ask: [a.b]\n";
    let config = Fixture::with(Some(only_ask), Some(MODULES)).load();
    assert_eq!(
        config.main.bridge.expect("bridge").nats.serve,
        Vec::<String>::new()
    );
}

#[test]
fn serve_and_ask_mistakes_are_named_at_their_line_with_a_hint() {
    let main = "\
bridge:
  nats:
    url: nats://127.0.0.1:4222
    export: [a]
    serve: [\"orders.*\", app.started, \"a..b\"]
    ask: [\"module.>\", \"x..y\"]
";
    let errors = Fixture::with(Some(main), Some(MODULES))
        .errors()
        .to_string();
    for (line, text) in [
        (
            5,
            "`bridge.nats.serve` entry `orders.*` is a pattern; serve names exact topics",
        ),
        (5, "patterns belong in `ask:`"),
        (
            5,
            "`bridge.nats.serve` entry `app.started` is not a topic modules may answer",
        ),
        (
            5,
            "`bridge.nats.serve` entry `a..b` is not a topic modules may answer",
        ),
        (
            6,
            "`bridge.nats.ask` entry `module.>` is in a namespace the host keeps for itself",
        ),
        (6, "`bridge.nats.ask` entry `x..y` is not a topic pattern"),
    ] {
        assert!(errors.contains(text), "missing `{text}` in:\n{errors}");
        assert!(
            errors.contains(&format!("main.yaml:{line}")),
            "line {line}:\n{errors}"
        );
    }
}

#[test]
fn a_bridge_that_neither_bridges_events_nor_requests_names_all_four_keys() {
    let main = "bridge:\n  nats:\n    url: nats://h:4222\n    serve: []\n";
    let errors = Fixture::with(Some(main), Some(MODULES))
        .errors()
        .to_string();
    assert!(errors.contains("exports and imports nothing"), "{errors}");
    assert!(
        errors.contains("`serve:`") && errors.contains("`ask:`"),
        "{errors}"
    );
}
