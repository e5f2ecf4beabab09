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

/// What `f` logs, as the fmt layer writes it (no colours).
pub(crate) fn logged(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Buffer(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = buffer.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn a_module_log_line_is_escaped_and_cut_to_the_cap() {
    let mailbox = crate::actor::Mailbox::with_defaults("chatty");
    let sink: Arc<dyn EventSink> = mailbox.sink();
    let module = ModuleHostCtx::new(
        "chatty".into(),
        SubscriberId(3),
        HostServices::new(Bus::new(), TimerService::new()),
        sink,
    );
    let forged = format!(
        "start\n2026-01-01T00:00:00Z ERROR forged\x1b[31m {}",
        "y".repeat(100_000)
    );
    let out = logged(|| module.log(3, &forged));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out:.300}");
    let line = lines[0];
    assert!(line.contains("[chatty] start\\n2026-01-01T00:00:00Z ERROR forged\\u{1b}[31m"));
    assert!(!line.contains('\x1b'));
    assert!(
        line.len() < crate::log_limit::MAX_LINE + 200,
        "{} bytes",
        line.len()
    );
    let prefix = "start\n2026-01-01T00:00:00Z ERROR forged\x1b[31m ";
    let escaped = crate::log_limit::escape_controls(prefix);
    let kept = prefix.len() + crate::log_limit::MAX_LINE - escaped.len();
    let cut = forged.len() - kept;
    assert!(
        line.ends_with(&format!("[... {cut} more bytes of this line cut]")),
        "{}",
        &line[line.len() - 80..]
    );
}

/// A module context on `bus` whose mailbox is the returned receiver.
fn module_on(
    bus: &Bus,
    services: &HostServices,
    name: &str,
) -> (
    Arc<ModuleHostCtx>,
    crossbeam_channel::Receiver<Arc<crate::bus::BusEvent>>,
) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let sink: Arc<dyn EventSink> = Arc::new(tx);
    let id = bus.register(Arc::clone(&sink));
    let ctx = ModuleHostCtx::new(name.into(), id, services.clone(), sink);
    (Arc::new(ctx), rx)
}

#[test]
fn a_child_sends_nothing_before_start_as_an_in_process_module_and_hears_why_at_once() {
    let bus = Bus::new();
    let services = HostServices::new(bus.clone(), TimerService::new());
    let (child, child_rx) = module_on(&bus, &services, "child");
    let (watcher, watcher_rx) = module_on(&bus, &services, "watcher");
    bus.subscribe(watcher.id, "child.out").unwrap();
    bus.subscribe(watcher.id, "svc.ask").unwrap();
    let in_process = child.publish(1, "child.out", b"1").unwrap_err();
    assert!(
        in_process.contains("may not publish 'child.out' yet"),
        "{in_process}"
    );
    // Publishing is closed for the module (initialization), or open but this
    // (restarted) child was not told to start yet: refused alike.
    for (open, started) in [(false, true), (true, false)] {
        child.set_may_publish(open);
        let refused = child
            .publish_of_child(1, started, "child.out", b"1")
            .unwrap_err();
        assert_eq!(refused, in_process);
        let asked = child
            .request_of_child(
                1,
                started,
                (7, "svc.ask"),
                b"{}",
                Duration::from_millis(250),
            )
            .unwrap_err();
        assert!(asked.contains("may not publish 'svc.ask' yet"), "{asked}");
        let answered = child
            .reply_of_child(1, started, "watcher", 1, b"1")
            .unwrap_err();
        assert!(
            matches!(&answered, crate::requests::ReplyRefused::Forbidden(e) if e.contains("may not reply yet")),
            "{answered:?}"
        );
    }
    assert!(watcher_rx.try_recv().is_err(), "nothing went out");
    assert_eq!(services.requests.pending(), 0);

    // The refused request is answered at once, with why.
    let why = "module 'child' may not publish 'svc.ask' yet";
    assert!(child.refuse_request_of_child(7, "svc.ask", Duration::from_millis(250), why));
    let notice = child_rx.try_recv().expect("the notice");
    assert_eq!(
        (notice.kind, notice.request_id, notice.source()),
        (orch_sdk::EventKind::Timeout, 7, None)
    );
    let payload: serde_json::Value = serde_json::from_slice(notice.payload()).unwrap();
    assert_eq!(payload["timeout_ms"], 250);
    assert_eq!(payload["refused"], why);

    child.set_may_publish(true);
    child
        .publish_of_child(1, true, "child.out", b"2")
        .expect("started");
    assert_eq!(watcher_rx.try_recv().expect("published").payload(), b"2");
    services.timers.stop();
}

#[test]
fn a_remembered_route_still_meets_the_contract_and_the_generation() {
    let bus = Bus::new();
    let services = HostServices::new(bus.clone(), TimerService::new());
    let (sensor, _) = module_on(&bus, &services, "sensor");
    let (watcher, watcher_rx) = module_on(&bus, &services, "watcher");
    bus.subscribe(watcher.id, "sensor.>").unwrap();
    sensor.set_may_publish(true);
    for _ in 0..3 {
        sensor.publish(1, "sensor.temp", b"1").unwrap();
    }
    assert_eq!(watcher_rx.try_iter().count(), 3);
    // A contract that no longer lists the topic: the remembered route is
    // checked again.
    sensor.set_contract(Contract {
        publishes: Some(vec!["sensor.humidity".into()]),
        subscribes: None,
    });
    let refused = sensor.publish(1, "sensor.temp", b"1").unwrap_err();
    assert!(refused.contains("does not list it"), "{refused}");
    sensor.publish(1, "sensor.humidity", b"1").unwrap();
    // A retired generation is refused on a remembered route too.
    sensor.set_active_generation(2);
    sensor.set_may_publish(false);
    let stopped = sensor.publish(1, "sensor.humidity", b"1").unwrap_err();
    assert!(stopped.contains("has stopped"), "{stopped}");
    // More topics than are remembered: each still reaches its subscriber.
    sensor.set_may_publish(true);
    sensor.set_contract(Contract::default());
    for round in 0..2 {
        for n in 0..12 {
            sensor.publish(2, &format!("sensor.t{n}"), b"1").unwrap();
        }
        assert_eq!(watcher_rx.try_iter().count(), 12 + usize::from(round == 0));
    }
    let reserved = sensor.publish(2, "module.crashed", b"{}").unwrap_err();
    assert!(reserved.contains("reserved namespace"), "{reserved}");
}
