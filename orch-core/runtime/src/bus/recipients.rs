//! The subscribers a request was delivered to: the only modules that may
//! answer it (see [`crate::requests::Requests::reply`]).

use std::sync::{Arc, Mutex, MutexGuard};

use super::SubscriberId;

/// The subscribers one request went to, filled in while the bus delivers it:
/// each is noted before its mailbox gets the event (and forgotten if it did
/// not take it), so an answer that comes back before the publish returns
/// still finds its responder here. Cheap to clone; clones share the list.
#[derive(Debug, Clone, Default)]
pub struct Recipients(Arc<Mutex<Vec<SubscriberId>>>);

impl Recipients {
    fn list(&self) -> MutexGuard<'_, Vec<SubscriberId>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes `id` as a recipient.
    pub(super) fn note(&self, id: SubscriberId) {
        let mut list = self.list();
        if !list.contains(&id) {
            list.push(id);
        }
    }

    /// Takes `id` out again: its mailbox did not take the request.
    pub(super) fn forget(&self, id: SubscriberId) {
        self.list().retain(|r| *r != id);
    }

    /// Whether the request went to `id`.
    pub fn contains(&self, id: SubscriberId) -> bool {
        self.list().contains(&id)
    }

    /// How many subscribers it went to.
    pub fn len(&self) -> usize {
        self.list().len()
    }

    /// Whether it went to no one.
    pub fn is_empty(&self) -> bool {
        self.list().is_empty()
    }
}
