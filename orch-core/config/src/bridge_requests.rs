//! `bridge.nats.serve` and `bridge.nats.ask`: requests across nodes.
//!
//! - `serve: [topics]`: this node answers the requests other nodes send on
//!   these topics, with its own modules, while one of them subscribes; exact
//!   topics (each is one endpoint of the node's NATS service);
//! - `ask: [patterns]`: a `ctx.request` on a matching topic that no local
//!   module subscribes to goes to NATS.

use serde_saphyr::Spanned;

use super::NatsSettings;
use super::check::Checker;

/// `serve`: exact module topics, each once.
pub(crate) fn served(c: &mut Checker, raw: Option<&[Spanned<String>]>) -> Vec<String> {
    let mut topics: Vec<String> = Vec::new();
    for entry in raw.unwrap_or_default() {
        let Some(text) = c.string(entry) else {
            continue;
        };
        let text = text.trim();
        if orch_sdk::topic::is_pattern(text) {
            c.error(
                &entry.referenced,
                format!(
                    "`bridge.nats.serve` entry `{}` is a pattern; serve names exact topics",
                    text.escape_debug()
                ),
                "list each topic this node answers, for example `serve: [orders.price]` (each \
                 one is an endpoint of the node's NATS service); patterns belong in `ask:`",
            );
            continue;
        }
        match orch_sdk::topic::validate_module_topic(text) {
            Ok(()) if !topics.iter().any(|t| t == text) => topics.push(text.to_owned()),
            Ok(()) => {}
            Err(reason) => c.error(
                &entry.referenced,
                format!(
                    "`bridge.nats.serve` entry `{}` is not a topic modules may answer: {reason}",
                    text.escape_debug()
                ),
                "write a dot-separated topic of the application, for example \
                 `serve: [orders.price]`; app.*, module.* and bridge.* stay on their node",
            ),
        }
    }
    topics
}

/// Whether the bridge serves or asks anything.
pub(crate) fn any(nats: &NatsSettings) -> bool {
    !nats.serve.is_empty() || !nats.ask.is_empty()
}
