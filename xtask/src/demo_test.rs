//! The `cargo orch test` part of `cargo xtask demo`.
//!
//! 1. `cargo orch test --json` in the repository: the report lists every module of
//!    `config/modules.yaml`, each with passing tests and a passing load check, and
//!    the exit code is 0.
//! 2. In a throw-away copy of the workspace ([`ScratchWorkspace`]: the repository is
//!    never modified, even if the demo fails or is interrupted), a deliberately
//!    failing test is added to a module: the exit code turns to 1, the module's row
//!    shows the failure, the failure section names the test with its output, and
//!    the total line counts it.
//!
//! Each check prints `[OK] <check>` or `[FAIL] <check>: <why>`, like the rest of
//! the demo, and is counted in the returned [`Tally`].

use std::path::Path;
use std::process::{Command, Output};

use crate::tally::Tally;
use anyhow::{Context as _, Result, anyhow, bail, ensure};
use orch_e2e::{ScratchWorkspace, orch_bin};
use serde_json::Value;

/// The module the copy gets a failing test in.
const BROKEN_MODULE: &str = "mod-dummy-consumer";

/// The test the copy gets, as the report names it.
const BROKEN_TEST: &str = "demo_injected::deliberately_failing";

/// Appended to the module's `src/lib.rs` in the copy.
const FAILING_TEST: &str = "
#[cfg(test)]
mod demo_injected {
    #[test]
    fn deliberately_failing() {
        println!(\"output captured from the deliberately failing test\");
        panic!(\"deliberately failing test added by cargo xtask demo\");
    }
}
";

/// Runs both steps from the workspace at `root`; errors are reserved for what
/// stops the demo itself (no scratch copy could be made).
pub fn run(root: &Path) -> Result<Tally> {
    println!("=== demo: cargo orch test ===");
    let mut tally = Tally::default();
    let green = Command::new(orch_bin())
        .current_dir(root)
        .args(["orch", "test", "--json"])
        .env("NO_COLOR", "1")
        .output()
        .context("running `cargo orch test`")?;
    tally.record(
        "cargo orch test passes every shipped module, load checks included",
        check_green(root, &green),
    );

    let scratch = ScratchWorkspace::copy_of_repo().context("copying the workspace")?;
    let lib = format!("modules-backend/{BROKEN_MODULE}/src/lib.rs");
    let source = scratch.read(&lib);
    ensure!(!source.is_empty(), "{lib} is missing from the copy");
    scratch
        .write(&lib, &format!("{source}{FAILING_TEST}"))
        .with_context(|| format!("adding a failing test to the copy's {lib}"))?;
    let red = scratch
        .orch(&["test"])
        .output()
        .context("running `cargo orch test` in the copy")?;
    tally.record(
        &format!("a deliberately failing test in {BROKEN_MODULE} turns cargo orch test red"),
        check_red(&red),
    );
    Ok(tally)
}

/// Exit 0, and every module of `config/modules.yaml` in the report with only
/// passed entries, a load check among them.
fn check_green(root: &Path, output: &Output) -> Result<String> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(&stdout).map_err(|e| {
        anyhow!(
            "stdout is not the JSON report ({e}); stderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    ensure!(
        output.status.code() == Some(0),
        "exit {:?}, expected 0; report: {}",
        output.status.code(),
        report["summary"]
    );
    let declared = declared_modules(&root.join("config/modules.yaml"))?;
    for module in &declared {
        let entry = report["modules"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["module"] == module.as_str()))
            .ok_or_else(|| anyhow!("module {module} is not in the report"))?;
        let tests = entry["tests"].as_array().cloned().unwrap_or_default();
        let failed: Vec<&Value> = tests.iter().filter(|t| t["status"] == "failed").collect();
        ensure!(
            failed.is_empty(),
            "module {module} has failures: {failed:?}"
        );
        ensure!(
            tests
                .iter()
                .any(|t| t["name"] == "load check" && t["status"] == "passed"),
            "module {module} has no passing load check"
        );
        ensure!(
            tests
                .iter()
                .any(|t| t["kind"] == "test" && t["status"] == "passed"),
            "module {module} has no passing test of its own"
        );
    }
    Ok(format!("{}: {}", declared.join(", "), report["summary"]))
}

/// Exit 1, the module's row with a failure, the failing test named with its
/// output, and the total line counting one failure.
fn check_red(output: &Output) -> Result<String> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let show = || {
        format!(
            "\n--- stdout ---\n{stdout}\n--- stderr (end) ---\n{}",
            tail(&String::from_utf8_lossy(&output.stderr), 20)
        )
    };
    if output.status.code() != Some(1) {
        bail!("exit {:?}, expected 1{}", output.status.code(), show());
    }
    let row: Vec<&str> = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(BROKEN_MODULE))
        .map(|l| l.split_whitespace().collect())
        .ok_or_else(|| anyhow!("no row for {BROKEN_MODULE}{}", show()))?;
    ensure!(
        row.get(2) == Some(&"1"),
        "the row of {BROKEN_MODULE} does not show 1 failure: {row:?}{}",
        show()
    );
    let header = format!("---- {BROKEN_MODULE}: {BROKEN_TEST} ----");
    let section = stdout
        .split(&header)
        .nth(1)
        .ok_or_else(|| anyhow!("the failure section `{header}` is missing{}", show()))?;
    ensure!(
        section.contains("output captured from the deliberately failing test")
            && section.contains("deliberately failing test added by cargo xtask demo"),
        "the failure section lacks the test's output{}",
        show()
    );
    let total = stdout
        .lines()
        .rev()
        .find(|l| l.contains(" passed, ") && l.contains(" failed"))
        .ok_or_else(|| anyhow!("no total line{}", show()))?;
    ensure!(
        total.contains(", 1 failed"),
        "the total line `{total}` does not count the failure{}",
        show()
    );
    Ok(format!("exit 1, `{total}`"))
}

/// The `name:` of each entry of a modules.yaml (`  - name: x` lines).
fn declared_modules(path: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let names: Vec<String> = text
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("- name:"))
        .map(|name| name.trim().to_owned())
        .collect();
    ensure!(!names.is_empty(), "{} declares no module", path.display());
    Ok(names)
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_declared_module_names() {
        let dir = std::env::temp_dir().join(format!("xtask-demo-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp folder");
        let path = dir.join("modules.yaml");
        std::fs::write(
            &path,
            "# - name: not-this\nmodules:\n  - name: mod-a\n    config:\n      name: x\n  - name: mod-b\n",
        )
        .expect("write");
        let names = declared_modules(&path);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(names.expect("names"), ["mod-a", "mod-b"]);
    }

    #[test]
    fn the_injected_test_is_the_one_the_report_names() {
        assert!(FAILING_TEST.contains("mod demo_injected"));
        assert!(FAILING_TEST.contains("fn deliberately_failing"));
        assert_eq!(BROKEN_TEST, "demo_injected::deliberately_failing");
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
    }
}
