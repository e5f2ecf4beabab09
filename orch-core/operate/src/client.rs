//! The client side of the control socket, for the CLI.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::protocol::{Request, Response};

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket did not take the connection.
    #[error("cannot connect to {socket}: {source}")]
    Connect {
        /// The socket.
        socket: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The exchange broke off.
    #[error("the orchestrator at {socket} did not answer: {cause}")]
    Exchange {
        /// The socket.
        socket: String,
        /// What went wrong.
        cause: String,
    },
}

/// Sends `request` to the orchestrator listening on `socket` and waits up
/// to `deadline` for its response.
pub fn send(socket: &Path, request: &Request, deadline: Duration) -> Result<Response, ClientError> {
    let stream = open(socket, request, deadline)?;
    let broke = |cause: String| broken(socket, cause);
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                broke(format!("no response within {}s", deadline.as_secs()))
            }
            _ => broke(e.to_string()),
        })?;
    if answer.is_empty() {
        return Err(broke("it closed the connection".into()));
    }
    serde_json::from_str(answer.trim_end())
        .map_err(|e| broke(format!("a response that is not valid: {e}")))
}

/// What [`follow`] hands its caller.
#[derive(Debug)]
pub enum Followed {
    /// One response line.
    Line(Response),
    /// `tick` passed without a line.
    Tick,
}

/// Sends `request` and hands every response line to `on` until the server
/// closes the connection or `on` returns false; `on` also gets a
/// [`Followed::Tick`] whenever `tick` passes without a line (for rates).
pub fn follow(
    socket: &Path,
    request: &Request,
    tick: Duration,
    mut on: impl FnMut(Followed) -> bool,
) -> Result<(), ClientError> {
    let stream = open(socket, request, tick)?;
    let broke = |cause: String| broken(socket, cause);
    let mut reader = BufReader::new(&stream);
    let mut answer = String::new();
    loop {
        match reader.read_line(&mut answer) {
            Ok(0) => return Ok(()),
            Ok(_) => {
                let response: Response = serde_json::from_str(answer.trim_end())
                    .map_err(|e| broke(format!("a response that is not valid: {e}")))?;
                answer.clear();
                if !on(Followed::Line(response)) {
                    return Ok(());
                }
            }
            // A partial line stays in `answer`; the next read goes on with it.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if !on(Followed::Tick) {
                    return Ok(());
                }
            }
            Err(e) => return Err(broke(e.to_string())),
        }
    }
}

/// Connects to `socket`, sends `request` and leaves the stream waiting up
/// to `read_timeout` for each read.
fn open(
    socket: &Path,
    request: &Request,
    read_timeout: Duration,
) -> Result<UnixStream, ClientError> {
    let mut stream = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
        socket: socket.display().to_string(),
        source,
    })?;
    stream
        .set_read_timeout(Some(read_timeout))
        .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(5))))
        .map_err(|e| broken(socket, e.to_string()))?;
    let mut line = serde_json::to_string(request).map_err(|e| broken(socket, e.to_string()))?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(|e| broken(socket, e.to_string()))?;
    Ok(stream)
}

fn broken(socket: &Path, cause: String) -> ClientError {
    ClientError::Exchange {
        socket: socket.display().to_string(),
        cause,
    }
}
