//! Reading libtest's human output (what a test binary prints when run with no
//! format option): `test NAME ... ok|FAILED|ignored` lines, the
//! `---- NAME stdout ----` sections holding each failure's captured output, the
//! `failures:` list and the `test result:` line. `--format json` needs a nightly
//! `-Z unstable-options`, so this parses the human format, and does so
//! defensively: colour codes are stripped, `--nocapture` output between a test's
//! name and its result is tolerated, and the `failures:` list wins over lines
//! that could not be read.
//!
//! Also: the names of a `--list --format terse` run ([`parse_list`]), and a
//! test's own output out of its process's stdout ([`strip_harness`]).

pub use orch_cargo::cargo_output::strip_ansi;
use std::collections::{HashMap, HashSet};

use super::model::Counts;

/// How libtest said a test ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// `ok`.
    Passed,
    /// `FAILED`.
    Failed,
    /// `ignored`, or `ignored, <reason>`.
    Ignored(Option<String>),
}

/// One test as libtest reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedTest {
    /// Its path in the test crate (`tests::parses`), without ` - should panic`.
    pub name: String,
    /// Its result.
    pub status: Status,
    /// Its captured output, for a failed test that printed something.
    pub output: Option<String>,
}

/// Everything read from one test binary's output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedRun {
    /// The tests, in the order their results were printed.
    pub tests: Vec<ParsedTest>,
    /// Tests whose name was printed but whose result never was (the binary
    /// stopped in the middle, with `--test-threads=1`).
    pub unfinished: Vec<String>,
    /// Whether a `running N tests` line was seen: the binary uses libtest.
    pub harness_seen: bool,
    /// Whether a `test result:` line was seen: the run reached its end.
    pub finished: bool,
    /// The counts of the `test result:` lines, added up.
    pub reported: Counts,
}

/// Parses libtest's human output.
pub fn parse(output: &str) -> ParsedRun {
    let mut parser = Parser::default();
    for raw in output.lines() {
        parser.line(&strip_ansi(raw.trim_end_matches('\r')));
    }
    parser.finish()
}

/// A one-line reason for a failure, from its captured output: the panic
/// message when there is one, else the first line printed.
pub fn failure_message(output: &str) -> String {
    let lines: Vec<&str> = output.lines().map(str::trim).collect();
    let panic_line = lines.iter().position(|l| l.contains("panicked at"));
    if let Some(index) = panic_line {
        let line = lines[index];
        // Before Rust 1.73 the message was on the same line: `panicked at 'msg', file:1:2`.
        if let Some(rest) = line.split("panicked at '").nth(1)
            && let Some((message, _)) = rest.rsplit_once("', ")
        {
            return shorten(message);
        }
        if let Some(message) = lines[index + 1..].iter().find(|l| !l.is_empty()) {
            return shorten(message);
        }
    }
    lines
        .iter()
        .find(|l| !l.is_empty())
        .map_or_else(|| "test failed".to_owned(), |l| shorten(l))
}

/// The names a `--list --format terse` run printed (`NAME: test` lines;
/// benchmarks left out), or `None` when the output is not such a listing: a
/// binary without libtest's harness does not know `--list`.
pub fn parse_list(output: &str) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for line in output.lines().map(|l| l.trim_end_matches('\r')) {
        if line.trim().is_empty() {
            continue;
        }
        match line.rsplit_once(": ") {
            Some((name, "test")) => names.push(name.to_owned()),
            Some((_, "benchmark")) => {}
            _ => return None,
        }
    }
    Some(names)
}

/// What test `name` printed on stdout when it ran alone (`--exact NAME
/// --nocapture`), without libtest's lines around it: the `running 1 test`
/// header, its `test NAME ... ok` line (printed before the output with one
/// test thread, after it with several), and the `failures:` and `test
/// result:` footer. Output of another shape is returned whole.
pub fn strip_harness(stdout: &str, name: &str) -> String {
    let Some(rest) = stdout
        .trim_start_matches(['\n', '\r'])
        .strip_prefix("running 1 test\n")
    else {
        return stdout.to_owned();
    };
    // The footer: the last `test result:` line and what follows it.
    let body = match rest.rfind("\ntest result: ") {
        // Without the blank line libtest prints before it.
        Some(at) => rest[..=at]
            .strip_suffix("\n\n")
            .map_or(&rest[..=at], |b| &rest[..=b.len()]),
        None if rest.starts_with("test result: ") => "",
        None => rest,
    };
    let failures = format!("\nfailures:\n\nfailures:\n    {name}\n");
    let body = body.strip_suffix(failures.as_str()).unwrap_or(body);
    let line = [
        format!("test {name} ... "),
        format!("test {name} - should panic ... "),
    ]
    .into_iter()
    .filter_map(|prefix| body.rfind(&prefix).map(|at| (at, prefix.len())))
    .max();
    let Some((at, length)) = line else {
        return body.to_owned();
    };
    let after = &body[at + length..];
    let after = ["ok\n", "FAILED\n", "ok", "FAILED"]
        .iter()
        .find_map(|status| after.strip_suffix(status))
        .unwrap_or(after);
    format!("{}{after}", &body[..at])
}

fn shorten(text: &str) -> String {
    const MAX: usize = 200;
    if text.chars().count() <= MAX {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(MAX).collect();
    short.push('…');
    short
}

#[derive(Default)]
struct Parser {
    run: ParsedRun,
    /// Index of each test in `run.tests` by name.
    index: HashMap<String, usize>,
    /// A test whose name was printed before its output (`--nocapture`).
    pending: Option<String>,
    /// The failure section being read: the test's name and its lines.
    section: Option<(String, Vec<String>)>,
    /// Captured output of failed tests, by name.
    outputs: HashMap<String, String>,
    /// Names in the `failures:` lists.
    listed_failures: Vec<String>,
    /// Inside a `failures:` list.
    in_failure_list: bool,
}

impl Parser {
    fn line(&mut self, line: &str) {
        if self.section.is_some() {
            self.section_line(line);
            return;
        }
        if let Some(name) = section_header(line) {
            self.section = Some((name.to_owned(), Vec::new()));
            return;
        }
        if line == "failures:" {
            self.in_failure_list = true;
            return;
        }
        if let Some(rest) = line.strip_prefix("test result: ") {
            self.summary(rest);
            return;
        }
        if is_running_line(line) {
            self.run.harness_seen = true;
            self.in_failure_list = false;
            self.flush_pending();
            return;
        }
        if self.in_failure_list {
            if let Some(name) = line.strip_prefix("    ")
                && !name.trim().is_empty()
            {
                self.listed_failures.push(name.trim().to_owned());
            }
            return;
        }
        if let Some((name, rest)) = test_line(line) {
            self.flush_pending();
            match status(rest) {
                Some(status) => self.record(name, status),
                None => self.pending = Some(name.to_owned()),
            }
            return;
        }
        if self.pending.is_some()
            && let Some(status) = status(line.trim())
            && let Some(name) = self.pending.take()
        {
            self.record(&name, status);
        }
    }

    fn section_line(&mut self, line: &str) {
        let next = section_header(line).map(str::to_owned);
        let ends = next.is_some() || line == "failures:" || line.starts_with("test result: ");
        if !ends {
            if let Some((_, lines)) = &mut self.section {
                lines.push(line.to_owned());
            }
            return;
        }
        if let Some((name, lines)) = self.section.take() {
            self.outputs.insert(name, trim_blank_lines(&lines));
        }
        match next {
            Some(name) => self.section = Some((name, Vec::new())),
            None => self.line(line),
        }
    }

    fn record(&mut self, name: &str, status: Status) {
        match self.index.get(name) {
            Some(&i) => self.run.tests[i].status = status,
            None => {
                self.index.insert(name.to_owned(), self.run.tests.len());
                self.run.tests.push(ParsedTest {
                    name: name.to_owned(),
                    status,
                    output: None,
                });
            }
        }
    }

    fn flush_pending(&mut self) {
        if let Some(name) = self.pending.take() {
            self.run.unfinished.push(name);
        }
    }

    fn summary(&mut self, rest: &str) {
        self.run.finished = true;
        self.in_failure_list = false;
        self.flush_pending();
        for part in rest.split(';') {
            let part = part.trim();
            let part = part.rsplit(". ").next().unwrap_or(part);
            let mut words = part.split_whitespace();
            let (Some(number), Some(what)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(number) = number.parse::<usize>() else {
                continue;
            };
            match what {
                "passed" => self.run.reported.passed += number,
                "failed" => self.run.reported.failed += number,
                "ignored" => self.run.reported.ignored += number,
                _ => {}
            }
        }
    }

    fn finish(mut self) -> ParsedRun {
        if let Some((name, lines)) = self.section.take() {
            self.outputs.insert(name, trim_blank_lines(&lines));
        }
        self.flush_pending();
        let listed = std::mem::take(&mut self.listed_failures);
        for name in &listed {
            self.record(name, Status::Failed);
        }
        let listed: HashSet<&String> = listed.iter().collect();
        self.run.unfinished.retain(|name| !listed.contains(name));
        let known: HashSet<String> = self.run.tests.iter().map(|t| t.name.clone()).collect();
        self.run.unfinished.retain(|name| !known.contains(name));
        for test in &mut self.run.tests {
            if test.status == Status::Failed {
                test.output = self.outputs.remove(&test.name);
            }
        }
        self.run
    }
}

/// Whether `line` is a test's result (`test NAME ... ok`).
pub fn is_result_line(line: &str) -> bool {
    result_of(line).is_some()
}

/// The test and its status of a result line (`test NAME ... ok`), the name
/// without ` - should panic` or ` - compile fail`.
pub fn result_of(line: &str) -> Option<(String, Status)> {
    let line = strip_ansi(line);
    let (name, rest) = test_line(&line)?;
    Some((name.to_owned(), status(rest)?))
}

/// `running 3 tests` / `running 1 test`.
pub fn is_running_line(line: &str) -> bool {
    line.strip_prefix("running ")
        .and_then(|rest| rest.strip_suffix(" tests").or(rest.strip_suffix(" test")))
        .is_some_and(|n| n.parse::<usize>().is_ok())
}

/// The name in `---- NAME stdout ----` (or `stderr`).
pub fn section_header(line: &str) -> Option<&str> {
    let inner = line.strip_prefix("---- ")?.strip_suffix(" ----")?;
    inner
        .strip_suffix(" stdout")
        .or_else(|| inner.strip_suffix(" stderr"))
}

/// The name and what follows ` ... ` in a `test NAME ... RESULT` line.
fn test_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("test ")?;
    let (name, result) = rest
        .split_once(" ... ")
        .or_else(|| Some((rest.strip_suffix(" ...")?, "")))?;
    let name = name
        .strip_suffix(" - should panic")
        .or_else(|| name.strip_suffix(" - compile fail"))
        .unwrap_or(name);
    Some((name, result))
}

/// The status a result text stands for, if it is one.
fn status(result: &str) -> Option<Status> {
    match result {
        "ok" => Some(Status::Passed),
        "FAILED" => Some(Status::Failed),
        "ignored" => Some(Status::Ignored(None)),
        other if other.starts_with("bench:") => Some(Status::Passed),
        other => other
            .strip_prefix("ignored, ")
            .map(|reason| Status::Ignored(Some(reason.to_owned()))),
    }
}

/// The lines joined, without leading and trailing blank lines.
fn trim_blank_lines(lines: &[String]) -> String {
    let start = lines.iter().position(|l| !l.trim().is_empty());
    let end = lines.iter().rposition(|l| !l.trim().is_empty());
    match (start, end) {
        (Some(start), Some(end)) => lines[start..=end].join("\n"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a test binary with a failing, an ignored and a should-panic test prints.
    const MIXED: &str = "
running 5 tests
test tests::ign ... ignored
test tests::ign2 ... ignored, slow one
test tests::ok1 ... ok
test tests::fails ... FAILED
test tests::sp - should panic ... ok

failures:

---- tests::fails stdout ----
some output

thread 'tests::fails' (26643) panicked at a/src/lib.rs:9:51:
assertion `left == right` failed: boom
  left: 1
 right: 2
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace


failures:
    tests::fails

test result: FAILED. 2 passed; 1 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.08s

";

    fn statuses(run: &ParsedRun) -> Vec<(&str, Status)> {
        run.tests
            .iter()
            .map(|t| (t.name.as_str(), t.status.clone()))
            .collect()
    }

    #[test]
    fn reads_every_result_and_the_failure_output() {
        let run = parse(MIXED);
        assert_eq!(
            statuses(&run),
            [
                ("tests::ign", Status::Ignored(None)),
                ("tests::ign2", Status::Ignored(Some("slow one".into()))),
                ("tests::ok1", Status::Passed),
                ("tests::fails", Status::Failed),
                ("tests::sp", Status::Passed),
            ]
        );
        let failed = &run.tests[3];
        let output = failed.output.as_deref().expect("captured output");
        assert!(
            output.starts_with("some output\n\nthread 'tests::fails'"),
            "{output}"
        );
        assert!(output.ends_with("to display a backtrace"), "{output}");
        assert!(run.harness_seen && run.finished && run.unfinished.is_empty());
        assert_eq!(
            run.reported,
            Counts {
                passed: 2,
                failed: 1,
                flaky: 0,
                ignored: 2
            }
        );
        assert_eq!(
            failure_message(output),
            "assertion `left == right` failed: boom"
        );
    }

    #[test]
    fn several_failures_each_keep_their_own_output() {
        let text = "running 3 tests\ntest a ... FAILED\ntest b ... FAILED\ntest c ... FAILED\n\n\
                    failures:\n\n---- a stdout ----\nout of a\n\n---- b stdout ----\nout of b\n\n\
                    failures:\n    a\n    b\n    c\n\n\
                    test result: FAILED. 0 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out\n";
        let run = parse(text);
        let outputs: Vec<Option<&str>> = run.tests.iter().map(|t| t.output.as_deref()).collect();
        assert_eq!(outputs, [Some("out of a"), Some("out of b"), None]);
        assert!(run.tests.iter().all(|t| t.status == Status::Failed));
    }

    #[test]
    fn output_printed_between_a_name_and_its_result_is_tolerated() {
        // `--nocapture --test-threads=1`: the name first, the result after the output.
        let text = "running 3 tests\n\
                    test tests::fails ... some output\n\
                    thread 'tests::fails' panicked at src/lib.rs:9:51:\nboom\nFAILED\n\
                    test tests::ok ... ok\n\
                    test tests::sp - should panic ... \nthread 'x' panicked\nok\n\n\
                    failures:\n\nfailures:\n    tests::fails\n\n\
                    test result: FAILED. 2 passed; 1 failed; 0 ignored\n";
        let run = parse(text);
        assert_eq!(
            statuses(&run),
            [
                ("tests::fails", Status::Failed),
                ("tests::ok", Status::Passed),
                ("tests::sp", Status::Passed),
            ]
        );
        assert!(run.unfinished.is_empty());
    }

    #[test]
    fn a_binary_that_dies_mid_run_leaves_its_test_unfinished() {
        let text = "\nrunning 2 tests\ntest first ... ok\ntest second ... ";
        let run = parse(text);
        assert_eq!(statuses(&run), [("first", Status::Passed)]);
        assert_eq!(run.unfinished, ["second"]);
        assert!(run.harness_seen && !run.finished);
    }

    #[test]
    fn the_failure_list_wins_over_unreadable_lines() {
        let text = "running 1 test\ntest odd ... garbled\n\nfailures:\n    odd\n\n\
                    test result: FAILED. 0 passed; 1 failed; 0 ignored\n";
        let run = parse(text);
        assert_eq!(statuses(&run), [("odd", Status::Failed)]);
        assert!(run.unfinished.is_empty());
    }

    #[test]
    fn colour_codes_and_carriage_returns_are_ignored() {
        let text = "running 1 test\r\ntest a ... \u{1b}[32mok\u{1b}[0m\r\n\r\n\
                    test result: \u{1b}[32mok\u{1b}[0m. 1 passed; 0 failed; 0 ignored\r\n";
        let run = parse(text);
        assert_eq!(statuses(&run), [("a", Status::Passed)]);
        assert_eq!(run.reported.passed, 1);
    }

    #[test]
    fn output_without_a_harness_is_recognised() {
        let run = parse("hello from a custom main\n");
        assert!(!run.harness_seen && run.tests.is_empty());
        let run = parse(
            "\nrunning 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n",
        );
        assert!(run.harness_seen && run.finished && run.tests.is_empty());
    }

    #[test]
    fn doc_test_names_and_several_result_blocks_are_read() {
        let text = "\nrunning 1 test\ntest mod-a/src/lib.rs - f (line 2) ... ok\n\n\
                    test result: ok. 1 passed; 0 failed; 0 ignored\n\n\
                    running 1 test\ntest mod-b/src/lib.rs - g (line 5) - compile fail ... ignored\n\n\
                    test result: ok. 0 passed; 0 failed; 1 ignored\n";
        let run = parse(text);
        assert_eq!(
            statuses(&run),
            [
                ("mod-a/src/lib.rs - f (line 2)", Status::Passed),
                ("mod-b/src/lib.rs - g (line 5)", Status::Ignored(None)),
            ]
        );
        assert_eq!(run.reported.passed + run.reported.ignored, 2);
    }

    #[test]
    fn a_terse_listing_gives_the_names_and_anything_else_is_no_listing() {
        let listing = "tests::a: test\ntests::nested::b: test\nbench_x: benchmark\n\n";
        assert_eq!(
            parse_list(listing),
            Some(vec!["tests::a".to_owned(), "tests::nested::b".to_owned()])
        );
        assert_eq!(parse_list(""), Some(Vec::new()));
        assert_eq!(parse_list("custom harness ran 3 checks\n"), None);
    }

    #[test]
    fn a_lone_test_s_output_loses_libtest_s_lines() {
        let footer = "\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 7 filtered out; \
                      finished in 0.00s\n\n";
        // Several test threads: the result line comes after the output.
        let passed = format!("\nrunning 1 test\nhello out\ntest tests::p ... ok\n{footer}");
        assert_eq!(strip_harness(&passed, "tests::p"), "hello out\n");
        // Output without a newline runs into the result line.
        let joined = format!("\nrunning 1 test\nno newlinetest tests::p ... ok\n{footer}");
        assert_eq!(strip_harness(&joined, "tests::p"), "no newline");
        // One test thread: the name first, the output, then the result.
        let single = format!("\nrunning 1 test\ntest tests::p ... hello\nok\n{footer}");
        assert_eq!(strip_harness(&single, "tests::p"), "hello\n");
        let failed = "\nrunning 1 test\nprinted\ntest tests::f ... FAILED\n\nfailures:\n\n\
                      failures:\n    tests::f\n\ntest result: FAILED. 0 passed; 1 failed\n\n";
        assert_eq!(strip_harness(failed, "tests::f"), "printed\n");
        let panicked = "\nrunning 1 test\ntest tests::s - should panic ... ok\n\n\
                        test result: ok. 1 passed\n\n";
        assert_eq!(strip_harness(panicked, "tests::s"), "");
    }

    #[test]
    fn fake_libtest_lines_a_test_prints_stay_in_its_output() {
        let fake = "test tests::other ... FAILED\nrunning 9 tests\ntest result: FAILED. 0 passed\n\
                    failures:\n    tests::other\n";
        let stdout = format!(
            "\nrunning 1 test\n{fake}test tests::fake ... ok\n\ntest result: ok. 1 passed\n\n"
        );
        assert_eq!(strip_harness(&stdout, "tests::fake"), fake);
        // Killed before the footer: the output so far.
        let cut = "\nrunning 1 test\ntest tests::hang ... still going\n";
        assert_eq!(strip_harness(cut, "tests::hang"), "still going\n");
        assert_eq!(strip_harness("not libtest\n", "x"), "not libtest\n");
    }

    #[test]
    fn failure_messages_come_from_the_panic() {
        assert_eq!(
            failure_message("thread 'a' panicked at src/lib.rs:1:2:\nit broke\nnote: x"),
            "it broke"
        );
        assert_eq!(
            failure_message("thread 'a' panicked at 'old style', src/lib.rs:1:2"),
            "old style"
        );
        assert_eq!(
            failure_message("\n  Error: not found\n"),
            "Error: not found"
        );
        assert_eq!(failure_message(""), "test failed");
        assert_eq!(failure_message(&"x".repeat(300)).chars().count(), 201);
    }
}
