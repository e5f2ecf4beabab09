//! Bytes of JetStream messages this node holds unacknowledged (on their way
//! to local mailboxes, waiting there, in handlers), bounded: the server
//! hands out up to `max_ack_pending` messages of up to its `max_payload`
//! each (a gigabyte of 1 MiB messages), so the reader waits for room here
//! before it takes more. A message's share is given back once its
//! acknowledgement went out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Bytes of one import's messages held unacknowledged before its reader
/// waits (one message more may pass it: the one that made it cross).
pub const HELD_BYTES: usize = 64 * 1024 * 1024;

/// What a held message costs beside its payload: the message with its
/// subject and headers, its event, its acknowledgement's state.
pub const MESSAGE_OVERHEAD: usize = 1024;

/// The reader looks again at least this often while it waits (a share
/// given back always wakes it; this only bounds the wait).
const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// The bytes held, and the reader's wake-up when they fall below the bound.
pub struct HeldBytes {
    bytes: AtomicUsize,
    limit: usize,
    freed: Notify,
}

impl HeldBytes {
    /// Nothing held yet, at most `limit` bytes before the reader waits.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            bytes: AtomicUsize::new(0),
            limit,
            freed: Notify::new(),
        })
    }

    /// Holds `bytes` until the returned share is dropped.
    pub fn hold(self: &Arc<Self>, bytes: usize) -> HeldShare {
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
        HeldShare {
            of: Arc::clone(self),
            bytes,
        }
    }

    /// The bytes held now.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }

    /// Waits until less than the bound is held.
    pub async fn room(&self) {
        loop {
            let freed = self.freed.notified();
            let mut freed = std::pin::pin!(freed);
            // Registered before the look: a share given back in between
            // wakes this wait.
            freed.as_mut().enable();
            if self.bytes() < self.limit {
                return;
            }
            let _ = tokio::time::timeout(LOOK_AGAIN, freed).await;
        }
    }
}

/// One message's share of the bytes held: given back when dropped.
pub struct HeldShare {
    of: Arc<HeldBytes>,
    bytes: usize,
}

impl Drop for HeldShare {
    fn drop(&mut self) {
        let before = self.of.bytes.fetch_sub(self.bytes, Ordering::AcqRel);
        if before >= self.of.limit && before - self.bytes < self.of.limit {
            self.of.freed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_waits_while_the_bound_is_held_and_wakes_when_a_share_goes() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        runtime.block_on(waits_and_wakes());
    }

    async fn waits_and_wakes() {
        let held = HeldBytes::new(1_000);
        held.room().await;
        let first = held.hold(600);
        let second = held.hold(600);
        assert_eq!(held.bytes(), 1_200);
        let waiting = tokio::spawn({
            let held = Arc::clone(&held);
            async move { held.room().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "room while 1,200 of 1,000 are held");
        drop(first);
        tokio::time::timeout(Duration::from_millis(500), waiting)
            .await
            .expect("woken at once, not after a second")
            .expect("the waiting task");
        drop(second);
        assert_eq!(held.bytes(), 0);
    }
}
