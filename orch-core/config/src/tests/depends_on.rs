//! `depends_on`: unknown, self, disabled and cyclic dependencies.

use super::*;

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
