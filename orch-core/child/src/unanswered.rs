//! The requests a child host's module was handed and has not answered yet, so
//! that a second answer is refused in the child, as it is in-process, instead
//! of being sent to the orchestrator only to be refused there out of sight.

use std::collections::{HashSet, VecDeque};

/// How many unanswered requests are remembered; the oldest is forgotten past
/// it (by then it has timed out in the orchestrator, which decides anyway).
const CAPACITY: usize = 10_000;

/// Unanswered requests, by requester and id, oldest first.
#[derive(Default)]
pub(crate) struct UnansweredRequests {
    open: HashSet<(String, u64)>,
    order: VecDeque<(String, u64)>,
}

impl UnansweredRequests {
    /// Notes request `id` of `reply_to`, delivered to the module.
    pub(crate) fn expect(&mut self, reply_to: &str, id: u64) {
        let key = (reply_to.to_owned(), id);
        if !self.open.insert(key.clone()) {
            return; // redelivered after a crash: still one answer
        }
        self.order.push_back(key);
        while self.order.len() > CAPACITY {
            if let Some(oldest) = self.order.pop_front() {
                self.open.remove(&oldest);
            }
        }
    }

    /// Takes request `id` of `reply_to` for its answer; `false` when it was
    /// answered already (or never delivered here).
    pub(crate) fn take(&mut self, reply_to: &str, id: u64) -> bool {
        let key = (reply_to.to_owned(), id);
        if !self.open.remove(&key) {
            return false;
        }
        if let Some(at) = self.order.iter().position(|k| *k == key) {
            self.order.remove(at);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_answer_per_request_and_the_book_stays_bounded() {
        let mut book = UnansweredRequests::default();
        book.expect("client", 1);
        assert!(book.take("client", 1));
        assert!(!book.take("client", 1), "a second answer");
        assert!(!book.take("other", 2), "never delivered");
        for id in 0..(CAPACITY as u64 + 5) {
            book.expect("client", id);
        }
        assert_eq!(book.open.len(), CAPACITY);
        assert!(!book.take("client", 0), "the oldest was forgotten");
        assert!(book.take("client", CAPACITY as u64 + 4));
    }
}
