//! Environments (`--env prod`): `config/prod/main.yaml` and
//! `config/prod/modules.yaml` layered over the base files, every error named
//! in the file (and at the line) its value comes from.

use std::time::Duration;

use serde_json::json;

use super::*;

const MODULES: &str = "modules:\n  - name: mod-a\n  - name: mod-b\n";

/// A main.yaml of 40 lines: 36 comment lines, then `timeouts:` (line 37),
/// `load: 3s` (38), `build: 10m` (39) and `hot_reload: false` (40).
fn long_main() -> String {
    let mut text: String = (1..=36).map(|i| format!("# base line {i}\n")).collect();
    text.push_str("timeouts:\n  load: 3s\n  build: 10m\nhot_reload: false\n");
    assert_eq!(text.lines().count(), 40);
    text
}

/// The fixture's path of `relative` inside `config/`, displayed.
fn path(fixture: &Fixture, relative: &str) -> String {
    fixture.config_dir().join(relative).display().to_string()
}

#[test]
fn an_overlay_changes_one_timeout_and_keeps_the_others() {
    let fixture = Fixture::with(Some(&long_main()), Some(MODULES));
    fixture.write("config/prod/main.yaml", "timeouts: {build: 20m}\n");
    let config = fixture.load_in("prod", &no_env).expect("valid");
    let timeouts = config.main.timeouts;
    assert_eq!(timeouts.build, Duration::from_secs(1200));
    assert_eq!(timeouts.load, Duration::from_secs(3), "kept from the base");
    assert_eq!(
        timeouts.start,
        Timeouts::default().start,
        "still the default"
    );
    assert!(!config.main.hot_reload);
    assert_eq!(config.environment.as_deref(), Some("prod"));
    assert_eq!(config.config_dir, fixture.config_dir());
    let base = fixture.load();
    assert_eq!(base.environment, None);
    assert_eq!(base.main.timeouts.build, Duration::from_secs(600));
}

#[test]
fn sections_merge_key_by_key_and_lists_are_replaced() {
    let main = "\
logging: {level: debug, format: json}
bridge:
  nats:
    url: nats://base:4222
    export: [\"a.>\"]
    import: [\"b.>\"]
";
    let fixture = Fixture::with(Some(main), Some(MODULES));
    fixture.write(
        "config/prod/main.yaml",
        "logging:\n  level: warn\nbridge:\n  nats:\n    export: [\"c.>\"]\n",
    );
    let config = fixture.load_in("prod", &no_env).expect("valid");
    assert_eq!(config.main.logging.level, "warn");
    assert_eq!(config.main.logging.format, LogFormat::Json);
    let nats = config.main.bridge.expect("bridge").nats;
    assert_eq!(nats.servers, ["nats://base:4222"]);
    assert_eq!(nats.export, ["c.>"]);
    assert_eq!(nats.import, ["b.>"]);
}

#[test]
fn an_overlay_without_a_base_main_yaml_is_layered_over_the_defaults() {
    let fixture = Fixture::with(None, Some(MODULES));
    fixture.write("config/dev/main.yaml", "hot_reload: true\n");
    let config = fixture.load_in("dev", &no_env).expect("valid");
    assert!(config.main.hot_reload);
    assert_eq!(config.main.timeouts, Timeouts::default());
    // A folder with neither file is an environment that changes nothing.
    std::fs::create_dir(fixture.config_dir().join("plain")).expect("folder");
    let config = fixture.load_in("plain", &no_env).expect("valid");
    assert_eq!(config.main, fixture.load().main);
}

#[test]
fn an_overlay_changes_a_module_config_key_and_keeps_the_others() {
    let modules = "\
modules:
  - name: mod-a
    config:
      interval: 1s
      url: http://base
      nested: {a: 1, b: 2}
      list: [1, 2]
    depends_on: [mod-b]
  - name: mod-b
";
    let fixture = Fixture::with(None, Some(modules));
    fixture.write(
        "config/prod/modules.yaml",
        "modules:\n  - name: mod-a\n    config:\n      interval: 5s\n      nested: {b: 3}\n      list: [9]\n",
    );
    let config = fixture.load_in("prod", &no_env).expect("valid");
    let module = config.module("mod-a").expect("mod-a");
    assert_eq!(
        module.config,
        json!({"interval": "5s", "url": "http://base", "nested": {"a": 1, "b": 3}, "list": [9]})
    );
    assert_eq!(module.depends_on, ["mod-b"], "kept from the base");
    assert_eq!(module.line, 2, "the entry's line in the base file");
}

#[test]
fn an_overlay_disables_a_module() {
    let fixture = Fixture::with(None, Some(MODULES));
    fixture.write(
        "config/prod/modules.yaml",
        "modules:\n  - name: mod-b\n    enabled: false\n    max_restarts: 9\n",
    );
    let config = fixture.load_in("prod", &no_env).expect("valid");
    assert_eq!(names(&config.startup_order()), ["mod-a"]);
    let module = config.module("mod-b").expect("still declared");
    assert!(!module.enabled);
    assert_eq!(module.supervision.max_restarts, 9);
    assert_eq!(names(&fixture.load().startup_order()), ["mod-a", "mod-b"]);
}

#[test]
fn a_bad_value_in_the_overlay_is_reported_at_the_overlay_line() {
    // Line 3 of a 3-line overlay over a 40-line base: a wrong offset would
    // name the base file, or line 43, or line 0.
    let fixture = Fixture::with(Some(&long_main()), Some(MODULES));
    fixture.write(
        "config/prod/main.yaml",
        "# prod: slower builds\ntimeouts:\n  build: soon\n",
    );
    assert_eq!(
        fixture
            .load_in("prod", &no_env)
            .expect_err("invalid")
            .to_string(),
        format!(
            "{}:3:10: `timeouts.build`: 'soon' is not a duration; write for example 250ms, \
             1.5s, 2m or 1h\n  hint: a duration is a number with a unit (ms, s, m or h), or a \
             plain number of seconds",
            path(&fixture, "prod/main.yaml")
        )
    );
}

#[test]
fn errors_of_both_files_name_their_own_file_base_first() {
    let mut main = long_main();
    main = main.replace("hot_reload: false", "hot_reload: maybe");
    let fixture = Fixture::with(Some(&main), Some(MODULES));
    fixture.write(
        "config/prod/main.yaml",
        "timeouts:\n  load: 0s\nlogging: {format: jsn}\n",
    );
    let errors = fixture.load_in("prod", &no_env).expect_err("invalid");
    let found: Vec<(String, Option<u32>, Option<u32>)> = errors
        .0
        .iter()
        .map(|e| (e.file.display().to_string(), e.line, e.column))
        .collect();
    assert_eq!(
        found,
        [
            (path(&fixture, "main.yaml"), Some(40), Some(13)),
            (path(&fixture, "prod/main.yaml"), Some(2), Some(9)),
            (path(&fixture, "prod/main.yaml"), Some(3), Some(19)),
        ]
    );
}

#[test]
fn a_syntax_error_in_the_overlay_shows_its_path_line_and_snippet() {
    let fixture = Fixture::with(Some(&long_main()), Some(MODULES));
    fixture.write("config/prod/main.yaml", "timeouts:\n  build: [20m\n");
    let error = fixture.load_in("prod", &no_env).expect_err("invalid");
    assert_eq!(error.0.len(), 1, "{error}");
    assert_eq!(error.0[0].file, fixture.config_dir().join("prod/main.yaml"));
    assert_eq!(error.0[0].line, Some(2), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("2 |   build: [20m"),
        "snippet in the overlay's lines: {text}"
    );
    assert!(!text.contains("42 |"), "{text}");
    // The same in modules.yaml, whose overlay is parsed the same way.
    fixture.write("config/prod/main.yaml", "");
    fixture.write("config/prod/modules.yaml", "modules:\n  - name: \"mod-a\n");
    let error = fixture.load_in("prod", &no_env).expect_err("invalid");
    assert!(
        error.to_string().starts_with(&format!(
            "{}:2:11: unclosed quote",
            path(&fixture, "prod/modules.yaml")
        )),
        "{error}"
    );
}

#[test]
fn an_unknown_key_in_the_overlay_is_refused_with_a_suggestion() {
    let fixture = Fixture::with(Some(&long_main()), Some(MODULES));
    fixture.write("config/prod/main.yaml", "timeouts:\n  biuld: 20m\n");
    let error = fixture.load_in("prod", &no_env).expect_err("invalid");
    let text = error.to_string();
    assert!(
        text.starts_with(&format!(
            "{}:2:3: unknown key `biuld`",
            path(&fixture, "prod/main.yaml")
        )),
        "{text}"
    );
    assert!(text.contains("did you mean `build`?"), "{text}");
    fixture.write("config/prod/main.yaml", "");
    fixture.write(
        "config/prod/modules.yaml",
        "modules:\n  - name: mod-a\n    enabeld: false\n",
    );
    let text = fixture
        .load_in("prod", &no_env)
        .expect_err("invalid")
        .to_string();
    assert!(
        text.contains("prod/modules.yaml:3:5: unknown key `enabeld`"),
        "{text}"
    );
}

#[test]
fn an_overlay_cannot_declare_a_module() {
    let fixture = Fixture::with(None, Some(MODULES));
    fixture.write(
        "config/prod/modules.yaml",
        "modules:\n  - name: mod-aa\n    enabled: false\n  - enabled: true\n",
    );
    let errors = fixture.load_in("prod", &no_env).expect_err("invalid");
    assert_eq!(errors.0.len(), 2, "{errors}");
    let unknown = &errors.0[0];
    assert_eq!(
        (unknown.file.clone(), unknown.line, unknown.column),
        (
            fixture.config_dir().join("prod/modules.yaml"),
            Some(2),
            Some(11)
        )
    );
    assert_eq!(
        unknown.message,
        format!(
            "module `mod-aa` is not declared in {}",
            fixture.file("modules.yaml")
        )
    );
    assert!(
        unknown.hint.starts_with("did you mean `mod-a`? "),
        "{}",
        unknown.hint
    );
    assert!(
        unknown.hint.contains("it does not declare new ones"),
        "{}",
        unknown.hint
    );
    assert!(
        unknown.hint.contains(&format!(
            "modules of {}: mod-a, mod-b",
            fixture.file("modules.yaml")
        )),
        "{}",
        unknown.hint
    );
    let nameless = &errors.0[1];
    assert_eq!((nameless.line, nameless.column), (Some(4), Some(5)));
    assert_eq!(nameless.message, "module entry has no `name`");
}

#[test]
fn a_module_changed_twice_is_an_error() {
    let fixture = Fixture::with(None, Some(MODULES));
    fixture.write(
        "config/prod/modules.yaml",
        "modules:\n  - name: mod-a\n  - name: mod-b\n  - name: mod-a\n",
    );
    let errors = fixture.load_in("prod", &no_env).expect_err("invalid");
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].line, Some(4));
    assert_eq!(
        errors.0[0].message,
        "module `mod-a` is changed twice in this file (first at line 2)"
    );
}

#[test]
fn module_values_from_the_overlay_are_placed_in_the_overlay() {
    let modules = "\
modules:
  - name: mod-a
    config:
      url: ${PROD_URL}
      user: ${DB_USER}
  - name: mod-b
";
    let fixture = Fixture::with(None, Some(modules));
    // The overlay replaces `url`, so the base's unset PROD_URL is no error;
    // DB_USER (base) and DB_HOST_X (overlay) are.
    fixture.write(
        "config/dev/modules.yaml",
        "modules:\n  - name: mod-a\n    config:\n      url: http://${DB_HOST_X}\n    max_restarts: lots\n",
    );
    let errors = fixture.load_in("dev", &no_env).expect_err("invalid");
    let found: Vec<(String, Option<u32>, Option<u32>, &str)> = errors
        .0
        .iter()
        .map(|e| {
            (
                e.file.display().to_string(),
                e.line,
                e.column,
                e.message.as_str(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                path(&fixture, "modules.yaml"),
                Some(5),
                Some(13),
                "environment variable `DB_USER` is not set"
            ),
            (
                path(&fixture, "dev/modules.yaml"),
                Some(4),
                Some(19),
                "environment variable `DB_HOST_X` is not set"
            ),
            (
                path(&fixture, "dev/modules.yaml"),
                Some(5),
                Some(19),
                "`max_restarts` must be a whole number of at least 1, found `lots`"
            ),
        ]
    );
}

#[test]
fn secrets_of_the_overlay_are_collected() {
    let fixture = Fixture::with(
        Some("bridge:\n  nats:\n    url: nats://h:4222\n    export: [a]\n"),
        Some("modules:\n  - name: mod-a\n    config:\n      api_key: base-key-123\n"),
    );
    fixture.write(
        "config/prod/modules.yaml",
        "modules:\n  - name: mod-a\n    config:\n      api_key: prod-key-456\n      db: postgres://u:${DB_PASSWORD}@db\n",
    );
    fixture.write(
        "config/prod/main.yaml",
        "bridge:\n  nats:\n    auth: {token: prod-token-789}\n",
    );
    let config = fixture.load_in("prod", &test_env).expect("valid");
    for secret in ["prod-key-456", "hunter22", "prod-token-789"] {
        assert!(
            config.secrets.contains(&secret.to_owned()),
            "{secret}: {config:?}"
        );
    }
    assert_eq!(
        config.modules[0].redacted_config(),
        json!({"api_key": "***", "db": "postgres://u:***@db"})
    );
}

#[test]
fn a_missing_environment_lists_the_existing_ones() {
    let fixture = Fixture::with(None, Some(MODULES));
    let missing = fixture.load_in("prod", &no_env).expect_err("no folder");
    assert_eq!(
        missing.to_string(),
        format!(
            "{}: environment `prod` not found: the folder does not exist\n  hint: {} has no \
             environments yet: create the folder {} with a main.yaml and/or a modules.yaml \
             holding what this environment changes in the base files",
            path(&fixture, "prod"),
            fixture.config_dir().display(),
            path(&fixture, "prod"),
        )
    );
    fixture.write("config/staging/modules.yaml", "modules: []\n");
    fixture.write("config/dev/main.yaml", "hot_reload: true\n");
    std::fs::create_dir(fixture.config_dir().join("empty")).expect("folder");
    let errors = fixture.load_in("stagin", &no_env).expect_err("no folder");
    assert_eq!(errors.0.len(), 1);
    let error = &errors.0[0];
    assert_eq!(error.file, fixture.config_dir().join("stagin"));
    assert_eq!(
        error.message,
        "environment `stagin` not found: the folder does not exist"
    );
    assert_eq!(
        error.hint,
        format!(
            "did you mean `staging`? environments in {}: dev, staging (the sub-folders holding \
             a main.yaml or modules.yaml)",
            fixture.config_dir().display()
        )
    );
    assert_eq!(environments(&fixture.config_dir()), ["dev", "staging"]);
    fixture.write("config/notes", "not a folder");
    let error = fixture.load_in("notes", &no_env).expect_err("a file");
    assert_eq!(
        error.0[0].message,
        "environment `notes`: this is not a folder"
    );
}

#[test]
fn an_environment_name_must_be_a_plain_folder_name() {
    let fixture = Fixture::with(None, Some(MODULES));
    fixture.write("config/prod/main.yaml", "");
    for bad in ["../config/prod", "prod/", "", "pro d"] {
        let errors = fixture.load_in(bad, &no_env).expect_err("bad name");
        assert_eq!(errors.0.len(), 1, "{bad}");
        assert_eq!(errors.0[0].file, fixture.config_dir(), "{bad}");
        assert_eq!(
            errors.0[0].message,
            format!("`{}` is not an environment name", bad.escape_debug())
        );
        assert!(
            errors.0[0]
                .hint
                .contains("ASCII letters, digits, `-` and `_` only"),
            "{}",
            errors.0[0].hint
        );
    }
}
