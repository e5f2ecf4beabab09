//! JUnit XML, the report format CI systems read, in the Jenkins / Maven
//! Surefire dialect cargo-nextest writes: one `<testsuite>` per module (with
//! `tests`, `failures`, `errors`, `skipped`, `time`, `timestamp` and
//! `hostname`), one `<testcase classname="module" name="test" time="..."
//! timestamp="...">` per entry; a failure is `<failure message="..."
//! type="test failure|test crash|test timeout">` holding its output, with
//! `<system-out>` and `<system-err>`; earlier failed attempts are
//! `<rerunFailure>` elements, or `<flakyFailure>` ones when the test passed
//! in the end; an ignored test is `<skipped/>`.
//!
//! Hand-written rather than built with an XML crate: the format is a dozen
//! element kinds, and the only subtle part, escaping, is [`escape_text`] and
//! [`escape_attribute`] below (every `&`, `<`, `>`, quote, and the characters
//! XML 1.0 cannot hold at all, which are replaced by U+FFFD).

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::model::{CaseKind, Cause, Counts, Failure, Outcome, Retry, TestCase, TestReport};
use super::timestamp::iso8601;

/// The JUnit file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the JUnit report {}: {source}", path.display())]
pub struct WriteError {
    /// The file asked for.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: io::Error,
}

/// `report` as a JUnit XML document, `hostname` on each suite.
pub fn to_xml(report: &TestReport, hostname: &str) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"cargo orch test\" {} time=\"{}\"{}>",
        count_attributes(report.counts()),
        seconds(report.duration),
        timestamp(report.started)
    );
    for module in &report.modules {
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" {} time=\"{}\"{} hostname=\"{}\">",
            escape_attribute(&module.module),
            count_attributes(module.counts()),
            seconds(module.duration),
            timestamp(module.started().or(report.started)),
            escape_attribute(hostname)
        );
        let _ = writeln!(
            xml,
            "    <properties>\n      <property name=\"package\" value=\"{}\"/>\n    </properties>",
            escape_attribute(&module.package)
        );
        for test in &module.tests {
            test_case(&mut xml, &module.module, test);
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

/// This machine's name, for the suites' `hostname`.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

fn test_case(xml: &mut String, module: &str, test: &TestCase) {
    let _ = write!(
        xml,
        "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"{}",
        escape_attribute(module),
        escape_attribute(&test.name),
        seconds(test.duration),
        timestamp(test.started)
    );
    let flaky = test.is_flaky();
    if test.outcome == Outcome::Passed && !flaky {
        xml.push_str("/>\n");
        return;
    }
    xml.push_str(">\n");
    match &test.outcome {
        Outcome::Passed => {}
        Outcome::Failed(failure) => {
            let _ = writeln!(
                xml,
                "      <failure message=\"{}\" type=\"{}\">{}</failure>",
                escape_attribute(&failure.message),
                failure_type(test.kind, failure),
                escape_text(&failure.report())
            );
        }
        Outcome::Ignored { reason } => {
            xml.push_str("      <skipped");
            if let Some(reason) = reason {
                let _ = write!(xml, " message=\"{}\"", escape_attribute(reason));
            }
            xml.push_str("/>\n");
        }
    }
    let element = if flaky {
        "flakyFailure"
    } else {
        "rerunFailure"
    };
    for retry in &test.retries {
        rerun(xml, element, test.kind, retry);
    }
    if let Outcome::Failed(failure) = &test.outcome {
        streams(xml, "      ", failure);
    }
    xml.push_str("    </testcase>\n");
}

/// A failed earlier attempt, with its own output.
fn rerun(xml: &mut String, element: &str, kind: CaseKind, retry: &Retry) {
    let _ = writeln!(
        xml,
        "      <{element} message=\"{}\" type=\"{}\" time=\"{}\"{}>",
        escape_attribute(&retry.failure.message),
        failure_type(kind, &retry.failure),
        seconds(retry.duration),
        timestamp(retry.started)
    );
    streams(xml, "        ", &retry.failure);
    let _ = writeln!(xml, "      </{element}>");
}

/// `<system-out>` and `<system-err>` of a failure, when they hold anything.
fn streams(xml: &mut String, indent: &str, failure: &Failure) {
    for (element, text) in [
        ("system-out", &failure.stdout),
        ("system-err", &failure.stderr),
    ] {
        if !text.trim().is_empty() {
            let _ = writeln!(xml, "{indent}<{element}>{}</{element}>", escape_text(text));
        }
    }
}

/// `test failure`, `test crash` or `test timeout`; `build` or `load-check`
/// for those entries.
fn failure_type(kind: CaseKind, failure: &Failure) -> &'static str {
    match (kind, failure.cause) {
        (_, Cause::Crashed { .. }) => "test crash",
        (_, Cause::TimedOut { .. }) => "test timeout",
        (CaseKind::Build | CaseKind::LoadCheck, Cause::Failed) => kind.as_str(),
        (_, Cause::Failed) => "test failure",
    }
}

/// Writes `report` to `path` as JUnit XML: parent folders created, written to a
/// temporary file beside it and renamed over it, so a reader never sees half a
/// file.
pub fn write(report: &TestReport, path: &Path) -> Result<(), WriteError> {
    write_atomically(path, to_xml(report, &hostname()).as_bytes()).map_err(|source| WriteError {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `contents` to a temporary file in `path`'s folder (created if
/// needed), then renames it to `path`; the temporary file is removed on error.
pub fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".{}.tmp", std::process::id()));
    let temp = dir.join(temp_name);
    let result = std::fs::write(&temp, contents)
        .and_then(|()| std::fs::File::open(&temp)?.sync_all())
        .and_then(|()| std::fs::rename(&temp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

fn count_attributes(counts: Counts) -> String {
    format!(
        "tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\"",
        counts.total(),
        counts.failed,
        counts.ignored
    )
}

/// ` timestamp="..."`, or nothing when the time is not known.
fn timestamp(time: Option<SystemTime>) -> String {
    time.map(|t| format!(" timestamp=\"{}\"", iso8601(t)))
        .unwrap_or_default()
}

/// Seconds with millisecond precision, as JUnit's `time` attributes want.
fn seconds(duration: Duration) -> String {
    format!("{:.3}", duration.as_secs_f64())
}

/// Text content: `&`, `<` and `>` escaped, characters XML cannot hold replaced.
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(xml_char(c)),
        }
    }
    out
}

/// An attribute value (always written in double quotes): quotes escaped too,
/// and tabs and line breaks as character references so they survive
/// attribute-value normalisation.
pub fn escape_attribute(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(xml_char(c)),
        }
    }
    out
}

/// `c` if XML 1.0 allows it, U+FFFD otherwise (control characters such as ESC
/// or NUL, U+FFFE, U+FFFF).
fn xml_char(c: char) -> char {
    let allowed = matches!(c, '\t' | '\n' | '\r')
        || ('\u{20}'..='\u{D7FF}').contains(&c)
        || ('\u{E000}'..='\u{FFFD}').contains(&c)
        || c >= '\u{10000}';
    if allowed { c } else { '\u{FFFD}' }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModuleReport, Retry};
    use std::time::UNIX_EPOCH;

    fn at(seconds: u64) -> Option<SystemTime> {
        Some(UNIX_EPOCH + Duration::from_secs(seconds))
    }

    fn report() -> TestReport {
        let mut load = TestCase::new(
            "load check",
            CaseKind::LoadCheck,
            Outcome::Passed,
            Duration::from_millis(12),
        );
        load.started = at(1_700_000_001);
        let mut ok = TestCase::test("tests::ok", Outcome::Passed);
        ok.duration = Duration::from_millis(4);
        ok.started = at(1_700_000_000);
        TestReport {
            modules: vec![ModuleReport {
                module: "mod-<a>".into(),
                package: "mod-a".into(),
                tests: vec![
                    ok,
                    TestCase::test(
                        "tests::\"fails\"",
                        Outcome::failed("left & right differ", "out <1>\n\u{1b}[31mred & 'q'"),
                    ),
                    TestCase::test(
                        "tests::slow",
                        Outcome::Ignored {
                            reason: Some("takes \"ages\"".into()),
                        },
                    ),
                    TestCase::test("tests::plain_ignore", Outcome::Ignored { reason: None }),
                    load,
                ],
                duration: Duration::from_millis(1500),
            }],
            duration: Duration::from_secs(2),
            started: at(1_699_999_999),
        }
    }

    #[test]
    fn escapes_text_and_attributes() {
        assert_eq!(
            escape_text("a & b < c > d \"e\" 'f'"),
            "a &amp; b &lt; c &gt; d \"e\" 'f'"
        );
        assert_eq!(
            escape_attribute("a & b < c > d \"e\" 'f'\n\tg\r"),
            "a &amp; b &lt; c &gt; d &quot;e&quot; &apos;f&apos;&#10;&#9;g&#13;"
        );
        assert_eq!(
            escape_text("esc\u{1b}[0m nul\u{0} ok\n"),
            "esc\u{FFFD}[0m nul\u{FFFD} ok\n"
        );
        assert_eq!(escape_text("\u{FFFF}é€😀"), "\u{FFFD}é€😀");
        assert_eq!(escape_text("]]>"), "]]&gt;");
    }

    #[test]
    fn writes_one_suite_per_module_and_one_case_per_test() {
        let xml = to_xml(&report(), "build-1");
        let expected = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>
<testsuites name=\"cargo orch test\" tests=\"5\" failures=\"1\" errors=\"0\" skipped=\"2\" time=\"2.000\" timestamp=\"2023-11-14T22:13:19.000+00:00\">
  <testsuite name=\"mod-&lt;a&gt;\" tests=\"5\" failures=\"1\" errors=\"0\" skipped=\"2\" time=\"1.500\" timestamp=\"2023-11-14T22:13:20.000+00:00\" hostname=\"build-1\">
    <properties>
      <property name=\"package\" value=\"mod-a\"/>
    </properties>
    <testcase classname=\"mod-&lt;a&gt;\" name=\"tests::ok\" time=\"0.004\" timestamp=\"2023-11-14T22:13:20.000+00:00\"/>
    <testcase classname=\"mod-&lt;a&gt;\" name=\"tests::&quot;fails&quot;\" time=\"0.000\">
      <failure message=\"left &amp; right differ\" type=\"test failure\">out &lt;1&gt;
\u{FFFD}[31mred &amp; 'q'</failure>
      <system-out>out &lt;1&gt;
\u{FFFD}[31mred &amp; 'q'</system-out>
    </testcase>
    <testcase classname=\"mod-&lt;a&gt;\" name=\"tests::slow\" time=\"0.000\">
      <skipped message=\"takes &quot;ages&quot;\"/>
    </testcase>
    <testcase classname=\"mod-&lt;a&gt;\" name=\"tests::plain_ignore\" time=\"0.000\">
      <skipped/>
    </testcase>
    <testcase classname=\"mod-&lt;a&gt;\" name=\"load check\" time=\"0.012\" timestamp=\"2023-11-14T22:13:21.000+00:00\"/>
  </testsuite>
</testsuites>
";
        assert_eq!(xml, expected);
    }

    #[test]
    fn crashes_timeouts_and_retries_keep_their_detail() {
        let mut report = report();
        let crash = Failure {
            cause: Cause::Crashed { signal: 6 },
            message: "the test process was killed by signal 6 (SIGABRT: abort)".into(),
            stdout: "before the abort".into(),
            stderr: "abort message".into(),
        };
        let timeout = Failure {
            cause: Cause::TimedOut {
                after: Duration::from_secs(2),
            },
            ..Failure::new("timed out after 2.00 s", "")
        };
        let retry = |failure: &Failure| Retry {
            failure: failure.clone(),
            duration: Duration::from_millis(7),
            started: None,
        };
        let mut crashed = TestCase::test("tests::aborts", Outcome::Failed(crash.clone()));
        crashed.retries.push(retry(&crash));
        let mut flaky = TestCase::test("tests::flaky", Outcome::Passed);
        flaky
            .retries
            .push(retry(&Failure::new("first try", "try 1 out")));
        report.modules[0].tests = vec![
            crashed,
            TestCase::test("tests::hangs", Outcome::Failed(timeout)),
            flaky,
        ];
        let xml = to_xml(&report, "h");
        assert!(xml.contains(
            "<failure message=\"the test process was killed by signal 6 (SIGABRT: abort)\" \
             type=\"test crash\">CRASHED: the test process was killed by signal 6 (SIGABRT: abort)\n\
             before the abort\n--- stderr ---\nabort message</failure>\n      \
             <rerunFailure message=\"the test process was killed by signal 6 (SIGABRT: abort)\" \
             type=\"test crash\" time=\"0.007\">\n        <system-out>before the abort</system-out>\n        \
             <system-err>abort message</system-err>\n      </rerunFailure>\n      \
             <system-out>before the abort</system-out>\n      <system-err>abort message</system-err>\n"
        ), "{xml}");
        assert!(xml.contains("type=\"test timeout\">"), "{xml}");
        assert!(xml.contains(
            "name=\"tests::flaky\" time=\"0.000\">\n      <flakyFailure message=\"first try\" \
             type=\"test failure\" time=\"0.007\">\n        <system-out>try 1 out</system-out>\n      \
             </flakyFailure>\n    </testcase>"
        ), "{xml}");
        assert!(
            xml.contains("tests=\"3\" failures=\"2\""),
            "the flaky test counts, not as a failure: {xml}"
        );
    }

    #[test]
    fn writes_atomically_creating_parent_folders() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("reports/nested/junit.xml");
        write(&report(), &path).expect("written");
        let text = std::fs::read_to_string(&path).expect("read back");
        assert!(text.starts_with("<?xml"), "{text}");
        assert!(text.contains(&format!("hostname=\"{}\"", escape_attribute(&hostname()))));
        // Overwrites in place, and leaves no temporary file behind.
        write(&TestReport::default(), &path).expect("rewritten");
        let text = std::fs::read_to_string(&path).expect("read back");
        assert!(text.contains("tests=\"0\""), "{text}");
        let entries: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))
            .expect("list")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(entries, ["junit.xml"]);
    }

    #[test]
    fn an_unwritable_path_names_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").expect("write");
        let error = write(&report(), &blocker.join("junit.xml")).expect_err("not a folder");
        assert!(error.to_string().contains("junit.xml"), "{error}");
    }
}
