//! The loader, the ABI check and the host functions against real module
//! libraries built by cargo from this workspace.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crossbeam_channel::{Receiver, unbounded};
use orch_cargo::{BuildRequest, Builder};
use orch_config::workspace::Workspace;
use orch_runtime::actor::Mailbox;
use orch_runtime::bus::{Bus, BusEvent, Delivery};
use orch_runtime::host_api::{HostServices, ModuleHostCtx};
use orch_runtime::loader::{Loader, ModuleInstance};
use orch_runtime::timers::TimerService;
use orch_runtime::{Cause, Phase};

const PACKAGES: [&str; 4] = [
    "mod-dummy-producer",
    "mod-dummy-consumer",
    "fixture-no-symbol",
    "fixture-abi-mismatch",
];

fn workspace() -> &'static Workspace {
    static WORKSPACE: OnceLock<Workspace> = OnceLock::new();
    WORKSPACE.get_or_init(|| {
        orch_cargo::discover_workspace(Path::new(env!("CARGO_MANIFEST_DIR"))).expect("workspace")
    })
}

/// Builds the test libraries once with the real builder.
fn artifacts() -> &'static HashMap<String, PathBuf> {
    static ARTIFACTS: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    ARTIFACTS.get_or_init(|| {
        let request = BuildRequest {
            packages: PACKAGES.iter().map(|p| p.to_string()).collect(),
            release: false,
            timeout: Duration::from_secs(600),
        };
        let output = Builder::new(workspace()).build(&request).expect("build");
        for package in PACKAGES {
            assert!(output.artifacts.contains_key(package), "{package} built");
        }
        output.artifacts
    })
}

struct Harness {
    bus: Bus,
    ctx: Arc<ModuleHostCtx>,
    loader: Loader,
    _dir: tempfile::TempDir,
}

fn harness(name: &str) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::new();
    let sink = Mailbox::with_defaults(name).sink();
    let id = bus.register(sink.clone());
    let ctx = Arc::new(ModuleHostCtx::new(
        name.into(),
        id,
        HostServices::new(bus.clone(), TimerService::new()),
        sink,
    ));
    let loader = Loader::new(dir.path()).unwrap();
    Harness {
        bus,
        ctx,
        loader,
        _dir: dir,
    }
}

impl Harness {
    fn load(&self, package: &str) -> Result<ModuleInstance, orch_runtime::ModuleFailure> {
        self.loader
            .load(package, &artifacts()[package], 1, Arc::clone(&self.ctx))
    }

    fn observe(&self, topic: &str) -> Receiver<Arc<BusEvent>> {
        let (tx, rx) = unbounded::<Arc<BusEvent>>();
        let id = self.bus.register(Arc::new(tx));
        self.bus.subscribe(id, topic).unwrap();
        rx
    }
}

#[test]
fn a_real_consumer_runs_its_lifecycle_across_the_abi() {
    let h = harness("mod-dummy-consumer");
    let mut consumer = h.load("mod-dummy-consumer").expect("loads");
    assert_eq!(consumer.declared().0, "mod-dummy-consumer");
    consumer.initialize(b"{}", None).expect("initialize");
    assert_eq!(h.bus.subscriptions_of(h.ctx.id), vec!["test.ping"]);

    let ping = br#"{"message":"hello","seq":7}"#;
    consumer
        .on_event(Delivery::from_host("test.ping", ping))
        .expect("handles a ping");
    consumer
        .on_event(Delivery::from_host("test.ping", ping))
        .expect("handles a ping");
    let err = consumer
        .on_event(Delivery::from_host("test.ping", br#"{"message":5}"#))
        .unwrap_err();
    assert!(
        matches!(&err, Cause::Error(text) if text.contains("test.ping")),
        "{err:?}"
    );
    assert_eq!(consumer.save_state().unwrap(), Some(b"2".to_vec()));
    consumer.shutdown().expect("shutdown");
}

#[test]
fn publishing_is_refused_until_the_host_allows_it() {
    let h = harness("mod-dummy-producer");
    let pings = h.observe("test.ping");
    let mut producer = h.load("mod-dummy-producer").expect("loads");
    producer
        .initialize(br#"{"publish_interval":"1h"}"#, None)
        .expect("initialize");
    let err = producer.start().unwrap_err();
    assert!(
        matches!(&err, Cause::Error(text) if text.contains("may not publish 'test.ping' yet")),
        "{err:?}"
    );
    h.ctx.drop_subscriptions_and_timers();
    h.ctx.set_may_publish(true);
    producer.start().expect("start");
    let event = pings.recv_timeout(Duration::from_secs(5)).expect("a ping");
    assert_eq!(event.source(), Some("mod-dummy-producer"));
    let ping: serde_json::Value = serde_json::from_slice(event.payload()).unwrap();
    assert_eq!(ping["message"], "hello");
}

#[test]
fn the_state_saved_by_one_generation_reaches_the_next() {
    let h = harness("mod-dummy-producer");
    h.ctx.set_may_publish(true);
    let pings = h.observe("test.ping");
    let mut old = h.load("mod-dummy-producer").expect("loads");
    old.initialize(br#"{"publish_interval":"1h"}"#, None)
        .unwrap();
    old.start().unwrap();
    let state = old.save_state().unwrap();
    assert_eq!(state.as_deref(), Some(&b"1"[..]));
    old.shutdown().unwrap();
    drop(old);
    h.ctx.drop_subscriptions_and_timers();

    let mut new = h
        .loader
        .load(
            "mod-dummy-producer",
            &artifacts()["mod-dummy-producer"],
            2,
            Arc::clone(&h.ctx),
        )
        .expect("second generation loads");
    assert_eq!(new.generation(), 2);
    h.ctx.set_active_generation(2);
    new.initialize(br#"{"publish_interval":"1h"}"#, state.as_deref())
        .unwrap();
    new.start().unwrap();
    let seqs: Vec<u64> = (0..2)
        .map(|_| {
            let event = pings.recv_timeout(Duration::from_secs(5)).unwrap();
            serde_json::from_slice::<serde_json::Value>(event.payload()).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        seqs,
        vec![1, 2],
        "the new generation continues the sequence"
    );
}

#[test]
fn a_library_without_the_entry_symbol_is_refused() {
    let h = harness("fixture-no-symbol");
    let failure = h.load("fixture-no-symbol").err().expect("refused");
    assert_eq!(failure.phase, Phase::AbiCheck);
    assert!(
        failure
            .cause
            .to_string()
            .contains("no symbol `orch_module_v1`"),
        "{failure}"
    );
    assert!(failure.hint.contains("export_module!"), "{failure}");
}

#[test]
fn a_library_of_another_abi_version_is_refused_with_both_versions() {
    let h = harness("fixture-abi-mismatch");
    let failure = h.load("fixture-abi-mismatch").err().expect("refused");
    assert_eq!(failure.phase, Phase::AbiCheck);
    let text = failure.to_string();
    assert!(text.contains("ABI v999"), "{text}");
    let ours = format!("ABI v{}", orch_sdk::abi::ABI_VERSION);
    assert!(text.contains(&ours), "{text}");
    assert!(text.contains("module 'fixture-abi-mismatch'"), "{text}");
}

fn spec(name: &str) -> orch_config::ModuleSpec {
    orch_config::ModuleSpec {
        name: name.into(),
        package: name.into(),
        enabled: true,
        config: serde_json::json!({ "publish_interval": "1h" }),
        depends_on: Vec::new(),
        test: Default::default(),
        line: 1,
        ..Default::default()
    }
}

#[test]
fn the_scratch_host_runs_a_whole_lifecycle_or_names_the_failing_phase() {
    let target = tempfile::tempdir().unwrap();
    let timeouts = orch_config::Timeouts::default();
    let ok = orch_runtime::load_check::run(
        &spec("mod-dummy-producer"),
        &artifacts()["mod-dummy-producer"],
        target.path(),
        timeouts,
    );
    assert!(ok.is_ok(), "{ok:?}");
    let failure = orch_runtime::load_check::run(
        &spec("fixture-abi-mismatch"),
        &artifacts()["fixture-abi-mismatch"],
        target.path(),
        timeouts,
    )
    .unwrap_err();
    assert_eq!(failure.phase, Phase::AbiCheck);
    assert_eq!(failure.module, "fixture-abi-mismatch");
}
