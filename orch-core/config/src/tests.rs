//! Loading whole configurations: valid files, every kind of error, env
//! expansion, ordering and secrets. Parallel-safe: no process env changes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use tempfile::TempDir;

use super::*;
use crate::workspace::{Workspace, WorkspacePackage};

/// A temporary workspace root holding `config/`.
struct Fixture {
    dir: TempDir,
    workspace: Workspace,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("config")).expect("config dir");
        let workspace = fake_workspace(dir.path());
        Self { dir, workspace }
    }

    fn with(main: Option<&str>, modules: Option<&str>) -> Self {
        let fixture = Self::new();
        if let Some(main) = main {
            fixture.write("config/main.yaml", main);
        }
        if let Some(modules) = modules {
            fixture.write("config/modules.yaml", modules);
        }
        fixture
    }

    fn write(&self, relative: &str, text: &str) {
        std::fs::write(self.dir.path().join(relative), text).expect("write");
    }

    fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn file(&self, name: &str) -> String {
        self.config_dir().join(name).display().to_string()
    }

    fn load_env(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<AppConfig, ConfigErrors> {
        load_with_env(&self.config_dir(), &self.workspace, env)
    }

    fn load(&self) -> AppConfig {
        self.load_env(&no_env).expect("valid configuration")
    }

    fn errors(&self) -> ConfigErrors {
        self.load_env(&no_env).expect_err("invalid configuration")
    }

    /// The one error of the configuration, displayed.
    fn error(&self) -> String {
        let errors = self.errors();
        assert_eq!(errors.0.len(), 1, "expected one error, got: {errors}");
        errors.to_string()
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn package(root: &Path, name: &str, is_cdylib: bool) -> WorkspacePackage {
    WorkspacePackage {
        name: name.to_owned(),
        manifest_dir: root.join("modules-backend").join(name),
        is_cdylib,
        lib_name: is_cdylib.then(|| name.replace('-', "_")),
        workspace_dependencies: Vec::new(),
    }
}

fn fake_workspace(root: &Path) -> Workspace {
    let cdylibs = [
        "mod-test-module",
        "mod-dummy-producer",
        "mod-dummy-consumer",
        "mod-a",
        "mod-b",
        "mod-c",
    ];
    let mut packages: Vec<_> = cdylibs.iter().map(|n| package(root, n, true)).collect();
    packages.push(package(root, "helper-lib", false));
    Workspace {
        root: root.to_path_buf(),
        target_dir: root.join("target"),
        packages,
    }
}

fn names(modules: &[&ModuleSpec]) -> Vec<String> {
    modules.iter().map(|m| m.name.clone()).collect()
}

// ---------------------------------------------------------------- valid files

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
        "did you mean `args`? known keys here: args, features"
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

// ---------------------------------------------------------------- startup order

#[test]
fn startup_order_follows_depends_on_stably() {
    let modules = "\
modules:
  - name: mod-c
    depends_on: [mod-b]
  - name: mod-a
  - name: mod-test-module
    enabled: false
  - name: mod-b
    depends_on: [mod-a]
  - name: mod-dummy-consumer
";
    let config = Fixture::with(None, Some(modules)).load();
    assert_eq!(
        names(&config.startup_order()),
        ["mod-a", "mod-b", "mod-c", "mod-dummy-consumer"]
    );
    assert_eq!(config.modules.len(), 5);
    assert!(config.module("mod-test-module").is_some());
    assert!(config.module("nope").is_none());
}

// ---------------------------------------------------------------- syntax errors

#[test]
fn unclosed_quote_is_reported_with_line_and_column() {
    let fixture = Fixture::with(
        None,
        Some("modules:\n  - name: \"mod-a\n    enabled: true\n"),
    );
    let error = fixture.error();
    let first_line = error.lines().next().unwrap_or_default();
    assert_eq!(
        first_line,
        format!("{}:2:11: unclosed quote", fixture.file("modules.yaml"))
    );
    assert!(
        error.contains("2 |   - name: \"mod-a"),
        "snippet kept: {error}"
    );
    assert!(error.contains("hint: fix the YAML here"), "{error}");
}

#[test]
fn bad_indentation_is_reported_with_line_and_column() {
    let fixture = Fixture::with(None, Some("modules:\n  - name: mod-a\n   enabled: true\n"));
    let error = fixture.error();
    assert!(
        error.starts_with(&format!(
            "{}:3:4: while parsing a block collection, did not find expected '-' indicator",
            fixture.file("modules.yaml")
        )),
        "{error}"
    );
}

#[test]
fn syntax_error_in_main_yaml_is_reported_with_the_modules_errors() {
    let fixture = Fixture::with(
        Some("app:\n  name: [demo\n"),
        Some("modules:\n  - name: mod-nope\n"),
    );
    let errors = fixture.errors();
    assert_eq!(errors.0.len(), 2, "{errors}");
    assert_eq!(errors.0[0].file, fixture.config_dir().join("main.yaml"));
    assert_eq!(errors.0[0].line, Some(2));
    assert_eq!(
        errors.0[1].message,
        "no package `mod-nope` in the workspace"
    );
    assert!(
        errors
            .to_string()
            .ends_with("\n2 configuration errors; nothing was started")
    );
}

// ---------------------------------------------------------------- unknown keys

#[test]
fn unknown_key_suggests_the_closest_known_key() {
    let fixture = Fixture::with(None, Some("modules:\n  - name: mod-a\n    enabeld: true\n"));
    assert_eq!(
        fixture.error(),
        format!(
            "{}:3:5: unknown key `enabeld`\n  \
             1 | modules:\n  \
             2 |   - name: mod-a\n  \
             3 |     enabeld: true\n  \
             \x20 |     ^ unknown field `enabeld`, expected one of name, package, path, enabled, config, depends_on, test, isolation, restart, max_restarts, restart_window, heartbeat\n  \
             hint: did you mean `enabled`? known keys here: name, package, path, enabled, config, depends_on, test, isolation, restart, max_restarts, restart_window, heartbeat; \
             a module's own settings go under its `config:`",
            fixture.file("modules.yaml")
        )
    );
}

#[test]
fn unknown_key_in_main_yaml_suggests_within_its_section() {
    let fixture = Fixture::with(Some("timeouts:\n  initialise: 5s\n"), Some("modules: []\n"));
    let errors = fixture.errors();
    let error = &errors.0[0];
    assert_eq!((error.line, error.column), (Some(2), Some(3)));
    assert_eq!(
        error.message.lines().next(),
        Some("unknown key `initialise`")
    );
    assert!(
        error
            .hint
            .starts_with("did you mean `initialize`? known keys here: load, initialize"),
        "{}",
        error.hint
    );
}

#[test]
fn unknown_key_without_a_close_match_lists_the_known_keys() {
    let fixture = Fixture::with(None, Some("modules:\n  - name: mod-a\n    colour: blue\n"));
    let errors = fixture.errors();
    assert_eq!(
        errors.0[0].hint,
        "known keys here: name, package, path, enabled, config, depends_on, test, isolation, restart, max_restarts, restart_window, heartbeat; \
         a module's own settings go under its `config:`"
    );
}

// ---------------------------------------------------------------- names and packages

#[test]
fn duplicate_module_names_name_both_lines() {
    let fixture = Fixture::with(
        None,
        Some("modules:\n  - name: mod-a\n  - name: mod-b\n  - name: mod-a\n"),
    );
    assert_eq!(
        fixture.error(),
        format!(
            "{}:4:11: module `mod-a` is declared twice (first declared at line 2)\n  \
             hint: module names must be unique: remove one entry or rename it (two modules may share a `package`)",
            fixture.file("modules.yaml")
        )
    );
}

#[test]
fn unknown_package_lists_the_cdylib_packages() {
    let fixture = Fixture::with(None, Some("modules:\n  - name: mod-dumy-producer\n"));
    assert_eq!(
        fixture.error(),
        format!(
            "{}:2:11: no package `mod-dumy-producer` in the workspace\n  \
             hint: did you mean `mod-dummy-producer`? cdylib packages of this workspace: \
             mod-test-module, mod-dummy-producer, mod-dummy-consumer, mod-a, mod-b, mod-c; \
             a module's package is its `name` unless `package:` or `path:` is set",
            fixture.file("modules.yaml")
        )
    );
}

#[test]
fn package_that_is_not_a_cdylib_gets_the_crate_type_hint() {
    let fixture = Fixture::with(
        None,
        Some("modules:\n  - name: helper\n    package: helper-lib\n"),
    );
    let manifest = fixture
        .dir
        .path()
        .join("modules-backend/helper-lib/Cargo.toml");
    assert_eq!(
        fixture.error(),
        format!(
            "{}:3:14: package `helper-lib` is not a cdylib, so it cannot be loaded as a module\n  \
             hint: add `[lib] crate-type = [\"cdylib\", \"rlib\"]` to {}",
            fixture.file("modules.yaml"),
            manifest.display()
        )
    );
}

#[test]
fn path_must_hold_a_workspace_package_and_excludes_package() {
    let modules = "\
modules:
  - name: one
    path: modules-backend/nothing-here
  - name: two
    package: mod-a
    path: modules-backend/mod-a
";
    let errors = Fixture::with(None, Some(modules)).errors();
    assert_eq!(errors.0.len(), 2, "{errors}");
    assert_eq!(
        errors.0[0].message,
        "no workspace package at `modules-backend/nothing-here`"
    );
    assert_eq!((errors.0[0].line, errors.0[0].column), (Some(3), Some(11)));
    assert_eq!(errors.0[1].message, "both `package` and `path` are set");
    assert_eq!(errors.0[1].line, Some(6));
}

#[test]
fn module_names_follow_cargo_rules() {
    let fixture = Fixture::with(
        None,
        Some("modules:\n  - name: 9lives\n  - name: \"has space\"\n  - enabled: true\n"),
    );
    let errors = fixture.errors();
    let messages: Vec<(&str, Option<u32>)> = errors
        .0
        .iter()
        .map(|e| (e.message.as_str(), e.line))
        .collect();
    assert_eq!(
        messages,
        [
            ("`9lives` is not a valid module name", Some(2)),
            ("`has space` is not a valid module name", Some(3)),
            ("module entry has no `name`", Some(4)),
        ]
    );
    assert!(errors.0[0].hint.contains("starting with a letter"));
}

// ---------------------------------------------------------------- depends_on

#[test]
fn depends_on_unknown_module_suggests_the_closest() {
    let fixture = Fixture::with(
        None,
        Some("modules:\n  - name: mod-a\n    depends_on: [mod-bb]\n  - name: mod-b\n"),
    );
    assert_eq!(
        fixture.error(),
        format!(
            "{}:3:18: module `mod-a` depends on unknown module `mod-bb`\n  \
             hint: did you mean `mod-b`? `depends_on` lists module names declared in this file: mod-a, mod-b",
            fixture.file("modules.yaml")
        )
    );
}

#[test]
fn depends_on_itself_is_an_error() {
    let fixture = Fixture::with(
        None,
        Some("modules:\n  - name: mod-a\n    depends_on:\n      - mod-a\n"),
    );
    assert_eq!(
        fixture.error(),
        format!(
            "{}:4:9: module `mod-a` depends on itself\n  hint: remove `mod-a` from its own `depends_on`",
            fixture.file("modules.yaml")
        )
    );
}

#[test]
fn depends_on_a_disabled_module_is_an_error() {
    let modules = "\
modules:
  - name: mod-a
    enabled: false
  - name: mod-b
    depends_on: [mod-a]
  - name: mod-c
    enabled: false
    depends_on: [mod-a]
";
    let fixture = Fixture::with(None, Some(modules));
    assert_eq!(
        fixture.error(),
        format!(
            "{}:5:18: module `mod-b` depends on `mod-a`, which is disabled\n  \
             hint: enable `mod-a` (`enabled: true`) or remove it from the `depends_on` of `mod-b`",
            fixture.file("modules.yaml")
        )
    );
}

#[test]
fn dependency_cycles_are_shown() {
    let modules = "\
modules:
  - name: mod-a
    depends_on: [mod-b]
  - name: mod-b
    depends_on: [mod-a]
  - name: mod-c
    depends_on: [mod-test-module]
  - name: mod-test-module
    depends_on: [mod-dummy-consumer]
  - name: mod-dummy-consumer
    depends_on: [mod-c]
";
    let errors = Fixture::with(None, Some(modules)).errors();
    let messages: Vec<(&str, Option<u32>, Option<u32>)> = errors
        .0
        .iter()
        .map(|e| (e.message.as_str(), e.line, e.column))
        .collect();
    assert_eq!(
        messages,
        [
            (
                "dependency cycle: mod-a -> mod-b -> mod-a",
                Some(3),
                Some(18)
            ),
            (
                "dependency cycle: mod-c -> mod-test-module -> mod-dummy-consumer -> mod-c",
                Some(7),
                Some(18)
            ),
        ]
    );
    assert!(
        errors.0[0]
            .hint
            .contains("remove one of these dependencies")
    );
}

// ---------------------------------------------------------------- wrong types and values

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

// ---------------------------------------------------------------- missing or empty files

#[test]
fn missing_modules_yaml_shows_the_expected_shape() {
    let fixture = Fixture::new();
    let error = fixture.error();
    assert!(
        error.starts_with(&format!(
            "{}: modules.yaml not found: it lists the modules to run\n  hint: create it; \
             the file lists the modules to run, for example:\n        modules:\n",
            fixture.file("modules.yaml")
        )),
        "{error}"
    );
}

#[test]
fn empty_modules_yaml_or_missing_list_shows_the_expected_shape() {
    for text in ["", "# todo\n", "modules:\n"] {
        let fixture = Fixture::with(None, Some(text));
        let error = fixture.error();
        assert!(
            error.starts_with(&format!(
                "{}: no `modules:` list: the file declares no modules\n  \
                 hint: the file lists the modules to run, for example:\n        modules:\n          - name: ",
                fixture.file("modules.yaml")
            )),
            "{text:?}: {error}"
        );
    }
    let fixture = Fixture::with(None, Some("module:\n  - name: mod-a\n"));
    let error = fixture.error();
    assert!(error.contains(":1:1: unknown key `module`"), "{error}");
    assert!(error.contains("did you mean `modules`?"), "{error}");
}

// ---------------------------------------------------------------- ${VAR} expansion

fn test_env(name: &str) -> Option<String> {
    match name {
        "APP_NAME" => Some("from-env".into()),
        "DB_HOST" => Some("db.internal".into()),
        "DB_PASSWORD" => Some("hunter22".into()),
        "LOG_DIR" => Some("var/logs".into()),
        "INJECT" => Some("x\nenabled: false".into()),
        "TIMEOUT" => Some("750ms".into()),
        "ENABLED" => Some("false".into()),
        _ => None,
    }
}

#[test]
fn env_variables_are_expanded_in_every_string() {
    let main = "\
app:
  name: ${APP_NAME}
  version: ${VERSION:-9.9.9}
timeouts:
  load: ${TIMEOUT}
logging:
  dir: ${LOG_DIR}
";
    let modules = "\
modules:
  - name: mod-a
    enabled: ${ENABLED:-true}
  - name: mod-b
    config:
      url: postgres://${DB_HOST}:${DB_PORT:-5432}/app
      literal: $${DB_HOST} costs $5
      inject: ${INJECT}
      list: [\"${DB_HOST}\", 3]
";
    let fixture = Fixture::with(Some(main), Some(modules));
    let config = fixture.load_env(&test_env).expect("valid");
    assert_eq!(config.main.app.name, "from-env");
    assert_eq!(config.main.app.version, "9.9.9");
    assert_eq!(config.main.timeouts.load, Duration::from_millis(750));
    assert_eq!(config.main.logging.dir, fixture.dir.path().join("var/logs"));
    assert!(!config.modules[0].enabled);
    assert_eq!(
        config.modules[1].config,
        json!({
            "url": "postgres://db.internal:5432/app",
            "literal": "${DB_HOST} costs $5",
            "inject": "x\nenabled: false",
            "list": ["db.internal", 3],
        })
    );
}

#[test]
fn unset_variable_is_reported_at_its_occurrence() {
    let modules = "\
modules:
  - name: mod-a
    config:
      host: localhost
      nested:
        url: \"postgres://${DB_USER}@host\"
";
    let fixture = Fixture::with(Some("app:\n  name: x-${APP_SUFFIX}\n"), Some(modules));
    let errors = fixture.errors();
    assert_eq!(
        errors.to_string(),
        format!(
            "{main}:2:11: environment variable `APP_SUFFIX` is not set\n  \
             hint: set APP_SUFFIX in the environment or in the workspace .env file, or write ${{APP_SUFFIX:-default}}\n\
             {modules}:6:26: environment variable `DB_USER` is not set\n  \
             hint: set DB_USER in the environment or in the workspace .env file, or write ${{DB_USER:-default}}\n\
             2 configuration errors; nothing was started",
            main = fixture.file("main.yaml"),
            modules = fixture.file("modules.yaml"),
        )
    );
}

#[test]
fn malformed_reference_is_reported() {
    let fixture = Fixture::with(
        None,
        Some("modules:\n  - name: mod-a\n    config:\n      a: ${OOPS\n"),
    );
    let errors = fixture.errors();
    assert_eq!(errors.0[0].message, "`${OOPS` has no closing `}`");
    assert_eq!((errors.0[0].line, errors.0[0].column), (Some(4), Some(10)));
}

#[test]
fn load_reads_dotenv_and_process_env_wins() {
    let fixture = Fixture::with(
        None,
        Some(
            "modules:\n  - name: mod-a\n    config:\n      a: ${ORCH_CONFIG_TEST_ONLY_IN_DOTENV}\n      path: ${PATH:-none}\n",
        ),
    );
    fixture.write(
        ".env",
        "ORCH_CONFIG_TEST_ONLY_IN_DOTENV=from-dotenv\nPATH=from-dotenv\n",
    );
    let config = load(&fixture.config_dir(), &fixture.workspace).expect("valid");
    let module_config = &config.modules[0].config;
    assert_eq!(module_config["a"], "from-dotenv");
    if let Ok(path) = std::env::var("PATH") {
        assert_eq!(module_config["path"], path.as_str());
    }
}

#[test]
fn malformed_dotenv_is_reported_with_the_yaml_errors() {
    let fixture = Fixture::with(
        None,
        Some("modules:\n  - name: mod-nope\n    config:\n      a: ${ORCH_CONFIG_TEST_GOOD}\n"),
    );
    fixture.write(".env", "ORCH_CONFIG_TEST_GOOD=1\nBAD LINE\n");
    let errors = load(&fixture.config_dir(), &fixture.workspace).expect_err("invalid");
    assert_eq!(errors.0.len(), 2, "{errors}");
    assert_eq!(errors.0[0].file, fixture.dir.path().join(".env"));
    assert_eq!(errors.0[0].line, Some(2));
    assert!(errors.0[0].message.starts_with("cannot read the .env file"));
}

// ---------------------------------------------------------------- secrets

#[test]
fn secrets_are_collected_and_redacted() {
    let modules = "\
modules:
  - name: mod-a
    config:
      url: postgres://app:${DB_PASSWORD}@db
      api_key: literal-key-123
      token: abc
      keyboard: qwerty
      auth:
        clientSecret: s3cr3t-value
";
    let fixture = Fixture::with(None, Some(modules));
    let config = fixture.load_env(&test_env).expect("valid");
    assert_eq!(
        config.secrets,
        ["literal-key-123", "s3cr3t-value", "hunter22"]
    );
    let module = &config.modules[0];
    assert_eq!(
        module.redacted_config(),
        json!({
            "url": "postgres://app:hunter22@db",
            "api_key": "***",
            "token": "***",
            "keyboard": "qwerty",
            "auth": {"clientSecret": "***"},
        })
    );
    let debug = format!("{config:?}");
    assert!(
        !debug.contains("literal-key-123") && !debug.contains("s3cr3t"),
        "{debug}"
    );
    assert!(debug.contains("<3 hidden>"), "{debug}");
}

// ---------------------------------------------------------------- display

#[test]
fn error_display_omits_unknown_positions() {
    let file = PathBuf::from("config/modules.yaml");
    let whole = ConfigError::new(&file, "missing", "create it");
    assert_eq!(
        whole.to_string(),
        "config/modules.yaml: missing\n  hint: create it"
    );
    let line_only = ConfigError::new(&file, "bad", "").at(Some(3), None);
    assert_eq!(line_only.to_string(), "config/modules.yaml:3: bad");
    let both = ConfigErrors(vec![whole.clone(), line_only.at(Some(3), Some(7))]);
    assert_eq!(
        both.to_string(),
        "config/modules.yaml: missing\n  hint: create it\n\
         config/modules.yaml:3:7: bad\n\
         2 configuration errors; nothing was started"
    );
    assert_eq!(
        ConfigErrors(vec![whole]).to_string(),
        "config/modules.yaml: missing\n  hint: create it"
    );
}

#[test]
fn isolation_and_supervision_take_documented_defaults() {
    let modules = "modules:\n  - name: mod-a\n";
    let config = Fixture::with(None, Some(modules)).load();
    let module = &config.modules[0];
    assert_eq!(module.isolation, Isolation::InProcess);
    assert_eq!(module.supervision, Supervision::default());
    assert_eq!(module.supervision.restart, RestartPolicy::OnFailure);
    assert_eq!(module.supervision.max_restarts, 5);
    assert_eq!(module.supervision.restart_window, Duration::from_secs(60));
    assert_eq!(module.supervision.heartbeat, Duration::from_secs(5));
}

#[test]
fn isolation_and_supervision_are_read() {
    let modules = "\
modules:
  - name: mod-a
    isolation: process
    restart: always
    max_restarts: 2
    restart_window: 10s
    heartbeat: 500ms
  - name: mod-b
    isolation: in-process
    restart: never
";
    let config = Fixture::with(None, Some(modules)).load();
    let [a, b] = &config.modules[..] else {
        panic!("two modules: {:?}", config.modules);
    };
    assert_eq!(a.isolation, Isolation::Process);
    assert_eq!(
        a.supervision,
        Supervision {
            restart: RestartPolicy::Always,
            max_restarts: 2,
            restart_window: Duration::from_secs(10),
            heartbeat: Duration::from_millis(500),
        }
    );
    assert_eq!(b.isolation, Isolation::InProcess);
    assert_eq!(b.supervision.restart, RestartPolicy::Never);
}

#[test]
fn unknown_isolation_and_restart_values_are_errors_with_their_place() {
    let fixture = Fixture::with(
        None,
        Some(
            "modules:\n  - name: mod-a\n    isolation: container\n    restart: sometimes\n    max_restarts: 0\n    heartbeat: soon\n",
        ),
    );
    let errors = fixture.errors().to_string();
    let file = fixture.file("modules.yaml");
    assert!(
        errors.contains(&format!(
            "{file}:3:16: `isolation` must be `in-process` or `process`, found `container`"
        )),
        "{errors}"
    );
    assert!(
        errors.contains(&format!(
            "{file}:4:14: `restart` must be `always`, `on-failure` or `never`, found `sometimes`"
        )),
        "{errors}"
    );
    assert!(
        errors.contains(&format!(
            "{file}:5:19: `max_restarts` must be a whole number"
        )),
        "{errors}"
    );
    assert!(errors.contains(&format!("{file}:6:16:")), "{errors}");
}
