//! `bridge.nats.jetstream`: the stream events are stored in, and this
//! node's durable consumer on it.

use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use super::check::Checker;
use super::merge::merge_by_key;

/// `bridge.nats.jetstream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamSettings {
    /// `stream`: created if missing, with subjects `<prefix>.>`.
    pub stream: String,
    /// `durable`: this node's durable consumer; `None`: the node's id.
    pub durable: Option<String>,
    /// `replicas`: copies of the stream in a cluster (1 to 5, default 1);
    /// with 3, the stream survives the loss of a server.
    pub replicas: usize,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawJetStream {
    stream: Option<Spanned<String>>,
    durable: Option<Spanned<String>>,
    replicas: Option<Spanned<Value>>,
}
merge_by_key!(RawJetStream {
    stream,
    durable,
    replicas
});

/// `jetstream`: the stream (required), the durable and the replicas.
pub(crate) fn jetstream(c: &mut Checker, raw: &Spanned<RawJetStream>) -> JetStreamSettings {
    let stream = match raw.value.stream.as_ref() {
        Some(stream) => crate::bridge_tokens::name_token(c, "bridge.nats.jetstream.stream", stream),
        None => None,
    };
    let stream = stream.unwrap_or_else(|| {
        c.error(
            &raw.referenced,
            "`bridge.nats.jetstream` names no `stream`",
            "add `stream: ORCH_EVENTS` (created if missing, with the subjects `<prefix>.>`)",
        );
        String::new()
    });
    let durable = raw
        .value
        .durable
        .as_ref()
        .and_then(|d| crate::bridge_tokens::name_token(c, "bridge.nats.jetstream.durable", d));
    let replicas: usize = c.count(
        "bridge.nats.jetstream.replicas",
        raw.value.replicas.as_ref(),
        1,
    );
    let replicas = match raw.value.replicas.as_ref() {
        Some(at) if replicas > 5 => {
            c.error(
                &at.referenced,
                format!("`bridge.nats.jetstream.replicas` is {replicas}, more than JetStream's 5"),
                "write 1 for a single server, 3 for a cluster that survives the loss of one",
            );
            1
        }
        _ => replicas,
    };
    JetStreamSettings {
        stream,
        durable,
        replicas,
    }
}
