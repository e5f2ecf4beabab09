use super::*;
use crossbeam_channel::unbounded;

/// A bus with one module mailbox of `capacity` and `overflow`, subscribed
/// to `t.>`, and an observer of the host's reports.
struct World {
    bus: Bus,
    timers: TimerService,
    mailbox: Mailbox,
    reports: Receiver<Arc<BusEvent>>,
}

fn world(capacity: usize, overflow: Overflow) -> World {
    let bus = Bus::new();
    let timers = TimerService::new();
    let settings = MailboxSettings { capacity, overflow };
    let mailbox = Mailbox::new("slow".into(), settings, Duration::from_millis(50));
    let id = bus.register(mailbox.sink());
    mailbox.report_to(&bus, timers.clone(), id);
    bus.subscribe(id, "t.>").unwrap();
    let (tx, reports) = unbounded::<Arc<BusEvent>>();
    let observer = bus.register(Arc::new(tx));
    bus.subscribe(observer, "module.>").unwrap();
    World {
        bus,
        timers,
        mailbox,
        reports,
    }
}

/// Takes what waits in the mailbox, in order: event topics and `call`.
fn drain(mailbox: &Mailbox) -> Vec<String> {
    let (_control_tx, control) = unbounded::<Work>();
    let mut taken = Vec::new();
    while mailbox.has_waiting() {
        match mailbox.next(&control) {
            Next::Work(Work::Event(event)) => taken.push(event.topic().to_owned()),
            Next::Work(_) => taken.push("call".to_owned()),
            Next::Control => unreachable!("no control message was sent"),
        }
    }
    taken
}

fn report(w: &World, topic: &str) -> serde_json::Value {
    loop {
        let event = w.reports.recv_timeout(Duration::from_secs(5)).expect(topic);
        if event.topic() == topic {
            return serde_json::from_slice(event.payload()).unwrap();
        }
    }
}

#[test]
fn block_waits_then_refuses_the_publish_naming_the_module() {
    let w = world(2, Overflow::Block);
    w.bus.publish("t.1", b"1", None).unwrap();
    w.bus.publish("t.2", b"2", None).unwrap();
    let started = std::time::Instant::now();
    let error = w.bus.publish("t.3", b"3", None).unwrap_err().to_string();
    assert!(started.elapsed() >= Duration::from_millis(50), "it waited");
    assert!(
        error.contains("module 'slow' did not take the event on 't.3' within 50 ms"),
        "{error}"
    );
    assert!(error.contains("overflow: block"), "{error}");
    assert_eq!(drain(&w.mailbox), ["t.1", "t.2"]);
    let overflow = report(&w, events::MODULE_OVERFLOW);
    assert_eq!(overflow["dropped"], 1);
    assert_eq!(overflow["policy"], "block");
    w.timers.stop();
}

#[test]
fn a_blocked_publisher_goes_on_as_soon_as_there_is_room() {
    let settings = MailboxSettings {
        capacity: 1,
        overflow: Overflow::Block,
    };
    let mailbox = Mailbox::new("patient".into(), settings, Duration::from_secs(30));
    let sink = mailbox.sink();
    let event = Arc::new(BusEvent::new("t.x", b"1", None));
    assert_eq!(sink.deliver(&event, Admission::Now), Delivered::Accepted);
    assert_eq!(sink.deliver(&event, Admission::Now), Delivered::WouldBlock);
    assert_eq!(sink.deliver(&event, Admission::NoWait), Delivered::Dropped);
    let consumer = {
        let mailbox = mailbox.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let (_control_tx, control) = unbounded::<Work>();
            matches!(mailbox.next(&control), Next::Work(Work::Event(_)))
        })
    };
    let started = std::time::Instant::now();
    assert_eq!(sink.deliver(&event, Admission::Wait), Delivered::Accepted);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "not the whole timeout"
    );
    assert!(consumer.join().unwrap(), "the consumer took one event");
    assert_eq!(drain(&mailbox), ["t.x"]);
}

#[test]
fn drop_oldest_keeps_the_newest_and_dead_letters_the_rest() {
    let w = world(3, Overflow::DropOldest);
    let (tx, letters) = unbounded::<Arc<BusEvent>>();
    let reader = w.bus.register(Arc::new(tx));
    w.bus.subscribe(reader, events::MODULE_DEAD_LETTER).unwrap();
    for n in 1..=5 {
        w.bus
            .publish(&format!("t.{n}"), format!("{{\"n\":{n}}}"), None)
            .unwrap();
    }
    assert_eq!(drain(&w.mailbox), ["t.3", "t.4", "t.5"]);
    let dead: Vec<serde_json::Value> = letters
        .try_iter()
        .map(|e| serde_json::from_slice(e.payload()).unwrap())
        .collect();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0]["topic"], "t.1");
    assert_eq!(dead[0]["data"], serde_json::json!({"n": 1}));
    assert_eq!(dead[0]["name"], "slow");
    assert_eq!(dead[0]["reason"], "drop-oldest");
    assert_eq!(w.mailbox.dropped_total(), 2);
    w.timers.stop();
}

#[test]
fn drop_newest_keeps_the_oldest() {
    let w = world(2, Overflow::DropNewest);
    for n in 1..=4 {
        assert_eq!(
            w.bus.publish(&format!("t.{n}"), b"1", None),
            Ok(usize::from(n <= 2))
        );
    }
    assert_eq!(drain(&w.mailbox), ["t.1", "t.2"]);
    assert_eq!(report(&w, events::MODULE_OVERFLOW)["dropped"], 2);
    w.timers.stop();
}

#[test]
fn fail_takes_the_module_off_the_bus_and_reports_it() {
    let w = world(1, Overflow::Fail);
    w.bus.publish("t.1", b"1", None).unwrap();
    w.bus.publish("t.2", b"1", None).unwrap();
    let failed = report(&w, events::MODULE_FAILED);
    assert_eq!(failed["name"], "slow");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("overflow: fail"),
        "{failed}"
    );
    assert!(w.mailbox.has_failed());
    assert_eq!(w.bus.publish("t.3", b"1", None), Ok(0), "unsubscribed");
    assert_eq!(drain(&w.mailbox), ["t.1"]);
    w.timers.stop();
}

#[test]
fn calls_run_after_the_events_before_them_and_answers_are_never_dropped() {
    let w = world(2, Overflow::DropNewest);
    w.bus.publish("t.1", b"1", None).unwrap();
    w.mailbox.post(Work::Stop);
    w.bus.publish("t.2", b"1", None).unwrap();
    let answer = Arc::new(BusEvent::new("t.answer", b"1", None));
    let sink = w.mailbox.sink();
    assert_eq!(
        sink.deliver(&answer, Admission::Always),
        Delivered::Accepted
    );
    assert_eq!(w.bus.publish("t.3", b"1", None), Ok(0), "full: dropped");
    assert_eq!(drain(&w.mailbox), ["t.1", "call", "t.2", "t.answer"]);
    w.timers.stop();
}

#[test]
fn a_call_whose_mark_drop_oldest_took_out_runs_before_the_events_after_it() {
    let w = world(2, Overflow::DropOldest);
    w.bus.publish("t.1", b"1", None).unwrap();
    w.mailbox.post(Work::Stop);
    // Each of these drops the oldest: t.1, then the call's mark (the call is
    // due: nothing queued before it is left), then t.2.
    for n in 2..=4 {
        w.bus.publish(&format!("t.{n}"), b"1", None).unwrap();
    }
    assert_eq!(drain(&w.mailbox), ["call", "t.3", "t.4"]);
    w.timers.stop();
}

#[test]
fn a_batch_reader_stops_at_a_call_and_goes_on_after_it() {
    let w = world(10, Overflow::Block);
    w.bus.publish("t.1", b"1", None).unwrap();
    w.mailbox.post(Work::Stop);
    w.bus.publish("t.2", b"1", None).unwrap();
    let topic = |e: Option<Arc<BusEvent>>| e.map(|e| e.topic().to_owned());
    assert_eq!(topic(w.mailbox.try_next_event()).as_deref(), Some("t.1"));
    assert_eq!(topic(w.mailbox.try_next_event()), None, "the call is due");
    assert_eq!(topic(w.mailbox.try_next_event()), None, "still due");
    assert_eq!(drain(&w.mailbox), ["call", "t.2"]);
    w.timers.stop();
}

#[test]
fn a_payload_over_max_event_bytes_is_refused() {
    let w = world(10, Overflow::Block);
    w.bus.set_max_event_bytes(8);
    let error = w.bus.publish("t.big", b"123456789", None).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("is 9 bytes, more than max_event_bytes (8)"),
        "{error}"
    );
    assert!(w.mailbox.is_empty());
    w.timers.stop();
}
