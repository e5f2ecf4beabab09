//! JUnit XML, the report format CI systems read: one `<testsuite>` per module
//! (with `tests`, `failures`, `errors`, `skipped` and `time`), one
//! `<testcase classname="module" name="test" time="...">` per entry, a
//! `<failure message="...">` holding the captured output, `<skipped/>` for an
//! ignored test.
//!
//! Hand-written rather than built with an XML crate: the format is a dozen
//! element kinds, and the only subtle part, escaping, is [`escape_text`] and
//! [`escape_attribute`] below (every `&`, `<`, `>`, quote, and the characters
//! XML 1.0 cannot hold at all, which are replaced by U+FFFD).

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::model::{Counts, Outcome, TestReport};

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

/// `report` as a JUnit XML document.
pub fn to_xml(report: &TestReport) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let totals = report.counts();
    let _ = writeln!(
        xml,
        "<testsuites name=\"cargo orch test\" {} time=\"{}\">",
        count_attributes(totals),
        seconds(report.duration)
    );
    for module in &report.modules {
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" {} time=\"{}\">",
            escape_attribute(&module.module),
            count_attributes(module.counts()),
            seconds(module.duration)
        );
        let _ = writeln!(
            xml,
            "    <properties>\n      <property name=\"package\" value=\"{}\"/>\n    </properties>",
            escape_attribute(&module.package)
        );
        for test in &module.tests {
            let _ = write!(
                xml,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"",
                escape_attribute(&module.module),
                escape_attribute(&test.name),
                seconds(test.duration)
            );
            match &test.outcome {
                Outcome::Passed => xml.push_str("/>\n"),
                Outcome::Failed { message, output } => {
                    let _ = writeln!(
                        xml,
                        ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
                        escape_attribute(message),
                        test.kind.as_str(),
                        escape_text(output)
                    );
                }
                Outcome::Ignored { reason } => {
                    xml.push_str(">\n      <skipped");
                    if let Some(reason) = reason {
                        let _ = write!(xml, " message=\"{}\"", escape_attribute(reason));
                    }
                    xml.push_str("/>\n    </testcase>\n");
                }
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

/// Writes `report` to `path` as JUnit XML: parent folders created, written to a
/// temporary file beside it and renamed over it, so a reader never sees half a
/// file.
pub fn write(report: &TestReport, path: &Path) -> Result<(), WriteError> {
    write_atomically(path, to_xml(report).as_bytes()).map_err(|source| WriteError {
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
        counts.passed + counts.failed + counts.ignored,
        counts.failed,
        counts.ignored
    )
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
    use crate::model::{CaseKind, ModuleReport, TestCase};

    fn report() -> TestReport {
        let mut load = TestCase::test("load check", Outcome::Passed);
        load.kind = CaseKind::LoadCheck;
        load.duration = Duration::from_millis(12);
        TestReport {
            modules: vec![ModuleReport {
                module: "mod-<a>".into(),
                package: "mod-a".into(),
                tests: vec![
                    TestCase::test("tests::ok", Outcome::Passed),
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
        let xml = to_xml(&report());
        let expected = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>
<testsuites name=\"cargo orch test\" tests=\"5\" failures=\"1\" errors=\"0\" skipped=\"2\" time=\"2.000\">
  <testsuite name=\"mod-&lt;a&gt;\" tests=\"5\" failures=\"1\" errors=\"0\" skipped=\"2\" time=\"1.500\">
    <properties>
      <property name=\"package\" value=\"mod-a\"/>
    </properties>
    <testcase classname=\"mod-&lt;a&gt;\" name=\"tests::ok\" time=\"0.000\"/>
    <testcase classname=\"mod-&lt;a&gt;\" name=\"tests::&quot;fails&quot;\" time=\"0.000\">
      <failure message=\"left &amp; right differ\" type=\"test\">out &lt;1&gt;
\u{FFFD}[31mred &amp; 'q'</failure>
    </testcase>
    <testcase classname=\"mod-&lt;a&gt;\" name=\"tests::slow\" time=\"0.000\">
      <skipped message=\"takes &quot;ages&quot;\"/>
    </testcase>
    <testcase classname=\"mod-&lt;a&gt;\" name=\"tests::plain_ignore\" time=\"0.000\">
      <skipped/>
    </testcase>
    <testcase classname=\"mod-&lt;a&gt;\" name=\"load check\" time=\"0.012\"/>
  </testsuite>
</testsuites>
";
        assert_eq!(xml, expected);
    }

    #[test]
    fn writes_atomically_creating_parent_folders() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("reports/nested/junit.xml");
        write(&report(), &path).expect("written");
        let text = std::fs::read_to_string(&path).expect("read back");
        assert!(text.starts_with("<?xml"), "{text}");
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
