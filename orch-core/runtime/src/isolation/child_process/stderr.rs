//! The child's stderr: logged with the module's tag, rate-limited, and its
//! most telling line kept for the crash report.

use std::io::BufReader;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::Shared;
use crate::rate_limit::{RateLimiter, Verdict};

/// Logs the child's stderr (what the module prints, runtime messages), tagged,
/// and keeps its last notable line for the crash report.
pub(super) fn spawn_stderr_reader(
    name: Arc<str>,
    stderr: std::process::ChildStderr,
    shared: Arc<Shared>,
    log_rate: u32,
) -> Option<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("orch-stderr:{name}"))
        .spawn(move || {
            let mut best = 0;
            let mut reader = BufReader::new(stderr);
            let mut raw = Vec::new();
            let mut limit = RateLimiter::new(log_rate);
            while let Ok(Some(dropped)) = crate::isolation::lines::next_line(&mut reader, &mut raw)
            {
                let line = crate::isolation::lines::shown(&raw, dropped);
                match limit.admit() {
                    Verdict::Admit => {
                        tracing::warn!(target: "module", "[{name}] {line}");
                    }
                    Verdict::AdmitAfterRefusals(n) => {
                        let summary = crate::log_limit::summary(n, log_rate);
                        tracing::warn!(target: "module", "[{name}] stderr: {summary}");
                        tracing::warn!(target: "module", "[{name}] {line}");
                    }
                    Verdict::Refuse => {}
                }
                // The most telling line wins: a panic or a stack overflow over
                // the runtime's generic "fatal runtime error".
                let rank = if line.contains("panicked at")
                    || line.contains("overflowed its stack")
                    || line.starts_with("memory allocation of")
                {
                    2
                } else if line.contains("fatal runtime error") {
                    1
                } else {
                    0
                };
                if rank > best {
                    best = rank;
                    *shared.last_words.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(line.trim().to_owned());
                }
            }
        })
        .ok()
}
