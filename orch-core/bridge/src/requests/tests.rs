use async_nats::HeaderMap;
use orch_runtime::requests::{Asked, MAX_REQUEST_TIMEOUT, RemoteAsk, RemoteRequests};

use super::ask::{Answer, answer_of};
use super::serve::{Refusal, judge};
use super::*;
use crate::{caps, envelope};

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.insert(*name, *value);
    }
    headers
}

fn fits(_: &[u8]) -> Result<(), String> {
    Ok(())
}

#[test]
fn a_request_names_its_requester_and_the_time_it_has_left() {
    let h = headers(&[
        (envelope::ENVELOPE, "node-a asker 7 1700000000000 1"),
        (TIMEOUT_HEADER, "250"),
    ]);
    let (requester, timeout) = judge(Some(&h), b"{}", fits).expect("served");
    assert_eq!(requester, "node-a/asker");
    assert_eq!(timeout, Duration::from_millis(250));
    // The host of node-a, and a plain NATS client with JSON and no header.
    let h = headers(&[(envelope::ENVELOPE, "node-a host 7 1700000000000 1")]);
    let (requester, timeout) = judge(Some(&h), b"{}", fits).expect("served");
    assert_eq!(requester, "node-a/host");
    assert_eq!(timeout, DEFAULT_SERVED_TIMEOUT);
    let (requester, _) = judge(None, b"[1]", fits).expect("served");
    assert_eq!(requester, "nats/client");
}

#[test]
fn a_request_with_no_time_left_is_dropped_and_a_long_one_is_capped() {
    let h = headers(&[(TIMEOUT_HEADER, "0")]);
    assert_eq!(judge(Some(&h), b"{}", fits), Err(Refusal::Expired));
    let h = headers(&[(TIMEOUT_HEADER, &u64::MAX.to_string())]);
    let (_, timeout) = judge(Some(&h), b"{}", fits).expect("served");
    assert_eq!(timeout, MAX_REQUEST_TIMEOUT);
}

#[test]
fn a_forged_request_is_malformed_never_served() {
    let long = "n".repeat(caps::MAX_NAME + 1);
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![(envelope::ENVELOPE, format!("{long} asker 1 2 3"))],
        vec![(envelope::ENVELOPE, "node-a asker".to_owned())],
        vec![(envelope::ENVELOPE, "node.a asker 1 2 3".to_owned())],
        vec![(TIMEOUT_HEADER, "-5".to_owned())],
        vec![(TIMEOUT_HEADER, "1e9".to_owned())],
        vec![(TIMEOUT_HEADER, "99999999999999999999999".to_owned())],
        vec![(TIMEOUT_HEADER, String::new())],
    ];
    for case in cases {
        let pairs: Vec<(&str, &str)> = case.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let judged = judge(Some(&headers(&pairs)), b"{}", fits);
        assert!(
            matches!(judged, Err(Refusal::Malformed(_))),
            "{case:?}: {judged:?}"
        );
    }
    // Not JSON from outside an orchestrator, or too large.
    assert!(matches!(
        judge(None, b"not json", fits),
        Err(Refusal::Malformed(_))
    ));
    let too_large = |_: &[u8]| Err("too large".to_owned());
    assert!(matches!(
        judge(None, b"{}", too_large),
        Err(Refusal::Malformed(_))
    ));
}

#[test]
fn an_answer_is_a_reply_an_unserved_notice_or_malformed() {
    assert_eq!(answer_of(None), Answer::Reply { from: None });
    let h = headers(&[(envelope::ENVELOPE, "node-b responder 3 1700000000000 9")]);
    assert_eq!(
        answer_of(Some(&h)),
        Answer::Reply {
            from: Some("responder")
        }
    );
    let h = headers(&[
        (async_nats::service::NATS_SERVICE_ERROR_CODE, "503"),
        (
            async_nats::service::NATS_SERVICE_ERROR,
            "no local subscriber",
        ),
    ]);
    assert_eq!(answer_of(Some(&h)), Answer::Unserved);
    let h = headers(&[(envelope::ENVELOPE, "node-b x y z")]);
    assert!(matches!(answer_of(Some(&h)), Answer::Malformed(_)));
}

#[test]
fn request_subjects_stay_out_of_the_events_subjects() {
    let subject = envelope::request_subject("orch.demo", "orders.price");
    assert_eq!(subject, "orch-req.orch.demo.orders.price");
    assert!(!subject.starts_with("orch.demo."));
    assert_eq!(crate::service::name("orch.demo"), "orch-demo");
}

/// The table offers a request no module takes to the bridge, which says
/// whether it is one of its `ask` topics and whether a place is left.
#[test]
fn the_asker_takes_its_topics_while_connected_and_up_to_its_cap() {
    let link = Arc::new(Link::default());
    let (queue, mut asked) = mpsc::channel(MAX_ASKED);
    let asker = Asker {
        patterns: vec!["work.>".into()],
        link: Arc::clone(&link),
        in_flight: Arc::default(),
        queue,
        stats: Arc::default(),
    };
    let ask = |topic: &str| RemoteAsk {
        event: Arc::new(BusEvent::new(topic, b"{}", Some("asker".into()))),
        timeout: Duration::from_secs(1),
    };
    // Not connected: "no responders" at once, as without a bridge.
    assert_eq!(asker.ask(ask("work.a")), Asked::NotMine);
    link.set(true, None);
    assert_eq!(asker.ask(ask("other.a")), Asked::NotMine);
    assert_eq!(asker.ask(ask("work.a")), Asked::Sent);
    asker.in_flight.store(MAX_ASKED, Ordering::Release);
    assert!(matches!(asker.ask(ask("work.b")), Asked::Refused(_)));
    assert_eq!(asker.in_flight.load(Ordering::Acquire), MAX_ASKED);
    asker.in_flight.store(1, Ordering::Release);
    // The place of a request is given back when it is done with.
    drop(asked.try_recv().expect("queued"));
    assert_eq!(asker.in_flight.load(Ordering::Acquire), 0);
}
