use super::*;
use crossbeam_channel::{Receiver, unbounded};

use crate::bus::{Admission, Delivered, EventSink};

struct World {
    bus: Bus,
    timers: TimerService,
    requests: Requests,
}

fn world() -> World {
    let bus = Bus::new();
    let timers = TimerService::new();
    let requests = Requests::new(bus.clone(), timers.clone());
    World {
        bus,
        timers,
        requests,
    }
}

fn module(world: &World, name: &str) -> (Requester, Receiver<Arc<BusEvent>>) {
    let (tx, rx) = unbounded::<Arc<BusEvent>>();
    let id = world.bus.register(Arc::new(tx));
    let requester = Requester {
        name: name.into(),
        id,
    };
    (requester, rx)
}

fn next(rx: &Receiver<Arc<BusEvent>>) -> Arc<BusEvent> {
    rx.recv_timeout(Duration::from_secs(5)).expect("an event")
}

#[test]
fn the_first_reply_reaches_the_requester_and_a_second_is_refused() {
    let w = world();
    let (client, client_rx) = module(&w, "client");
    let (server, server_rx) = module(&w, "server");
    w.bus.subscribe(server.id, "server.stats").unwrap();
    w.requests
        .request(&client, 7, "server.stats", b"{}", Duration::from_secs(60))
        .unwrap();
    let request = next(&server_rx);
    assert_eq!(request.kind, EventKind::Request);
    assert_eq!(request.request_id, 7);
    assert_eq!(request.reply_to.as_deref(), Some("client"));
    assert_eq!(request.source(), Some("client"));

    w.requests
        .reply(&server, "client", 7, b"{\"n\":1}")
        .unwrap();
    let reply = next(&client_rx);
    assert_eq!(reply.kind, EventKind::Reply);
    assert_eq!(
        (reply.topic(), reply.payload()),
        ("server.stats", &b"{\"n\":1}"[..])
    );
    assert_eq!(reply.source(), Some("server"));
    assert_eq!(reply.request_id, 7);

    let again = w.requests.reply(&server, "client", 7, b"2").unwrap_err();
    assert!(matches!(again, ReplyRefused::Other(_)), "{again:?}");
    let again = again.to_string();
    assert!(
        again.contains("already answered or has timed out"),
        "{again}"
    );
    assert_eq!(w.requests.pending(), 0);
    assert_eq!(
        w.timers.count_of(HOST_OWNER),
        0,
        "the timeout was cancelled"
    );
    w.timers.stop();
}

#[test]
fn an_unanswered_request_times_out_once_and_no_responder_is_said_at_once() {
    let w = world();
    let (client, client_rx) = module(&w, "client");
    let (server, _server_rx) = module(&w, "server");
    w.bus.subscribe(server.id, "server.slow").unwrap();
    w.requests
        .request(&client, 1, "server.slow", b"{}", Duration::from_millis(20))
        .unwrap();
    w.requests
        .request(&client, 2, "nobody.home", b"{}", Duration::from_secs(60))
        .unwrap();
    let first = next(&client_rx);
    assert_eq!((first.kind, first.request_id), (EventKind::NoResponders, 2));
    assert_eq!(first.topic(), "nobody.home");
    let second = next(&client_rx);
    assert_eq!((second.kind, second.request_id), (EventKind::Timeout, 1));
    assert_eq!(second.payload(), b"{\"timeout_ms\":20}");
    assert_eq!(second.source(), None, "the host says so");
    assert!(w.requests.reply(&server, "client", 1, b"{}").is_err());
    assert!(client_rx.recv_timeout(Duration::from_millis(50)).is_err());
    w.timers.stop();
}

#[test]
fn pending_requests_are_bounded_per_module_and_forgotten_with_it() {
    let w = world();
    let (client, _client_rx) = module(&w, "client");
    let (server, _server_rx) = module(&w, "server");
    w.bus.subscribe(server.id, "s.x").unwrap();
    for id in 0..MAX_PENDING_PER_MODULE as u64 {
        w.requests
            .request(&client, id, "s.x", b"1", Duration::from_secs(60))
            .unwrap();
    }
    let refused = w
        .requests
        .request(&client, u64::MAX, "s.x", b"1", Duration::from_secs(60))
        .unwrap_err();
    assert!(refused.contains("10000 requests waiting"), "{refused}");
    let duplicate = w
        .requests
        .request(&client, 3, "s.x", b"1", Duration::from_secs(60))
        .unwrap_err();
    assert!(
        duplicate.contains("already has a pending request 3"),
        "{duplicate}"
    );
    assert!(
        w.requests
            .request(&client, 1 << 50, "s.x", b"1", Duration::ZERO)
            .is_err()
    );
    assert_eq!(w.requests.forget("client"), MAX_PENDING_PER_MODULE);
    assert_eq!(w.requests.pending(), 0);
    assert_eq!(w.timers.count_of(HOST_OWNER), 0);
    w.timers.stop();
}

#[test]
fn only_a_module_the_request_reached_may_answer_it() {
    let w = world();
    let (client, client_rx) = module(&w, "client");
    let (server, server_rx) = module(&w, "server");
    let (bystander, _bystander_rx) = module(&w, "bystander");
    w.bus.subscribe(server.id, "server.stats").unwrap();
    w.bus.subscribe(bystander.id, "other.topic").unwrap();
    w.requests
        .request(&client, 1, "server.stats", b"{}", Duration::from_secs(60))
        .unwrap();
    let request = next(&server_rx);
    // The bystander guesses the id (they are predictable) and answers first.
    let forged = w
        .requests
        .reply(&bystander, "client", request.request_id, b"\"forged\"")
        .unwrap_err();
    assert!(matches!(forged, ReplyRefused::Forbidden(_)), "{forged:?}");
    let forged = forged.to_string();
    assert!(
        forged.contains(
            "module 'bystander' may not answer request 1 of 'client' on 'server.stats': \
             the request was not delivered to it"
        ),
        "{forged}"
    );
    assert_eq!(w.requests.pending(), 1, "still waiting for the real answer");
    w.requests
        .reply(&server, "client", 1, b"\"real\"")
        .expect("the real responder answers");
    let reply = next(&client_rx);
    assert_eq!(
        (reply.kind, reply.payload(), reply.source()),
        (EventKind::Reply, &b"\"real\""[..], Some("server"))
    );
    assert!(client_rx.recv_timeout(Duration::from_millis(50)).is_err());
    w.timers.stop();
}

/// Answers every request the moment the bus hands it over, from inside the
/// delivery, before `publish_request` has returned.
struct Eager {
    requests: Requests,
    me: std::sync::OnceLock<Requester>,
    answered: std::sync::Mutex<Vec<Result<(), String>>>,
}

impl EventSink for Eager {
    fn deliver(&self, event: &Arc<BusEvent>, _admission: Admission) -> Delivered {
        if let (Some(me), Some(reply_to)) = (self.me.get(), event.reply_to.as_deref()) {
            let outcome = self
                .requests
                .reply(me, reply_to, event.request_id, b"1")
                .map_err(|e| e.to_string());
            self.answered.lock().unwrap().push(outcome);
        }
        Delivered::Accepted
    }
}

/// Takes nothing: its mailbox is full and drops what comes.
struct Full;

impl EventSink for Full {
    fn deliver(&self, _event: &Arc<BusEvent>, _admission: Admission) -> Delivered {
        Delivered::Dropped
    }
}

#[test]
fn an_answer_given_during_the_delivery_counts_and_a_dropped_request_cannot_be_answered() {
    let w = world();
    let (client, client_rx) = module(&w, "client");
    let eager = Arc::new(Eager {
        requests: w.requests.clone(),
        me: std::sync::OnceLock::new(),
        answered: std::sync::Mutex::default(),
    });
    let eager_id = w.bus.register(eager.clone());
    let _ = eager.me.set(Requester {
        name: "eager".into(),
        id: eager_id,
    });
    w.bus.subscribe(eager_id, "fast.ask").unwrap();
    w.requests
        .request(&client, 1, "fast.ask", b"{}", Duration::from_secs(60))
        .unwrap();
    assert_eq!(eager.answered.lock().unwrap().as_slice(), &[Ok(())]);
    let reply = next(&client_rx);
    assert_eq!((reply.kind, reply.request_id), (EventKind::Reply, 1));

    let full_id = w.bus.register(Arc::new(Full));
    let full = Requester {
        name: "full".into(),
        id: full_id,
    };
    w.bus.subscribe(full_id, "slow.ask").unwrap();
    let (server, server_rx) = module(&w, "server");
    w.bus.subscribe(server.id, "slow.ask").unwrap();
    w.requests
        .request(&client, 2, "slow.ask", b"{}", Duration::from_secs(60))
        .unwrap();
    let _ = next(&server_rx);
    let refused = w
        .requests
        .reply(&full, "client", 2, b"1")
        .unwrap_err()
        .to_string();
    assert!(refused.contains("was not delivered to it"), "{refused}");
    w.requests.reply(&server, "client", 2, b"2").unwrap();
    assert_eq!(next(&client_rx).source(), Some("server"));
    w.timers.stop();
}
