//! Startup order: declared order refined by `depends_on`.

use super::*;

#[test]
fn startup_order_follows_depends_on_stably() {
    let modules = "\
modules:
  - name: mod-c
    depends_on: [mod-b]
  - name: mod-a
  - name: mod-test-module
    enabled: false
  - name: mod-b
    depends_on: [mod-a]
  - name: mod-dummy-consumer
";
    let config = Fixture::with(None, Some(modules)).load();
    assert_eq!(
        names(&config.startup_order()),
        ["mod-a", "mod-b", "mod-c", "mod-dummy-consumer"]
    );
    assert_eq!(config.modules.len(), 5);
    assert!(config.module("mod-test-module").is_some());
    assert!(config.module("nope").is_none());
}
