//! The control socket through a real Unix socket and the real client.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::bounded;

use super::{ControlServer, ServerSetup};
use crate::client;
use crate::protocol::{Request, Response, StatusReport};

fn report() -> StatusReport {
    StatusReport {
        app: "demo".into(),
        version: "1.0.0".into(),
        pid: std::process::id(),
        environment: Some("prod".into()),
        uptime_secs: 1.0,
        ready: true,
        modules: Vec::new(),
        bridge: None,
        bundle: None,
    }
}

fn server(
    target: &std::path::Path,
    deadline: Duration,
) -> (ControlServer, crossbeam_channel::Receiver<super::Pending>) {
    let (actions, pending) = bounded(super::QUEUED_ACTIONS);
    let server = ControlServer::start(ServerSetup {
        target_dir: target.to_path_buf(),
        socket: None,
        app: "demo".into(),
        config_dir: "config".into(),
        environment: None,
        status: Arc::new(report),
        actions,
        action_deadline: deadline,
    })
    .expect("the server starts");
    (server, pending)
}

#[test]
fn status_is_answered_by_the_socket_and_actions_by_the_main_loop() {
    let target = tempfile::tempdir().expect("temp dir");
    let (server, pending) = server(target.path(), Duration::from_secs(5));
    let status = client::send(server.socket(), &Request::Status, Duration::from_secs(5));
    assert!(matches!(status, Ok(Response::Status(r)) if r.environment.as_deref() == Some("prod")));

    let main_loop = std::thread::spawn(move || {
        let request = pending
            .recv_timeout(Duration::from_secs(5))
            .expect("a request");
        assert_eq!(request.request, Request::Stop { module: "m".into() });
        request.answer(Response::Done {
            message: "module 'm' stopped".into(),
        });
    });
    let stop = Request::Stop { module: "m".into() };
    let answer = client::send(server.socket(), &stop, Duration::from_secs(5)).expect("an answer");
    assert_eq!(
        answer,
        Response::Done {
            message: "module 'm' stopped".into()
        }
    );
    main_loop.join().expect("the main loop answered");
}

#[test]
fn a_busy_main_loop_is_named_within_the_deadline() {
    let target = tempfile::tempdir().expect("temp dir");
    let (server, _pending) = server(target.path(), Duration::from_millis(300));
    let answer = client::send(
        server.socket(),
        &Request::Restart { module: "m".into() },
        Duration::from_secs(5),
    )
    .expect("an answer");
    let Response::Error { message, .. } = answer else {
        panic!("an error expected: {answer:?}");
    };
    assert!(message.contains("no answer to 'restart'"), "{message}");
}

#[test]
fn a_line_that_is_not_a_request_is_refused_and_the_socket_goes_at_drop() {
    let target = tempfile::tempdir().expect("temp dir");
    let (server, _pending) = server(target.path(), Duration::from_secs(1));
    let socket = server.socket().to_path_buf();
    let mut stream = UnixStream::connect(&socket).expect("connect");
    stream
        .write_all(b"{\"command\": \"explode\"}\n")
        .expect("write");
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).expect("read");
    let response: Response = serde_json::from_str(&line).expect("a response");
    assert!(
        matches!(&response, Response::Error { usage: true, message, .. } if message.contains("not a valid request")),
        "{response:?}"
    );
    drop(server);
    assert!(!socket.exists());
    assert!(crate::registry::running(target.path()).is_empty());
}

#[test]
fn a_request_the_main_loop_drops_or_cannot_take_is_told_the_orchestrator_is_shutting_down() {
    let target = tempfile::tempdir().expect("temp dir");
    let (server, pending) = server(target.path(), Duration::from_secs(30));
    let main_loop = std::thread::spawn(move || {
        let request = pending
            .recv_timeout(Duration::from_secs(5))
            .expect("a request");
        drop(request);
        drop(pending);
    });
    let stop = Request::Stop { module: "m".into() };
    let answer = client::send(server.socket(), &stop, Duration::from_secs(5)).expect("an answer");
    assert!(
        matches!(&answer, Response::Error { message, .. } if message.contains("was not carried out")),
        "{answer:?}"
    );
    main_loop.join().expect("the main loop ended");
    let answer = client::send(server.socket(), &stop, Duration::from_secs(5)).expect("an answer");
    assert!(
        matches!(&answer, Response::Error { message, .. } if message.contains("shutting down")),
        "{answer:?}"
    );
}

/// Sends `request` on a new connection without waiting for the answer.
fn send_only(socket: &std::path::Path, request: &Request) -> UnixStream {
    let mut stream = UnixStream::connect(socket).expect("connect");
    let mut line = serde_json::to_string(request).expect("encodes");
    line.push('\n');
    stream.write_all(line.as_bytes()).expect("write");
    stream
}

#[test]
fn a_client_that_hangs_up_abandons_its_queued_action() {
    let target = tempfile::tempdir().expect("temp dir");
    let (server, pending) = server(target.path(), Duration::from_secs(30));
    let client = send_only(server.socket(), &Request::Stop { module: "m".into() });
    let waiting = pending
        .recv_timeout(Duration::from_secs(5))
        .expect("a request");
    assert!(!waiting.is_abandoned());
    drop(client);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !waiting.is_abandoned() {
        assert!(
            std::time::Instant::now() < deadline,
            "the hang-up was not noticed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn eight_stuck_action_clients_leave_status_its_own_slots() {
    let target = tempfile::tempdir().expect("temp dir");
    let (server, _pending) = server(target.path(), Duration::from_secs(60));
    let stuck: Vec<UnixStream> = (0..super::QUEUED_ACTIONS)
        .map(|n| {
            send_only(
                server.socket(),
                &Request::Restart {
                    module: format!("m{n}"),
                },
            )
        })
        .collect();
    // Every one of them waits for the main loop, which never answers.
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        let status = client::send(server.socket(), &Request::Status, Duration::from_secs(5));
        assert!(matches!(status, Ok(Response::Status(_))), "{status:?}");
    }
    let ninth = client::send(
        server.socket(),
        &Request::Stop { module: "m".into() },
        Duration::from_secs(5),
    )
    .expect("an answer");
    assert!(
        matches!(&ninth, Response::Error { message, .. } if message.contains("already wait")),
        "{ninth:?}"
    );
    drop(stuck);
}
