//! The shared-memory data path between the orchestrator and a child host: one
//! sealed, nameless `memfd` per child (nothing in `/dev/shm`, freed by the
//! kernel however both sides end) holding two byte rings, one each way, that
//! carry the protocol's frames unchanged. The pipes stay for `Ping`/`Pong`,
//! logs and metrics, and their end of file stays the crash signal.
//!
//! - `segment`: the mapping, its header, futexes (all the `unsafe`);
//! - `ring`: one end of a ring, checking every counter the peer publishes;
//! - `stream`: the rings as `io::Read` / blocking writes.

#[cfg(test)]
mod props;
mod ring;
mod segment;
mod stream;
#[cfg(test)]
mod tests;

use std::os::fd::OwnedFd;
use std::sync::Arc;

pub use ring::{Consumer, Corrupt, Doorbell, HandledNote, Producer};
pub use segment::{CHILD_FD, hand_to_child};
pub(crate) use segment::{Segment, Side};
pub use stream::{RingReader, Wake, WriteFailed, as_corrupt, write_all};

/// The bytes of each ring: room for a full in-flight window of 1 KB events
/// many times over; touched lazily, so an idle module costs a few pages.
pub const RING_BYTES: usize = 1 << 20;

/// How events travel to isolated modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Through the child's stdin and stdout pipes, like its control frames.
    Pipe,
    /// Through a shared-memory ring each way (the default).
    SharedMemory,
}

impl Transport {
    /// The word the child host receives for it.
    pub fn arg(self) -> &'static str {
        match self {
            Transport::Pipe => "pipe",
            Transport::SharedMemory => "shm",
        }
    }

    /// The transport named by the child's argument.
    pub fn from_arg(arg: &str) -> Option<Self> {
        match arg {
            "pipe" => Some(Transport::Pipe),
            "shm" => Some(Transport::SharedMemory),
            _ => None,
        }
    }
}

/// The orchestrator's ends of a new child's segment, and the fd to hand it.
pub struct HostRings {
    /// Events and requests to the child.
    pub down: Producer,
    /// The child's replies and publishes.
    pub up: Consumer,
    /// The memfd, until the child has it (then dropped: the mapping stays).
    pub fd: OwnedFd,
}

impl HostRings {
    /// A fresh segment for `module`'s child of `generation`.
    pub fn create(module: &str, generation: u32) -> std::io::Result<Self> {
        let (segment, fd) = Segment::create(&format!("{module}:{generation}"), RING_BYTES)?;
        let segment = Arc::new(segment);
        Ok(Self {
            down: Producer::new(Arc::clone(&segment), Side::Down),
            up: Consumer::new(segment, Side::Up),
            fd,
        })
    }
}

/// Both ends of one ring of a fresh segment, in this process: for tests of
/// what is written into a ring and read out of it.
pub fn loopback(name: &str) -> std::io::Result<(Producer, Consumer)> {
    let (segment, _fd) = Segment::create(name, RING_BYTES)?;
    let segment = Arc::new(segment);
    Ok((
        Producer::new(Arc::clone(&segment), Side::Up),
        Consumer::new(segment, Side::Up),
    ))
}

/// The child's ends of the segment it inherited.
pub struct ChildRings {
    /// Events and requests from the orchestrator.
    pub down: Consumer,
    /// Replies and publishes to it.
    pub up: Producer,
}

impl ChildRings {
    /// Maps the segment on the inherited fd.
    pub fn open() -> std::io::Result<Self> {
        let segment = Arc::new(Segment::open_inherited()?);
        Ok(Self {
            down: Consumer::new(Arc::clone(&segment), Side::Down),
            up: Producer::new(segment, Side::Up),
        })
    }
}
