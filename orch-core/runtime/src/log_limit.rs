//! What a module may put in the host's log: at most `limits.log_rate` lines
//! a second (a [`crate::rate_limit::RateLimiter`]; the rest are counted and
//! summed up in one line), each with its control characters escaped, so a
//! module can neither flood the log nor forge lines of its own with `\n` or
//! terminal codes, nor write a line longer than [`MAX_LINE`].

use std::borrow::Cow;

/// The longest log line of a module, in bytes once escaped: the rest of a
/// longer line is cut (on a character boundary) and counted in a note.
pub const MAX_LINE: usize = 8 * 1024;

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

/// Whether `c` is escaped in a module's text.
fn escaped(c: char) -> bool {
    c.is_control() && c != '\t'
}

/// `text` with its control characters escaped (as [`escape_controls`]) and
/// cut to at most `max` bytes on a character boundary, followed by a note of
/// how many bytes of `text` were cut. Only what is kept is ever escaped, so
/// a huge text costs `max` bytes, not its size.
pub fn escape_and_cap(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max && !text.chars().any(escaped) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(max) + 48);
    for (at, c) in text.char_indices() {
        let start = out.len();
        if escaped(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
        if out.len() > max {
            out.truncate(start);
            let cut = text.len() - at;
            out.push_str(&format!(" [... {cut} more bytes of this line cut]"));
            break;
        }
    }
    Cow::Owned(out)
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

    #[test]
    fn a_long_line_is_cut_on_a_char_boundary_with_a_note() {
        assert_eq!(escape_and_cap("short", 8), "short");
        assert_eq!(escape_and_cap("a\nb", 8), "a\\nb");
        // 'é' is two bytes: the cut falls before it, never inside it.
        let text = format!("{}é{}", "x".repeat(7), "y".repeat(100));
        let capped = escape_and_cap(&text, 8);
        assert_eq!(capped, "xxxxxxx [... 102 more bytes of this line cut]");
        // An escape sequence is kept whole or not at all.
        let capped = escape_and_cap("abcdef\u{1b}[31m", 8);
        assert_eq!(capped, "abcdef [... 5 more bytes of this line cut]");
        let huge = "z".repeat(10 * MAX_LINE);
        let capped = escape_and_cap(&huge, MAX_LINE);
        assert!(capped.starts_with(&"z".repeat(MAX_LINE)));
        assert!(capped.ends_with(&format!(
            " [... {} more bytes of this line cut]",
            9 * MAX_LINE
        )));
    }
}
