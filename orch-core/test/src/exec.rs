//! Running one process to its end, whatever it does: it leads a process group
//! of its own (in the run's `ProcessGroups`, so a Ctrl-C ends it), its stdout
//! and stderr are captured (each up to [`MAX_CAPTURE`]), and a [`Watch`] says
//! when it must be stopped: at that time its whole group gets SIGTERM, then
//! SIGKILL [`KILL_GRACE`] later.
//!
//! Two pump threads read the pipes and a waiter thread waits for the exit
//! status; they report through one bounded channel to the calling thread,
//! which owns the buffers and the deadlines. Every wait has an end: a process
//! that exits while something it started still holds its pipes gets
//! [`LEAK_GRACE`] to close them, then its group is killed; one that does not
//! die [`KILL_GRACE`] after SIGKILL is given up on (`ExitReason::Unknown`).

use std::io::{self, Read};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use nix::sys::signal::Signal;
use orch_process::group::signal_group;
use orch_process::{ExitReason, GroupGuard, ProcessGroups};

/// The most bytes kept of each stream; the rest is counted and dropped.
pub const MAX_CAPTURE: usize = 16 << 20;
/// From SIGTERM to SIGKILL, and from SIGKILL to giving up.
pub const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long the pipes may stay open after the process exited.
pub const LEAK_GRACE: Duration = Duration::from_millis(200);
/// The longest stdout line handed to [`Watch::line`] (the rest is cut).
const MAX_LINE: usize = 64 * 1024;
/// Chunks in flight between the pumps and the caller.
const CHANNEL: usize = 64;

/// Decides when a running process must be stopped.
pub trait Watch {
    /// When to stop the process, as of now; `None`: never.
    fn deadline(&self) -> Option<Instant>;

    /// Whether [`Watch::line`] wants stdout's lines.
    fn wants_lines(&self) -> bool {
        false
    }

    /// A complete stdout line (without its newline) arrived at `at`.
    fn line(&mut self, _line: &str, _at: Instant) {}
}

/// A fixed deadline: `timeout` from now, or none.
pub struct Fixed(Option<Instant>);

impl Fixed {
    /// Stop the process `timeout` from now (never when `None`).
    pub fn after(timeout: Option<Duration>) -> Self {
        Self(timeout.map(|t| Instant::now() + t))
    }
}

impl Watch for Fixed {
    fn deadline(&self) -> Option<Instant> {
        self.0
    }
}

/// How a process ended, and what it printed.
#[derive(Debug, Clone)]
pub struct Execution {
    /// Its stdout (the first [`MAX_CAPTURE`] bytes).
    pub stdout: Vec<u8>,
    /// Its stderr (the first [`MAX_CAPTURE`] bytes).
    pub stderr: Vec<u8>,
    /// Bytes dropped past [`MAX_CAPTURE`], both streams together.
    pub dropped: usize,
    /// How it ended, from the real wait status.
    pub exit: ExitReason,
    /// The watch's deadline passed and its group was killed.
    pub timed_out: bool,
    /// It exited while something it started still held its output open.
    pub leaked: bool,
    /// When it was started.
    pub started: SystemTime,
    /// From spawn to exit.
    pub duration: Duration,
}

impl Execution {
    /// Stdout as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as text (invalid UTF-8 replaced).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

enum Event {
    Chunk(Stream, Vec<u8>),
    Closed,
    Exited(io::Result<ExitStatus>),
}

/// Runs `command` (stdin null, stdout and stderr captured) in a process group
/// of `children` until it ends or `watch` stops it. `guarded`: a
/// `GroupGuard` kills the group if this process dies first (for long runs
/// such as cargo's). An error only when it could not be started.
pub fn execute(
    command: &mut Command,
    children: &ProcessGroups,
    watch: &mut dyn Watch,
    guarded: bool,
) -> io::Result<Execution> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = SystemTime::now();
    let start = Instant::now();
    let mut child = children.spawn(command)?;
    let pid = child.id();
    let guard = if guarded {
        GroupGuard::start(pid)
    } else {
        None
    };
    let (sender, events) = crossbeam_channel::bounded(CHANNEL);
    let pipes = [
        child
            .stdout
            .take()
            .map(|s| (Stream::Stdout, Box::new(s) as _)),
        child
            .stderr
            .take()
            .map(|s| (Stream::Stderr, Box::new(s) as _)),
    ];
    let mut open = 0;
    let mut spawn_error = None;
    for (stream, pipe) in pipes.into_iter().flatten() {
        match spawn_pump(stream, pipe, sender.clone()) {
            Ok(()) => open += 1,
            Err(error) => spawn_error = Some(error),
        }
    }
    let waiter = sender.clone();
    let waited = std::thread::Builder::new()
        .name("orch-test-wait".into())
        .spawn(move || {
            let _ = waiter.send(Event::Exited(child.wait()));
        });
    drop(sender);
    if let Some(error) = spawn_error.or(waited.err()) {
        signal_group(pid, Signal::SIGKILL);
        children.release(pid);
        return Err(error);
    }
    let mut run = Run::new(start, started, open);
    run.drive(&events, watch, pid);
    children.release(pid);
    if let Some(guard) = guard {
        guard.release();
    }
    Ok(run.finish())
}

fn spawn_pump(stream: Stream, mut pipe: Box<dyn Read + Send>, to: Sender<Event>) -> io::Result<()> {
    std::thread::Builder::new()
        .name("orch-test-pipe".into())
        .spawn(move || {
            let mut buffer = vec![0u8; 8192];
            loop {
                match pipe.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => {
                        if to.send(Event::Chunk(stream, buffer[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = to.send(Event::Closed);
        })
        .map(drop)
}

/// The caller's side of one execution.
struct Run {
    start: Instant,
    started: SystemTime,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    dropped: usize,
    partial: Vec<u8>,
    open: usize,
    exit: Option<(ExitReason, Instant)>,
    terminated: Option<Instant>,
    killed: Option<Instant>,
    leak_killed: Option<Instant>,
    leaked: bool,
}

impl Run {
    fn new(start: Instant, started: SystemTime, open: usize) -> Self {
        Self {
            start,
            started,
            stdout: Vec::new(),
            stderr: Vec::new(),
            dropped: 0,
            partial: Vec::new(),
            open,
            exit: None,
            terminated: None,
            killed: None,
            leak_killed: None,
            leaked: false,
        }
    }

    /// Reads events until the process exited and its pipes closed, or a
    /// grace period ran out.
    fn drive(&mut self, events: &Receiver<Event>, watch: &mut dyn Watch, pid: u32) {
        loop {
            if self.exit.is_some() && self.open == 0 {
                return;
            }
            let now = Instant::now();
            let Some(wake) = self.step(now, watch, pid) else {
                return;
            };
            let event = match wake {
                Some(at) => match events.recv_timeout(at.saturating_duration_since(now)) {
                    Ok(event) => event,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
                None => match events.recv() {
                    Ok(event) => event,
                    Err(_) => return,
                },
            };
            self.handle(event, watch);
        }
    }

    /// Sends the signals that are due; returns when to look again (`None`
    /// inside: only when something happens), or `None` to give up.
    fn step(&mut self, now: Instant, watch: &dyn Watch, pid: u32) -> Option<Option<Instant>> {
        let mut wake: Option<Instant> = None;
        let mut at = |time: Instant| wake = Some(wake.map_or(time, |w: Instant| w.min(time)));
        if let Some((_, exited)) = self.exit {
            // Exited, but something it started holds its pipes.
            match self.leak_killed {
                None if now >= exited + LEAK_GRACE => {
                    self.leaked = true;
                    signal_group(pid, Signal::SIGKILL);
                    self.leak_killed = Some(now);
                    at(now + LEAK_GRACE);
                }
                None => at(exited + LEAK_GRACE),
                Some(killed) if now >= killed + LEAK_GRACE => return None,
                Some(killed) => at(killed + LEAK_GRACE),
            }
            return Some(wake);
        }
        match (self.terminated, self.killed) {
            (None, _) => match watch.deadline() {
                Some(deadline) if now >= deadline => {
                    signal_group(pid, Signal::SIGTERM);
                    self.terminated = Some(now);
                    at(now + KILL_GRACE);
                }
                Some(deadline) => at(deadline),
                None => {}
            },
            (Some(terminated), None) if now >= terminated + KILL_GRACE => {
                signal_group(pid, Signal::SIGKILL);
                self.killed = Some(now);
                at(now + KILL_GRACE);
            }
            (Some(terminated), None) => at(terminated + KILL_GRACE),
            (Some(_), Some(killed)) if now >= killed + KILL_GRACE => return None,
            (Some(_), Some(killed)) => at(killed + KILL_GRACE),
        }
        Some(wake)
    }

    fn handle(&mut self, event: Event, watch: &mut dyn Watch) {
        match event {
            Event::Chunk(stream, bytes) => {
                if stream == Stream::Stdout && watch.wants_lines() {
                    self.lines(&bytes, watch);
                }
                let buffer = match stream {
                    Stream::Stdout => &mut self.stdout,
                    Stream::Stderr => &mut self.stderr,
                };
                let room = MAX_CAPTURE.saturating_sub(buffer.len()).min(bytes.len());
                buffer.extend_from_slice(&bytes[..room]);
                self.dropped += bytes.len() - room;
            }
            Event::Closed => self.open = self.open.saturating_sub(1),
            Event::Exited(status) => {
                let reason = status.map_or(ExitReason::Unknown, ExitReason::from_status);
                self.exit = Some((reason, Instant::now()));
            }
        }
    }

    fn lines(&mut self, bytes: &[u8], watch: &mut dyn Watch) {
        let now = Instant::now();
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            self.push_partial(&rest[..end]);
            let line = String::from_utf8_lossy(&self.partial).into_owned();
            watch.line(line.trim_end_matches('\r'), now);
            self.partial.clear();
            rest = &rest[end + 1..];
        }
        self.push_partial(rest);
    }

    fn push_partial(&mut self, bytes: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.partial.len()).min(bytes.len());
        self.partial.extend_from_slice(&bytes[..room]);
    }

    fn finish(self) -> Execution {
        let (exit, ended) = self.exit.unwrap_or((ExitReason::Unknown, Instant::now()));
        Execution {
            stdout: self.stdout,
            stderr: self.stderr,
            dropped: self.dropped,
            exit,
            timed_out: self.terminated.is_some(),
            leaked: self.leaked,
            started: self.started,
            duration: ended.saturating_duration_since(self.start),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    fn run(script: &str, watch: &mut dyn Watch) -> Execution {
        execute(&mut sh(script), &ProcessGroups::default(), watch, false).expect("sh runs")
    }

    #[test]
    fn captures_both_streams_and_the_real_exit_status() {
        let done = run("echo out; echo err >&2; exit 3", &mut Fixed::after(None));
        assert_eq!(done.stdout_text(), "out\n");
        assert_eq!(done.stderr_text(), "err\n");
        assert_eq!(done.exit, ExitReason::Code(3));
        assert!(!done.timed_out && !done.leaked);

        let crashed = run("kill -SEGV $$", &mut Fixed::after(None));
        assert_eq!(crashed.exit, ExitReason::Signal(11));
    }

    #[test]
    fn a_process_past_its_deadline_is_killed_with_its_group() {
        // The sleep is in the group too: it must not keep the pipe open.
        let done = run(
            "echo begun; sleep 60 & wait",
            &mut Fixed::after(Some(Duration::from_millis(100))),
        );
        assert!(done.timed_out);
        assert_eq!(done.exit, ExitReason::Signal(15));
        assert_eq!(
            done.stdout_text(),
            "begun\n",
            "output up to the kill is kept"
        );
    }

    #[test]
    fn a_process_that_ignores_sigterm_gets_sigkill() {
        let done = run(
            "trap '' TERM; echo ready; while true; do sleep 0.05; done",
            &mut Fixed::after(Some(Duration::from_millis(100))),
        );
        assert!(done.timed_out);
        assert_eq!(done.exit, ExitReason::Signal(9));
    }

    #[test]
    fn pipes_held_by_a_leftover_of_the_group_are_cut_after_the_exit() {
        // `sh` exits at once; its background sleep holds stdout open.
        let done = run("echo bye; sleep 60 &", &mut Fixed::after(None));
        assert_eq!(done.exit, ExitReason::Code(0));
        assert!(done.leaked && !done.timed_out);
        assert_eq!(done.stdout_text(), "bye\n");
    }

    /// Records stdout lines, and stops the process when `stop` is printed.
    #[derive(Default)]
    struct Lines {
        seen: Vec<String>,
        stop_at: Option<Instant>,
    }

    impl Watch for Lines {
        fn deadline(&self) -> Option<Instant> {
            self.stop_at
        }
        fn wants_lines(&self) -> bool {
            true
        }
        fn line(&mut self, line: &str, at: Instant) {
            self.seen.push(line.to_owned());
            if line == "stop" {
                self.stop_at = Some(at);
            }
        }
    }

    #[test]
    fn a_watch_sees_every_line_and_may_move_the_deadline() {
        let mut lines = Lines::default();
        let done = run(
            "printf 'one\\r\\ntwo\\nstop\\n'; sleep 60; echo never",
            &mut lines,
        );
        assert_eq!(lines.seen, ["one", "two", "stop"]);
        assert!(done.timed_out);
    }

    #[test]
    fn an_unknown_program_is_an_error_and_a_cancelled_run_refuses() {
        let children = ProcessGroups::default();
        let mut missing = Command::new("/nonexistent/orch-test-binary");
        assert!(execute(&mut missing, &children, &mut Fixed::after(None), false).is_err());
        children.cancel();
        assert!(execute(&mut sh("true"), &children, &mut Fixed::after(None), false).is_err());
    }
}
