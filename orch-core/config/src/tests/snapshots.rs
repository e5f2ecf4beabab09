//! Snapshots of whole error texts, exactly as a user reads them: file, line,
//! column, message, snippet and hint. The temporary folder is shown as
//! `<dir>`. Regenerate with `UPDATE_EXPECT=1 cargo test -p orch-config`.

use expect_test::{Expect, expect};

use super::*;

/// Loads the fixture's configuration with `env` and checks the full text of
/// the errors, the fixture's folder replaced by `<dir>`.
fn check_errors(fixture: &Fixture, env: &dyn Fn(&str) -> Option<String>, expected: Expect) {
    let errors = fixture.load_env(env).expect_err("invalid configuration");
    expected.assert_eq(&normalized(fixture, &errors));
}

/// `errors` displayed, with the fixture's folder replaced by `<dir>`.
fn normalized(fixture: &Fixture, errors: &ConfigErrors) -> String {
    let dir = fixture.dir.path().display().to_string();
    let text = errors.to_string();
    assert!(text.contains(&dir), "the errors name their files: {text}");
    text.replace(&dir, "<dir>")
}

#[test]
fn yaml_syntax_error() {
    let fixture = Fixture::with(None, Some("modules:\n  - name: mod-a\n   enabled: true\n"));
    check_errors(
        &fixture,
        &no_env,
        expect![[r#"
        <dir>/config/modules.yaml:3:4: while parsing a block collection, did not find expected '-' indicator
          1 | modules:
          2 |   - name: mod-a
          3 |    enabled: true
            |    ^ while parsing a block collection, did not find expected '-' indicator
          hint: fix the YAML here: indent nested keys with spaces (no tabs) by the same amount, close every quote and bracket, and quote values that contain `: ` or start with `{`, `[` or `*`"#]],
    );
}

#[test]
fn unknown_key_with_a_suggestion() {
    let fixture = Fixture::with(
        Some("app:\n  name: demo\ntimeouts:\n  initialise: 5s\n"),
        Some("modules: []\n"),
    );
    check_errors(
        &fixture,
        &no_env,
        expect![[r#"
            <dir>/config/main.yaml:4:3: unknown key `initialise`
              2 |   name: demo
              3 | timeouts:
              4 |   initialise: 5s
                |   ^ unknown field `initialise`, expected one of load, initialize, start, event, shutdown, reload, build, publish, shutdown_total, test
              hint: did you mean `initialize`? known keys here: load, initialize, start, event, shutdown, reload, build, publish, shutdown_total, test"#]],
    );
}

#[test]
fn wrong_types() {
    let fixture = Fixture::with(
        None,
        Some("modules:\n  - name: mod-a\n    config: 5\n    max_restarts: many\n"),
    );
    check_errors(
        &fixture,
        &no_env,
        expect![[r#"
        <dir>/config/modules.yaml:3:13: `config` must be a mapping of settings, found `5`
          hint: write the module's settings as `key: value` lines indented under `config:`
        <dir>/config/modules.yaml:4:19: `max_restarts` must be a whole number of at least 1, found `many`
          hint: write for example `max_restarts: 4`
        2 configuration errors; nothing was started"#]],
    );
    fixture.write(
        "config/modules.yaml",
        "modules:\n  - name: mod-a\n    depends_on: mod-b\n  - name: mod-b\n",
    );
    check_errors(
        &fixture,
        &no_env,
        expect![[r#"
        <dir>/config/modules.yaml:3:17: expected sequence start
          1 | modules:
          2 |   - name: mod-a
          3 |     depends_on: mod-b
            |                 ^ expected sequence start
          4 |   - name: mod-b
          hint: a list is expected here: one `- item` per line, or `[a, b]`"#]],
    );
}

#[test]
fn missing_required_name_and_missing_file() {
    let fixture = Fixture::with(
        None,
        Some("modules:\n  - package: mod-a\n    enabled: true\n"),
    );
    check_errors(
        &fixture,
        &no_env,
        expect![[r#"
        <dir>/config/modules.yaml:2:5: module entry has no `name`
          hint: add `name: <module>`; the name is also the cargo package unless `package:` or `path:` says otherwise"#]],
    );
    check_errors(
        &Fixture::new(),
        &no_env,
        expect![[r#"
        <dir>/config/modules.yaml: modules.yaml not found: it lists the modules to run
          hint: create it; the file lists the modules to run, for example:
                modules:
                  - name: mod-dummy-consumer     # a cdylib package of the workspace
                  - name: mod-dummy-producer
                    config:                      # the module's own settings
                      publish_interval: 1s"#]],
    );
}

#[test]
fn unknown_package_without_a_close_match() {
    let fixture = Fixture::with(
        None,
        Some("modules:\n  - name: billing\n  - name: mod-a\n    package: mod-zzz\n"),
    );
    check_errors(
        &fixture,
        &no_env,
        expect![[r#"
        <dir>/config/modules.yaml:2:11: no package `billing` in the workspace
          hint: cdylib packages of this workspace: mod-test-module, mod-dummy-producer, mod-dummy-consumer, mod-a, mod-b, mod-c; a module's package is its `name` unless `package:` or `path:` is set
        <dir>/config/modules.yaml:4:14: no package `mod-zzz` in the workspace
          hint: cdylib packages of this workspace: mod-test-module, mod-dummy-producer, mod-dummy-consumer, mod-a, mod-b, mod-c
        2 configuration errors; nothing was started"#]],
    );
}

#[test]
fn dependency_cycle() {
    let modules = "\
modules:
  - name: mod-a
    depends_on: [mod-c]
  - name: mod-b
    depends_on: [mod-a]
  - name: mod-c
    depends_on:
      - mod-b
";
    let fixture = Fixture::with(None, Some(modules));
    check_errors(
        &fixture,
        &no_env,
        expect![[r#"
        <dir>/config/modules.yaml:3:18: dependency cycle: mod-a -> mod-c -> mod-b -> mod-a
          hint: modules start after the modules they depend on, so a cycle can never start: remove one of these dependencies"#]],
    );
}

#[test]
fn undefined_variable() {
    let modules = "\
modules:
  - name: mod-a
    config:
      url: postgres://${DB_HOST}:${DB_PORT}/app
";
    let fixture = Fixture::with(None, Some(modules));
    check_errors(
        &fixture,
        &test_env,
        expect![[r#"
        <dir>/config/modules.yaml:4:34: environment variable `DB_PORT` is not set
          hint: set DB_PORT in the environment or in the workspace .env file, or write ${DB_PORT:-default}"#]],
    );
}

#[test]
fn several_errors_in_both_files() {
    let main = "\
app:
  nmae: demo
timeouts:
  load: soon
logging:
  format: jsn
";
    let modules = "\
modules:
  - name: mod-a
    enabled: yes please
  - name: mod-a
  - name: mod-b
    depends_on: [mod-x]
";
    let fixture = Fixture::with(Some(main), Some(modules));
    // The unknown key stops the checks of main.yaml: `load: soon` and
    // `format: jsn` are not reported until it is fixed.
    check_errors(
        &fixture,
        &no_env,
        expect![[r#"
        <dir>/config/main.yaml:2:3: unknown key `nmae`
          1 | app:
          2 |   nmae: demo
            |   ^ unknown field `nmae`, expected one of name, version
          3 | timeouts:
          4 |   load: soon
          hint: did you mean `name`? known keys here: name, version
        <dir>/config/modules.yaml:3:14: `enabled` must be true or false, found `yes please`
          hint: write `enabled: true` or `enabled: false`
        <dir>/config/modules.yaml:4:11: module `mod-a` is declared twice (first declared at line 2)
          hint: module names must be unique: remove one entry or rename it (two modules may share a `package`)
        <dir>/config/modules.yaml:6:18: module `mod-b` depends on unknown module `mod-x`
          hint: did you mean `mod-a`? `depends_on` lists module names declared in this file: mod-a, mod-b
        4 configuration errors; nothing was started"#]],
    );
}

#[test]
fn malformed_dotenv_comes_first() {
    let fixture = Fixture::with(
        None,
        Some("modules:\n  - name: mod-a\n    config:\n      a: ${ORCH_CONFIG_SNAPSHOT_UNSET}\n"),
    );
    fixture.write(".env", "GOOD=1\nBAD LINE\n");
    let errors = load(&fixture.config_dir(), &fixture.workspace).expect_err("invalid");
    expect![[r#"
        <dir>/.env:2: cannot read the .env file: Error parsing line: 'BAD LINE', error at line index: 4
          hint: write one `NAME=value` per line; quote values that contain spaces or `#`
        <dir>/config/modules.yaml:4:10: environment variable `ORCH_CONFIG_SNAPSHOT_UNSET` is not set
          hint: set ORCH_CONFIG_SNAPSHOT_UNSET in the environment or in the workspace .env file, or write ${ORCH_CONFIG_SNAPSHOT_UNSET:-default}
        2 configuration errors; nothing was started"#]].assert_eq(&normalized(&fixture, &errors));
}
