//! `bridge.nats.work`: shared work groups.

use super::*;

const MODULES: &str = "modules:\n  - name: mod-a\n";

#[test]
fn work_groups_are_read_with_their_defaults_and_are_enough_for_a_bridge() {
    let main = "\
bridge:
  nats:
    url: nats://127.0.0.1:4222
    work:
      - group: resizers
        topics: [jobs.resize, \"jobs.thumb.>\"]
        max_in_flight: 8
      - group: mailers
        topics: [mail.send]
";
    let config = Fixture::with(Some(main), Some(MODULES)).load();
    let nats = config.main.bridge.expect("bridge").nats;
    assert_eq!(
        nats.work,
        [
            WorkGroup {
                group: "resizers".into(),
                topics: vec!["jobs.resize".into(), "jobs.thumb.>".into()],
                max_in_flight: 8,
            },
            WorkGroup {
                group: "mailers".into(),
                topics: vec!["mail.send".into()],
                max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            },
        ]
    );
    assert!(nats.export.is_empty() && nats.import.is_empty());
}

#[test]
fn work_mistakes_are_named_at_their_line_with_a_hint() {
    let main = "\
bridge:
  nats:
    url: nats://127.0.0.1:4222
    export: [jobs.a]
    work:
      - topics: [x.y]
      - group: \"two words\"
        topics: [x.z]
      - group: g1
        topics: []
      - group: g2
        topics: [\"module.>\", jobs.a]
        max_in_flight: 20000
      - group: g2
        topics: [q.r]
      - group: g3
        topics: [jobs.a]
        max_in_flight: 0
";
    let errors = Fixture::with(Some(main), Some(MODULES))
        .errors()
        .to_string();
    for (line, text) in [
        (6, "a `bridge.nats.work` entry names no `group`"),
        (
            7,
            "`bridge.nats.work.group` may hold letters, digits, `-` and `_` only",
        ),
        (9, "`bridge.nats.work` group `g1` has no topics"),
        (
            12,
            "`bridge.nats.work.topics` entry `module.>` is in a namespace the host keeps",
        ),
        (
            13,
            "`bridge.nats.work.max_in_flight` is 20000, more than 10000",
        ),
        (14, "`bridge.nats.work` names the group `g2` twice"),
        (16, "topic `jobs.a` is in the groups `g2` and `g3`"),
        (
            18,
            "`bridge.nats.work.max_in_flight` must be a whole number of at least 1",
        ),
        (3, "`jobs.a` is both in `export` and in the work group `g2`"),
    ] {
        assert!(errors.contains(text), "missing `{text}` in:\n{errors}");
        assert!(
            errors.contains(&format!("main.yaml:{line}")),
            "line {line}:\n{errors}"
        );
    }
}

#[test]
fn a_misspelt_work_key_is_named_with_the_known_ones() {
    let main = "bridge:\n  nats:\n    url: nats://h:4222\n    work:\n      - group: g\n        topic: [a]\n";
    let errors = Fixture::with(Some(main), Some(MODULES))
        .errors()
        .to_string();
    assert!(errors.contains("main.yaml:6"), "{errors}");
    assert!(errors.contains("did you mean `topics`?"), "{errors}");
}
