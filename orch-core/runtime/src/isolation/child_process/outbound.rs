//! What the orchestrator sends a child: one of the protocol's frames, or an
//! event borrowed from the bus (encoded straight into the ring, never built
//! as an owned frame).

use orch_wire::protocol::{EventRef, Frame};

/// A frame to send, owned elsewhere or borrowed from the bus.
#[derive(Clone, Copy)]
pub(super) enum Outbound<'a> {
    /// A frame.
    Frame(&'a Frame),
    /// An event, as `Frame::Event` would carry it.
    Event(&'a EventRef<'a>),
}

impl<'a> From<&'a Frame> for Outbound<'a> {
    fn from(frame: &'a Frame) -> Self {
        Self::Frame(frame)
    }
}

impl Outbound<'_> {
    /// Whether the child answers it with a reply.
    pub(super) fn expects_reply(&self) -> bool {
        match self {
            Self::Frame(frame) => frame.expects_reply(),
            Self::Event(_) => true,
        }
    }

    /// Its bytes, length prefix included, over `buf`.
    pub(super) fn encode_into(&self, buf: &mut Vec<u8>) {
        match self {
            Self::Frame(frame) => frame.encode_into(buf),
            Self::Event(event) => event.encode_into(buf),
        }
    }

    /// Its bytes, length prefix included.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        self.encode_into(&mut buf);
        buf
    }
}
