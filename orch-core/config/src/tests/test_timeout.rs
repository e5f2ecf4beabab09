//! `test.timeout` of a module in modules.yaml and its default,
//! `timeouts.test` of main.yaml: what `cargo orch test` kills a test after.

use std::time::Duration;

use super::*;

#[test]
fn the_test_timeout_defaults_to_a_minute_and_main_yaml_sets_it() {
    let fixture = Fixture::with(None, Some("modules:\n  - name: mod-a\n"));
    let config = fixture.load();
    assert_eq!(config.main.timeouts.test, Duration::from_secs(60));
    assert_eq!(config.modules[0].test.timeout, None, "main.yaml's applies");

    fixture.write("config/main.yaml", "timeouts:\n  test: 2m\n");
    assert_eq!(fixture.load().main.timeouts.test, Duration::from_secs(120));
}

#[test]
fn a_module_sets_its_own_test_timeout_and_an_environment_overrides_it() {
    let modules = "\
modules:
  - name: mod-a
    test:
      timeout: 1500ms
  - name: mod-b
    test:
      args: [--include-ignored]
      timeout: ${SLOW:-3}
";
    let fixture = Fixture::with(None, Some(modules));
    let config = fixture.load();
    assert_eq!(
        config.modules[0].test.timeout,
        Some(Duration::from_millis(1500))
    );
    assert_eq!(config.modules[1].test.timeout, Some(Duration::from_secs(3)));
    assert_eq!(config.modules[1].test.args, ["--include-ignored"]);

    fixture.write(
        "config/ci/modules.yaml",
        "modules:\n  - name: mod-a\n    test:\n      timeout: 5m\n",
    );
    let ci = fixture.load_in("ci", &no_env).expect("valid overlay");
    assert_eq!(ci.modules[0].test.timeout, Some(Duration::from_secs(300)));
    assert_eq!(ci.modules[1].test.timeout, Some(Duration::from_secs(3)));
}

#[test]
fn a_zero_or_unreadable_test_timeout_is_an_error_with_its_place() {
    let fixture = Fixture::with(
        Some("timeouts:\n  test: 0s\n"),
        Some("modules:\n  - name: mod-a\n    test:\n      timeout: soon\n"),
    );
    let errors = fixture.errors();
    let text = errors.to_string();
    assert_eq!(errors.0.len(), 2, "{text}");
    assert!(
        text.contains("main.yaml:2:9: `timeouts.test` is zero"),
        "{text}"
    );
    assert!(
        text.contains("modules.yaml:4:16: `test.timeout`: 'soon' is not a duration"),
        "{text}"
    );
}
