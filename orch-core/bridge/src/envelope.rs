//! The envelope of an event on the broker: its bytes travel unchanged as the
//! message payload, on subject `<prefix>.<topic>`; who published it, where
//! and when travel in one header, `Orch-Envelope: <node> <source> <event id>
//! <time ms> <incarnation>` (one header, not five: each header costs the
//! client a parse and allocations on both ends, measured by `cargo xtask bench bridge`), and for
//! JetStream `Nats-Msg-Id`. Both are checked against [`crate::caps`] before
//! anything else is read from them.

use std::fmt::Write as _;

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::{HeaderMap, HeaderName, HeaderValue};
use orch_runtime::bus::BusEvent;

use crate::caps;
use crate::node::Identity;

/// The envelope: the node the event left (the origin check), the module
/// that published it (`host` for the host), its id on that node's bus, when
/// it was published (milliseconds since the Unix epoch) and when that node's
/// bridge started (its incarnation, microseconds), separated by spaces (node
/// ids and module names hold none).
pub const ENVELOPE: &str = "Orch-Envelope";

/// The header of a singleton's events: the revision of its lease (the
/// fencing token), digits only.
pub const FENCE: &str = "Orch-Fence";

/// The envelope header's name, made without parsing or allocating.
pub(crate) fn envelope_name() -> HeaderName {
    HeaderName::from_static(ENVELOPE)
}

/// The headers of an exported `event`; `message_id` for JetStream.
pub fn headers(event: &BusEvent, me: &Identity, message_id: Option<String>) -> HeaderMap {
    let source = event.source().unwrap_or("host");
    let mut envelope = String::with_capacity(me.name.len() + source.len() + 64);
    // Writing into a String cannot fail.
    let _ = write!(
        envelope,
        "{} {source} {} {} {}",
        me.name, event.id, event.published_at_ms, me.incarnation
    );
    let mut headers = HeaderMap::new();
    headers.insert(envelope_name(), envelope);
    if let Some(id) = message_id {
        headers.insert(NATS_MESSAGE_ID, id);
    }
    headers
}

/// An imported message, read back: borrowed from its subject and headers.
#[derive(Debug, PartialEq, Eq)]
pub struct Arrived<'a> {
    /// The local topic (the subject without the prefix).
    pub topic: &'a str,
    /// The node it came from (`unknown` without an envelope).
    pub origin: &'a str,
    /// The module that published it there (`None` for that node's host).
    pub source: Option<&'a str>,
    /// Its id on the bus of the node it came from.
    pub event_id: Option<u64>,
    /// When it was published there.
    pub published_at_ms: Option<u64>,
    /// When that node's bridge started (an envelope of an earlier version
    /// has none).
    pub incarnation: Option<u64>,
    /// Its message id, when it has one.
    pub message_id: Option<&'a str>,
    /// Whether it came with an envelope, that is from an orchestrator (whose
    /// SDK checked that the payload is JSON); `false` for another client's.
    pub enveloped: bool,
}

/// Why an imported message is not delivered.
#[derive(Debug, PartialEq, Eq)]
pub enum Skip {
    /// It left this very node.
    OwnEvent,
    /// It carries this node's id but left another orchestrator, running
    /// meanwhile: two were given the same node id, and this one cannot tell
    /// their events from its own.
    Namesake,
    /// Its subject is not under the prefix, or is not a valid local topic
    /// (or one of the host's namespaces).
    Foreign(String),
    /// Its envelope or message id breaks the caps ([`crate::caps`]) or
    /// cannot be read: it never can be.
    Malformed(String),
}

/// The envelope's fields, read back and checked against the caps.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Fields<'a> {
    pub(crate) origin: &'a str,
    pub(crate) source: Option<&'a str>,
    pub(crate) event_id: u64,
    pub(crate) published_at_ms: u64,
    pub(crate) incarnation: Option<u64>,
}

/// Reads an envelope: four fields (an earlier version's) or five, each
/// within its cap.
pub(crate) fn fields(envelope: &str) -> Result<Fields<'_>, String> {
    if envelope.len() > caps::MAX_ENVELOPE {
        return Err(format!(
            "the {ENVELOPE} header is {} bytes, more than {}",
            envelope.len(),
            caps::MAX_ENVELOPE
        ));
    }
    // Read in place (no list of the fields is made for each message).
    let mut parts = [""; 5];
    let mut count = 0;
    for part in envelope.split(' ') {
        if let Some(slot) = parts.get_mut(count) {
            *slot = part;
        }
        count += 1;
    }
    if count < 4 {
        return Err(format!("the {ENVELOPE} header has {count} field(s), not 5"));
    }
    if count > 5 {
        return Err(format!("the {ENVELOPE} header has {count} fields, not 5"));
    }
    let [origin, source, event_id, published, incarnation] = parts;
    let rest = (count == 5).then_some(incarnation);
    let broken = |e: caps::Broken| format!("{ENVELOPE}: {e}");
    caps::name("the origin node", origin).map_err(broken)?;
    let source = if source == "host" {
        None
    } else {
        caps::name("the source module", source).map_err(broken)?;
        Some(source)
    };
    Ok(Fields {
        origin,
        source,
        event_id: caps::number("the event id", event_id).map_err(broken)?,
        published_at_ms: caps::number("the time", published).map_err(broken)?,
        incarnation: rest
            .map(|i| caps::number("the incarnation", i))
            .transpose()
            .map_err(broken)?,
    })
}

/// Reads the envelope of a message on `subject` under `prefix`, for `me`;
/// `is_topic` tells whether a topic is one a module may receive (the
/// importer remembers its answers). The envelope and the message id are
/// checked against the caps first: one that breaks them is
/// [`Skip::Malformed`], whatever else it says.
pub fn arrived<'a>(
    subject: &'a str,
    headers: Option<&'a HeaderMap>,
    prefix: &str,
    me: &Identity,
    is_topic: impl FnOnce(&str) -> Result<(), String>,
) -> Result<Arrived<'a>, Skip> {
    read(subject, headers, prefix, Some(me), is_topic)
}

/// Like [`arrived`], for a shared-work job: one this node published is
/// handled here like any other (the queue gives every job to one node).
pub fn job<'a>(
    subject: &'a str,
    headers: Option<&'a HeaderMap>,
    prefix: &str,
    is_topic: impl FnOnce(&str) -> Result<(), String>,
) -> Result<Arrived<'a>, Skip> {
    read(subject, headers, prefix, None, is_topic)
}

/// Reads a message; `me`: skip this node's own events.
fn read<'a>(
    subject: &'a str,
    headers: Option<&'a HeaderMap>,
    prefix: &str,
    me: Option<&Identity>,
    is_topic: impl FnOnce(&str) -> Result<(), String>,
) -> Result<Arrived<'a>, Skip> {
    let (envelope, message_id) = headers.map_or((None, None), read_headers);
    let message_id = message_id.filter(|v| !v.is_empty());
    if let Some(id) = message_id {
        caps::message_id(id).map_err(|e| Skip::Malformed(format!("Nats-Msg-Id: {e}")))?;
    }
    let fields = envelope.map(fields).transpose().map_err(Skip::Malformed)?;
    if let Some((fields, me)) = fields
        .as_ref()
        .zip(me)
        .filter(|(f, me)| f.origin == me.name)
    {
        // A message of an earlier run of this node (JetStream keeps them) was
        // published before this one started; one published since by another
        // incarnation comes from a namesake.
        let namesake = fields.incarnation.is_some_and(|i| i != me.incarnation)
            && fields.published_at_ms >= me.started_ms();
        return Err(if namesake {
            Skip::Namesake
        } else {
            Skip::OwnEvent
        });
    }
    let topic = subject
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'))
        .ok_or_else(|| {
            Skip::Foreign(format!(
                "subject '{}' is not under '{prefix}.'",
                caps::shown(subject)
            ))
        })?;
    is_topic(topic).map_err(|e| {
        Skip::Foreign(format!(
            "subject '{}': {}",
            caps::shown(subject),
            caps::clipped(&e, 240)
        ))
    })?;
    Ok(Arrived {
        topic,
        origin: fields.as_ref().map_or("unknown", |f| f.origin),
        source: fields.as_ref().and_then(|f| f.source),
        event_id: fields.as_ref().map(|f| f.event_id),
        published_at_ms: fields.as_ref().map(|f| f.published_at_ms),
        incarnation: fields.as_ref().and_then(|f| f.incarnation),
        message_id,
        enveloped: fields.is_some(),
    })
}

/// The envelope and the message id among `headers`, in one pass over the
/// few there are (no hashing of names).
fn read_headers(headers: &HeaderMap) -> (Option<&str>, Option<&str>) {
    let (envelope_name, id_name) = (envelope_name(), NATS_MESSAGE_ID);
    let (mut envelope, mut message_id) = (None, None);
    for (name, values) in headers.iter() {
        let value = values.first().map(HeaderValue::as_str);
        if *name == envelope_name {
            envelope = value;
        } else if *name == id_name {
            message_id = value;
        }
    }
    (envelope, message_id)
}

/// The subject of local `topic` (or pattern) under `prefix`.
pub fn subject(prefix: &str, topic: &str) -> String {
    format!("{prefix}.{topic}")
}

/// The subject of the requests on `topic` (`orch-req.<prefix>.<topic>`:
/// outside `<prefix>.>`, so no stream or import of the prefix takes them).
pub fn request_subject(prefix: &str, topic: &str) -> String {
    format!("orch-req.{prefix}.{topic}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_sdk::topic::validate_module_topic;

    fn node(name: &str) -> Identity {
        Identity::new(name.into())
    }

    #[test]
    fn an_envelope_goes_there_and_back() {
        let event = BusEvent::new("test.ping", b"{\"seq\":1}", Some("mod-p".into()));
        let headers = headers(&event, &node("node-a"), Some("node-a-17".into()));
        let arrived = arrived(
            "orch.demo.test.ping",
            Some(&headers),
            "orch.demo",
            &node("node-b"),
            validate_module_topic,
        )
        .expect("delivered");
        assert_eq!(arrived.topic, "test.ping");
        assert_eq!(arrived.origin, "node-a");
        assert_eq!(arrived.source, Some("mod-p"));
        assert_eq!(arrived.published_at_ms, Some(event.published_at_ms));
        assert_eq!(arrived.message_id, Some("node-a-17"));
    }

    #[test]
    fn own_foreign_and_reserved_messages_are_skipped() {
        let event = BusEvent::new("test.ping", b"{}", None);
        let a = node("node-a");
        let own = headers(&event, &a, None);
        assert_eq!(
            arrived(
                "orch.test.ping",
                Some(&own),
                "orch",
                &a,
                validate_module_topic
            ),
            Err(Skip::OwnEvent)
        );
        assert!(matches!(
            arrived("other.test.ping", None, "orch", &a, validate_module_topic),
            Err(Skip::Foreign(_))
        ));
        assert!(matches!(
            arrived(
                "orch.module.failed",
                None,
                "orch",
                &a,
                validate_module_topic
            ),
            Err(Skip::Foreign(_))
        ));
        let from_host = arrived(
            "orch.test.ping",
            Some(&own),
            "orch",
            &node("node-b"),
            validate_module_topic,
        )
        .expect("ok");
        assert_eq!(from_host.source, None);
    }

    #[test]
    fn a_namesake_running_meanwhile_is_told_from_an_earlier_run_of_this_node() {
        let earlier = Identity {
            name: "edge".into(),
            incarnation: 1_000_000,
        };
        let me = Identity {
            name: "edge".into(),
            incarnation: 2_000_000_000,
        };
        let mut event = BusEvent::new("test.ping", b"{}", None);
        // Published by the earlier run before this one started: its own.
        event.published_at_ms = 1_500;
        let old = headers(&event, &earlier, None);
        let judged = arrived(
            "orch.test.ping",
            Some(&old),
            "orch",
            &me,
            validate_module_topic,
        );
        assert_eq!(judged, Err(Skip::OwnEvent));
        // Published since, by another orchestrator with the same id.
        event.published_at_ms = me.started_ms() + 10;
        let other = headers(&event, &earlier, None);
        let judged = arrived(
            "orch.test.ping",
            Some(&other),
            "orch",
            &me,
            validate_module_topic,
        );
        assert_eq!(judged, Err(Skip::Namesake));
    }

    /// Headers as a peer may write them.
    fn raw(envelope: Option<&str>, id: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(envelope) = envelope {
            headers.insert(ENVELOPE, envelope);
        }
        if let Some(id) = id {
            headers.insert(NATS_MESSAGE_ID, id);
        }
        headers
    }

    #[test]
    fn an_envelope_or_id_that_breaks_the_caps_is_malformed_whoever_it_claims_to_be() {
        let me = node("node-b");
        let long_name = "n".repeat(caps::MAX_NAME + 1);
        let long_id = "i".repeat(caps::MAX_MESSAGE_ID + 1);
        let cases = [
            (Some("node-a mod 1 2 3".to_owned()), Some(long_id.clone())),
            (Some("node-a mod 1 2 3".to_owned()), Some("a b".to_owned())),
            (Some(format!("{long_name} mod 1 2 3")), None),
            (Some(format!("node-a {long_name} 1 2 3")), None),
            (Some("node.a mod 1 2 3".to_owned()), None),
            (Some("node-a mod 1".to_owned()), None),
            (Some("node-a mod 1 2 3 4".to_owned()), None),
            (Some("node-a mod x 2 3".to_owned()), None),
            (Some("node-a mod 1 99999999999999999999 3".to_owned()), None),
            (Some(" mod 1 2 3".to_owned()), None),
            (Some(String::new()), None),
            // Claiming to be this node changes nothing.
            (Some("node-b mod 1 2 3 x".to_owned()), None),
            (None, Some(long_id)),
        ];
        for (envelope, id) in cases {
            let headers = raw(envelope.as_deref(), id.as_deref());
            let judged = arrived(
                "orch.test.ping",
                Some(&headers),
                "orch",
                &me,
                validate_module_topic,
            );
            assert!(
                matches!(judged, Err(Skip::Malformed(_))),
                "{envelope:?} {id:?}: {judged:?}"
            );
        }
    }

    #[test]
    fn an_earlier_versions_four_fields_and_an_empty_id_are_taken() {
        let headers = raw(Some("node-a host 7 1700000000000"), Some(""));
        let judged = arrived(
            "orch.test.ping",
            Some(&headers),
            "orch",
            &node("node-b"),
            validate_module_topic,
        )
        .expect("delivered");
        assert_eq!(judged.event_id, Some(7));
        assert_eq!(judged.incarnation, None);
        assert_eq!(judged.message_id, None);
        assert_eq!(judged.source, None);
    }

    #[test]
    fn a_long_subject_is_shown_short_in_the_reason() {
        let subject = format!("orch.{}", "t".repeat(4_000));
        let Err(Skip::Foreign(why)) = arrived(&subject, None, "orch", &node("b"), |_| {
            Err("x".repeat(4_000))
        }) else {
            panic!("skipped");
        };
        assert!(why.len() < 400, "{why}");
    }
}
