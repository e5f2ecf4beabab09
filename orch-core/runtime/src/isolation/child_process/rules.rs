//! What a child may send, when and how often, checked by its reader threads
//! before a frame is served:
//!
//! - a frame only the orchestrator sends (`Initialize`, `Start`, `Event`,
//!   `SaveState`, `Shutdown`, `Exit`, `Ping`) is a protocol error;
//! - a retiring generation (a reload made another one active) may still send
//!   its `Reply`s and `Log`s for its own shutdown, and its `Pong`s (the
//!   heartbeat that lets it be shut down or take over again); anything else
//!   of it is dropped;
//! - each kind has a rate: `Publish` and `Request` share
//!   `limits.publish_rate`, `Answer` has a window of its own at that rate,
//!   `Subscribe` and `Unsubscribe` share `limits.subscribe_rate`,
//!   `TimerFailed` and `Pong` have fixed rates, `Log` is paced by
//!   `limits.log_rate` in `ctx.log`, `Metrics` in `metrics.rs`, and `Reply`
//!   by its numbering (only the next one due is taken). The first refusal
//!   of a second is logged at once, their count when the next one begins;
//! - the warnings its refused frames cause are paced too and escaped, since
//!   they quote what it sent.

use orch_wire::protocol::Frame;

use super::ReaderSetup;
use crate::log_limit::{MAX_LINE, escape_and_cap};
use crate::rate_limit::{RateLimiter, Verdict};

/// `TimerFailed` frames taken from one child a second: each is an error
/// line and a `module.error` event, and alerts of other modules must not be
/// crowded out.
pub const TIMER_FAILURES_PER_SECOND: u32 = 10;

/// `Pong` frames taken from one child a second: the heartbeat pings at most
/// fifty times a second (a tick is at least 20 ms).
pub const PONGS_PER_SECOND: u32 = 100;

/// Warnings about one child's refused frames logged a second; the rest are
/// counted in one line.
pub const WARNINGS_PER_SECOND: u32 = 10;

/// The longest error message of a `TimerFailed` frame kept, in bytes once
/// escaped (the rest is cut with a note).
pub const MAX_FAILURE_MESSAGE: usize = 2 * 1024;

/// What becomes of one frame.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admit {
    /// Serve it.
    Take,
    /// Drop it (counted and said, if over a rate).
    Drop,
    /// The child broke the protocol: kill it, for this reason.
    Kill(String),
}

/// One rate of one child.
struct Quota {
    limiter: RateLimiter,
    /// What it counts, plural ("publishes and requests").
    what: &'static str,
    /// The limit, as the warnings name it.
    limit: String,
}

impl Quota {
    fn of_key(per_second: u32, what: &'static str, key: &str) -> Self {
        Self {
            limiter: RateLimiter::new(per_second),
            what,
            limit: format!("its `limits.{key}: {per_second}` a second"),
        }
    }

    fn fixed(per_second: u32, what: &'static str) -> Self {
        Self {
            limiter: RateLimiter::new(per_second),
            what,
            limit: format!("the {per_second} a second a child may send"),
        }
    }

    /// Whether one more is within the rate; the first refusal of a second is
    /// logged at once, their count when the next second begins.
    fn admit(&mut self, name: &str) -> bool {
        match self.limiter.admit() {
            Verdict::Admit => true,
            Verdict::AdmitAfterRefusals(n) => {
                tracing::warn!(
                    "module '{name}' (isolated): {n} {} refused in the last second, more \
                     than {}",
                    self.what,
                    self.limit
                );
                true
            }
            Verdict::Refuse => {
                if self.limiter.refused_in_window() == 1 {
                    tracing::warn!(
                        "module '{name}' (isolated) sends more {} than {}: the rest of this \
                         second's are refused",
                        self.what,
                        self.limit
                    );
                }
                false
            }
        }
    }
}

/// A child's rates, kept by one reader thread (each kind travels on one of
/// them: data through the ring, heartbeats and logs through the pipe).
pub(super) struct Quotas {
    publish: Quota,
    answer: Quota,
    subscribe: Quota,
    timer_failed: Quota,
    pong: Quota,
    warnings: RateLimiter,
}

impl Quotas {
    /// Fresh rates from the module's `limits`.
    pub(super) fn of(r: &ReaderSetup) -> Self {
        let limits = r.ctx.limits();
        Self {
            publish: Quota::of_key(
                limits.publish_rate,
                "publishes and requests",
                "publish_rate",
            ),
            answer: Quota::of_key(limits.publish_rate, "answers", "publish_rate"),
            subscribe: Quota::of_key(
                limits.subscribe_rate,
                "subscribe and unsubscribe calls",
                "subscribe_rate",
            ),
            timer_failed: Quota::fixed(TIMER_FAILURES_PER_SECOND, "timer failure reports"),
            pong: Quota::fixed(PONGS_PER_SECOND, "heartbeat answers"),
            warnings: RateLimiter::new(WARNINGS_PER_SECOND),
        }
    }

    /// The rule for `frame` from the child of `r`; `active` says whether its
    /// generation is the module's active one.
    pub(super) fn admit(&mut self, r: &ReaderSetup, frame: &Frame, active: bool) -> Admit {
        if frame.is_parent_only() {
            return Admit::Kill(format!(
                "it sent a {} frame, which only the orchestrator sends",
                frame.kind_name()
            ));
        }
        let retiring_may = matches!(
            frame,
            Frame::Reply { .. } | Frame::Handled { .. } | Frame::Log { .. } | Frame::Pong { .. }
        );
        if !active && !retiring_may {
            return Admit::Drop;
        }
        let quota = match frame {
            Frame::Publish { .. } | Frame::Request { .. } => &mut self.publish,
            Frame::Answer { .. } => &mut self.answer,
            Frame::Subscribe(_) | Frame::Unsubscribe(_) => &mut self.subscribe,
            Frame::TimerFailed { .. } => &mut self.timer_failed,
            Frame::Pong { .. } => &mut self.pong,
            _ => return Admit::Take,
        };
        if quota.admit(&r.name) {
            Admit::Take
        } else {
            Admit::Drop
        }
    }

    /// Why a request over the rate is refused, as its module is told.
    pub(super) fn request_refusal(&self, r: &ReaderSetup) -> String {
        format!(
            "module '{}' sends more {} than {}: this one was refused",
            r.name, self.publish.what, self.publish.limit
        )
    }

    /// Logs `text` (which may quote what the child sent) as a warning about
    /// the child of `r`: escaped, capped, and at most
    /// [`WARNINGS_PER_SECOND`] a second (the rest counted in one line).
    pub(super) fn warn(&mut self, r: &ReaderSetup, text: &str) {
        match self.warnings.admit() {
            Verdict::Refuse => return,
            Verdict::AdmitAfterRefusals(n) => tracing::warn!(
                "module '{}' (isolated): {n} more warnings about its frames in the last \
                 second were not logged (at most {WARNINGS_PER_SECOND} a second)",
                r.name
            ),
            Verdict::Admit => {}
        }
        tracing::warn!("{}", escape_and_cap(text, MAX_LINE));
    }
}

/// The error of a `TimerFailed` frame as it is reported: its topic must be
/// one a timer can have (a valid topic: the child's timers are its own, so
/// which ones it set is not known here), its message is escaped and cut to
/// [`MAX_FAILURE_MESSAGE`]. `Err` is the protocol error of a lying child.
pub(super) fn timer_failure(topic: &str, message: &str) -> Result<String, String> {
    if let Err(e) = orch_sdk::topic::validate_topic(topic) {
        return Err(format!(
            "it reported a failed timer on '{}', which no timer can have ({})",
            escape_and_cap(topic, 128),
            escape_and_cap(&e, 256)
        ));
    }
    Ok(escape_and_cap(message, MAX_FAILURE_MESSAGE).into_owned())
}
