//! The envelope of an event on the broker: its bytes travel unchanged as the
//! message payload, on subject `<prefix>.<topic>`; who published it, where
//! and when travel in headers.

use std::sync::Arc;

use async_nats::HeaderMap;
use orch_runtime::bus::BusEvent;

/// The node the event left (the origin check).
pub const NODE: &str = "Orch-Node";
/// The module that published it.
pub const SOURCE: &str = "Orch-Source";
/// Its id on its own node's bus.
pub const EVENT_ID: &str = "Orch-Event-Id";
/// When it was published, in milliseconds since the Unix epoch.
pub const TIME: &str = "Orch-Time";
/// The message id JetStream deduplicates on (`<node>-<sequence>`).
pub const MESSAGE_ID: &str = "Nats-Msg-Id";

/// The headers of an exported `event`.
pub fn headers(event: &BusEvent, node: &str, message_id: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(NODE, node);
    headers.insert(SOURCE, event.source.as_deref().unwrap_or("host"));
    headers.insert(EVENT_ID, event.id.to_string().as_str());
    headers.insert(TIME, event.published_at_ms.to_string().as_str());
    headers.insert(MESSAGE_ID, message_id);
    headers
}

/// An imported message, read back.
#[derive(Debug, PartialEq, Eq)]
pub struct Arrived {
    /// The local topic (the subject without the prefix).
    pub topic: String,
    /// The node it came from.
    pub origin: Arc<str>,
    /// The module that published it there (`None` for that node's host).
    pub source: Option<Arc<str>>,
    /// When it was published there.
    pub published_at_ms: Option<u64>,
    /// Its message id, when it has one.
    pub message_id: Option<String>,
}

/// Why an imported message is not delivered.
#[derive(Debug, PartialEq, Eq)]
pub enum Skip {
    /// It left this very node.
    OwnEvent,
    /// Its subject is not under the prefix, or is not a valid local topic
    /// (or one of the host's namespaces).
    Foreign(String),
}

/// Reads the envelope of a message on `subject` under `prefix`, for `node`.
pub fn arrived(
    subject: &str,
    headers: Option<&HeaderMap>,
    prefix: &str,
    node: &str,
) -> Result<Arrived, Skip> {
    let header = |name: &str| {
        headers
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
            .filter(|v| !v.is_empty())
    };
    let origin = header(NODE).unwrap_or_else(|| "unknown".to_owned());
    if origin == node {
        return Err(Skip::OwnEvent);
    }
    let topic = subject
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'))
        .ok_or_else(|| Skip::Foreign(format!("subject '{subject}' is not under '{prefix}.'")))?;
    orch_sdk::topic::validate_module_topic(topic)
        .map_err(|e| Skip::Foreign(format!("subject '{subject}': {e}")))?;
    Ok(Arrived {
        topic: topic.to_owned(),
        origin: origin.into(),
        source: header(SOURCE).filter(|s| s != "host").map(Arc::from),
        published_at_ms: header(TIME).and_then(|t| t.parse().ok()),
        message_id: header(MESSAGE_ID),
    })
}

/// The subject of local `topic` (or pattern) under `prefix`.
pub fn subject(prefix: &str, topic: &str) -> String {
    format!("{prefix}.{topic}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_goes_there_and_back() {
        let event = BusEvent::new("test.ping", b"{\"seq\":1}", Some("mod-p".into()));
        let headers = headers(&event, "node-a", "node-a-17");
        let arrived = arrived("orch.demo.test.ping", Some(&headers), "orch.demo", "node-b")
            .expect("delivered");
        assert_eq!(arrived.topic, "test.ping");
        assert_eq!(&*arrived.origin, "node-a");
        assert_eq!(arrived.source.as_deref(), Some("mod-p"));
        assert_eq!(arrived.published_at_ms, Some(event.published_at_ms));
        assert_eq!(arrived.message_id.as_deref(), Some("node-a-17"));
    }

    #[test]
    fn own_foreign_and_reserved_messages_are_skipped() {
        let event = BusEvent::new("test.ping", b"{}", None);
        let own = headers(&event, "node-a", "node-a-1");
        assert_eq!(
            arrived("orch.test.ping", Some(&own), "orch", "node-a"),
            Err(Skip::OwnEvent)
        );
        assert!(matches!(
            arrived("other.test.ping", None, "orch", "node-a"),
            Err(Skip::Foreign(_))
        ));
        assert!(matches!(
            arrived("orch.module.failed", None, "orch", "node-a"),
            Err(Skip::Foreign(_))
        ));
        let from_host = arrived("orch.test.ping", Some(&own), "orch", "node-b").expect("ok");
        assert_eq!(from_host.source, None);
    }
}
