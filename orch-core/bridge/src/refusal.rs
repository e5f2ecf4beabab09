//! Imported messages that are not delivered, told apart and reported.
//!
//! A refusal for good (a malformed envelope or id, a payload over the local
//! `max_event_bytes`, a payload from outside an orchestrator that is not
//! JSON, a topic that is not for this bus) can never become valid: on
//! JetStream it is terminated at its first delivery, never asked for again.
//! A passing one (a full local mailbox did not make room in time) is asked
//! for again later. Each is counted, and the log hears of them in a summary
//! with the counts so far, at most every [`SAID_EVERY`]: a peer flooding the
//! bridge with bad messages does not flood the log.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use orch_runtime::bus::BusError;

use crate::caps;
use crate::stats::ImportStats;
use orch_runtime::pace::Pacer;

/// How often, at most, each summary of refusals is said.
pub const SAID_EVERY: Duration = Duration::from_secs(5);

/// Why a message is refused for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permanent {
    /// Its envelope or message id breaks the caps, or cannot be read.
    Malformed,
    /// Its payload is over this node's `max_event_bytes`.
    TooLarge,
    /// It came from outside an orchestrator and its payload is not JSON.
    NotJson,
    /// Its subject is not a topic for this bus (not under the prefix, not a
    /// valid topic, or in the host's namespaces).
    Topic,
}

/// What became of a delivery the local bus did not take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It never can be taken: terminate it.
    Permanent(Permanent),
    /// It may be taken later: ask for it again.
    Transient,
}

impl Refusal {
    /// What the bus's error says of a refused delivery: a payload too large
    /// or a topic it does not take stays so, a full mailbox passes.
    pub fn of(error: &BusError) -> Self {
        match error {
            BusError::TooLarge { .. } => Self::Permanent(Permanent::TooLarge),
            BusError::InvalidTopic(_) => Self::Permanent(Permanent::Topic),
            BusError::Refused(_) | BusError::UnknownSubscriber(_) => Self::Transient,
        }
    }
}

/// Counts refusals and says so, paced.
pub struct Refusals {
    stats: Arc<ImportStats>,
    permanent_said: Pacer,
    transient_said: Pacer,
}

impl Refusals {
    /// Reports into `stats`.
    pub fn new(stats: Arc<ImportStats>) -> Self {
        Self {
            stats,
            permanent_said: Pacer::new(SAID_EVERY),
            transient_said: Pacer::new(SAID_EVERY),
        }
    }

    fn counter(&self, why: Permanent) -> &AtomicU64 {
        match why {
            Permanent::Malformed => &self.stats.malformed,
            Permanent::TooLarge => &self.stats.too_large,
            Permanent::NotJson => &self.stats.not_json,
            Permanent::Topic => &self.stats.off_topic,
        }
    }

    /// Counts a message refused for good, on `subject`, and says so with
    /// the counts so far when it is time (`reason` is made only then).
    pub fn permanent(&self, why: Permanent, subject: &str, reason: impl FnOnce() -> String) {
        self.counter(why).fetch_add(1, Ordering::Relaxed);
        if !self.permanent_said.due() {
            return;
        }
        let reason = reason();
        let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let stats = &self.stats;
        let (malformed, too_large, not_json, off_topic) = (
            count(&stats.malformed),
            count(&stats.too_large),
            count(&stats.not_json),
            count(&stats.off_topic),
        );
        tracing::warn!(
            "[BRIDGE] {} imported message(s) refused for good so far, not delivered and not \
             asked for again ({malformed} malformed envelope or id, {too_large} over \
             max_event_bytes, {not_json} not JSON from outside an orchestrator, {off_topic} on \
             a subject not for this bus); the last on '{}': {}. (Said at most every {} s; \
             counted in `cargo orch status`.)",
            malformed + too_large + not_json + off_topic,
            caps::shown(subject),
            caps::clipped(&reason, 300),
            SAID_EVERY.as_secs(),
        );
    }

    /// Counts a delivery a local mailbox refused for now (`tries`: the
    /// deliveries so far, JetStream) and says so when it is time.
    pub fn transient(&self, topic: &str, error: &BusError, tries: Option<(i64, i64)>) {
        let refused = self.stats.refused.fetch_add(1, Ordering::Relaxed) + 1;
        if !self.transient_said.due() {
            return;
        }
        let again = match tries {
            Some((tried, most)) if tried >= most => format!(
                "tried {tried} times, the stream does not offer it again (max_deliver {most})"
            ),
            Some((tried, most)) => format!("asked for again later (try {tried} of {most})"),
            None => "core NATS: lost (at most once)".to_owned(),
        };
        tracing::warn!(
            "[BRIDGE] '{}' from another node was not taken here: {}; {again}. {refused} \
             delivery(ies) refused by a local mailbox so far (said at most every {} s)",
            caps::shown(topic),
            caps::clipped(&error.to_string(), 300),
            SAID_EVERY.as_secs(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bus_error_tells_a_lasting_refusal_from_a_passing_one() {
        let too_large = BusError::TooLarge {
            topic: "t".into(),
            size: 2,
            limit: 1,
        };
        assert_eq!(
            Refusal::of(&too_large),
            Refusal::Permanent(Permanent::TooLarge)
        );
        assert_eq!(
            Refusal::of(&BusError::InvalidTopic("x".into())),
            Refusal::Permanent(Permanent::Topic)
        );
        assert_eq!(
            Refusal::of(&BusError::Refused("full".into())),
            Refusal::Transient
        );
    }

    #[test]
    fn refusals_are_counted_each_and_said_once_per_interval() {
        let stats = Arc::new(ImportStats::default());
        let refusals = Refusals::new(Arc::clone(&stats));
        let mut made = 0;
        for _ in 0..1_000 {
            refusals.permanent(Permanent::Malformed, "orch.t", || {
                made += 1;
                "why".into()
            });
        }
        refusals.permanent(Permanent::NotJson, "orch.t", || unreachable!("not due"));
        assert_eq!(made, 1, "the reason is made only when said");
        assert_eq!(stats.malformed.load(Ordering::Relaxed), 1_000);
        assert_eq!(stats.not_json.load(Ordering::Relaxed), 1);
        assert_eq!(stats.rejected(), 1);
    }
}
