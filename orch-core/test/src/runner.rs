//! What both ways of running test binaries share: the command a binary runs
//! with (in its package's folder, with `CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`
//! and friends set, as under `cargo test`), the report names of its tests,
//! output trimming, and a small pool that runs jobs on a fixed number of
//! threads.

use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use orch_process::{ExitReason, ProcessGroups};

use super::compile::TestBinary;
use super::libtest::strip_ansi;
use super::model::{CaseKind, Outcome, TestCase};
use super::progress::Progress;

/// The most captured output kept for one failure (its end is kept).
pub const MAX_OUTPUT: usize = 64 * 1024;

/// One test binary of one module, and how to run it.
#[derive(Debug, Clone)]
pub struct BinaryJob {
    /// The module it belongs to (for progress lines).
    pub module: String,
    /// The executable and what it tests.
    pub binary: TestBinary,
    /// Libtest arguments: those given after `--`, then the module's `test.args`.
    pub args: Vec<String>,
    /// How long one test may run (`None`: `--no-timeout`).
    pub timeout: Option<Duration>,
    /// How many times a failing test runs again (`--retries`).
    pub retries: u32,
}

impl BinaryJob {
    /// `module name`, what progress lines call test `name` of this binary.
    pub fn label(&self, name: &str) -> String {
        format!("{} {}", self.module, test_name(&self.binary, name))
    }
}

/// What the runs share: the process groups a Ctrl-C ends, the progress display.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    /// Every child is spawned in a group of these.
    pub children: &'a ProcessGroups,
    /// Where finished tests are shown.
    pub progress: &'a Progress,
}

/// `killed by signal 11 (SIGSEGV: segmentation fault)`: how a signal ended
/// a process, from its real wait status.
pub fn signal_words(exit: ExitReason) -> String {
    let ExitReason::Signal(number) = exit else {
        return exit.to_string();
    };
    match (exit.signal_name(), exit.signal_meaning()) {
        (Some(name), Some(meaning)) => format!("killed by signal {number} ({name}: {meaning})"),
        (Some(name), None) => format!("killed by signal {number} ({name})"),
        _ => format!("killed by signal {number}"),
    }
}

/// The command of `binary` with `args`, as `cargo test` would run it.
pub fn command(binary: &TestBinary, args: &[String]) -> Command {
    let mut command = Command::new(&binary.path);
    command
        .args(args)
        .current_dir(&binary.manifest_dir)
        .env("CARGO_MANIFEST_DIR", &binary.manifest_dir)
        .env(
            "CARGO_MANIFEST_PATH",
            binary.manifest_dir.join("Cargo.toml"),
        )
        .env("CARGO_PKG_NAME", &binary.package)
        .env("CARGO_CRATE_NAME", binary.target.replace('-', "_"));
    if let Some(cargo) = std::env::var_os("CARGO") {
        command.env("CARGO", cargo);
    }
    // As cargo does: the build's library folders first, for dynamic libraries.
    if let Some(deps) = binary.path.parent() {
        let mut paths: Vec<std::path::PathBuf> = vec![deps.to_path_buf()];
        paths.extend(deps.parent().map(std::path::Path::to_path_buf));
        if let Some(existing) = std::env::var_os("LD_LIBRARY_PATH") {
            paths.extend(std::env::split_paths(&existing));
        }
        if let Ok(joined) = std::env::join_paths(paths) {
            command.env("LD_LIBRARY_PATH", joined);
        }
    }
    command
}

/// The report name of test `name` of `binary`: as is for the library's unit
/// tests, prefixed with the target for integration tests (`api::round_trip`).
pub fn test_name(binary: &TestBinary, name: &str) -> String {
    if binary.is_lib {
        name.to_owned()
    } else {
        format!("{}::{name}", binary.target)
    }
}

/// An entry standing for a whole binary.
pub fn binary_case(binary: &TestBinary, outcome: Outcome, duration: Duration) -> TestCase {
    let name = if binary.is_lib {
        "unit tests (test binary)".to_owned()
    } else {
        format!("{} (test binary)", binary.target)
    };
    TestCase::new(name, CaseKind::Binary, outcome, duration)
}

/// `text` without colour codes, leading blank lines and trailing blank
/// space, its last [`MAX_OUTPUT`] bytes (at a character boundary) with a note
/// when longer.
pub fn cap(text: &str) -> String {
    let text = strip_ansi(text.trim_end().trim_start_matches(['\n', '\r']));
    if text.len() <= MAX_OUTPUT {
        return text;
    }
    let mut start = text.len() - MAX_OUTPUT;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("[... {start} bytes cut ...]\n{}", &text[start..])
}

/// The arguments of a job: the ones given to everything, then the module's own.
pub fn job_args(common: &[String], module: &[String]) -> Vec<String> {
    common.iter().chain(module).cloned().collect()
}

/// Runs `work` on every item, on at most `workers` threads; the results come
/// back in item order.
pub fn parallel<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    work: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, items.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(index) else {
                        break;
                    };
                    let result = work(item);
                    results.lock().unwrap_or_else(|e| e.into_inner())[index] = Some(result);
                }
            });
        }
    });
    // A worker that panicked made the scope panic: every slot is filled here.
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect()
}

/// A binary that does not exist, for tests: the library's unit tests of
/// `mod-a`, or its integration test `api`.
#[cfg(test)]
pub fn fake_binary(is_lib: bool) -> TestBinary {
    TestBinary {
        package: "mod-a".into(),
        target: if is_lib { "mod_a" } else { "api" }.into(),
        is_lib,
        path: std::path::PathBuf::from("/nowhere/deps/mod_a-123"),
        manifest_dir: std::path::PathBuf::from("/nowhere"),
    }
}

/// Writes an executable script for tests. Another test's fork may still hold
/// the file open for writing for a moment (`ETXTBSY` on exec): this waits,
/// a bounded number of times, until the script can run.
#[cfg(test)]
pub fn write_script(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).expect("write the script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for _ in 0..100 {
        match Command::new(path).arg("--probe").output() {
            Err(error) if error.raw_os_error() == Some(nix::libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(10));
            }
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn binary(is_lib: bool) -> TestBinary {
        fake_binary(is_lib)
    }

    #[test]
    fn names_carry_the_integration_test_s_target() {
        assert_eq!(test_name(&binary(true), "tests::a"), "tests::a");
        assert_eq!(test_name(&binary(false), "round_trip"), "api::round_trip");
        assert_eq!(
            binary_case(&binary(false), Outcome::Passed, Duration::ZERO).name,
            "api (test binary)"
        );
    }

    #[test]
    fn the_command_runs_in_the_package_folder_with_cargo_s_variables() {
        let command = command(&binary(true), &["--exact".into(), "t".into()]);
        assert_eq!(
            command.get_current_dir(),
            Some(PathBuf::from("/nowhere").as_path())
        );
        let args: Vec<_> = command.get_args().collect();
        assert_eq!(args, ["--exact", "t"]);
        let env: Vec<_> = command
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_str()?, v?.to_str()?)))
            .collect();
        assert!(env.contains(&("CARGO_PKG_NAME", "mod-a")), "{env:?}");
        assert!(env.contains(&("CARGO_CRATE_NAME", "mod_a")), "{env:?}");
        assert!(
            env.iter()
                .any(|(k, v)| *k == "LD_LIBRARY_PATH" && v.starts_with("/nowhere/deps:")),
            "{env:?}"
        );
    }

    #[test]
    fn signals_are_named_with_their_number_and_meaning() {
        assert_eq!(
            signal_words(ExitReason::Signal(11)),
            "killed by signal 11 (SIGSEGV: segmentation fault)"
        );
        assert_eq!(
            signal_words(ExitReason::Signal(15)),
            "killed by signal 15 (SIGTERM)"
        );
        assert_eq!(
            signal_words(ExitReason::Signal(250)),
            "killed by signal 250"
        );
        assert_eq!(signal_words(ExitReason::Code(3)), "exited with code 3");
    }

    #[test]
    fn long_output_keeps_its_end() {
        let long = format!("{}END", "é".repeat(MAX_OUTPUT));
        let capped = cap(&long);
        assert!(capped.starts_with("[... "), "{}", &capped[..20]);
        assert!(capped.ends_with("END"));
        assert!(capped.len() < MAX_OUTPUT + 40);
        assert_eq!(cap("\n\n\u{1b}[31mred\u{1b}[0m\n\n"), "red");
        assert_eq!(cap("\n  indented\n"), "  indented");
    }

    #[test]
    fn the_pool_keeps_item_order() {
        let items: Vec<u32> = (0..20).collect();
        assert_eq!(
            parallel(&items, 3, |n| n * 2),
            (0..20).map(|n| n * 2).collect::<Vec<_>>()
        );
        assert!(parallel(&[] as &[u32], 4, |n| *n).is_empty());
    }
}
