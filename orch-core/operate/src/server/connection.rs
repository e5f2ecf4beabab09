//! One control connection: its request line read within one deadline, then
//! `status` answered at once or an action handed to the main loop and waited
//! for, as long as the client waits too.

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, TrySendError, bounded};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::{Pending, QUEUED_ACTIONS, REQUEST_DEADLINE, Serve, Slot, write_response};
use crate::protocol::{MAX_REQUEST_BYTES, Request, Response};

/// How often a waiting action looks whether its client hung up.
const HANG_UP_CHECK: Duration = Duration::from_millis(200);

impl Serve {
    /// Reads the request and writes its answer (none to a client that hung
    /// up while its action waited).
    pub(super) fn answer(&self, mut stream: UnixStream) {
        let response = match read_request(&stream, Instant::now() + REQUEST_DEADLINE) {
            Ok(Request::Status) => Some(Response::Status(Box::new((self.status)()))),
            Ok(Request::Tap {
                pattern,
                count,
                full,
            }) => self.tap(&mut stream, &pattern, count, full),
            Ok(request) => self.forward(request, &stream),
            Err(message) => Some(Response::refused(
                message,
                "the control protocol is one JSON line",
            )),
        };
        if let Some(response) = response {
            let _ = write_response(&mut stream, &response);
        }
    }

    /// Follows the bus for a tap client, if taps are on and a tap slot is
    /// free; the refusal otherwise.
    fn tap(
        &self,
        stream: &mut UnixStream,
        pattern: &str,
        count: Option<u64>,
        full: bool,
    ) -> Option<Response> {
        let Some(setup) = &self.tap else {
            return Some(Response::error("this orchestrator serves no taps", None));
        };
        let Some(_slot) = Slot::take(&self.taps, super::MAX_TAPS) else {
            return Some(Response::error(
                format!("{} taps are open already", super::MAX_TAPS),
                Some("close one, then try again".into()),
            ));
        };
        super::tap::serve(setup, stream, (pattern, count, full), hung_up);
        None
    }

    /// Hands `request` to the main loop and waits for its answer, up to the
    /// action deadline and as long as the client on `stream` waits; `None`
    /// once the client hung up (the request is then skipped if the main loop
    /// had not taken it yet).
    fn forward(&self, request: Request, stream: &UnixStream) -> Option<Response> {
        let verb = request.verb();
        let Some(_waiting) = Slot::take(&self.waiting, QUEUED_ACTIONS) else {
            return Some(busy());
        };
        let (reply, answer) = bounded(1);
        let abandoned = Arc::new(AtomicBool::new(false));
        let pending = Pending {
            request,
            reply,
            abandoned: Arc::clone(&abandoned),
        };
        match self.actions.try_send(pending) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Some(busy()),
            Err(TrySendError::Disconnected(_)) => {
                return Some(Response::error("the orchestrator is shutting down", None));
            }
        }
        let deadline = Instant::now() + self.action_deadline;
        loop {
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(HANG_UP_CHECK);
            match answer.recv_timeout(wait) {
                Ok(response) => return Some(response),
                Err(RecvTimeoutError::Disconnected) => {
                    return Some(Response::error(
                        format!("'{verb}' was not carried out: the orchestrator is shutting down"),
                        None,
                    ));
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if hung_up(stream) {
                abandoned.store(true, Ordering::Release);
                tracing::info!(
                    "[CONTROL] a client of '{verb}' hung up before its answer; the action is \
                     skipped if it has not begun"
                );
                return None;
            }
            if Instant::now() >= deadline {
                return Some(Response::error(
                    format!(
                        "no answer to '{verb}' within {}s: the orchestrator is busy (a build or \
                         a shutdown) or the action is stuck",
                        self.action_deadline.as_secs()
                    ),
                    Some("see the orchestrator's log; its outcome is logged there".into()),
                ));
            }
        }
    }
}

fn busy() -> Response {
    Response::error(
        format!("{QUEUED_ACTIONS} control requests already wait for the orchestrator"),
        Some("wait for them to finish, then try again".into()),
    )
}

/// Whether the client closed its end of `stream` (a half-close after its
/// request is not a hang-up: it may still read the answer).
fn hung_up(stream: &UnixStream) -> bool {
    let mut fds = [PollFd::new(stream.as_fd(), PollFlags::empty())];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(0) | Err(_) => false,
        Ok(_) => fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)),
    }
}

/// Reads one request line of at most [`MAX_REQUEST_BYTES`], all of it by
/// `deadline` (a client that sends a byte now and then gets no more time).
fn read_request(mut stream: &UnixStream, deadline: Instant) -> Result<Request, String> {
    let mut line = Vec::with_capacity(256);
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "no complete request line within {}s",
                REQUEST_DEADLINE.as_secs()
            ));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| format!("cannot read the request: {e}"))?;
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => return Err(format!("cannot read the request: {e}")),
        };
        let end = buf[..n].iter().position(|&b| b == b'\n');
        line.extend_from_slice(&buf[..end.unwrap_or(n)]);
        if line.len() > MAX_REQUEST_BYTES {
            return Err(format!(
                "the request is longer than {MAX_REQUEST_BYTES} bytes"
            ));
        }
        if end.is_some() || n == 0 {
            return parse_request(&line);
        }
    }
}

/// Decodes a request line (without its newline).
pub(crate) fn parse_request(line: &[u8]) -> Result<Request, String> {
    serde_json::from_slice(line.trim_ascii_end()).map_err(|e| format!("not a valid request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write as _;

    #[test]
    fn a_request_trickled_byte_by_byte_gets_one_deadline_in_all() {
        let (mut client, server) = UnixStream::pair().expect("a pair");
        let trickler = std::thread::spawn(move || {
            for _ in 0..100 {
                if client.write_all(b" ").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let began = Instant::now();
        let refused = read_request(&server, began + Duration::from_millis(300));
        let took = began.elapsed();
        assert!(refused.is_err_and(|e| e.contains("no complete request line")));
        assert!(took < Duration::from_millis(1_500), "{took:?}");
        drop(server);
        trickler.join().expect("the trickler ends");
    }

    fn request() -> impl Strategy<Value = Request> {
        prop_oneof![
            Just(Request::Status),
            any::<String>().prop_map(|module| Request::Reload { module }),
            any::<String>().prop_map(|module| Request::Restart { module }),
            any::<String>().prop_map(|module| Request::Stop { module }),
            any::<String>().prop_map(|module| Request::Start { module }),
            any::<String>().prop_map(|path| Request::Deploy {
                bundle: path.into()
            }),
            Just(Request::Rollback),
            (any::<String>(), any::<Option<u64>>()).prop_map(|(pattern, count)| Request::Tap {
                pattern,
                count,
                full: false
            }),
            (any::<String>(), any::<String>(), any::<String>()).prop_map(
                |(topic, payload, source)| Request::Emit {
                    topic,
                    payload,
                    source
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn any_bytes_are_a_request_or_a_refusal(line in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_request(&line);
        }

        #[test]
        fn every_request_reads_back(request in request()) {
            let line = serde_json::to_vec(&request).expect("encodes");
            prop_assert_eq!(parse_request(&line), Ok(request));
        }

        #[test]
        fn json_of_any_shape_is_refused_or_a_request(value in json()) {
            let line = serde_json::to_vec(&value).expect("encodes");
            let _ = parse_request(&line);
        }
    }

    /// JSON values of any shape, with the protocol's keys likely.
    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            prop_oneof![
                Just("command".to_owned()),
                Just("status".to_owned()),
                any::<String>()
            ]
            .prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("command".to_owned()),
                        Just("module".to_owned()),
                        any::<String>()
                    ],
                    inner,
                    0..4
                )
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
