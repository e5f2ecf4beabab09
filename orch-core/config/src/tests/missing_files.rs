//! Missing or empty files: the expected shape is shown.

use super::*;

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
