//! Valid files: the shipped config, defaults, every value read.

use serde_json::json;
use std::path::Path;
use std::time::Duration;

use super::*;

#[test]
fn shipped_config_files_parse() {
    let config_dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"));
    let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let workspace = fake_workspace(root);
    let config = load_with_env(config_dir, &workspace, &no_env).expect("shipped config is valid");
    assert_eq!(config.main.app.name, "cargo-orch-demo");
    assert_eq!(config.main.timeouts, Timeouts::default());
    assert_eq!(config.main.resources, ResourceSettings::default());
    assert_eq!(config.main.logging.dir, root.join("logs"));
    assert_eq!(
        names(&config.startup_order()),
        [
            "mod-test-module",
            "mod-dummy-producer",
            "mod-dummy-consumer"
        ]
    );
    let producer = config.module("mod-dummy-producer").expect("producer");
    assert_eq!(
        producer.config,
        json!({"publish_interval": "1s", "message": "hello"})
    );
    assert_eq!(producer.package, "mod-dummy-producer");
}

#[test]
fn main_yaml_is_optional() {
    let fixture = Fixture::with(None, Some("modules:\n  - name: mod-a\n"));
    let config = fixture.load();
    let mut expected = MainConfig::default();
    expected.logging.dir = fixture.dir.path().join("logs");
    assert_eq!(config.main, expected);
    assert_eq!(config.main.timeouts.build, Duration::from_secs(600));
    assert_eq!(config.main.app.name, "cargo-orch-app");
    assert_eq!(config.config_dir, fixture.config_dir());
}

#[test]
fn empty_main_yaml_and_empty_sections_mean_defaults() {
    let fixture = Fixture::with(
        Some("# nothing set yet\n"),
        Some("modules:\n  - name: mod-a\n"),
    );
    assert_eq!(fixture.load().main.timeouts, Timeouts::default());
    fixture.write("config/main.yaml", "timeouts:\nlogging:\n  level:\n");
    let config = fixture.load();
    assert_eq!(config.main.timeouts, Timeouts::default());
    assert_eq!(config.main.logging.level, "info");
}

#[test]
fn main_yaml_values_are_read() {
    let main = "\
app:
  name: demo
  version: 1.10
hot_reload: true
timeouts:
  load: 250ms
  initialize: 2
  start: 1.5
  event: 2m
  build: 1h
resources:
  reserved_memory_fraction: 0
  memory_per_process_mb: 512
  threads_per_core: 2
  usage_interval: 10s
logging:
  level: debug,orch_runtime=trace
  format: json
  dir: /var/log/orch
  file: orch.log
  max_size_mb: 1
  max_files: 3
";
    let fixture = Fixture::with(Some(main), Some("modules: []\n"));
    let main = fixture.load().main;
    assert_eq!(main.app.name, "demo");
    assert_eq!(main.app.version, "1.10");
    assert!(main.hot_reload);
    assert_eq!(main.timeouts.load, Duration::from_millis(250));
    assert_eq!(main.timeouts.initialize, Duration::from_secs(2));
    assert_eq!(main.timeouts.start, Duration::from_millis(1500));
    assert_eq!(main.timeouts.event, Duration::from_secs(120));
    assert_eq!(main.timeouts.shutdown, Duration::from_secs(5));
    assert_eq!(main.timeouts.build, Duration::from_secs(3600));
    assert_eq!(main.resources.reserved_memory_fraction, 0.0);
    assert_eq!(main.resources.memory_per_process_mb, 512);
    assert_eq!(main.resources.threads_per_core, 2);
    assert_eq!(main.resources.usage_interval, Duration::from_secs(10));
    assert_eq!(main.logging.level, "debug,orch_runtime=trace");
    assert_eq!(main.logging.format, LogFormat::Json);
    assert_eq!(main.logging.dir, PathBuf::from("/var/log/orch"));
    assert_eq!(main.logging.file, "orch.log");
    assert_eq!(main.logging.max_size_mb, 1);
    assert_eq!(main.logging.max_files, 3);
}

#[test]
fn module_config_keeps_json_types() {
    let modules = "\
modules:
  - name: mod-a
    config:
      interval: 1s
      count: 5
      ratio: 0.5
      big: -12
      on: true
      nothing: ~
      quoted: \"5\"
      list: [1, two]
      nested: {deep: {x: 1}}
";
    let config = Fixture::with(None, Some(modules)).load();
    assert_eq!(
        config.modules[0].config,
        json!({
            "interval": "1s",
            "count": 5,
            "ratio": 0.5,
            "big": -12,
            "on": true,
            "nothing": null,
            "quoted": "5",
            "list": [1, "two"],
            "nested": {"deep": {"x": 1}},
        })
    );
}

#[test]
fn module_entries_take_defaults_and_packages() {
    let modules = "\
modules:
  - name: first
    package: mod-a
  - name: second
    path: modules-backend/mod-b
    enabled: false
    config:
  - name: mod-c
    depends_on: [first]
";
    let config = Fixture::with(None, Some(modules)).load();
    let [first, second, third] = &config.modules[..] else {
        panic!("three modules expected: {:?}", config.modules);
    };
    assert_eq!((first.package.as_str(), first.line), ("mod-a", 2));
    assert_eq!(second.package, "mod-b");
    assert!(!second.enabled);
    assert_eq!(second.config, json!({}));
    assert_eq!(second.line, 4);
    assert_eq!(third.package, "mod-c");
    assert!(third.enabled && third.depends_on == ["first"]);
    assert_eq!(first.config, json!({}));
}

#[test]
fn module_test_settings_are_read_expanded_and_default_to_nothing() {
    let modules = "\
modules:
  - name: mod-a
    test:
      args: [--include-ignored, \"${FILTER:-slow}\"]
      features: [extra, extra, more]
  - name: mod-b
    test:
  - name: mod-c
";
    let config = Fixture::with(None, Some(modules)).load();
    let [a, b, c] = &config.modules[..] else {
        panic!("three modules expected: {:?}", config.modules);
    };
    assert_eq!(a.test.args, ["--include-ignored", "slow"]);
    assert_eq!(a.test.features, ["extra", "more"], "duplicates dropped");
    assert_eq!(b.test, TestSettings::default());
    assert_eq!(c.test, TestSettings::default());
}

#[test]
fn module_test_settings_are_as_strict_as_the_rest() {
    let fixture = Fixture::with(
        None,
        Some("modules:\n  - name: mod-a\n    test:\n      arg: [--nocapture]\n"),
    );
    let errors = fixture.errors();
    let error = &errors.0[0];
    assert_eq!((error.line, error.column), (Some(4), Some(7)), "{errors}");
    assert_eq!(error.message.lines().next(), Some("unknown key `arg`"));
    assert_eq!(
        error.hint,
        "did you mean `args`? known keys here: args, features, timeout"
    );

    let fixture = Fixture::with(
        None,
        Some("modules:\n  - name: mod-a\n    test:\n      features: [mod-a/extra]\n"),
    );
    let error = fixture.error();
    assert!(
        error.contains("modules.yaml:4:18: `mod-a/extra` is not a feature name"),
        "{error}"
    );
    assert!(error.contains("adds the package for you"), "{error}");

    let fixture = Fixture::with(
        None,
        Some("modules:\n  - name: mod-a\n    test: [--nocapture]\n"),
    );
    let errors = fixture.errors();
    assert_eq!(errors.0[0].line, Some(3), "{errors}");
}
