//! The bus's deliveries as the wire's event frames and back: the orchestrator
//! turns each event for an isolated module into an [`EventFrame`], the child
//! host hands the frame it receives to its module as a [`Delivery`]. The
//! bytes are the bus's own, copied once into the frame and borrowed back.

use orch_sdk::Exchange;
use orch_wire::protocol::{EventFrame, EventRef};

use crate::bus::{BusEvent, Delivery};

/// The wire's view of `event`, borrowing its bytes (encoded straight into
/// the child's ring).
#[inline]
pub(crate) fn event_ref(event: &BusEvent) -> EventRef<'_> {
    let delivery = event.delivery();
    EventRef {
        topic: delivery.topic,
        payload: delivery.payload,
        id: delivery.id,
        source: delivery.source,
        published_at_ms: delivery.published_at_ms,
        delivery_count: delivery.delivery_count,
        kind: delivery.exchange.kind,
        request_id: delivery.exchange.request_id,
        reply_to: delivery.exchange.reply_to,
    }
}

impl<'a> From<EventRef<'a>> for Delivery<'a> {
    /// The event as the child's module receives it.
    #[inline]
    fn from(event: EventRef<'a>) -> Self {
        Self {
            topic: event.topic,
            payload: event.payload,
            id: event.id,
            source: event.source,
            published_at_ms: event.published_at_ms,
            delivery_count: event.delivery_count,
            exchange: Exchange {
                kind: event.kind,
                request_id: event.request_id,
                reply_to: event.reply_to,
            },
        }
    }
}

impl<'a> From<&'a EventFrame> for Delivery<'a> {
    /// The event as the child's module receives it.
    #[inline]
    fn from(frame: &'a EventFrame) -> Self {
        Self::from(EventRef::from(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    use orch_wire::protocol::Frame;

    #[test]
    fn a_bus_event_survives_the_round_trip_through_the_wire() {
        let event = BusEvent::new(
            "orders.created",
            br#"{"id":7}"#,
            Some(Arc::from("producer")),
        )
        .in_exchange(orch_sdk::EventKind::Request, 9, Some(Arc::from("asker")))
        .delivered_times(3);
        let mut bytes = Vec::new();
        event_ref(&event).encode_into(&mut bytes);
        let Ok(Some(Frame::Event(frame))) = Frame::read_from(&mut &bytes[..]) else {
            panic!("not an event frame");
        };
        // `Delivery` has no `PartialEq`: its debug form names every field.
        let back = Delivery::from(&frame);
        assert_eq!(format!("{back:?}"), format!("{:?}", event.delivery()));
    }
}
