//! The listener thread: accepts clients and reads their lines without ever
//! blocking, so it sees its stop token within [`IDLE_WAIT`] and the host can
//! join it at shutdown. One thread serves every client: no thread per
//! connection to track.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use orch_sdk::{Publisher, StopToken, tracing};

use crate::{LINE_TOPIC, Line, Stats};

/// How long the thread sleeps when nothing happened (it wakes at once on a stop).
pub const IDLE_WAIT: Duration = Duration::from_millis(5);

/// The longest line accepted; a client that sends more is told so and dropped.
pub const MAX_LINE: usize = 64 * 1024;

/// The most clients served at once; more wait in the listen queue.
pub const MAX_CLIENTS: usize = 256;

/// Counts shared by the module (which answers stats requests) and its thread.
#[derive(Debug, Default)]
pub struct Counters {
    connections: AtomicU64,
    lines: AtomicU64,
    bytes: AtomicU64,
    /// Held by the thread while it accepts and answers, so a final snapshot
    /// never misses a line the thread is counting.
    serving: Mutex<()>,
    /// Set by the final snapshot before a reload: the thread serves no more
    /// (new clients wait in the listen queue for the next generation).
    sealed: AtomicBool,
}

impl Counters {
    /// The counts now, with the address listened on.
    pub fn snapshot(&self, listen: &str) -> Stats {
        Stats {
            connections: self.connections.load(Ordering::Relaxed),
            lines: self.lines.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            listen: listen.to_owned(),
        }
    }

    /// The last counts of this generation, before a hot reload: from now on
    /// the thread accepts and answers nothing, so the next generation
    /// continues exactly where these counts end (no line counted twice).
    pub fn seal(&self, listen: &str) -> Stats {
        let _serving = self.serving.lock().unwrap_or_else(|e| e.into_inner());
        self.sealed.store(true, Ordering::SeqCst);
        self.snapshot(listen)
    }

    /// Permission to serve for one round, unless sealed.
    fn serve_round(&self) -> Option<MutexGuard<'_, ()>> {
        let guard = self.serving.lock().unwrap_or_else(|e| e.into_inner());
        (!self.sealed.load(Ordering::SeqCst)).then_some(guard)
    }

    /// Continues from the counts of a previous generation.
    pub fn restore(&self, stats: &Stats) {
        self.connections.store(stats.connections, Ordering::Relaxed);
        self.lines.store(stats.lines, Ordering::Relaxed);
        self.bytes.store(stats.bytes, Ordering::Relaxed);
    }
}

/// One connected client and the part of a line it has sent so far.
struct Client {
    stream: TcpStream,
    peer: SocketAddr,
    pending: Vec<u8>,
}

impl Client {
    /// Reads what the client sent and publishes its complete lines. Returns
    /// whether it stays connected; sets `busy` when anything happened.
    fn poll(&mut self, publisher: &Publisher, counters: &Counters, busy: &mut bool) -> bool {
        let mut buffer = [0u8; 4096];
        loop {
            match self.stream.read(&mut buffer) {
                Ok(0) => return false,
                Ok(n) => {
                    *busy = true;
                    self.pending.extend_from_slice(&buffer[..n]);
                    if !self.publish_lines(publisher, counters) {
                        self.discard_input();
                        return false;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }

    /// Reads and forgets what the client has sent, so that closing the
    /// connection does not reset it before it reads the last answer.
    fn discard_input(&mut self) {
        let mut buffer = [0u8; 4096];
        while matches!(self.stream.read(&mut buffer), Ok(n) if n > 0) {}
    }

    /// Publishes each complete line and answers it; `false` drops the client.
    fn publish_lines(&mut self, publisher: &Publisher, counters: &Counters) -> bool {
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            if end > MAX_LINE {
                break;
            }
            let raw: Vec<u8> = self.pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&raw[..end]);
            let line = Line {
                text: text.trim_end_matches('\r').to_owned(),
                peer: self.peer.to_string(),
            };
            let answer = match publisher.publish(LINE_TOPIC, &line) {
                Ok(()) => {
                    let n = counters.lines.fetch_add(1, Ordering::Relaxed) + 1;
                    counters
                        .bytes
                        .fetch_add(line.text.len() as u64, Ordering::Relaxed);
                    format!("ok {n}\n")
                }
                Err(e) => format!("error: {e}\n"),
            };
            // A client that does not read its answers loses them, not us.
            let _ = self.stream.write_all(answer.as_bytes());
        }
        if self.pending.len() > MAX_LINE {
            let _ = self
                .stream
                .write_all(format!("error: line longer than {MAX_LINE} bytes\n").as_bytes());
            return false;
        }
        true
    }
}

/// Serves `listener` (non-blocking) until `stop`: accepts clients, publishes
/// their lines as [`LINE_TOPIC`] and answers each with `ok <n>`, `n` the
/// number of lines published so far (counted across reloads).
pub fn serve(listener: &TcpListener, stop: &StopToken, publisher: &Publisher, counters: &Counters) {
    let mut clients: Vec<Client> = Vec::new();
    while !stop.is_stopped() {
        let Some(round) = counters.serve_round() else {
            // Sealed for a reload: the clients still open get no answer (they
            // send again to the next generation); the host stops us soon.
            if stop.wait(IDLE_WAIT) {
                break;
            }
            continue;
        };
        let mut busy = false;
        while clients.len() < MAX_CLIENTS {
            match listener.accept() {
                Ok((stream, peer)) => {
                    busy = true;
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    counters.connections.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("client {peer} connected");
                    clients.push(Client {
                        stream,
                        peer,
                        pending: Vec::new(),
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of descriptors, say: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    break;
                }
            }
        }
        clients.retain_mut(|client| client.poll(publisher, counters, &mut busy));
        drop(round);
        if !busy && stop.wait(IDLE_WAIT) {
            break;
        }
    }
    tracing::debug!("listener thread stops with {} clients open", clients.len());
}
