//! `bridge.nats` in main.yaml: the full section, its defaults, and every
//! mistake named at its line.

use super::*;

const MODULES: &str = "modules:\n  - name: mod-a\n";

#[test]
fn without_a_bridge_section_everything_stays_in_process() {
    let config = Fixture::with(None, Some(MODULES)).load();
    assert_eq!(config.main.bridge, None);
}

#[test]
fn the_full_section_is_read_with_variables_and_defaults() {
    let main = "\
mailbox: {capacity: 300}
bridge:
  nats:
    url: [nats://10.0.0.1:4222, tls://10.0.0.2:4222]
    node: ${ORCH_NODE:-}
    subject_prefix: orch.demo
    auth: {token: \"${NATS_TOKEN:-}\"}
    export: [\"test.>\"]
    import: [\"test.>\", sensor.*]
    jetstream:
      stream: ORCH_DEMO
      durable: ${ORCH_NODE:-}
";
    let env = |name: &str| (name == "NATS_TOKEN").then(|| "tok-secret-1".to_owned());
    let config = Fixture::with(Some(main), Some(MODULES))
        .load_env(&env)
        .expect("valid");
    let nats = config.main.bridge.expect("bridge").nats;
    assert_eq!(
        nats.servers,
        ["nats://10.0.0.1:4222", "tls://10.0.0.2:4222"]
    );
    assert_eq!(nats.node, None, "an unset ORCH_NODE leaves the default");
    assert_eq!(nats.subject_prefix, "orch.demo");
    assert_eq!(nats.auth, NatsAuth::Token("tok-secret-1".into()));
    assert_eq!(nats.export, ["test.>"]);
    assert_eq!(nats.import, ["test.>", "sensor.*"]);
    assert_eq!(
        nats.jetstream,
        Some(JetStreamSettings {
            stream: "ORCH_DEMO".into(),
            durable: None,
            replicas: 1,
        })
    );
    assert_eq!(
        nats.outbox.capacity, 300,
        "the outbox follows main's mailbox"
    );
    assert!(config.secrets.contains(&"tok-secret-1".to_owned()));
    assert!(!format!("{nats:?}").contains("tok-secret-1"));
}

#[test]
fn a_minimal_section_gets_the_defaults() {
    let main = "bridge:\n  nats:\n    url: nats://127.0.0.1:4222\n    export: [a.b]\n    auth: {user: app, password: pw-secret-2}\n";
    let config = Fixture::with(Some(main), Some(MODULES)).load();
    let nats = config.main.bridge.expect("bridge").nats;
    assert_eq!(nats.subject_prefix, "orch");
    assert_eq!(nats.import, Vec::<String>::new());
    assert_eq!(nats.jetstream, None);
    assert_eq!(nats.outbox, MailboxSettings::default());
    assert_eq!(
        nats.auth,
        NatsAuth::UserPassword {
            user: "app".into(),
            password: "pw-secret-2".into()
        }
    );
    assert!(config.secrets.contains(&"pw-secret-2".to_owned()));
}

#[test]
fn mistakes_are_named_at_their_line() {
    let main = "\
bridge:
  nats:
    url: http://broker
    node: edge 1
    subject_prefix: orch.*
    auth: {token: abcd, user: app}
    export: [\"module.>\", \"a..b\"]
    jetstream: {durable: x}
    tls: {cert: missing.pem}
    outbox: {overflow: sometimes}
";
    let errors = Fixture::with(Some(main), Some(MODULES))
        .errors()
        .to_string();
    for (line, text) in [
        (
            3,
            "`bridge.nats.url` must be a `nats://host:port` or `tls://host:port` URL, found `http://broker`",
        ),
        (
            4,
            "`bridge.nats.node` may hold letters, digits, `-` and `_` only, found `edge 1`",
        ),
        (
            5,
            "`bridge.nats.subject_prefix` must be dot-separated tokens",
        ),
        (
            6,
            "`bridge.nats.auth` sets more than one way to authenticate",
        ),
        (
            7,
            "`bridge.nats.export` entry `module.>` is in a namespace the host keeps for itself",
        ),
        (
            7,
            "`bridge.nats.export` entry `a..b` is not a topic pattern",
        ),
        (8, "`bridge.nats.jetstream` names no `stream`"),
        (9, "missing.pem is not a file"),
        (9, "`bridge.nats.tls` needs both `cert` and `key`"),
        (
            10,
            "`bridge.nats.outbox.overflow` must be one of block, drop-oldest, drop-newest, fail",
        ),
    ] {
        assert!(errors.contains(text), "missing `{text}` in:\n{errors}");
        assert!(
            errors.contains(&format!("main.yaml:{line}")),
            "line {line}:\n{errors}"
        );
    }
}

#[test]
fn credentials_in_the_url_are_refused_without_being_shown() {
    for url in [
        "nats://alice:pa55word@broker:4222",
        "nats://pa55word@broker:4222",
        "http://alice:pa55word@broker",
    ] {
        let main =
            format!("bridge:\n  nats:\n    url: [nats://ok:4222, \"{url}\"]\n    export: [a]\n");
        let errors = Fixture::with(Some(&main), Some(MODULES))
            .errors()
            .to_string();
        assert!(errors.contains("main.yaml:3"), "{errors}");
        assert!(!errors.contains("pa55word"), "{errors}");
        assert!(errors.contains("***@broker"), "{errors}");
    }
    let errors = Fixture::with(
        Some("bridge:\n  nats:\n    url: nats://app:pa55word@broker:4222\n    export: [a]\n"),
        Some(MODULES),
    )
    .errors()
    .to_string();
    assert!(errors.contains("write them in `auth`"), "{errors}");
}

#[test]
fn a_bridge_without_url_or_topics_is_refused() {
    let main = "bridge:\n  nats:\n    subject_prefix: x\n";
    let errors = Fixture::with(Some(main), Some(MODULES))
        .errors()
        .to_string();
    assert!(errors.contains("`bridge.nats` has no `url`"), "{errors}");
    assert!(errors.contains("exports and imports nothing"), "{errors}");
    assert!(errors.contains("main.yaml:3"), "{errors}");
}

#[test]
fn an_unquoted_variable_in_a_flow_mapping_gets_a_hint_to_quote_it() {
    let main = "bridge:\n  nats:\n    url: nats://h:4222\n    export: [a]\n    auth: {token: ${NATS_TOKEN:-}}\n";
    let errors = Fixture::with(Some(main), Some(MODULES)).error();
    assert!(errors.contains("main.yaml:5"), "{errors}");
    assert!(
        errors.contains(r#"must be quoted: write `{token: "${NATS_TOKEN}"}`"#),
        "{errors}"
    );
}
