//! The envelope of an event on the broker: its bytes travel unchanged as the
//! message payload, on subject `<prefix>.<topic>`; who published it, where
//! and when travel in one header, `Orch-Envelope: <node> <source> <event id>
//! <time ms> <incarnation>` (one header, not five: each header costs the client a parse and
//! allocations on both ends, measured by `cargo xtask bench bridge`), and for
//! JetStream `Nats-Msg-Id`.

use std::fmt::Write as _;

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::{HeaderMap, HeaderName, HeaderValue};
use orch_runtime::bus::BusEvent;

use crate::node::Identity;

/// The envelope: the node the event left (the origin check), the module
/// that published it (`host` for the host), its id on that node's bus, when
/// it was published (milliseconds since the Unix epoch) and when that node's
/// bridge started (its incarnation, microseconds), separated by spaces (node
/// ids and module names hold none).
pub const ENVELOPE: &str = "Orch-Envelope";

/// The envelope header's name, made without parsing or allocating.
fn envelope_name() -> HeaderName {
    HeaderName::from_static(ENVELOPE)
}

/// The headers of an exported `event`; `message_id` for JetStream.
pub fn headers(event: &BusEvent, me: &Identity, message_id: Option<String>) -> HeaderMap {
    let source = event.source.as_deref().unwrap_or("host");
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
    /// The node it came from.
    pub origin: &'a str,
    /// The module that published it there (`None` for that node's host).
    pub source: Option<&'a str>,
    /// When it was published there.
    pub published_at_ms: Option<u64>,
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
}

/// Reads the envelope of a message on `subject` under `prefix`, for `me`;
/// `is_topic` tells whether a topic is one a module may receive (the
/// importer remembers its answers).
pub fn arrived<'a>(
    subject: &'a str,
    headers: Option<&'a HeaderMap>,
    prefix: &str,
    me: &Identity,
    is_topic: impl FnOnce(&str) -> Result<(), String>,
) -> Result<Arrived<'a>, Skip> {
    let (envelope, message_id) = headers.map_or((None, None), read_headers);
    let enveloped = envelope.is_some();
    let mut parts = envelope.unwrap_or_default().split(' ');
    let origin = parts.next().filter(|o| !o.is_empty()).unwrap_or("unknown");
    let source = parts.next().filter(|s| !s.is_empty() && *s != "host");
    let _event_id = parts.next();
    let published_at_ms: Option<u64> = parts.next().and_then(|t| t.parse().ok());
    if origin == me.name {
        let incarnation: Option<u64> = parts.next().and_then(|t| t.parse().ok());
        // A message of an earlier run of this node (JetStream keeps them) was
        // published before this one started; one published since by another
        // incarnation comes from a namesake.
        let namesake = incarnation.is_some_and(|i| i != me.incarnation)
            && published_at_ms.is_some_and(|t| t >= me.started_ms());
        return Err(if namesake {
            Skip::Namesake
        } else {
            Skip::OwnEvent
        });
    }
    let topic = subject
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'))
        .ok_or_else(|| Skip::Foreign(format!("subject '{subject}' is not under '{prefix}.'")))?;
    is_topic(topic).map_err(|e| Skip::Foreign(format!("subject '{subject}': {e}")))?;
    Ok(Arrived {
        topic,
        origin,
        source,
        published_at_ms,
        message_id: message_id.filter(|v| !v.is_empty()),
        enveloped,
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
}
