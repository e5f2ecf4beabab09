use super::*;
use crossbeam_channel::{Receiver, unbounded};

fn observer(bus: &Bus) -> (SubscriberId, Receiver<Arc<BusEvent>>) {
    let (tx, rx) = unbounded::<Arc<BusEvent>>();
    (bus.register(Arc::new(tx)), rx)
}

fn topics(rx: &Receiver<Arc<BusEvent>>) -> Vec<String> {
    rx.try_iter().map(|e| e.topic().to_string()).collect()
}

#[test]
fn delivers_to_exact_and_pattern_subscribers_once_each() {
    let bus = Bus::new();
    let (a, rx_a) = observer(&bus);
    let (b, rx_b) = observer(&bus);
    bus.subscribe(a, "test.ping").unwrap();
    bus.subscribe(a, "test.*").unwrap();
    bus.subscribe(a, "test.>").unwrap();
    bus.subscribe(b, "test.*").unwrap();
    assert_eq!(bus.publish("test.ping", b"{}", None), Ok(2));
    assert_eq!(bus.publish("test.pong", b"{}", None), Ok(2));
    assert_eq!(bus.publish("other.ping", b"{}", None), Ok(0));
    assert_eq!(topics(&rx_a), vec!["test.ping", "test.pong"]);
    assert_eq!(topics(&rx_b), vec!["test.ping", "test.pong"]);
}

#[test]
fn keeps_publish_order_per_mailbox_across_threads() {
    let bus = Bus::new();
    let (id, rx) = observer(&bus);
    bus.subscribe(id, "seq.>").unwrap();
    let publishers: Vec<_> = (0..4)
        .map(|p| {
            let bus = bus.clone();
            std::thread::spawn(move || {
                for n in 0..500u32 {
                    let payload = serde_json::to_vec(&(p, n)).unwrap();
                    bus.publish(&format!("seq.p{p}"), payload, None).unwrap();
                }
            })
        })
        .collect();
    for handle in publishers {
        handle.join().unwrap();
    }
    let mut last = [None::<u32>; 4];
    let mut count = 0;
    for event in rx.try_iter() {
        let (p, n): (usize, u32) = serde_json::from_slice(event.payload()).unwrap();
        assert!(
            last[p].is_none_or(|prev| prev + 1 == n),
            "publisher {p} out of order"
        );
        last[p] = Some(n);
        count += 1;
    }
    assert_eq!(count, 2000);
}

#[test]
fn unsubscribe_and_remove_stop_delivery() {
    let bus = Bus::new();
    let (id, rx) = observer(&bus);
    bus.subscribe(id, "a.b").unwrap();
    bus.subscribe(id, "a.*").unwrap();
    assert!(bus.unsubscribe(id, "a.b"));
    assert!(!bus.unsubscribe(id, "a.b"), "second unsubscribe is a no-op");
    bus.publish("a.b", b"", None).unwrap();
    assert_eq!(topics(&rx), vec!["a.b"], "still matched by a.*");
    bus.remove(id);
    assert_eq!(bus.publish("a.b", b"", None), Ok(0));
    assert!(rx.try_recv().is_err(), "no delivery after removal");
    assert_eq!(
        bus.subscribe(id, "a.c"),
        Err(BusError::UnknownSubscriber(id))
    );
}

#[test]
fn clear_drops_everything() {
    let bus = Bus::new();
    let (id, rx) = observer(&bus);
    bus.subscribe(id, "x").unwrap();
    bus.clear();
    assert_eq!(bus.publish("x", b"", None), Ok(0));
    assert!(rx.try_recv().is_err());
}

#[test]
fn rejects_bad_topics_with_a_reason() {
    let bus = Bus::new();
    let (id, _rx) = observer(&bus);
    let err = bus.publish("test.*", vec![], None).unwrap_err();
    assert!(err.to_string().contains("wildcard"), "{err}");
    let err = bus.subscribe(id, "a..b").unwrap_err();
    assert!(err.to_string().contains("empty token"), "{err}");
}

#[test]
fn a_sink_that_is_gone_does_not_stop_the_others() {
    let bus = Bus::new();
    let (gone, rx_gone) = observer(&bus);
    let (alive, rx_alive) = observer(&bus);
    bus.subscribe(gone, "t").unwrap();
    bus.subscribe(alive, "t").unwrap();
    drop(rx_gone);
    assert_eq!(bus.publish("t", b"", None), Ok(1));
    assert_eq!(topics(&rx_alive), vec!["t"]);
}

#[test]
fn replace_sink_keeps_subscriptions() {
    let bus = Bus::new();
    let (id, old_rx) = observer(&bus);
    bus.subscribe(id, "t").unwrap();
    bus.subscribe(id, "u.*").unwrap();
    let (tx, new_rx) = unbounded::<Arc<BusEvent>>();
    bus.replace_sink(id, Arc::new(tx)).unwrap();
    bus.publish("t", b"", None).unwrap();
    bus.publish("u.v", b"", None).unwrap();
    assert!(old_rx.try_recv().is_err());
    assert_eq!(topics(&new_rx), vec!["t", "u.v"]);
    assert_eq!(bus.subscriptions_of(id), vec!["t", "u.*"]);
}

#[test]
fn an_imported_event_is_done_once_every_subscriber_let_go_of_it() {
    let bus = Bus::new();
    let (a, first) = observer(&bus);
    let (b, second) = observer(&bus);
    bus.subscribe(a, "t.x").unwrap();
    bus.subscribe(b, "t.>").unwrap();
    let (done_tx, done) = unbounded::<()>();
    let event = BusEvent::imported("t.x", b"{}", Some("m".into()), "node-a".into(), Some(7))
        .when_done(move || {
            let _ = done_tx.send(());
        });
    assert_eq!(bus.publish_imported(Arc::new(event)).unwrap(), 2);
    let held = first.try_recv().expect("first got it");
    assert_eq!(held.origin.as_deref(), Some("node-a"));
    assert_eq!(held.published_at_ms, 7);
    drop(held);
    assert!(done.try_recv().is_err(), "the second still holds it");
    drop(second.try_recv().expect("second got it"));
    assert!(done.try_recv().is_ok(), "done once both let go");
    let unheard = BusEvent::imported("t.y.z", b"{}", None, "n".into(), None);
    assert!(bus.publish_imported(Arc::new(unheard)).is_ok());
}

#[test]
fn a_request_notes_each_subscriber_that_took_it_once() {
    let bus = Bus::new();
    let (a, rx_a) = observer(&bus);
    let (b, _rx_b) = observer(&bus);
    let (c, _rx_c) = observer(&bus);
    let (gone, rx_gone) = observer(&bus);
    bus.subscribe(a, "svc.ask").unwrap();
    bus.subscribe(a, "svc.*").unwrap();
    bus.subscribe(b, "svc.>").unwrap();
    bus.subscribe(c, "other.ask").unwrap();
    bus.subscribe(gone, "svc.ask").unwrap();
    drop(rx_gone);
    let recipients = Recipients::default();
    let event = Arc::new(BusEvent::new("svc.ask", b"{}", None));
    assert_eq!(bus.publish_request(event, &recipients), 2);
    assert_eq!(recipients.len(), 2);
    assert!(recipients.contains(a) && recipients.contains(b));
    assert!(!recipients.contains(c), "not subscribed");
    assert!(!recipients.contains(gone), "its mailbox did not take it");
    assert_eq!(topics(&rx_a), vec!["svc.ask"]);
}

#[test]
fn subscribers_but_one_are_told_and_changes_are_watched() {
    let bus = Bus::new();
    let (outbox, _) = observer(&bus);
    let (module, _) = observer(&bus);
    let changes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let changes = Arc::clone(&changes);
        bus.watch_subscriptions(Arc::new(move || {
            changes.fetch_add(1, Ordering::Relaxed);
        }));
    }
    let seen = || changes.load(Ordering::Relaxed);
    bus.subscribe(outbox, "work.>").unwrap();
    assert_eq!(seen(), 1);
    assert!(bus.has_subscribers("work.ask"));
    assert!(!bus.has_subscribers_except("work.ask", Some(outbox)));
    bus.subscribe(module, "work.ask").unwrap();
    assert_eq!(seen(), 2);
    assert!(bus.has_subscribers_except("work.ask", Some(outbox)));
    assert!(bus.unsubscribe(module, "work.ask"));
    assert_eq!(seen(), 3);
    assert!(!bus.unsubscribe(module, "work.ask"));
    assert_eq!(seen(), 3, "nothing changed");
    bus.subscribe(module, "work.*").unwrap();
    assert!(bus.has_subscribers_except("work.ask", Some(outbox)));
    bus.remove(module);
    assert!(seen() >= 5);
    assert!(!bus.has_subscribers_except("work.ask", Some(outbox)));
    assert!(bus.has_subscribers_except("work.ask", None));
}

#[test]
fn a_route_follows_every_change_of_subscriptions() {
    let bus = Bus::new();
    let (a, rx_a) = observer(&bus);
    let (b, rx_b) = observer(&bus);
    let (outbox, rx_outbox) = observer(&bus);
    bus.subscribe(a, "test.ping").unwrap();
    bus.subscribe(a, "test.*").unwrap();
    let mut route = bus.route("test.ping", None).unwrap();
    assert!(matches!(
        bus.route("test.*", None),
        Err(BusError::InvalidTopic(_))
    ));
    assert_eq!(bus.publish_on(&mut route, b"{}"), Ok(1), "a once");
    bus.subscribe(b, "test.>").unwrap();
    assert_eq!(bus.publish_on(&mut route, b"{}"), Ok(2), "b joined");
    bus.unsubscribe(a, "test.ping");
    assert_eq!(bus.publish_on(&mut route, b"{}"), Ok(2), "a by pattern");
    bus.remove(a);
    assert_eq!(bus.publish_on(&mut route, b"{}"), Ok(1), "a removed");
    let (c, rx_c) = observer(&bus);
    let (replaced, rx_replaced) = unbounded::<Arc<BusEvent>>();
    bus.replace_sink(b, Arc::new(replaced)).unwrap();
    bus.subscribe(c, "test.ping").unwrap();
    assert_eq!(bus.publish_on(&mut route, b"{}"), Ok(2));
    bus.divert(outbox, "test.>").unwrap();
    assert_eq!(bus.publish_on(&mut route, b"{}"), Ok(1), "diverted");
    assert_eq!(rx_a.try_iter().count(), 3);
    assert_eq!(rx_b.try_iter().count(), 3);
    assert_eq!(
        rx_replaced.try_iter().count(),
        1,
        "the new sink took the rest"
    );
    assert_eq!(rx_c.try_iter().count(), 1);
    assert_eq!(topics(&rx_outbox), ["test.ping"]);
}
