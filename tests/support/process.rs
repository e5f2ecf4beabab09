//! A running orchestrator process, watched through its output lines: the
//! tests' face of the one process driver, [`crate::watched::WatchedChild`]
//! (timeouts instead of deadlines, and a failure report with the output).

use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};

pub use crate::watched::Line;
use crate::watched::{WaitError, WatchedChild};

/// A child process whose stdout and stderr lines are collected in arrival
/// order. The process is killed when this is dropped.
pub struct OrchProcess {
    child: WatchedChild,
}

impl OrchProcess {
    /// Spawns `command` with piped output.
    pub fn spawn(command: Command) -> std::io::Result<Self> {
        WatchedChild::spawn(command)
            .map(|child| Self { child })
            .map_err(|e| std::io::Error::other(format!("{e:#}")))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        u32::try_from(self.child.pid().as_raw()).unwrap_or_default()
    }

    /// Waits up to `timeout` for `[METRICS] serving http://<address>/metrics`
    /// and returns the address; panics with the output so far without it.
    pub fn metrics_address(&mut self, timeout: Duration) -> String {
        let line = self
            .wait_for("[METRICS] serving http://", timeout)
            .unwrap_or_else(|output| panic!("no metrics served: {output}"));
        line.text
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("no address in {}", line.text))
            .to_owned()
    }

    /// Waits until a line containing `needle` arrives (or has arrived) and returns
    /// it; on timeout, an error with the whole output so far.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<Line, String> {
        self.wait_for_match(|text| text.contains(needle), needle, timeout)
    }

    /// Waits for a line that satisfies `matches`; `what` names it in errors.
    pub fn wait_for_match(
        &mut self,
        matches: impl Fn(&str) -> bool,
        what: &str,
        timeout: Duration,
    ) -> Result<Line, String> {
        match self
            .child
            .wait_for_match(what, |text| matches(text), Instant::now() + timeout)
        {
            Ok(line) => Ok(line),
            // A match is a match: the timeout only bounds the wait.
            Err(WaitError::Late { line, .. }) => Ok(line),
            Err(WaitError::Ended { .. }) => {
                Err(self.failure(&format!("output ended before a line with {what:?}")))
            }
            Err(error) => Err(self.failure(&format!(
                "no line with {what:?} within {timeout:?} ({error})"
            ))),
        }
    }

    /// Reads whatever arrives during `period` (less if the output ends).
    pub fn collect_for(&mut self, period: Duration) {
        let nothing = self
            .child
            .wait_for_match("nothing", |_| false, Instant::now() + period);
        debug_assert!(nothing.is_err());
    }

    /// Every line seen so far.
    pub fn output(&self) -> String {
        self.child
            .lines()
            .iter()
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The lines seen so far that contain `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.child
            .lines()
            .iter()
            .filter(|l| l.text.contains(needle))
            .map(|l| l.text.clone())
            .collect()
    }

    /// The last line seen so far that contains `needle`, with when it was
    /// read.
    pub fn last_line_with(&self, needle: &str) -> Option<Line> {
        self.child
            .lines()
            .iter()
            .rev()
            .find(|l| l.text.contains(needle))
            .cloned()
    }

    /// The lines seen so far that held ANSI escape sequences (which `text`
    /// has without them), as they read once stripped.
    pub fn lines_with_escapes(&self) -> Vec<String> {
        self.child
            .lines()
            .iter()
            .filter(|l| l.had_escapes)
            .map(|l| l.text.clone())
            .collect()
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) -> Result<(), String> {
        kill(self.child.pid(), signal).map_err(|e| e.to_string())
    }

    /// Waits for the process to exit, reading its remaining output.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        self.child.wait_exit(Instant::now() + timeout).map_err(|e| {
            self.failure(&format!(
                "the process did not exit within {timeout:?} ({e})"
            ))
        })
    }

    /// A failure report: every line but the ping chatter (at most 150), then the
    /// last lines as they came.
    fn failure(&self, what: &str) -> String {
        let chatter = |text: &str| {
            text.contains("Received test.ping") || text.contains("Published test.ping")
        };
        let seen = self.child.lines();
        let notable: Vec<&str> = seen
            .iter()
            .map(|l| l.text.as_str())
            .filter(|text| !chatter(text))
            .collect();
        let notable = &notable[notable.len().saturating_sub(150)..];
        let last: Vec<&str> = self
            .child
            .tail(10)
            .iter()
            .map(|l| l.text.as_str())
            .collect();
        format!(
            "{what}\n--- output without ping chatter ---\n{}\n--- last lines ---\n{}\n---",
            notable.join("\n"),
            last.join("\n")
        )
    }
}

/// Polls `done` every 50 ms until it holds; panics naming `what` after
/// `timeout`. Tests wait for a state this way, never with a fixed sleep.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The ping sequence numbers that `module` logged as received (`[module]
/// Received test.ping: ... (seq N)`) in `lines`, in order.
pub fn ping_seqs<'a>(lines: impl IntoIterator<Item = &'a str>, module: &str) -> Vec<u64> {
    let needle = format!("[{module}] Received test.ping");
    lines
        .into_iter()
        .filter(|line| line.contains(&needle))
        .filter_map(|line| {
            line.rsplit("(seq ")
                .next()?
                .trim_end_matches(')')
                .parse()
                .ok()
        })
        .collect()
}

impl OrchProcess {
    /// SIGINT, then waits (30 s at most) for it to exit, and asserts exit
    /// code 0 (a clean shutdown), showing its output otherwise.
    pub fn stop_cleanly(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGINT)
            .expect("SIGINT");
        let status = self
            .wait_exit(std::time::Duration::from_secs(30))
            .expect("exit");
        assert_eq!(status.code(), Some(0), "clean exit\n{}", self.output());
    }

    /// The ping sequence numbers `module` logged as received so far.
    pub fn pings_received(&self, module: &str) -> Vec<u64> {
        ping_seqs(
            self.lines_with("Received test.ping")
                .iter()
                .map(String::as_str),
            module,
        )
    }
}

/// A `ORCH_E2E_MARKER=...` entry unique to this call (`tag`, the test
/// process, the instant): set on a command with [`mark`], it is in the
/// environment of every process that command starts, for
/// [`processes_with_env`] and [`module_hosts`] to find.
pub fn env_marker(tag: &str) -> String {
    format!(
        "ORCH_E2E_MARKER=orch-{tag}-{}-{:?}",
        std::process::id(),
        Instant::now()
    )
}

/// Sets `marker` (`KEY=value`, see [`env_marker`]) in `command`'s environment.
pub fn mark(command: &mut Command, marker: &str) {
    if let Some((key, value)) = marker.split_once('=') {
        command.env(key, value);
    }
}

/// Pids of live processes whose environment contains `entry` (children inherit
/// the environment, so a marker variable finds everything a test started).
pub fn processes_with_env(entry: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|var| var == entry.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// Pids of live child module hosts (`cargo-orch __module-host NAME ...`) of module `name`
/// whose environment contains `entry`.
pub fn module_hosts(entry: &str, name: &str) -> Vec<u32> {
    processes_with_env(entry)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|cmd| {
                    let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
                    args.get(1) == Some(&&b"__module-host"[..])
                        && args.get(2) == Some(&name.as_bytes())
                })
                .unwrap_or(false)
        })
        .collect()
}

/// A `/proc/<pid>/status` reading in KiB (`VmRSS`, `VmHWM`: the peak), 0
/// when the process or the field is gone.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// Asserts that process `pid`'s peak resident memory (`VmHWM`) is less
/// than `limit` bytes over `before` (its `VmRSS` earlier, in bytes);
/// prints both, with `what` it went through.
pub fn assert_peak_within(pid: u32, before: u64, limit: u64, what: &str) {
    let peak = proc_status_kib(pid, "VmHWM") * 1024;
    eprintln!(
        "pid {pid}: VmRSS {} MiB before {what}, VmHWM {} MiB after",
        before >> 20,
        peak >> 20
    );
    assert!(
        peak < before + limit,
        "peak {} MiB after {what}, {} MiB before: more than {} MiB more",
        peak >> 20,
        before >> 20,
        limit >> 20
    );
}

/// `cargo orch <args> --pid <pid>` from the workspace root, with plain
/// output; panics with what it printed unless it succeeds.
pub fn control_ok(args: &[&str], pid: u32) {
    let output = std::process::Command::new(crate::orch_bin())
        .current_dir(crate::workspace_root())
        .arg("orch")
        .args(args)
        .args(["--pid", &pid.to_string()])
        .env("NO_COLOR", "1")
        .output()
        .expect("run cargo orch");
    assert!(
        output.status.success(),
        "cargo orch {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
