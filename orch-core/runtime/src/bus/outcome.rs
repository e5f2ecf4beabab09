//! What a publish comes to: how many took the event, or why not.

use super::SubscriberId;

/// Errors of bus operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The topic or pattern is malformed.
    #[error("{0}")]
    InvalidTopic(String),
    /// The subscriber was removed.
    #[error("subscriber {0:?} is not registered (it was unloaded)")]
    UnknownSubscriber(SubscriberId),
    /// The payload is larger than `max_event_bytes`.
    #[error(
        "the payload on '{topic}' is {size} bytes, more than max_event_bytes ({limit}); \
         send large data by reference (a path, a URL) or raise max_event_bytes in config/main.yaml"
    )]
    TooLarge {
        /// The topic.
        topic: String,
        /// The payload's size.
        size: usize,
        /// The limit.
        limit: u64,
    },
    /// A full mailbox with `overflow: block` did not make room in time.
    #[error("{0}")]
    Refused(String),
}

/// What one publish came to.
#[derive(Default)]
pub(super) struct DeliveryReport {
    pub(super) delivered: usize,
    pub(super) refused: Option<String>,
}

impl DeliveryReport {
    /// How many took the event, or the refusal of a full `block` mailbox.
    pub(super) fn into_result(self) -> Result<usize, BusError> {
        match self.refused {
            Some(message) => Err(BusError::Refused(message)),
            None => Ok(self.delivered),
        }
    }

    /// Counts what one delivery that was not waited for came to.
    pub(super) fn note(&mut self, delivered: super::Delivered) {
        match delivered {
            super::Delivered::Accepted => self.delivered += 1,
            super::Delivered::Refused(message) => self.refuse(message),
            _ => {}
        }
    }

    pub(super) fn refuse(&mut self, message: String) {
        match &mut self.refused {
            Some(first) => {
                first.push_str("; ");
                first.push_str(&message);
            }
            None => self.refused = Some(message),
        }
    }
}
