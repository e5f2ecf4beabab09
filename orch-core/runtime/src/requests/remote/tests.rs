use std::sync::Mutex;

use crossbeam_channel::{Receiver, unbounded};
use orch_sdk::EventKind;

use super::*;
use crate::bus::Bus;
use crate::requests::{Requester, Requests};
use crate::timers::{HOST_OWNER, TimerService};

/// A remote that answers as told and keeps what it was offered.
struct Remote {
    answer: Asked,
    offered: Mutex<Vec<(String, u64, String, Duration)>>,
}

impl RemoteRequests for Remote {
    fn ask(&self, ask: RemoteAsk) -> Asked {
        let event = &ask.event;
        self.offered.lock().unwrap().push((
            event.reply_to.as_deref().unwrap_or_default().to_owned(),
            event.request_id,
            event.topic().to_owned(),
            ask.timeout,
        ));
        self.answer.clone()
    }
}

fn setup(answer: Asked) -> (Bus, TimerService, Requests, Arc<Remote>) {
    let bus = Bus::new();
    let timers = TimerService::new();
    let requests = Requests::new(bus.clone(), timers.clone());
    let remote = Arc::new(Remote {
        answer,
        offered: Mutex::default(),
    });
    requests.set_remote(Some(Arc::clone(&remote) as Arc<dyn RemoteRequests>));
    (bus, timers, requests, remote)
}

fn module(bus: &Bus, name: &str) -> (Requester, Receiver<Arc<BusEvent>>) {
    let (tx, rx) = unbounded::<Arc<BusEvent>>();
    let id = bus.register(Arc::new(tx));
    (
        Requester {
            name: name.into(),
            id,
        },
        rx,
    )
}

fn next(rx: &Receiver<Arc<BusEvent>>) -> Arc<BusEvent> {
    rx.recv_timeout(Duration::from_secs(5)).expect("an answer")
}

#[test]
fn a_request_no_module_takes_goes_remote_and_the_first_answer_wins() {
    let (bus, timers, requests, remote) = setup(Asked::Sent);
    let (client, rx) = module(&bus, "client");
    requests
        .request(&client, 3, "work.ask", b"{}", Duration::from_secs(60))
        .unwrap();
    assert_eq!(
        remote.offered.lock().unwrap().as_slice(),
        [(
            "client".to_owned(),
            3,
            "work.ask".to_owned(),
            Duration::from_secs(60)
        )]
    );
    assert!(rx.try_recv().is_err(), "no answer before the remote's");
    assert_eq!(requests.pending(), 1);
    let from = Some(Arc::<str>::from("responder"));
    assert!(requests.answer_remote("client", 3, EventKind::Reply, b"{\"n\":1}", from));
    let reply = next(&rx);
    assert_eq!(reply.kind, EventKind::Reply);
    assert_eq!(reply.request_id, 3);
    assert_eq!(reply.source(), Some("responder"));
    assert_eq!(reply.payload(), b"{\"n\":1}");
    // A second answer, remote or local, is refused.
    assert!(!requests.answer_remote("client", 3, EventKind::Reply, b"2", None));
    assert_eq!(requests.pending(), 0);
    assert_eq!(timers.count_of(HOST_OWNER), 0, "the timeout was cancelled");
    timers.stop();
}

#[test]
fn a_local_subscriber_keeps_the_request_local() {
    let (bus, timers, requests, remote) = setup(Asked::Sent);
    let (client, _rx) = module(&bus, "client");
    let (server, server_rx) = module(&bus, "server");
    bus.subscribe(server.id, "work.ask").unwrap();
    requests
        .request(&client, 1, "work.ask", b"{}", Duration::from_secs(60))
        .unwrap();
    assert_eq!(next(&server_rx).kind, EventKind::Request);
    assert!(remote.offered.lock().unwrap().is_empty());
    timers.stop();
}

#[test]
fn not_the_remotes_topic_is_no_responders_and_a_refusal_fails_the_request() {
    let (bus, timers, requests, _remote) = setup(Asked::NotMine);
    let (client, rx) = module(&bus, "client");
    requests
        .request(&client, 1, "work.ask", b"{}", Duration::from_secs(60))
        .unwrap();
    assert_eq!(next(&rx).kind, EventKind::NoResponders);

    let (bus, timers2, requests, _remote) = setup(Asked::Refused("too many".into()));
    let (client, rx) = module(&bus, "client");
    let refused = requests
        .request(&client, 1, "work.ask", b"{}", Duration::from_secs(60))
        .unwrap_err();
    assert_eq!(refused, "too many");
    assert_eq!(requests.pending(), 0);
    assert_eq!(timers2.count_of(HOST_OWNER), 0, "its timer is cancelled");
    assert!(rx.try_recv().is_err(), "no answer for a refused request");
    // The same id may be asked again.
    requests.set_remote(None);
    requests
        .request(&client, 1, "work.ask", b"{}", Duration::from_secs(60))
        .unwrap();
    assert_eq!(next(&rx).kind, EventKind::NoResponders);
    timers.stop();
    timers2.stop();
}

#[test]
fn without_a_remote_answer_the_local_timeout_comes() {
    let (bus, timers, requests, _remote) = setup(Asked::Sent);
    let (client, rx) = module(&bus, "client");
    requests
        .request(&client, 9, "work.ask", b"{}", Duration::from_millis(30))
        .unwrap();
    let timeout = next(&rx);
    assert_eq!(timeout.kind, EventKind::Timeout);
    assert_eq!(timeout.payload(), br#"{"timeout_ms":30}"#);
    assert!(
        !requests.answer_remote("client", 9, EventKind::Reply, b"{}", None),
        "a late reply is dropped"
    );
    assert!(rx.try_recv().is_err());
    timers.stop();
}
