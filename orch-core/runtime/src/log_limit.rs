//! What a module may put in the host's log: at most [`LINES_PER_SECOND`]
//! lines a second (the rest are counted and summed up in one line), each with
//! its control characters escaped, so a module can neither flood the log nor
//! forge lines of its own with `\n` or terminal codes.

use std::borrow::Cow;
use std::time::{Duration, Instant};

/// The lines a module may log in one second.
pub const LINES_PER_SECOND: u32 = 1_000;

/// What to do with one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it.
    Log,
    /// Log it, after a summary of the `n` lines suppressed in the last window.
    LogAfterSummary(u64),
    /// Count it, do not log it.
    Suppress,
}

/// A one-second window of log lines from one source.
#[derive(Debug)]
pub struct LogLimiter {
    window: Instant,
    lines: u32,
    suppressed: u64,
}

impl Default for LogLimiter {
    fn default() -> Self {
        Self {
            window: Instant::now(),
            lines: 0,
            suppressed: 0,
        }
    }
}

impl LogLimiter {
    /// Whether the next line is logged.
    pub fn admit(&mut self) -> Verdict {
        if self.window.elapsed() >= Duration::from_secs(1) {
            self.window = Instant::now();
            self.lines = 0;
            let suppressed = std::mem::take(&mut self.suppressed);
            if suppressed > 0 {
                self.lines = 1;
                return Verdict::LogAfterSummary(suppressed);
            }
        }
        if self.lines >= LINES_PER_SECOND {
            self.suppressed += 1;
            return Verdict::Suppress;
        }
        self.lines += 1;
        Verdict::Log
    }
}

/// The summary line for `n` suppressed lines.
pub fn summary(n: u64) -> String {
    format!("{n} log lines suppressed in the last second (more than {LINES_PER_SECOND} a second)")
}

/// `text` with control characters (newlines, escape codes) escaped; tabs kept.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\t') {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .flat_map(|c| {
                if c.is_control() && c != '\t' {
                    c.escape_default().collect::<Vec<_>>()
                } else {
                    vec![c]
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_at_the_limit_and_summed_up_in_the_next_window() {
        let mut limiter = LogLimiter::default();
        let logged = (0..LINES_PER_SECOND + 500)
            .filter(|_| limiter.admit() == Verdict::Log)
            .count();
        assert_eq!(logged, LINES_PER_SECOND as usize);
        limiter.window -= Duration::from_secs(1);
        assert_eq!(limiter.admit(), Verdict::LogAfterSummary(500));
        assert_eq!(limiter.admit(), Verdict::Log);
    }

    #[test]
    fn newlines_and_escape_codes_are_escaped() {
        assert_eq!(escape_controls("plain\ttext"), "plain\ttext");
        assert_eq!(
            escape_controls("ok\n2026-01-01 ERROR forged\x1b[0m"),
            "ok\\n2026-01-01 ERROR forged\\u{1b}[0m"
        );
    }
}
