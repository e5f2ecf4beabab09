//! Module names and the packages they resolve to.

use super::*;

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
