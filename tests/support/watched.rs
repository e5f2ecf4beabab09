//! A child process whose output lines can be awaited with deadlines.
//!
//! [`WatchedChild::spawn`] starts a command with stdout and stderr piped. Two reader
//! threads turn both streams into one stream of [`Line`]s, each stamped with the
//! [`Instant`] it was read, and every line is kept so a failure can show what the child
//! printed. [`WatchedChild::wait_for`] waits for a line containing a pattern until a
//! deadline; [`WatchedChild::send_signal`] and [`WatchedChild::wait_exit`] drive a
//! graceful stop. Dropping a `WatchedChild` whose process still runs kills it, so an
//! aborted caller never leaves a child behind.
//!
//! The child stays in the caller's process group: a Ctrl-C typed at the terminal
//! reaches it as it reaches the caller.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a wait sleeps at most before it looks at the child's exit status again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How long output may still arrive after the child has exited. Pipes normally close
/// with the child; a grandchild that inherited them can keep them open much longer.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Which of the child's output streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The child's standard output.
    Stdout,
    /// The child's standard error.
    Stderr,
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stream::Stdout => "out",
            Stream::Stderr => "err",
        })
    }
}

/// One line of the child's output.
#[derive(Debug, Clone)]
pub struct Line {
    /// Position in the merged output, from 0, in the order lines were received.
    ///
    /// Within one stream this is the order the child wrote; between the two streams it
    /// is only as exact as the reader threads' wake-ups (lines written within a
    /// fraction of a millisecond of each other may swap).
    pub index: usize,
    /// When the line was read from the pipe.
    pub at: Instant,
    /// The stream the line came from.
    pub stream: Stream,
    /// The text without its line ending and without ANSI escape sequences.
    pub text: String,
    /// Whether the raw line held ANSI escape sequences (removed from `text`).
    pub had_escapes: bool,
}

/// Why a wait ended without what it waited for.
#[derive(Debug)]
pub enum WaitError {
    /// The deadline passed first.
    TimedOut {
        /// What was awaited.
        what: String,
        /// How long the call waited.
        waited: Duration,
    },
    /// The awaited line was seen, but only after the deadline.
    Late {
        /// What was awaited.
        what: String,
        /// The first line that matched.
        line: Line,
        /// How far past the deadline it was read.
        late_by: Duration,
    },
    /// No more output can arrive: the child exited and its pipes closed or went quiet.
    Ended {
        /// What was awaited.
        what: String,
        /// The child's exit status, if it has exited.
        status: Option<ExitStatus>,
    },
    /// Asking the operating system about the child failed.
    Io(io::Error),
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::TimedOut { what, waited } if waited.as_millis() < 50 => {
                write!(
                    f,
                    "{what}: not seen by the deadline, which had already passed"
                )
            }
            WaitError::TimedOut { what, waited } => {
                write!(f, "{what}: not seen within {:.1} s", waited.as_secs_f64())
            }
            WaitError::Late {
                what,
                line,
                late_by,
            } => write!(
                f,
                "{what}: seen {:.2} s after the deadline (output line {}: {:?})",
                late_by.as_secs_f64(),
                line.index + 1,
                line.text
            ),
            WaitError::Ended { what, status } => match status {
                Some(status) => write!(f, "{what}: not seen before the process ended ({status})"),
                None => write!(f, "{what}: not seen before the process closed its output"),
            },
            WaitError::Io(err) => write!(f, "querying the child process failed: {err}"),
        }
    }
}

impl std::error::Error for WaitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WaitError::Io(err) => Some(err),
            _ => None,
        }
    }
}

/// The outcome of one receive step.
enum Pump {
    /// A new line was appended to the kept lines.
    Line,
    /// The step's time ran out.
    TimedOut,
    /// No more output will arrive.
    Ended,
}

/// What a reader thread sends for each line it reads.
struct RawLine {
    at: Instant,
    stream: Stream,
    text: String,
    had_escapes: bool,
}

/// A running child process whose merged output is collected line by line.
pub struct WatchedChild {
    /// A short description of the command, for messages.
    name: String,
    child: Child,
    pid: Pid,
    started: Instant,
    rx: Receiver<RawLine>,
    lines: Vec<Line>,
    /// The exit status and when it was first observed.
    exited: Option<(ExitStatus, Instant)>,
    /// Both reader threads have finished (their pipes reached end of file).
    output_closed: bool,
}

impl WatchedChild {
    /// Spawns `cmd` with stdin empty and stdout and stderr piped into the line stream.
    pub fn spawn(mut cmd: Command) -> Result<Self> {
        let name = describe_command(&cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd.spawn().with_context(|| format!("spawning `{name}`"))?;
        let pid = match i32::try_from(child.id()) {
            Ok(raw) => Pid::from_raw(raw),
            Err(_) => {
                kill_and_reap(&mut child);
                bail!("`{name}` got a process id that does not fit a pid_t");
            }
        };
        let (tx, rx) = mpsc::channel();
        let readers = [
            child
                .stdout
                .take()
                .map(|out| spawn_reader(Stream::Stdout, out, tx.clone())),
            child
                .stderr
                .take()
                .map(|err| spawn_reader(Stream::Stderr, err, tx)),
        ];
        for reader in readers {
            match reader {
                Some(Ok(())) => {}
                Some(Err(err)) => {
                    kill_and_reap(&mut child);
                    return Err(err.context(format!("reading the output of `{name}`")));
                }
                None => {
                    kill_and_reap(&mut child);
                    bail!("`{name}` was spawned without its output pipes");
                }
            }
        }
        Ok(Self {
            name,
            child,
            pid,
            started,
            rx,
            lines: Vec::new(),
            exited: None,
            output_closed: false,
        })
    }

    /// The command line this child runs, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's process id.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// When the child was spawned.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Every line received so far; call [`WatchedChild::poll`] first to include lines
    /// that have arrived but were not yet collected.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// The last `n` lines received so far.
    pub fn tail(&self, n: usize) -> &[Line] {
        &self.lines[self.lines.len().saturating_sub(n)..]
    }

    /// Collects every line that has already arrived and refreshes the exit status,
    /// without blocking.
    pub fn poll(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(raw) => self.push(raw),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.output_closed = true;
                    break;
                }
            }
        }
        // An error here resurfaces in the next wait; polling just reports what it can.
        let _ = self.try_status();
    }

    /// The first line received so far that contains `pattern`, without waiting.
    pub fn find(&self, pattern: &str) -> Option<&Line> {
        self.lines.iter().find(|line| line.text.contains(pattern))
    }

    /// Waits for the first line, among those already received and those to come, that
    /// contains `pattern`, until `deadline`.
    ///
    /// A matching line read after `deadline` is reported as [`WaitError::Late`]; when
    /// the child has ended and its output is drained, the wait ends at once with
    /// [`WaitError::Ended`].
    pub fn wait_for(&mut self, pattern: &str, deadline: Instant) -> Result<Line, WaitError> {
        self.wait_for_match(
            &format!("`{pattern}`"),
            |text| text.contains(pattern),
            deadline,
        )
    }

    /// Like [`WatchedChild::wait_for`] with any predicate on the line's text; `what`
    /// names the awaited line in errors.
    pub fn wait_for_match(
        &mut self,
        what: &str,
        mut matches: impl FnMut(&str) -> bool,
        deadline: Instant,
    ) -> Result<Line, WaitError> {
        let called = Instant::now();
        let mut scanned = 0;
        loop {
            if let Some(found) = self.first_match(scanned, what, &mut matches, deadline) {
                return found;
            }
            scanned = self.lines.len();
            let error = match self.pump(deadline) {
                Pump::Line => continue,
                Pump::TimedOut => WaitError::TimedOut {
                    what: what.to_owned(),
                    waited: called.elapsed(),
                },
                Pump::Ended => WaitError::Ended {
                    what: what.to_owned(),
                    status: self.exited.map(|(status, _)| status),
                },
            };
            // The last step may have collected a (late) match.
            return self
                .first_match(scanned, what, &mut matches, deadline)
                .unwrap_or(Err(error));
        }
    }

    /// The first kept line from index `from` on that `matches`, as the outcome of a
    /// wait with `deadline`.
    fn first_match(
        &self,
        from: usize,
        what: &str,
        matches: &mut impl FnMut(&str) -> bool,
        deadline: Instant,
    ) -> Option<Result<Line, WaitError>> {
        let line = self.lines[from..].iter().find(|line| matches(&line.text))?;
        Some(match line.at.checked_duration_since(deadline) {
            Some(late_by) if !late_by.is_zero() => Err(WaitError::Late {
                what: what.to_owned(),
                line: line.clone(),
                late_by,
            }),
            _ => Ok(line.clone()),
        })
    }

    /// Sends `signal` to the child's process.
    ///
    /// Fails if the child has already exited and been reaped: its pid may belong to
    /// another process by now.
    pub fn send_signal(&mut self, signal: Signal) -> Result<()> {
        if let Some(status) = self
            .try_status()
            .with_context(|| format!("checking on `{}`", self.name))?
        {
            bail!(
                "cannot send {signal} to `{}`: it has already exited ({status})",
                self.name
            );
        }
        kill(self.pid, signal)
            .with_context(|| format!("sending {signal} to `{}` (pid {})", self.name, self.pid))
    }

    /// The child's exit status if it has exited, without blocking.
    pub fn try_status(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.exited.is_none()
            && let Some(status) = self.child.try_wait()?
        {
            self.exited = Some((status, Instant::now()));
        }
        Ok(self.exited.map(|(status, _)| status))
    }

    /// When the child's exit was first observed, if it has exited.
    pub fn exited_at(&self) -> Option<Instant> {
        self.exited.map(|(_, at)| at)
    }

    /// Waits until the child exits, collecting its output meanwhile, until `deadline`.
    ///
    /// After the exit it keeps collecting until the output closes (at most
    /// [`DRAIN_GRACE`] past the exit), so the kept lines are complete when it returns.
    pub fn wait_exit(&mut self, deadline: Instant) -> Result<ExitStatus, WaitError> {
        let called = Instant::now();
        let status = loop {
            if let Some(status) = self.try_status().map_err(WaitError::Io)? {
                break status;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(WaitError::TimedOut {
                    what: "process exit".to_owned(),
                    waited: called.elapsed(),
                });
            }
            match self.pump((now + POLL_INTERVAL).min(deadline)) {
                Pump::Line | Pump::TimedOut => {}
                // The output closed but the process has not exited yet (or has not been
                // reaped): keep polling without spinning.
                Pump::Ended => {
                    thread::sleep(POLL_INTERVAL.min(deadline.saturating_duration_since(now)))
                }
            }
        };
        // Collect what the child printed last; the grace period bounds this.
        let drain_until = deadline.max(Instant::now() + DRAIN_GRACE);
        while let Pump::Line = self.pump(drain_until) {}
        self.poll();
        Ok(status)
    }

    /// Kills the child (SIGKILL) unless it has exited, and reaps it.
    pub fn kill(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.try_status()? {
            return Ok(status);
        }
        self.child
            .kill()
            .with_context(|| format!("killing `{}` (pid {})", self.name, self.pid))?;
        let status = self
            .child
            .wait()
            .with_context(|| format!("reaping `{}` (pid {})", self.name, self.pid))?;
        self.exited = Some((status, Instant::now()));
        self.poll();
        Ok(status)
    }

    /// Renders `line` for a report: seconds since spawn, stream, text.
    pub fn format_line(&self, line: &Line) -> String {
        format!(
            "{:>8} {} | {}",
            self.format_instant(line.at),
            line.stream,
            line.text
        )
    }

    /// Renders `at` as seconds since the spawn, e.g. `+1.234s`.
    pub fn format_instant(&self, at: Instant) -> String {
        format!(
            "+{:.3}s",
            at.saturating_duration_since(self.started).as_secs_f64()
        )
    }

    /// Receives until one line arrives, `until` passes, or the output has ended.
    fn pump(&mut self, until: Instant) -> Pump {
        loop {
            if self.output_closed {
                return Pump::Ended;
            }
            let now = Instant::now();
            if now >= until {
                // Collect what arrived in time even if nobody was waiting then; a line
                // read after `until` is kept but ends the step, so a chatty child
                // cannot keep a wait going past its deadline.
                return match self.rx.try_recv() {
                    Ok(raw) => {
                        let late = raw.at > until;
                        self.push(raw);
                        if late { Pump::TimedOut } else { Pump::Line }
                    }
                    Err(TryRecvError::Empty) => Pump::TimedOut,
                    Err(TryRecvError::Disconnected) => {
                        self.output_closed = true;
                        Pump::Ended
                    }
                };
            }
            match self.rx.recv_timeout((until - now).min(POLL_INTERVAL)) {
                Ok(raw) => {
                    self.push(raw);
                    return Pump::Line;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.output_closed = true;
                    return Pump::Ended;
                }
                Err(RecvTimeoutError::Timeout) => {
                    // A failed status query only means the grace period is not applied.
                    let _ = self.try_status();
                    if let Some((_, exited_at)) = self.exited
                        && exited_at.elapsed() >= DRAIN_GRACE
                    {
                        return Pump::Ended;
                    }
                }
            }
        }
    }

    /// Appends a received line to the kept lines.
    fn push(&mut self, raw: RawLine) {
        self.lines.push(Line {
            index: self.lines.len(),
            at: raw.at,
            stream: raw.stream,
            text: raw.text,
            had_escapes: raw.had_escapes,
        });
    }
}

impl Drop for WatchedChild {
    /// Kills and reaps the child if it is still running.
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.try_status() {
            return;
        }
        eprintln!(
            "xtask: `{}` (pid {}) is still running; killing it",
            self.name, self.pid
        );
        kill_and_reap(&mut self.child);
    }
}

/// Kills `child` (SIGKILL) and reaps it, reporting failures on stderr.
fn kill_and_reap(child: &mut Child) {
    if let Err(err) = child.kill() {
        eprintln!("xtask: killing pid {} failed: {err}", child.id());
    }
    if let Err(err) = child.wait() {
        eprintln!("xtask: reaping pid {} failed: {err}", child.id());
    }
}

/// Starts a thread that sends each line of `source` into `tx` until end of file.
fn spawn_reader(
    stream: Stream,
    source: impl Read + Send + 'static,
    tx: Sender<RawLine>,
) -> Result<()> {
    thread::Builder::new()
        .name(format!("watch-{stream}"))
        .spawn(move || {
            let mut reader = BufReader::new(source);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                let raw = match reader.read_until(b'\n', &mut buf) {
                    Ok(0) => return,
                    Ok(_) => {
                        let at = Instant::now();
                        while matches!(buf.last(), Some(b'\n' | b'\r')) {
                            buf.pop();
                        }
                        let (text, had_escapes) = strip_ansi(&String::from_utf8_lossy(&buf));
                        RawLine {
                            at,
                            stream,
                            text,
                            had_escapes,
                        }
                    }
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(err) => {
                        // Report the failure as a line, then stop reading this stream.
                        let _ = tx.send(RawLine {
                            at: Instant::now(),
                            stream,
                            text: format!("<xtask: reading the child's std{stream} failed: {err}>"),
                            had_escapes: false,
                        });
                        return;
                    }
                };
                if tx.send(raw).is_err() {
                    return;
                }
            }
        })
        .with_context(|| format!("starting the std{stream} reader thread"))?;
    Ok(())
}

/// Removes ANSI escape sequences (CSI, OSC and two-byte escapes) from `text`
/// with anstream's stripper; also says whether there were any.
fn strip_ansi(text: &str) -> (String, bool) {
    if !text.contains('\x1b') {
        return (text.to_owned(), false);
    }
    (anstream::adapter::strip_str(text).to_string(), true)
}

/// `program arg arg ...`, for messages.
fn describe_command(cmd: &Command) -> String {
    let mut name = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        name.push(' ');
        name.push_str(&arg.to_string_lossy());
    }
    name
}

#[cfg(test)]
mod tests;
