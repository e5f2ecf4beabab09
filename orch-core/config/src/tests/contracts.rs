//! `publishes:` and `subscribes:`: a module's topic contract.

use super::*;

#[test]
fn a_contract_is_read_and_an_absent_one_allows_anything() {
    let modules = "\
modules:
  - name: mod-a
    publishes: [\"sensor.>\", sensor.temp, \"sensor.>\"]
    subscribes: []
  - name: mod-b
";
    let config = Fixture::with(None, Some(modules)).load();
    let [a, b] = &config.modules[..] else {
        panic!("two modules: {:?}", config.modules);
    };
    assert_eq!(
        a.contract.publishes.as_deref(),
        Some(&["sensor.>".to_owned(), "sensor.temp".to_owned()][..]),
        "duplicates are kept once"
    );
    assert_eq!(
        a.contract.subscribes.as_deref(),
        Some(&[][..]),
        "nothing allowed"
    );
    assert_eq!(b.contract, Contract::default());
}

#[test]
fn bad_entries_are_errors_at_their_place() {
    let fixture = Fixture::with(
        None,
        Some(
            "modules:\n  - name: mod-a\n    publishes: [module.x, \"a.>.b\"]\n    subscribes: [\"*.ok\", \"\"]\n",
        ),
    );
    let errors = fixture.errors().to_string();
    assert!(errors.contains("modules.yaml:3"), "{errors}");
    assert!(
        errors.contains("`publishes` entry 'module.x' is in the host's namespace 'module.*'"),
        "{errors}"
    );
    assert!(
        errors.contains("`publishes` entry 'a.>.b' is not a topic pattern"),
        "{errors}"
    );
    assert!(errors.contains("modules.yaml:4"), "{errors}");
    assert!(
        errors.contains("`subscribes` entry '' is not a topic pattern"),
        "{errors}"
    );
    assert!(!errors.contains("'*.ok'"), "{errors}");
}
