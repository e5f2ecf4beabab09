//! An isolated module's own metrics, as its child reports them with each
//! `Pong`: applied to the module's registry in the orchestrator, checked
//! again there (a child may lie), each refusal logged once.

use super::ReaderSetup;
use crate::status::MetricSample;

impl ReaderSetup {
    /// Applies the child's changes to the module's metrics.
    pub(super) fn apply_metrics(&self, samples: &[MetricSample]) {
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
