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

#[test]
fn subscriptions_past_the_limit_are_refused_with_the_limit_named() {
    let bus = Bus::new();
    let mailbox = crate::actor::Mailbox::with_defaults("greedy");
    let sink: Arc<dyn EventSink> = mailbox.sink();
    let id = bus.register(sink.clone());
    let module = ModuleHostCtx::new(
        "greedy".into(),
        id,
        HostServices::new(bus.clone(), TimerService::new()),
        sink,
    );
    module.set_limits(ModuleLimits {
        subscriptions: 2,
        ..ModuleLimits::default()
    });
    module.subscribe("a.one").expect("first");
    module.subscribe("a.two").expect("second");
    module.subscribe("a.two").expect("one it holds already");
    let refused = module.subscribe("a.three").expect_err("third");
    assert!(
        refused.contains("holds 2 subscriptions, its limit: `limits.subscriptions: 2`"),
        "{refused}"
    );
    assert_eq!(bus.subscriptions_of(id).len(), 2);
    module.unsubscribe("a.one");
    module.subscribe("a.three").expect("room again");
}
