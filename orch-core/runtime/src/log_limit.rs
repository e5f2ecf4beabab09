//! What a module may put in the host's log: at most `limits.log_rate` lines
//! a second (a [`crate::rate_limit::RateLimiter`]; the rest are counted and
//! summed up in one line), each with its control characters escaped, so a
//! module can neither flood the log nor forge lines of its own with `\n` or
//! terminal codes.

use std::borrow::Cow;

/// The summary line for `n` suppressed lines.
pub fn summary(n: u64, per_second: u32) -> String {
    format!(
        "{n} log lines suppressed in the last second (more than {per_second} a second: \
         limits.log_rate)"
    )
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
    fn newlines_and_escape_codes_are_escaped() {
        assert_eq!(escape_controls("plain\ttext"), "plain\ttext");
        assert_eq!(
            escape_controls("ok\n2026-01-01 ERROR forged\x1b[0m"),
            "ok\\n2026-01-01 ERROR forged\\u{1b}[0m"
        );
    }
}
