//! Unknown keys: suggestions and the list of known keys.

use super::*;

#[test]
fn unknown_key_suggests_the_closest_known_key() {
    let fixture = Fixture::with(None, Some("modules:\n  - name: mod-a\n    enabeld: true\n"));
    assert_eq!(
        fixture.error(),
        format!(
            "{}:3:5: unknown key `enabeld`\n  \
             1 | modules:\n  \
             2 |   - name: mod-a\n  \
             3 |     enabeld: true\n  \
             \x20 |     ^ unknown field `enabeld`, expected one of name, package, path, enabled, config, depends_on, test, isolation, restart, max_restarts, restart_window, heartbeat, publishes, subscribes, mailbox, circuit_breaker, limits, singleton\n  \
             hint: did you mean `enabled`? known keys here: name, package, path, enabled, config, depends_on, test, isolation, restart, max_restarts, restart_window, heartbeat, publishes, subscribes, mailbox, circuit_breaker, limits, singleton; \
             a module's own settings go under its `config:`",
            fixture.file("modules.yaml")
        )
    );
}

#[test]
fn unknown_key_in_main_yaml_suggests_within_its_section() {
    let fixture = Fixture::with(Some("timeouts:\n  initialise: 5s\n"), Some("modules: []\n"));
    let errors = fixture.errors();
    let error = &errors.0[0];
    assert_eq!((error.line, error.column), (Some(2), Some(3)));
    assert_eq!(
        error.message.lines().next(),
        Some("unknown key `initialise`")
    );
    assert!(
        error
            .hint
            .starts_with("did you mean `initialize`? known keys here: load, initialize"),
        "{}",
        error.hint
    );
}

#[test]
fn unknown_key_without_a_close_match_lists_the_known_keys() {
    let fixture = Fixture::with(None, Some("modules:\n  - name: mod-a\n    colour: blue\n"));
    let errors = fixture.errors();
    assert_eq!(
        errors.0[0].hint,
        "known keys here: name, package, path, enabled, config, depends_on, test, isolation, restart, max_restarts, restart_window, heartbeat, publishes, subscribes, mailbox, circuit_breaker, limits, singleton; \
         a module's own settings go under its `config:`"
    );
}
