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
