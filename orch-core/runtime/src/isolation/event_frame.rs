//! The bus's deliveries as the wire's event frames and back: the orchestrator
//! turns each event for an isolated module into an [`EventFrame`], the child
//! host hands the frame it receives to its module as a [`Delivery`]. The
//! bytes are the bus's own, copied once into the frame and borrowed back.

use orch_sdk::Exchange;
use orch_wire::protocol::EventFrame;

use crate::bus::Delivery;

impl From<Delivery<'_>> for EventFrame {
    /// The frame of a delivered event.
    #[inline]
    fn from(event: Delivery<'_>) -> Self {
        Self {
            topic: event.topic.to_owned(),
            payload: event.payload.to_vec(),
            id: event.id,
            source: event.source.to_owned(),
            published_at_ms: event.published_at_ms,
            delivery_count: event.delivery_count,
            kind: event.exchange.kind,
            request_id: event.exchange.request_id,
            reply_to: event.exchange.reply_to.to_owned(),
        }
    }
}

impl<'a> From<&'a EventFrame> for Delivery<'a> {
    /// The event as the child's module receives it.
    #[inline]
    fn from(frame: &'a EventFrame) -> Self {
        Self {
            topic: &frame.topic,
            payload: &frame.payload,
            id: frame.id,
            source: &frame.source,
            published_at_ms: frame.published_at_ms,
            delivery_count: frame.delivery_count,
            exchange: Exchange {
                kind: frame.kind,
                request_id: frame.request_id,
                reply_to: &frame.reply_to,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_survives_the_round_trip_through_a_frame() {
        let delivery = Delivery {
            topic: "orders.created",
            payload: br#"{"id":7}"#,
            id: 42,
            source: "producer",
            published_at_ms: 1_700_000_000_000,
            delivery_count: 3,
            exchange: Exchange {
                kind: orch_sdk::EventKind::Request,
                request_id: 9,
                reply_to: "asker",
            },
        };
        let frame = EventFrame::from(delivery);
        // `Delivery` has no `PartialEq`: its debug form names every field.
        let back = Delivery::from(&frame);
        assert_eq!(format!("{back:?}"), format!("{delivery:?}"));
    }
}
