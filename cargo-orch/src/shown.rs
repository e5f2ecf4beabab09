//! Text that came from a running orchestrator or a module (an error message,
//! a module's name in a report), made safe to print on a terminal: control
//! characters escaped, so a module cannot move the cursor, recolour the
//! screen or forge a line of its own.

use std::borrow::Cow;

use orch_runtime::log_limit::escape_controls;

/// `text` on one line: newlines and escape codes written as `\n`, `\u{1b}`.
pub fn one_line(text: &str) -> Cow<'_, str> {
    escape_controls(text)
}

/// `text` line by line, each escaped, every line after the first indented
/// by `indent` (so none can pass for a line of cargo-orch's own).
pub fn indented(text: &str, indent: &str) -> String {
    text.lines()
        .map(escape_controls)
        .collect::<Vec<_>>()
        .join(&format!("\n{indent}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_cannot_reach_the_terminal() {
        assert_eq!(one_line("a\nok\x1b[2J"), "a\\nok\\u{1b}[2J");
        assert_eq!(
            indented("first\nok    forged\r\x1b[31m", "  "),
            "first\n  ok    forged\\r\\u{1b}[31m"
        );
    }
}
