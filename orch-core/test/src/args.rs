//! The libtest arguments of a run (given after `--`, then a module's
//! `test.args`), sorted by what they do when every test runs in a process
//! of its own:
//!
//! - what selects tests (filters, `--skip`, `--exact`) goes to the listing
//!   (`--list --format terse`), which applies it;
//! - `--ignored` / `--include-ignored` say which ignored tests run;
//! - what only shapes one process's output or threads (`--nocapture`,
//!   `--test-threads`, `--format`, `-q`, `--color`, `--show-output`, ...)
//!   is dropped: each test runs alone with `--exact NAME --nocapture`, its
//!   output captured by `cargo orch test`;
//! - anything else (`-Z unstable-options`, `--force-run-in-process`,
//!   `--ensure-time`, options this list does not know) goes to every run.

/// Which ignored tests run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ignored {
    /// Only the others (libtest's default): ignored ones are reported.
    #[default]
    Skip,
    /// Them too (`--include-ignored`).
    Include,
    /// Only them (`--ignored`).
    Only,
}

/// Libtest arguments, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LibtestArgs {
    /// Filters, `--skip NAME`, `--exact`: for the listing.
    pub selection: Vec<String>,
    /// `--ignored` / `--include-ignored`.
    pub ignored: Ignored,
    /// For every run of a test.
    pub passthrough: Vec<String>,
    /// Whether `--test-threads` was given (doc tests then keep it).
    pub test_threads: bool,
}

/// Options whose value is the next argument (unless written `--opt=value`).
const WITH_VALUE: [&str; 7] = [
    "--skip",
    "--test-threads",
    "--logfile",
    "--color",
    "--format",
    "-Z",
    "--shuffle-seed",
];

/// Options that only shape one process's output or scheduling.
const DROPPED: [&str; 13] = [
    "--test-threads",
    "--logfile",
    "--color",
    "--format",
    "--shuffle-seed",
    "--shuffle",
    "--nocapture",
    "--no-capture",
    "--show-output",
    "--quiet",
    "-q",
    "--list",
    "--report-time",
];

impl LibtestArgs {
    /// Sorts `args`.
    pub fn parse(args: &[String]) -> Self {
        let mut sorted = Self::default();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) if name.starts_with("--") => (name, Some(value)),
                _ => (arg.as_str(), None),
            };
            let mut words = vec![arg.clone()];
            if inline.is_none() && WITH_VALUE.contains(&name) {
                words.extend(iter.next().cloned());
            }
            match name {
                "--ignored" => sorted.ignored = Ignored::Only,
                "--include-ignored" => sorted.ignored = Ignored::Include,
                "--skip" | "--exact" | "--exclude-should-panic" => sorted.selection.extend(words),
                "--test-threads" => sorted.test_threads = true,
                "-Z" => {
                    // Unstable options need it for the listing and the runs.
                    sorted.selection.extend(words.clone());
                    sorted.passthrough.extend(words);
                }
                _ if DROPPED.contains(&name) => {}
                _ if !name.starts_with('-') => sorted.selection.push(arg.clone()),
                _ => sorted.passthrough.extend(words),
            }
        }
        sorted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> LibtestArgs {
        LibtestArgs::parse(&args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn filters_and_skips_go_to_the_listing() {
        let args = parse(&[
            "parse",
            "--skip",
            "slow",
            "--skip=net",
            "--exact",
            "tests::a",
        ]);
        assert_eq!(
            args.selection,
            [
                "parse",
                "--skip",
                "slow",
                "--skip=net",
                "--exact",
                "tests::a"
            ]
        );
        assert!(args.passthrough.is_empty());
        assert_eq!(args.ignored, Ignored::Skip);
    }

    #[test]
    fn output_and_thread_options_are_dropped_with_their_values() {
        let args = parse(&[
            "--nocapture",
            "--test-threads",
            "4",
            "--format=terse",
            "--color",
            "never",
            "-q",
            "--show-output",
            "name",
        ]);
        assert_eq!(args.selection, ["name"], "`4` and `never` are values");
        assert!(args.passthrough.is_empty());
        assert!(args.test_threads);
    }

    #[test]
    fn ignored_modes_and_unknown_options_are_kept() {
        assert_eq!(parse(&["--ignored"]).ignored, Ignored::Only);
        assert_eq!(parse(&["--include-ignored"]).ignored, Ignored::Include);
        let args = parse(&["-Z", "unstable-options", "--force-run-in-process"]);
        assert_eq!(
            args.passthrough,
            ["-Z", "unstable-options", "--force-run-in-process"]
        );
        assert_eq!(args.selection, ["-Z", "unstable-options"]);
        assert!(!args.test_threads);
    }
}
