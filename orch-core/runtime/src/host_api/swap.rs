//! A swap of generations: the subscriptions kept while the next generation
//! boots, and the descriptors one generation hands over to the next.

use std::collections::HashMap;
use std::os::fd::OwnedFd;

use super::ModuleHostCtx;

/// The subscriptions around a swap of generations: the previous generation's stay
/// on the bus until the next one has made its own, so no event published in
/// between is missed; then the ones it did not renew go.
#[derive(Default)]
pub(super) struct Swap {
    pub(super) previous: Vec<String>,
    pub(super) renewed: Vec<String>,
}

impl ModuleHostCtx {
    pub(super) fn swap_state(&self) -> std::sync::MutexGuard<'_, Option<Swap>> {
        self.swap.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a swap of generations: cancels the module's timers (each
    /// generation sets its own) and keeps its subscriptions, so events published
    /// while the next generation boots still reach the mailbox.
    pub fn begin_swap(&self) {
        self.timers.cancel_owner(self.id);
        let previous = self.bus.subscriptions_of(self.id);
        *self.swap_state() = Some(Swap {
            previous,
            renewed: Vec::new(),
        });
    }

    fn handed_over(&self) -> std::sync::MutexGuard<'_, HashMap<String, OwnedFd>> {
        self.handed_over.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `fd` under `key` for the module's next generation.
    pub(super) fn hand_over_fd(&self, key: &str, fd: OwnedFd) -> Result<(), String> {
        if self.uplink.get().is_some() {
            return Err(format!(
                "module '{}' runs in a child process (isolation: process), whose \
                 descriptors end with it: the next generation opens its own",
                self.name
            ));
        }
        if key.is_empty() || key.len() > 128 {
            return Err("a hand-over key must be 1 to 128 bytes long".into());
        }
        tracing::debug!(module = %self.name, "handed over descriptor '{key}'");
        self.handed_over().insert(key.to_owned(), fd);
        Ok(())
    }

    /// Takes the descriptor handed over under `key`.
    pub(super) fn take_fd(&self, key: &str) -> Option<OwnedFd> {
        self.handed_over().remove(key)
    }

    /// Ends a swap: the subscriptions of before that the generation now running
    /// did not make again are removed, and the descriptors handed over that it
    /// did not take are closed.
    pub fn finish_swap(&self) {
        let unclaimed: Vec<String> = self.handed_over().drain().map(|(key, _fd)| key).collect();
        if !unclaimed.is_empty() {
            tracing::info!(
                "module '{}': closed the descriptors its previous generation handed over \
                 and the new one did not take: {}",
                self.name,
                unclaimed.join(", ")
            );
        }
        let Some(swap) = self.swap_state().take() else {
            return;
        };
        for pattern in swap.previous {
            if !swap.renewed.contains(&pattern) {
                self.bus.unsubscribe(self.id, &pattern);
            }
        }
    }
}
