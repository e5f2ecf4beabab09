//! Wrong types and out-of-range values.

use super::*;

#[test]
fn wrong_types_are_reported_at_their_value() {
    let fixture = Fixture::with(
        None,
        Some("modules:\n  - name: mod-a\n    enabled: maybe\n"),
    );
    assert_eq!(
        fixture.error(),
        format!(
            "{}:3:14: `enabled` must be true or false, found `maybe`\n  \
             hint: write `enabled: true` or `enabled: false`",
            fixture.file("modules.yaml")
        )
    );
    fixture.write(
        "config/modules.yaml",
        "modules:\n  - name: mod-a\n    config: 5\n",
    );
    let error = fixture.error();
    assert!(
        error.starts_with(&format!(
            "{}:3:13: `config` must be a mapping of settings, found `5`",
            fixture.file("modules.yaml")
        )),
        "{error}"
    );
    fixture.write(
        "config/modules.yaml",
        "modules:\n  - name: mod-a\n    depends_on: mod-b\n",
    );
    let error = fixture.error();
    assert!(error.contains(":3:17: expected sequence start"), "{error}");
    assert!(error.contains("hint: a list is expected here"), "{error}");
}

#[test]
fn bad_main_values_are_all_reported() {
    let main = "\
timeouts:
  initialize: soon
  shutdown: 0s
  build: 0
resources:
  reserved_memory_fraction: 1.5
  threads_per_core: 0
  memory_per_process_mb: lots
logging:
  level: verbose
  format: jsn
  file: logs/app.log
  max_files: -1
hot_reload: sometimes
";
    let fixture = Fixture::with(Some(main), Some("modules: []\n"));
    let errors = fixture.errors();
    let found: Vec<(Option<u32>, Option<u32>, &str)> = errors
        .0
        .iter()
        .map(|e| (e.line, e.column, e.message.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (
                Some(2),
                Some(15),
                "`timeouts.initialize`: 'soon' is not a duration; write for example 250ms, 1.5s, 2m or 1h"
            ),
            (Some(3), Some(13), "`timeouts.shutdown` is zero"),
            (Some(4), Some(10), "`timeouts.build` is zero"),
            (
                Some(6),
                Some(29),
                "`resources.reserved_memory_fraction` must be a number from 0 up to (not including) 1, found `1.5`"
            ),
            (
                Some(7),
                Some(21),
                "`resources.threads_per_core` must be a whole number of at least 1, found `0`"
            ),
            (
                Some(8),
                Some(26),
                "`resources.memory_per_process_mb` must be a whole number of at least 1, found `lots`"
            ),
            (
                Some(10),
                Some(10),
                "`logging.level`: `verbose` is not a log level"
            ),
            (
                Some(11),
                Some(11),
                "`logging.format` must be `human` or `json`, found `jsn`"
            ),
            (
                Some(12),
                Some(9),
                "`logging.file` must be a file name, found the path `logs/app.log`"
            ),
            (
                Some(13),
                Some(14),
                "`logging.max_files` must be a whole number of at least 1, found `-1`"
            ),
            (
                Some(14),
                Some(13),
                "`hot_reload` must be true or false, found `sometimes`"
            ),
        ]
    );
    assert!(errors.0[7].hint.contains("did you mean `json`?"));
    assert!(errors.to_string().contains(&format!(
        "{}:2:15: `timeouts.initialize`",
        fixture.file("main.yaml")
    )));
}
