//! An event frame's fields borrowed from wherever the event lives: the
//! orchestrator encodes the bus's own event into a ring without building an
//! owned [`EventFrame`] first (no allocation, one copy fewer per event).

use orch_sdk::EventKind;

use super::fields::Fields;
use super::{EVENT, EventFrame, ProtocolError, put};

/// The fields of an [`EventFrame`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The JSON payload.
    pub payload: &'a [u8],
    /// The event's id in the orchestrator.
    pub id: u64,
    /// The publishing module; empty for the host.
    pub source: &'a str,
    /// When it was published, in milliseconds since the Unix epoch.
    pub published_at_ms: u64,
    /// How many times it has been delivered to the application (never 0).
    pub delivery_count: u32,
    /// Its part in a request/reply exchange.
    pub kind: EventKind,
    /// The request it is or answers (0 for a plain event).
    pub request_id: u64,
    /// For a request: the module that waits for the answer.
    pub reply_to: &'a str,
}

impl<'a> From<&'a EventFrame> for EventRef<'a> {
    fn from(frame: &'a EventFrame) -> Self {
        Self {
            topic: &frame.topic,
            payload: &frame.payload,
            id: frame.id,
            source: &frame.source,
            published_at_ms: frame.published_at_ms,
            delivery_count: frame.delivery_count,
            kind: frame.kind,
            request_id: frame.request_id,
            reply_to: &frame.reply_to,
        }
    }
}

impl<'a> EventRef<'a> {
    /// The event of a frame `body` (kind byte and fields, as
    /// [`super::Frame::read_body`] leaves it), borrowing its bytes; `None`
    /// for a frame of another kind (decode it with [`super::Frame::decode`]).
    #[inline]
    pub fn decode(body: &'a [u8]) -> Result<Option<Self>, ProtocolError> {
        let Some((&EVENT, rest)) = body.split_first() else {
            return Ok(None);
        };
        let mut fields = Fields(rest);
        let event = Self::from_fields(&mut fields)?;
        if !fields.0.is_empty() {
            return Err(ProtocolError::Malformed("trailing bytes"));
        }
        Ok(Some(event))
    }

    /// The event's fields, after the kind byte.
    #[inline]
    pub(super) fn from_fields(f: &mut Fields<'a>) -> Result<Self, ProtocolError> {
        Ok(Self {
            topic: f.str()?,
            payload: f.slice()?,
            id: f.u64()?,
            published_at_ms: f.u64()?,
            source: f.str()?,
            kind: EventKind::from_code(f.u32()?).ok_or(ProtocolError::Malformed("event kind"))?,
            request_id: f.u64()?,
            reply_to: f.str()?,
            delivery_count: match f.u32()? {
                0 => return Err(ProtocolError::Malformed("event delivered 0 times")),
                count => count,
            },
        })
    }

    /// The owned frame (for a transport that queues frames).
    pub fn to_frame(&self) -> EventFrame {
        EventFrame {
            topic: self.topic.to_owned(),
            payload: self.payload.to_vec(),
            id: self.id,
            source: self.source.to_owned(),
            published_at_ms: self.published_at_ms,
            delivery_count: self.delivery_count,
            kind: self.kind,
            request_id: self.request_id,
            reply_to: self.reply_to.to_owned(),
        }
    }

    /// The bytes of its variable parts.
    pub fn variable_len(&self) -> usize {
        self.topic.len() + self.payload.len() + self.source.len() + self.reply_to.len()
    }

    /// Writes the `Event` frame's bytes, length prefix included, over `buf`
    /// (the same bytes as `Frame::Event(self.to_frame()).encode_into`).
    #[inline]
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        buf.clear();
        buf.reserve(self.variable_len() + 64);
        buf.extend_from_slice(&[0; 4]);
        self.put_body(buf);
        let len = u32::try_from(buf.len() - 4).unwrap_or(u32::MAX);
        buf[..4].copy_from_slice(&len.to_le_bytes());
    }

    /// The kind byte and the fields.
    #[inline]
    pub(super) fn put_body(&self, buf: &mut Vec<u8>) {
        buf.push(EVENT);
        put(buf, self.topic.as_bytes());
        put(buf, self.payload);
        buf.extend_from_slice(&self.id.to_le_bytes());
        buf.extend_from_slice(&self.published_at_ms.to_le_bytes());
        put(buf, self.source.as_bytes());
        buf.extend_from_slice(&self.kind.code().to_le_bytes());
        buf.extend_from_slice(&self.request_id.to_le_bytes());
        put(buf, self.reply_to.as_bytes());
        buf.extend_from_slice(&self.delivery_count.to_le_bytes());
    }
}
