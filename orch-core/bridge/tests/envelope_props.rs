//! Properties of the `Orch-Envelope` and `Nats-Msg-Id` decoder, which reads
//! what any peer on the broker may send: it never panics, a valid envelope
//! comes back as it was written, and anything that breaks the caps is
//! refused as malformed, whoever it claims to be.

use async_nats::HeaderMap;
use async_nats::header::NATS_MESSAGE_ID;
use orch_bridge::caps::{MAX_MESSAGE_ID, MAX_NAME};
use orch_bridge::envelope::{self, ENVELOPE, Skip};
use orch_bridge::node::Identity;
use orch_runtime::bus::BusEvent;
use orch_sdk::topic::validate_module_topic;
use proptest::prelude::*;

const PREFIX: &str = "orch.p";

fn me() -> Identity {
    Identity {
        name: "me".into(),
        incarnation: 1_700_000_000_000_000,
    }
}

/// Headers as a peer may send them. A header value on the wire holds no CR
/// or LF (the protocol ends it there, and the client makes none): any other
/// control character stands in for them.
fn raw(envelope: Option<&str>, id: Option<&str>) -> HeaderMap {
    let wire = |value: &str| value.replace(['\r', '\n'], "\u{7}");
    let mut headers = HeaderMap::new();
    if let Some(envelope) = envelope {
        headers.insert(ENVELOPE, wire(envelope));
    }
    if let Some(id) = id {
        headers.insert(NATS_MESSAGE_ID, wire(id));
    }
    headers
}

/// Strings a peer might send: anything, or something close to an envelope.
fn peer_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,300}",
        "([A-Za-z0-9_.-]{0,70} ){0,7}[0-9]{0,25}",
        "(\\PC{0,10} ){3,6}",
    ]
}

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,64}"
}

fn topic() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_-]{0,8}(\\.[a-z0-9_-]{1,8}){0,3}"
        .prop_filter("not a host namespace", |t| validate_module_topic(t).is_ok())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn any_header_and_subject_is_read_without_panic(
        envelope in proptest::option::of(peer_string()),
        id in proptest::option::of(peer_string()),
        subject in peer_string(),
    ) {
        let headers = raw(envelope.as_deref(), id.as_deref());
        if let Ok(arrived) =
            envelope::arrived(&subject, Some(&headers), PREFIX, &me(), validate_module_topic)
        {
            // What is taken keeps the caps.
            prop_assert!(arrived.origin.len() <= MAX_NAME);
            prop_assert!(arrived.source.is_none_or(|s| s.len() <= MAX_NAME));
            prop_assert!(arrived.message_id.is_none_or(|i| i.len() <= MAX_MESSAGE_ID));
            prop_assert!(validate_module_topic(arrived.topic).is_ok());
        }
    }

    #[test]
    fn a_valid_envelope_comes_back_as_it_was_written(
        origin in name().prop_filter("another node", |n| n != "me"),
        source in proptest::option::of(
            "[A-Za-z][A-Za-z0-9_-]{0,63}".prop_filter("a module", |s| s != "host")
        ),
        event_id in any::<u64>(),
        published_at_ms in any::<u64>(),
        incarnation in any::<u64>(),
        id in proptest::option::of("[!-~]{1,128}"),
        topic in topic(),
    ) {
        let mut event = BusEvent::new(&topic, b"{}", source.as_deref().map(Into::into));
        event.id = event_id;
        event.published_at_ms = published_at_ms;
        let from = Identity { name: origin.clone(), incarnation };
        let headers = envelope::headers(&event, &from, id.clone());
        let subject = envelope::subject(PREFIX, &topic);
        let arrived =
            envelope::arrived(&subject, Some(&headers), PREFIX, &me(), validate_module_topic)
                .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prop_assert_eq!(arrived.topic, topic.as_str());
        prop_assert_eq!(arrived.origin, origin.as_str());
        prop_assert_eq!(arrived.source, source.as_deref());
        prop_assert_eq!(arrived.event_id, Some(event_id));
        prop_assert_eq!(arrived.published_at_ms, Some(published_at_ms));
        prop_assert_eq!(arrived.incarnation, Some(incarnation));
        prop_assert_eq!(arrived.message_id, id.as_deref());
        prop_assert!(arrived.enveloped);
    }

    #[test]
    fn an_origin_or_source_over_the_caps_is_malformed(
        long in "[A-Za-z0-9_-]{65,300}",
        bad in "[A-Za-z0-9_-]{0,10}[^A-Za-z0-9_ -][A-Za-z0-9_-]{0,10}",
        as_source in any::<bool>(),
        claims_to_be_me in any::<bool>(),
        topic in topic(),
    ) {
        let subject = envelope::subject(PREFIX, &topic);
        for broken in [&long, &bad] {
            let envelope = match (as_source, claims_to_be_me) {
                (true, true) => format!("me {broken} 1 2 3"),
                (true, false) => format!("node-a {broken} 1 2 3"),
                (false, _) => format!("{broken} mod 1 2 3"),
            };
            let headers = raw(Some(&envelope), None);
            let judged =
                envelope::arrived(&subject, Some(&headers), PREFIX, &me(), validate_module_topic);
            prop_assert!(matches!(judged, Err(Skip::Malformed(_))), "{envelope:?}: {judged:?}");
        }
    }

    #[test]
    fn a_message_id_over_the_caps_is_malformed(
        long in "[!-~]{129,1000}",
        bad in "[!-~]{0,10}[^!-~][!-~]{0,10}",
        enveloped in any::<bool>(),
        topic in topic(),
    ) {
        let subject = envelope::subject(PREFIX, &topic);
        let envelope = enveloped.then_some("node-a mod 1 2 3");
        for broken in [&long, &bad] {
            let headers = raw(envelope, Some(broken));
            let judged =
                envelope::arrived(&subject, Some(&headers), PREFIX, &me(), validate_module_topic);
            prop_assert!(matches!(judged, Err(Skip::Malformed(_))), "{broken:?}: {judged:?}");
        }
    }

    #[test]
    fn a_number_that_is_not_a_u64_is_malformed(
        field in 2usize..5,
        number in prop_oneof![
            "[0-9]{21,40}",
            "[+-][0-9]{1,5}",
            "[0-9]{0,3}[^0-9 ][0-9]{0,3}",
            Just("18446744073709551616".to_owned()),
        ],
        topic in topic(),
    ) {
        let mut fields = ["node-a", "mod", "1", "2", "3"];
        fields[field] = &number;
        let envelope = fields.join(" ");
        let headers = raw(Some(&envelope), None);
        let subject = envelope::subject(PREFIX, &topic);
        let judged =
            envelope::arrived(&subject, Some(&headers), PREFIX, &me(), validate_module_topic);
        prop_assert!(matches!(judged, Err(Skip::Malformed(_))), "{envelope:?}: {judged:?}");
    }
}
