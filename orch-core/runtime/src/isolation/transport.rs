//! Which transport the orchestrator gives the children it starts: shared
//! memory unless told otherwise (the benchmark compares both).

use std::sync::atomic::{AtomicU8, Ordering};

use orch_wire::shm::Transport;

const UNSET: u8 = 0;
static TRANSPORT: AtomicU8 = AtomicU8::new(UNSET);

/// Chooses the transport for the children started from now on (the
/// benchmark compares both). Without a call it is shared memory, unless
/// `ORCH_ISOLATION_TRANSPORT=pipe` is set.
pub fn set_transport(transport: Transport) {
    TRANSPORT.store(transport as u8 + 1, Ordering::Relaxed);
}

/// The transport for the next child.
pub fn transport() -> Transport {
    match TRANSPORT.load(Ordering::Relaxed) {
        UNSET => match std::env::var("ORCH_ISOLATION_TRANSPORT").as_deref() {
            Ok("pipe") => Transport::Pipe,
            _ => Transport::SharedMemory,
        },
        n if n == Transport::Pipe as u8 + 1 => Transport::Pipe,
        _ => Transport::SharedMemory,
    }
}
