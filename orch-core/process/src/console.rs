//! The process's own stdout and stderr, routed through a filter: fd 1 and
//! fd 2 become pipes, and one pump thread per stream reads them, passes each
//! line through the filter (the secret scrubber) and writes it to the real
//! stream. Whatever writes to them goes through it: the host's log, what an
//! in-process module prints with `println!` or its panic message, a helper
//! process it started, cargo.
//!
//! Whether the real streams were terminals is recorded before the swap
//! ([`stdout_is_terminal`], [`stderr_is_terminal`]) and [`terminal_stderr`]
//! gives a progress bar the real terminal to draw on. A line is written when
//! its newline comes; a partial line after 20 ms of quiet (a prompt, a
//! progress dot). [`finish`] puts the real streams back and writes what is
//! left; call it before the process exits.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// What each line is turned into before it is written.
pub type Filter = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// A partial line is written after this much quiet.
const QUIET: Duration = Duration::from_millis(20);

/// A line longer than this is written in pieces.
const MAX_PENDING: usize = 64 * 1024;

/// The real streams, kept while the pumps run.
struct Originals {
    stdout_tty: bool,
    stderr_tty: bool,
    stdout: OwnedFd,
    stderr: OwnedFd,
}

static ORIGINALS: OnceLock<Originals> = OnceLock::new();
static PUMPS: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// Whether the process's real stdout is a terminal (also after [`install`]).
pub fn stdout_is_terminal() -> bool {
    ORIGINALS
        .get()
        .map_or_else(|| io::stdout().is_terminal(), |o| o.stdout_tty)
}

/// Whether the process's real stderr is a terminal (also after [`install`]).
pub fn stderr_is_terminal() -> bool {
    ORIGINALS
        .get()
        .map_or_else(|| io::stderr().is_terminal(), |o| o.stderr_tty)
}

/// The real stderr when it is a terminal and [`install`] routed fd 2: a
/// progress bar draws on it directly (its frames hold no secrets, and a pipe
/// would hide it).
pub fn terminal_stderr() -> Option<File> {
    let originals = ORIGINALS.get().filter(|o| o.stderr_tty)?;
    originals.stderr.try_clone().ok().map(File::from)
}

/// Routes fd 1 and fd 2 through `filter`, once per process; a second call
/// does nothing.
pub fn install(filter: Filter) -> io::Result<()> {
    if ORIGINALS.get().is_some() {
        return Ok(());
    }
    let stdout_tty = io::stdout().is_terminal();
    let stderr_tty = io::stderr().is_terminal();
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    let stdout = duplicate(io::stdout().as_fd())?;
    let stderr = duplicate(io::stderr().as_fd())?;
    let (out_read, out_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (err_read, err_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let pumps = [
        spawn_pump(
            "orch-stdout",
            out_read,
            stdout.try_clone()?,
            Arc::clone(&filter),
        )?,
        spawn_pump("orch-stderr", err_read, stderr.try_clone()?, filter)?,
    ];
    // From here on fd 1 and 2 are the pipes (dup2 leaves them inheritable,
    // so the processes started afterwards print through the pumps too).
    nix::unistd::dup2_stdout(&out_write)?;
    nix::unistd::dup2_stderr(&err_write)?;
    drop((out_write, err_write));
    let _ = ORIGINALS.set(Originals {
        stdout_tty,
        stderr_tty,
        stdout,
        stderr,
    });
    lock_pumps().extend(pumps);
    Ok(())
}

/// Puts the real stdout and stderr back and waits up to `timeout` for the
/// pumps to write what they still hold. A helper process that inherited the
/// pipes may keep them open: its later output is then dropped with the pumps.
pub fn finish(timeout: Duration) {
    let Some(originals) = ORIGINALS.get() else {
        return;
    };
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    let _ = nix::unistd::dup2_stdout(&originals.stdout);
    let _ = nix::unistd::dup2_stderr(&originals.stderr);
    let deadline = Instant::now() + timeout;
    let pumps = std::mem::take(&mut *lock_pumps());
    while Instant::now() < deadline && pumps.iter().any(|p| !p.is_finished()) {
        std::thread::sleep(Duration::from_millis(2));
    }
    for pump in pumps.into_iter().filter(JoinHandle::is_finished) {
        let _ = pump.join();
    }
}

fn lock_pumps() -> std::sync::MutexGuard<'static, Vec<JoinHandle<()>>> {
    PUMPS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A close-on-exec duplicate of `fd`.
fn duplicate(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let copy = nix::unistd::dup(fd)?;
    fcntl(&copy, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(copy)
}

fn spawn_pump(
    name: &str,
    from: OwnedFd,
    to: OwnedFd,
    filter: Filter,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || pump(File::from(from), File::from(to), &*filter))
}

/// Copies `from` to `to` line by line through `filter` until `from` ends.
fn pump(mut from: File, mut to: File, filter: &(dyn Fn(&str) -> String + Send + Sync)) {
    let mut pending: Vec<u8> = Vec::with_capacity(8 * 1024);
    let mut buffer = [0u8; 8 * 1024];
    loop {
        if !pending.is_empty() && !readable_within(&from, QUIET) {
            write_filtered(&mut to, &std::mem::take(&mut pending), filter);
            continue;
        }
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => pending.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
        if let Some(last_newline) = pending.iter().rposition(|&b| b == b'\n') {
            let lines: Vec<u8> = pending.drain(..=last_newline).collect();
            write_filtered(&mut to, &lines, filter);
        }
        if pending.len() > MAX_PENDING {
            write_filtered(&mut to, &std::mem::take(&mut pending), filter);
        }
    }
    write_filtered(&mut to, &pending, filter);
}

/// Whether `file` has data (or its end) within `timeout`.
fn readable_within(file: &File, timeout: Duration) -> bool {
    let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::from(millis)), Ok(n) if n > 0)
}

fn write_filtered(to: &mut File, bytes: &[u8], filter: &(dyn Fn(&str) -> String + Send + Sync)) {
    if bytes.is_empty() {
        return;
    }
    let text = String::from_utf8_lossy(bytes);
    let _ = to.write_all(filter(&text).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pump itself, over a real pipe: lines are filtered whole, a
    /// partial line goes out after the quiet period, the end is written.
    #[test]
    fn the_pump_filters_whole_lines_and_flushes_partial_ones() {
        let (from_read, from_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe");
        let (to_read, to_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe");
        let filter: Filter = Arc::new(|text: &str| text.replace("s3cr3t-value", "***"));
        let pump = spawn_pump("test-pump", from_read, to_write, filter).expect("pump");
        let mut writer = File::from(from_write);
        writer.write_all(b"one s3cr").expect("write");
        std::thread::sleep(Duration::from_millis(5));
        writer.write_all(b"3t-value\nprompt> ").expect("write");
        let mut reader = File::from(to_read);
        let mut seen = Vec::new();
        let until = Instant::now() + Duration::from_secs(5);
        while !seen.ends_with(b"prompt> ") && Instant::now() < until {
            let mut chunk = [0u8; 256];
            let n = reader.read(&mut chunk).expect("read");
            seen.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(String::from_utf8_lossy(&seen), "one ***\nprompt> ");
        writer.write_all(b"last s3cr3t-value").expect("write");
        drop(writer);
        pump.join().expect("pump ends at the end of its input");
        let mut rest = String::new();
        reader.read_to_string(&mut rest).expect("read");
        assert_eq!(rest, "last ***");
    }
}
