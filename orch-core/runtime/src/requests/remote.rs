//! Requests that leave this orchestrator: when no local module takes a
//! request, the table offers it to a [`RemoteRequests`] (the NATS bridge's
//! `ask` topics) instead of answering "no responders" at once. The request
//! stays pending here with its timer, so the requester still gets exactly
//! one answer: the first of the remote reply ([`super::Requests::answer_remote`]),
//! the remote "no responders", or the local timeout.

use std::sync::Arc;
use std::time::Duration;

use crate::bus::BusEvent;

/// One request offered to another orchestrator.
pub struct RemoteAsk {
    /// The request as it would have been delivered locally: its topic,
    /// payload, source (the requester), `request_id` and `reply_to`.
    pub event: Arc<BusEvent>,
    /// How long the requester waits, from now.
    pub timeout: Duration,
}

/// What became of a request offered to a [`RemoteRequests`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// On its way: the answer comes through
    /// [`super::Requests::answer_remote`], or the local timer fires.
    Sent,
    /// Not a topic it asks for (or no connection): "no responders", as
    /// without it.
    NotMine,
    /// Refused (too many in flight): `ctx.request` fails with this.
    Refused(String),
}

/// Where requests go that no local module takes. Never waits: it is called
/// on the requester's thread.
pub trait RemoteRequests: Send + Sync {
    /// Offers one request.
    fn ask(&self, ask: RemoteAsk) -> Asked;
}

#[cfg(test)]
mod tests;
