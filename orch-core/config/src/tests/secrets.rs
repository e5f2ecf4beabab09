//! Secrets: collected for scrubbing and redacted in debug output.

use serde_json::json;

use super::*;

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
            "url": "postgres://app:***@db",
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
