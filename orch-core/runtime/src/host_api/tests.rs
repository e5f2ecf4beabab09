use super::*;
use orch_sdk::abi::HostApi;

#[test]
fn what_each_generation_leaks_stays_small() {
    // The table and its context are leaked once per generation (a reload).
    let leaked = std::mem::size_of::<HostApi>() + std::mem::size_of::<GenerationCtx>();
    assert!(leaked <= 160, "{leaked} bytes per generation");
}

#[test]
fn a_retired_or_gone_generation_is_told_it_has_stopped() {
    let timers = TimerService::new();
    let bus = Bus::new();
    let mailbox = crate::actor::Mailbox::with_defaults("sensor");
    let sink: Arc<dyn EventSink> = mailbox.sink();
    let module = Arc::new(ModuleHostCtx::new(
        "sensor".into(),
        SubscriberId(9),
        HostServices::new(bus, timers),
        sink,
    ));
    let first = GenerationCtx {
        module: Arc::downgrade(&module),
        name: "sensor".into(),
        generation: 1,
    };
    assert!(first.active().is_ok());
    module.set_active_generation(2);
    assert_eq!(
        first.active().err().as_deref(),
        Some("generation 1 of 'sensor' has stopped")
    );
    let second = GenerationCtx {
        module: Arc::downgrade(&module),
        name: "sensor".into(),
        generation: 2,
    };
    drop(module);
    assert_eq!(
        second.active().err().as_deref(),
        Some("generation 2 of 'sensor' has stopped")
    );
}
