//! The control socket of a running orchestrator: a thread accepts
//! connections on an owner-only Unix socket; each connection (at most
//! [`MAX_CONNECTIONS`] at once, each on a thread of its own) reads one
//! request line and writes one response line. `status` is answered from the
//! status board at once, even while a build or a reload runs; the other
//! requests go to the orchestrator's main loop through a bounded queue and
//! wait for its answer up to a deadline.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError, bounded};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::protocol::{MAX_REQUEST_BYTES, Request, Response, StatusReport};
use crate::registry::{self, Entry};

/// Connections served at once; more are told the orchestrator is busy.
pub const MAX_CONNECTIONS: usize = 8;
/// Requests waiting for the main loop; more are refused as busy.
pub const QUEUED_ACTIONS: usize = 8;
/// How long a connection may take to send its request line.
const READ_DEADLINE: Duration = Duration::from_secs(5);
/// How often the accept loop looks at its stop flag.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// Builds the status report on demand (from any thread).
pub type StatusSource = Arc<dyn Fn() -> StatusReport + Send + Sync>;

/// A request for the main loop, and where its answer goes.
pub struct Pending {
    /// What the operator asked.
    pub request: Request,
    reply: Sender<Response>,
}

impl Pending {
    /// Sends the answer back to the waiting client (if it still waits).
    pub fn answer(self, response: Response) {
        let _ = self.reply.send(response);
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
            registry::private_dir(parent)?;
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
                active: Arc::default(),
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
        let _ = fs::remove_file(&self.socket);
        let _ = fs::remove_file(&self.entry_file);
    }
}

/// Binds `path`, replacing a stale socket file; refuses one that answers.
fn bind(path: &Path) -> io::Result<UnixListener> {
    if path.exists() {
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
    active: Arc<AtomicUsize>,
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
                Err(e) => tracing::warn!("[CONTROL] accept failed: {e}"),
            }
        }
    }

    /// Serves one connection on a thread of its own, or says it is busy.
    fn serve(&self, mut stream: UnixStream) {
        let _ = stream.set_write_timeout(Some(READ_DEADLINE));
        if self.active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            self.active.fetch_sub(1, Ordering::AcqRel);
            let busy = Response::error(
                format!("the orchestrator already serves {MAX_CONNECTIONS} control connections"),
                Some("try again in a moment".into()),
            );
            let _ = write_response(&mut stream, &busy);
            return;
        }
        let this = self.clone();
        let spawned = std::thread::Builder::new()
            .name("orch-control-conn".into())
            .spawn(move || {
                this.answer(stream);
                this.active.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(e) = spawned {
            self.active.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!("[CONTROL] cannot serve a connection: {e}");
        }
    }

    fn answer(&self, mut stream: UnixStream) {
        let _ = stream.set_read_timeout(Some(READ_DEADLINE));
        let response = match read_request(&stream) {
            Ok(Request::Status) => Response::Status(Box::new((self.status)())),
            Ok(request) => self.forward(request),
            Err(message) => Response::refused(message, "the control protocol is one JSON line"),
        };
        let _ = write_response(&mut stream, &response);
    }

    /// Hands `request` to the main loop and waits for its answer.
    fn forward(&self, request: Request) -> Response {
        let verb = request.verb();
        let (reply, answer) = bounded(1);
        match self.actions.try_send(Pending { request, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Response::error(
                    format!("{QUEUED_ACTIONS} control requests already wait for the orchestrator"),
                    Some("wait for them to finish, then try again".into()),
                );
            }
            Err(TrySendError::Disconnected(_)) => {
                return Response::error("the orchestrator is shutting down", None);
            }
        }
        answer
            .recv_timeout(self.action_deadline)
            .unwrap_or_else(|e| {
                if e.is_disconnected() {
                    return Response::error(
                        format!("'{verb}' was not carried out: the orchestrator is shutting down"),
                        None,
                    );
                }
                Response::error(
                    format!(
                        "no answer to '{verb}' within {}s: the orchestrator is busy (a build or a \
                     shutdown) or the action is stuck",
                        self.action_deadline.as_secs()
                    ),
                    Some("see the orchestrator's log; its outcome is logged there".into()),
                )
            })
    }
}

/// Reads one request line of at most [`MAX_REQUEST_BYTES`].
fn read_request(stream: &UnixStream) -> Result<Request, String> {
    let mut line = String::new();
    let limit = u64::try_from(MAX_REQUEST_BYTES).unwrap_or(u64::MAX) + 1;
    BufReader::new(stream.take(limit))
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the request: {e}"))?;
    if line.len() > MAX_REQUEST_BYTES {
        return Err(format!(
            "the request is longer than {MAX_REQUEST_BYTES} bytes"
        ));
    }
    serde_json::from_str(line.trim_end()).map_err(|e| format!("not a valid request: {e}"))
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
