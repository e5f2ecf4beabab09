//! A module's log lines: tagged with its name, paced by `limits.log_rate`,
//! escaped and capped (see [`crate::log_limit`]), whether the module runs
//! in-process or its child host sent them.

use super::ModuleHostCtx;
use crate::log_limit;
use crate::rate_limit::Verdict;

impl ModuleHostCtx {
    /// Logs a line of the module at `level` (1 error ... 5 trace), tagged,
    /// escaped, cut to [`log_limit::MAX_LINE`] bytes and within its rate
    /// limit.
    pub fn log(&self, level: u32, message: &str) {
        let verdict = self
            .log_limit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit();
        match verdict {
            Verdict::Refuse => return,
            Verdict::AdmitAfterRefusals(n) => {
                log_as(
                    &self.name,
                    2,
                    &log_limit::summary(n, self.limits().log_rate),
                );
            }
            Verdict::Admit => {}
        }
        let line = log_limit::escape_and_cap(message, log_limit::MAX_LINE);
        log_as(&self.name, level, &line);
    }
}

/// Logs `message` of module `name` at `level` (1 error ... 5 trace), tagged.
pub(super) fn log_as(name: &str, level: u32, message: &str) {
    match level {
        1 => tracing::error!(target: "module", "[{name}] {message}"),
        2 => tracing::warn!(target: "module", "[{name}] {message}"),
        3 => tracing::info!(target: "module", "[{name}] {message}"),
        4 => tracing::debug!(target: "module", "[{name}] {message}"),
        _ => tracing::trace!(target: "module", "[{name}] {message}"),
    }
}
