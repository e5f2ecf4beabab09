//! The supervisor's lifecycle through scripted fake generations
//! (`crate::testing`): start order, failures named by module, phase and
//! cause, phase timeouts, reload with hand-over and rollback, shutdown, in
//! milliseconds each. What needs a real library or a real child process is
//! tested end to end (`tests/e2e/`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use orch_config::{ModuleSpec, Timeouts};

use super::{StartupReport, Supervisor};
use crate::bus::Bus;
use crate::error::ModuleFailure;
use crate::testing::{Entry, FakeOpener, Journal, Script};

mod reload;
mod start;
mod stop;

/// Every phase's timeout: a fake's call takes microseconds, a hanging one
/// is given up after this.
const LIMIT: Duration = Duration::from_millis(150);

/// How long a test waits for something asynchronous (an event handled) that
/// takes milliseconds: only a machine under heavy load gets near it.
const SOON: Duration = Duration::from_secs(5);

fn timeouts() -> Timeouts {
    Timeouts {
        load: LIMIT,
        initialize: LIMIT,
        start: LIMIT,
        event: LIMIT,
        shutdown: LIMIT,
        reload: LIMIT,
        publish: LIMIT,
        ..Timeouts::default()
    }
}

/// The entry of module `name` in modules.yaml, package of the same name.
fn spec(name: &str) -> ModuleSpec {
    ModuleSpec {
        name: name.into(),
        package: name.into(),
        enabled: true,
        config: serde_json::json!({}),
        line: 1,
        ..ModuleSpec::default()
    }
}

/// The (fake) library of version `version` of module `name`.
fn artifact(name: &str, version: u32) -> PathBuf {
    PathBuf::from(format!("/fake/{name}-v{version}.so"))
}

/// A supervisor whose generations are fakes, with a journal of their calls
/// and of the host events on its bus.
struct Harness {
    supervisor: Supervisor,
    opener: Arc<FakeOpener>,
    journal: Journal,
    bus: Bus,
}

impl Harness {
    fn new() -> Self {
        let journal = Journal::new();
        let bus = Bus::new();
        journal.observe(&bus);
        let opener = FakeOpener::new(&journal);
        let supervisor = Supervisor::with_opener(bus.clone(), opener.clone(), timeouts());
        Self {
            supervisor,
            opener,
            journal,
            bus,
        }
    }

    /// Generation `generation` of `module` follows `script`.
    fn script(&self, module: &str, generation: u32, script: Script) {
        self.opener.script(module, generation, script);
    }

    /// Starts `names` in this order, each from its version 1.
    fn start(&mut self, names: &[&str]) -> StartupReport {
        let specs: Vec<ModuleSpec> = names.iter().map(|n| spec(n)).collect();
        let modules: Vec<&ModuleSpec> = specs.iter().collect();
        let artifacts: HashMap<String, PathBuf> = names
            .iter()
            .map(|n| (n.to_string(), artifact(n, 1)))
            .collect();
        self.supervisor.start(&modules, &artifacts)
    }

    /// Publishes `payload` on `topic` as the host; how many took it.
    fn publish(&self, topic: &str, payload: &str) -> usize {
        self.bus
            .publish(topic, payload, None)
            .expect("the publish is accepted")
    }

    /// Waits until `module` has handled `count` events in all.
    fn wait_handled(&self, module: &str, count: usize) {
        self.journal
            .wait_until(&format!("{module} handles {count} events"), SOON, |j| {
                j.handled(module).len() >= count
            });
    }
}

/// The one failure of a report.
fn only(failures: &[ModuleFailure]) -> &ModuleFailure {
    match failures {
        [failure] => failure,
        _ => panic!("one failure expected: {failures:#?}"),
    }
}

/// Lifecycle calls and the host's own lifecycle events, no traffic.
fn lifecycle_and_announcements(entry: &Entry) -> bool {
    use crate::testing::Call;
    match entry {
        Entry::Call { call, .. } => !matches!(call, Call::Event { .. } | Call::Settle),
        Entry::Bus { topic, .. } => [
            "app.started",
            "app.shutdown",
            "module.loaded",
            "module.unloaded",
            "module.reloaded",
            "module.reload_failed",
        ]
        .contains(&topic.as_str()),
    }
}
