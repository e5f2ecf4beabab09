//! `mailbox:` (main.yaml defaults, modules.yaml per module), `max_event_bytes`
//! and `timeouts.publish`.

use super::*;

#[test]
fn mailbox_defaults_come_from_main_yaml_and_a_module_overrides_them() {
    let main = "mailbox:\n  capacity: 500\n  overflow: drop-oldest\nmax_event_bytes: 64KiB\ntimeouts:\n  publish: 250ms\n";
    let modules = "\
modules:
  - name: mod-a
  - name: mod-b
    mailbox: {overflow: fail}
  - name: mod-c
    mailbox:
      capacity: 20
";
    let config = Fixture::with(Some(main), Some(modules)).load();
    let [a, b, c] = &config.modules[..] else {
        panic!("three modules: {:?}", config.modules);
    };
    assert_eq!(
        (a.mailbox.capacity, a.mailbox.overflow),
        (500, Overflow::DropOldest)
    );
    assert_eq!(
        (b.mailbox.capacity, b.mailbox.overflow),
        (500, Overflow::Fail)
    );
    assert_eq!(
        (c.mailbox.capacity, c.mailbox.overflow),
        (20, Overflow::DropOldest)
    );
    assert_eq!(config.main.max_event_bytes, 64 * 1024);
    assert_eq!(
        config.main.timeouts.publish,
        std::time::Duration::from_millis(250)
    );
}

#[test]
fn without_settings_every_mailbox_is_bounded_and_blocks() {
    let config = Fixture::with(None, Some("modules:\n  - name: mod-a\n")).load();
    assert_eq!(config.modules[0].mailbox, MailboxSettings::default());
    assert_eq!(config.modules[0].mailbox.capacity, 10_000);
    assert_eq!(config.modules[0].mailbox.overflow, Overflow::Block);
    assert_eq!(config.main.max_event_bytes, 16 << 20);
    assert_eq!(
        config.main.timeouts.publish,
        std::time::Duration::from_secs(1)
    );
}

#[test]
fn bad_limits_are_named_at_their_line_with_the_choices() {
    let main = "mailbox:\n  overflow: drop-olderst\nmax_event_bytes: lots\n";
    let modules = "modules:\n  - name: mod-a\n    mailbox:\n      capacity: 0\n  - name: mod-b\n    mailbox: {capacity: 2000000}\n";
    let errors = Fixture::with(Some(main), Some(modules))
        .errors()
        .to_string();
    assert!(errors.contains("main.yaml:2"), "{errors}");
    assert!(
        errors.contains(
            "`mailbox.overflow` must be one of block, drop-oldest, drop-newest, fail, found `drop-olderst`"
        ),
        "{errors}"
    );
    assert!(errors.contains("did you mean `drop-oldest`?"), "{errors}");
    assert!(errors.contains("main.yaml:3"), "{errors}");
    assert!(
        errors.contains("`max_event_bytes` must be a size of at least 1 byte, found `lots`"),
        "{errors}"
    );
    assert!(errors.contains("modules.yaml:4"), "{errors}");
    assert!(
        errors.contains("`mailbox.capacity` must be a whole number of at least 1, found `0`"),
        "{errors}"
    );
    assert!(errors.contains("modules.yaml:6"), "{errors}");
    assert!(
        errors.contains("`mailbox.capacity` is 2000000, more than the limit of 1000000"),
        "{errors}"
    );
}

#[test]
fn a_circuit_breaker_default_comes_from_main_yaml_and_a_module_overrides_it() {
    let main = "circuit_breaker:\n  fail_max: 3\n";
    let modules =
        "modules:\n  - name: mod-a\n  - name: mod-b\n    circuit_breaker: {reset_timeout: 500ms}\n";
    let config = Fixture::with(Some(main), Some(modules)).load();
    let [a, b] = &config.modules[..] else {
        panic!("two modules: {:?}", config.modules);
    };
    let thirty = std::time::Duration::from_secs(30);
    assert_eq!(
        (a.circuit_breaker.fail_max, a.circuit_breaker.reset_timeout),
        (3, thirty)
    );
    assert_eq!(
        (b.circuit_breaker.fail_max, b.circuit_breaker.reset_timeout),
        (3, std::time::Duration::from_millis(500))
    );
    let errors = Fixture::with(
        None,
        Some("modules:\n  - name: mod-a\n    circuit_breaker: {fail_max: 0, reset_timeout: 0s}\n"),
    )
    .errors()
    .to_string();
    assert!(
        errors.contains("`circuit_breaker.fail_max` must be a whole number of at least 1"),
        "{errors}"
    );
    assert!(
        errors.contains("`circuit_breaker.reset_timeout` is zero"),
        "{errors}"
    );
}

#[test]
fn module_limits_default_from_main_yaml_and_each_key_can_be_overridden() {
    let main = "limits:\n  publish_rate: 2000\n  log_rate: 50\n";
    let modules = "\
modules:
  - name: mod-a
  - name: mod-b
    isolation: process
    limits: {memory_max: 256MiB, max_processes: 4, publish_rate: 10}
";
    let config = Fixture::with(Some(main), Some(modules)).load();
    let [a, b] = &config.modules[..] else {
        panic!("two modules: {:?}", config.modules);
    };
    assert_eq!(
        a.limits,
        ModuleLimits {
            publish_rate: 2000,
            log_rate: 50,
            ..ModuleLimits::default()
        }
    );
    assert_eq!(
        b.limits,
        ModuleLimits {
            publish_rate: 10,
            subscriptions: 1000,
            subscribe_rate: 1000,
            log_rate: 50,
            memory_max: Some(256 << 20),
            max_processes: Some(4),
        }
    );
}

#[test]
fn process_limits_of_an_in_process_module_and_a_tiny_memory_max_are_refused() {
    let modules = "\
modules:
  - name: mod-a
    limits:
      memory_max: 1GiB
  - name: mod-b
    isolation: process
    limits: {memory_max: 1MiB, max_processes: 0}
";
    let errors = Fixture::with(None, Some(modules)).errors().to_string();
    assert!(errors.contains("modules.yaml:4"), "{errors}");
    assert!(
        errors.contains(
            "`limits.memory_max` and `limits.max_processes` apply to isolated modules only"
        ),
        "{errors}"
    );
    assert!(errors.contains("add `isolation: process`"), "{errors}");
    assert!(errors.contains("modules.yaml:7"), "{errors}");
    assert!(
        errors.contains("`limits.memory_max` is 1048576 bytes, less than the 16 MiB"),
        "{errors}"
    );
    assert!(
        errors.contains("`limits.max_processes` must be a whole number of at least 1, found `0`"),
        "{errors}"
    );
}
