//! YAML syntax errors, with line, column and snippet.

use super::*;

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
