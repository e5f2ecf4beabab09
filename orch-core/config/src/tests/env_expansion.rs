//! `${VAR}` expansion: process env, `.env` and unset variables.

use serde_json::json;
use std::time::Duration;

use super::*;

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
