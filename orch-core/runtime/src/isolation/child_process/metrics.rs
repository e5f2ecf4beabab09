//! An isolated module's own metrics, as its child reports them with each
//! `Pong`: applied to the module's registry in the orchestrator, checked
//! again there (a child may lie), each refusal logged once. A child sends at
//! most ten such frames a second; more than [`FRAMES_PER_SECOND`] a second are
//! dropped, so a child that floods them costs the host no more than that.

use std::sync::Mutex;

use super::ReaderSetup;
use crate::rate_limit::{RateLimiter, Verdict};
use crate::status::MetricSample;

/// `Metrics` frames taken from one child a second.
pub const FRAMES_PER_SECOND: u32 = 20;

/// The window of one child's `Metrics` frames.
pub(super) struct FrameLimit(Mutex<RateLimiter>);

impl Default for FrameLimit {
    fn default() -> Self {
        Self(Mutex::new(RateLimiter::new(FRAMES_PER_SECOND)))
    }
}

impl ReaderSetup {
    /// Applies the child's changes to the module's metrics.
    pub(super) fn apply_metrics(&self, samples: &[MetricSample]) {
        let (verdict, refused) = {
            let mut limit = self
                .metric_frames
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let verdict = limit.admit();
            (verdict, limit.refused_in_window())
        };
        match verdict {
            Verdict::Refuse => {
                if refused == 1 {
                    tracing::warn!(
                        "module '{}': its child sends more metrics frames than \
                         {FRAMES_PER_SECOND} a second; the rest of this second's are dropped",
                        self.name
                    );
                }
                return;
            }
            Verdict::AdmitAfterRefusals(n) => tracing::warn!(
                "module '{}': its child sent {n} more metrics frames than {FRAMES_PER_SECOND} \
                 a second; they were dropped",
                self.name
            ),
            Verdict::Admit => {}
        }
        let Some(counters) = self.ctx.counters() else {
            return;
        };
        if let Err(e) = counters.custom().apply(samples) {
            tracing::warn!(
                "module '{}': a metric of its child is refused: {e}",
                self.name
            );
        }
    }
}
