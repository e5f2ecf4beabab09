//! `isolation` and supervision settings of a module.

use std::time::Duration;

use super::*;

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
