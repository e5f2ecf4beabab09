//! A running orchestrator process, watched through its output lines.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// One output line and when it arrived.
#[derive(Debug, Clone)]
pub struct Line {
    /// The text, without the newline.
    pub text: String,
    /// When it was read.
    pub at: Instant,
}

/// A child process whose stdout and stderr lines are collected in arrival
/// order. The process is killed when this is dropped.
pub struct OrchProcess {
    child: Child,
    lines: Receiver<Line>,
    seen: Vec<Line>,
    /// When the process was spawned.
    pub spawned_at: Instant,
}

impl OrchProcess {
    /// Spawns `command` with piped output.
    pub fn spawn(mut command: Command) -> std::io::Result<Self> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawned_at = Instant::now();
        let mut child = command.spawn()?;
        let (tx, lines) = channel();
        if let Some(stdout) = child.stdout.take() {
            forward(stdout, tx.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            forward(stderr, tx);
        }
        Ok(Self {
            child,
            lines,
            seen: Vec::new(),
            spawned_at,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
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
        if let Some(line) = self.seen.iter().find(|l| matches(&l.text)) {
            return Ok(line.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = matches(&line.text);
                    self.seen.push(line.clone());
                    if found {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(self.failure(&format!("no line with {what:?} within {timeout:?}")));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(self.failure(&format!("output ended before a line with {what:?}")));
                }
            }
        }
    }

    /// Reads whatever arrives during `period`.
    pub fn collect_for(&mut self, period: Duration) {
        let deadline = Instant::now() + period;
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(line);
        }
    }

    /// Every line seen so far.
    pub fn output(&self) -> String {
        self.seen
            .iter()
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The lines seen so far that contain `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.seen
            .iter()
            .filter(|l| l.text.contains(needle))
            .map(|l| l.text.clone())
            .collect()
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) -> Result<(), String> {
        let pid = i32::try_from(self.child.id()).map_err(|e| e.to_string())?;
        kill(Pid::from_raw(pid), signal).map_err(|e| e.to_string())
    }

    /// Waits for the process to exit, reading its remaining output.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                self.collect_for(Duration::from_millis(200));
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(self.failure(&format!("the process did not exit within {timeout:?}")));
            }
            while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(20)) {
                self.seen.push(line);
            }
        }
    }

    /// A failure report: every line but the ping chatter (at most 150), then the
    /// last lines as they came.
    fn failure(&self, what: &str) -> String {
        let chatter = |text: &str| {
            text.contains("Received test.ping") || text.contains("Published test.ping")
        };
        let notable: Vec<&str> = self
            .seen
            .iter()
            .map(|l| l.text.as_str())
            .filter(|text| !chatter(text))
            .collect();
        let notable = &notable[notable.len().saturating_sub(150)..];
        let last = &self.seen[self.seen.len().saturating_sub(10)..];
        let last: Vec<&str> = last.iter().map(|l| l.text.as_str()).collect();
        format!(
            "{what}\n--- output without ping chatter ---\n{}\n--- last lines ---\n{}\n---",
            notable.join("\n"),
            last.join("\n")
        )
    }
}

impl Drop for OrchProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn forward(stream: impl Read + Send + 'static, tx: std::sync::mpsc::Sender<Line>) {
    std::thread::spawn(move || {
        for text in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx
                .send(Line {
                    text,
                    at: Instant::now(),
                })
                .is_err()
            {
                break;
            }
        }
    });
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
