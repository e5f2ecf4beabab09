//! Events a full mailbox dropped, published as `module.dead_letter` once the
//! publish that dropped them let go of the registry.

use super::{Bus, DEAD_LETTER_QUEUE, DeadLetter, FLUSHING};

impl Bus {
    /// Queues an event a full mailbox dropped, for `module.dead_letter`
    /// (published after the current publish lets go of the registry).
    pub fn dead_letter(&self, letter: DeadLetter) {
        if letter.event.topic() != orch_sdk::events::MODULE_DEAD_LETTER {
            let _ = self.shared.dead_letters.0.try_send(letter);
        }
    }

    /// Publishes the queued dead letters, if any module subscribes to them.
    pub(super) fn flush_dead_letters(&self) {
        if FLUSHING.with(std::cell::Cell::get) {
            return;
        }
        FLUSHING.with(|f| f.set(true));
        let topic = orch_sdk::events::MODULE_DEAD_LETTER;
        let wanted = self.has_subscribers(topic);
        for _ in 0..DEAD_LETTER_QUEUE {
            let Ok(letter) = self.shared.dead_letters.1.try_recv() else {
                break;
            };
            if !wanted {
                continue;
            }
            let event = &letter.event;
            // Best effort, and never waiting: dead letters may be published
            // from the timer thread.
            self.publish_system_nowait(&orch_sdk::events::ModuleDeadLetter {
                data: serde_json::from_slice(event.payload()).unwrap_or_default(),
                id: event.id,
                name: letter.module.to_string(),
                reason: letter.reason.to_owned(),
                source: event.source().unwrap_or(orch_sdk::HOST_SOURCE).to_owned(),
                topic: event.topic().to_owned(),
            });
        }
        FLUSHING.with(|f| f.set(false));
    }
}
