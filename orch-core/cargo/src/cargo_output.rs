//! Reading what cargo prints on stderr, shared by the builder (`cargo build`) and
//! `cargo orch test` (`cargo test --no-run`): a spinner while it works, its lines
//! relayed as cargo renders them, and the packages that failed and the first
//! compiler error picked out for the error message.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A spinner on stderr labelled `label`; hidden (and silent) when stderr is not a
/// terminal. When the console is routed through the secret scrubber it draws
/// on the real terminal.
pub fn spinner(label: &str) -> ProgressBar {
    let target = match orch_process::console::terminal_stderr() {
        Some(terminal) => match std::fs::File::open("/dev/null") {
            Ok(input) => {
                ProgressDrawTarget::term(console::Term::read_write_pair(input, terminal), 20)
            }
            Err(_) => ProgressDrawTarget::hidden(),
        },
        None => ProgressDrawTarget::stderr(),
    };
    let bar = ProgressBar::with_draw_target(None, target);
    if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed:>3} {msg}") {
        bar.set_style(style);
    }
    bar.set_message(label.to_owned());
    if !bar.is_hidden() {
        bar.enable_steady_tick(Duration::from_millis(100));
    }
    bar
}

/// Shows cargo's stderr (rendered diagnostics, progress lines) except the lines
/// `hide` rejects, and returns every line without colour codes. On a terminal
/// `Compiling ...` lines go into the spinner; elsewhere every line is printed.
pub fn relay_stderr(
    stderr: impl std::io::Read,
    progress: &ProgressBar,
    hide: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut lines = Vec::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        let plain = strip_ansi(&line);
        let trimmed = plain.trim_start();
        if hide(trimmed) {
            // not shown, but kept for the error message
        } else if progress.is_hidden() {
            eprintln!("{line}");
        } else if trimmed.starts_with("Compiling") || trimmed.starts_with("Building") {
            progress.set_message(trimmed.to_owned());
        } else {
            progress.println(&line);
        }
        lines.push(plain);
    }
    lines
}

/// Removes ANSI escape sequences: colours (CSI) and OSC sequences such as
/// the hyperlinks (OSC 8) cargo prints for error codes, keeping their text.
pub fn strip_ansi(text: &str) -> String {
    anstream::adapter::strip_str(text).to_string()
}

/// Whether cargo's stderr may carry colour: a terminal, and `NO_COLOR` unset.
pub fn stderr_wants_color() -> bool {
    orch_process::console::stderr_is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Packages named by cargo's "error: could not compile `name`" lines, each once.
pub fn failed_packages(lines: &[String]) -> Vec<String> {
    let mut packages: Vec<String> = Vec::new();
    for line in lines {
        let Some(rest) = line.trim_start().strip_prefix("error: could not compile `") else {
            continue;
        };
        if let Some(name) = rest.split('`').next()
            && !packages.iter().any(|p| p == name)
        {
            packages.push(name.to_owned());
        }
    }
    packages
}

/// The first rendered `error` block (up to the next blank line), other than the
/// `could not compile` summary lines.
pub fn first_error(lines: &[String]) -> Option<String> {
    let start = lines.iter().position(|l| {
        let l = l.trim_start();
        (l.starts_with("error[") || l.starts_with("error:"))
            && !l.starts_with("error: could not compile")
    })?;
    let block: Vec<&str> = lines[start..]
        .iter()
        .take_while(|l| !l.trim().is_empty())
        .take(30)
        .map(String::as_str)
        .collect();
    Some(block.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(String::from).collect()
    }

    #[test]
    fn finds_failed_packages_and_the_first_error() {
        let output = lines(
            "   Compiling mod-x v0.1.0\n\
             error[E0425]: cannot find value `y` in this scope\n \
             --> src/lib.rs:3:5\n  |\n3 |     y\n  |     ^ not found\n\n\
             error: aborting due to 1 previous error\n\n\
             error: could not compile `mod-x` (lib) due to 1 previous error\n\
             error: could not compile `mod-y` (lib)\n\
             error: could not compile `mod-x` (lib test)\n",
        );
        assert_eq!(failed_packages(&output), vec!["mod-x", "mod-y"]);
        let first = first_error(&output).unwrap();
        assert!(
            first.starts_with("error[E0425]: cannot find value `y`"),
            "{first}"
        );
        assert!(first.contains("src/lib.rs:3:5"));
        assert!(!first.contains("aborting"));
    }

    #[test]
    fn strips_colour_codes() {
        assert_eq!(
            strip_ansi("\u{1b}[1m\u{1b}[31merror\u{1b}[0m: x"),
            "error: x"
        );
    }

    #[test]
    fn strips_hyperlinks_but_keeps_their_text() {
        let linked = "error[\u{1b}]8;;https://doc.rust-lang.org/error_codes/E0425.html\u{1b}\\E0425\u{1b}]8;;\u{1b}\\]: x";
        assert_eq!(strip_ansi(linked), "error[E0425]: x");
    }
}
