//! The control socket of a running orchestrator: a thread accepts
//! connections on an owner-only Unix socket; each connection (at most
//! [`MAX_CONNECTIONS`] at once, each on a thread of its own, see
//! [`connection`]) reads one request line and writes one response line.
//! `status` is answered from the status board at once, even while a build
//! or a reload runs; the other requests go to the orchestrator's main loop
//! through a bounded queue and wait for its answer up to a deadline. At most
//! [`QUEUED_ACTIONS`] connections wait for actions, so `status` always has
//! slots of its own.

use std::fs;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::protocol::{Request, Response, StatusReport};
use crate::registry::{self, Entry};

mod connection;
mod tap;

pub use tap::{MAX_TAPS, TAP_QUEUE, TapSetup};

/// Connections served at once; more are told the orchestrator is busy.
pub const MAX_CONNECTIONS: usize = 16;
/// Connections waiting for an action (and actions queued for the main
/// loop), at most; more are refused as busy. The other
/// `MAX_CONNECTIONS - QUEUED_ACTIONS` slots stay for `status`.
pub const QUEUED_ACTIONS: usize = 8;
/// How long a connection may take to send its whole request line.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);
/// How often the accept loop looks at its stop flag.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// Builds the status report on demand (from any thread).
pub type StatusSource = Arc<dyn Fn() -> StatusReport + Send + Sync>;

/// A request for the main loop, and where its answer goes.
pub struct Pending {
    /// What the operator asked.
    pub request: Request,
    reply: Sender<Response>,
    /// Set when the client hung up before the main loop took the request.
    abandoned: Arc<AtomicBool>,
}

impl Pending {
    /// Sends the answer back to the waiting client (if it still waits).
    pub fn answer(self, response: Response) {
        let _ = self.reply.send(response);
    }

    /// Whether its client hung up while it waited: the main loop skips it.
    pub fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }
}

/// What the server needs from the orchestrator.
pub struct ServerSetup {
    /// The workspace's target folder (entry files live under it).
    pub target_dir: PathBuf,
    /// `--control-socket`, when given.
    pub socket: Option<PathBuf>,
    /// What the entry file says of this orchestrator.
    pub app: String,
    /// Its config folder.
    pub config_dir: PathBuf,
    /// Its environment overlay.
    pub environment: Option<String>,
    /// The status report.
    pub status: StatusSource,
    /// Where actions go.
    pub actions: Sender<Pending>,
    /// How long a client waits for an action's answer.
    pub action_deadline: Duration,
    /// What `cargo orch tap` observes; `None`: taps are refused.
    pub tap: Option<TapSetup>,
}

/// A listening control socket; stopped and removed when dropped.
pub struct ControlServer {
    socket: PathBuf,
    entry_file: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Binds the socket (owner-only), writes the entry file and starts serving.
    pub fn start(setup: ServerSetup) -> io::Result<Self> {
        let pid = std::process::id();
        let socket = registry::socket_path(&setup.target_dir, pid, setup.socket.as_deref())?;
        if let Some(parent) = socket.parent() {
            if setup.socket.is_some() {
                registry::socket_dir(parent)?;
            } else {
                registry::private_dir(parent)?;
            }
        }
        let listener = bind(&socket)?;
        fs::set_permissions(&socket, fs::Permissions::from_mode(0o600))?;
        let entry_file = registry::write(
            &setup.target_dir,
            &Entry {
                pid,
                socket: socket.clone(),
                app: setup.app.clone(),
                config_dir: setup.config_dir.clone(),
                environment: setup.environment.clone(),
            },
        )?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            let serve = Serve {
                status: setup.status,
                actions: setup.actions,
                action_deadline: setup.action_deadline,
                tap: setup.tap,
                active: Arc::default(),
                waiting: Arc::default(),
                taps: Arc::default(),
            };
            std::thread::Builder::new()
                .name("orch-control".into())
                .spawn(move || serve.accept_loop(&listener, &stop))?
        };
        Ok(Self {
            socket,
            entry_file,
            stop,
            thread: Some(thread),
        })
    }

    /// The socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // Only the socket this server bound (another process may have
        // replaced it meanwhile with something else: left alone).
        if registry::is_socket(&self.socket) {
            let _ = fs::remove_file(&self.socket);
        }
        let _ = fs::remove_file(&self.entry_file);
    }
}

/// Binds `path`, replacing a stale socket; refuses a socket that answers and
/// anything that is not a socket.
fn bind(path: &Path) -> io::Result<UnixListener> {
    if fs::symlink_metadata(path).is_ok() {
        if !registry::is_socket(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket: it is left as it is; choose a path \
                     that is free or holds an old control socket",
                    path.display()
                ),
            ));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} is in use by another orchestrator", path.display()),
            ));
        }
        fs::remove_file(path)?;
    }
    UnixListener::bind(path)
}

/// What each connection needs.
#[derive(Clone)]
struct Serve {
    status: StatusSource,
    actions: Sender<Pending>,
    action_deadline: Duration,
    /// Connections being served.
    active: Arc<AtomicUsize>,
    /// Connections waiting for an action's answer.
    waiting: Arc<AtomicUsize>,
    tap: Option<TapSetup>,
    /// Taps being served.
    taps: Arc<AtomicUsize>,
}

impl Serve {
    fn accept_loop(&self, listener: &UnixListener, stop: &AtomicBool) {
        let timeout = PollTimeout::try_from(STOP_CHECK).unwrap_or(PollTimeout::NONE);
        while !stop.load(Ordering::Acquire) {
            let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    tracing::error!("[CONTROL] the control socket stopped: {e}");
                    return;
                }
            }
            match listener.accept() {
                Ok((stream, _)) => self.serve(stream),
                Err(e) => {
                    tracing::warn!("[CONTROL] accept failed: {e}");
                    // Out of descriptors, say: give the others time to end.
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    /// Serves one connection on a thread of its own, or says it is busy.
    fn serve(&self, mut stream: UnixStream) {
        let _ = stream.set_write_timeout(Some(REQUEST_DEADLINE));
        let Some(slot) = Slot::take(&self.active, MAX_CONNECTIONS) else {
            let busy = Response::error(
                format!("the orchestrator already serves {MAX_CONNECTIONS} control connections"),
                Some("try again in a moment".into()),
            );
            let _ = write_response(&mut stream, &busy);
            return;
        };
        let this = self.clone();
        let spawned = std::thread::Builder::new()
            .name("orch-control-conn".into())
            .spawn(move || {
                this.answer(stream);
                drop(slot);
            });
        if let Err(e) = spawned {
            tracing::warn!("[CONTROL] cannot serve a connection: {e}");
        }
    }
}

/// One of a bounded number of places, given back when dropped.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// A place in `taken` if fewer than `limit` are.
    fn take(taken: &Arc<AtomicUsize>, limit: usize) -> Option<Self> {
        if taken.fetch_add(1, Ordering::AcqRel) >= limit {
            taken.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Self(Arc::clone(taken)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Writes one response line.
pub(crate) fn write_response(stream: &mut UnixStream, response: &Response) -> io::Result<()> {
    let mut text = serde_json::to_string(response).map_err(io::Error::other)?;
    text.push('\n');
    stream.write_all(text.as_bytes())?;
    stream.flush()
}

#[cfg(test)]
mod tests;
