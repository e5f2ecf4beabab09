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
        tap: None,
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

/// A tap sees matching events, scrubbed; one that never reads never holds
/// a publisher up: its queue fills, the rest is dropped and counted, and
/// it answers no request.
#[test]
fn a_tap_follows_the_bus_and_a_stalled_one_never_holds_it_up() {
    use std::io::{BufRead as _, BufReader, Write as _};
    let dir = tempfile::tempdir().expect("tempdir");
    let (actions, _pending) = bounded(super::QUEUED_ACTIONS);
    let bus = orch_runtime::bus::Bus::new();
    let scrubber = orch_runtime::logging::SecretScrubber::default();
    scrubber.set_secrets(&["hunter2".to_string()]);
    let server = ControlServer::start(ServerSetup {
        target_dir: dir.path().to_path_buf(),
        socket: None,
        app: "demo".into(),
        config_dir: "config".into(),
        environment: None,
        status: Arc::new(report),
        actions,
        action_deadline: Duration::from_secs(5),
        tap: Some(super::TapSetup {
            bus: bus.clone(),
            scrubber,
        }),
    })
    .expect("the server starts");
    let open = |line: &str| {
        let mut stream = UnixStream::connect(server.socket()).expect("connect");
        stream.write_all(line.as_bytes()).expect("write");
        stream
    };
    // A reading tap.
    let reading = open("{\"command\":\"tap\",\"pattern\":\"test.>\",\"count\":2}\n");
    reading
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    let mut lines = BufReader::new(reading.try_clone().expect("clone"));
    let tapped = || bus.has_subscribers("test.ping");
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while !tapped() && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(tapped(), "the tap subscribed");
    bus.publish("other.topic", br#"{"x":1}"#, None)
        .expect("publish");
    bus.publish("test.ping", br#"{"password":"hunter2"}"#, Some("m".into()))
        .expect("publish");
    bus.publish("test.ping", br#"{"n":2}"#, None)
        .expect("publish");
    let mut first = String::new();
    lines.read_line(&mut first).expect("a line");
    let first: Response = serde_json::from_str(&first).expect("a response");
    let Response::Tapped(event) = first else {
        panic!("not a tapped event: {first:?}");
    };
    assert_eq!(
        (event.topic.as_str(), event.source.as_deref()),
        ("test.ping", Some("m"))
    );
    assert!(!event.payload.contains("hunter2"), "{}", event.payload);
    // A stalled tap: it never reads.
    let stalled = open("{\"command\":\"tap\",\"pattern\":\">\"}\n");
    // Only the stalled tap matches bench.x: wait until it is on the bus (a
    // fixed sleep lost that race on a loaded machine, and the reads below
    // then waited for lines that never came).
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while !bus.has_subscribers("bench.x") && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(bus.has_subscribers("bench.x"), "the stalled tap subscribed");
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    let events = super::TAP_QUEUE * 3;
    for n in 0..events {
        // A tap is no recipient: nothing subscribes to bench.x but the taps.
        let delivered = bus
            .publish("bench.x", format!("{{\"n\":{n}}}"), None)
            .expect("publish");
        assert_eq!(delivered, 0, "a tap is never counted as a subscriber");
    }
    // Read late: what did not fit was dropped, and the tap says how many.
    // Every event was either written (into the socket's buffer while the
    // publishes ran, or from the queue now) or dropped; the last lines,
    // written after the publishes, carry the final count.
    let mut late = BufReader::new(stalled);
    let (mut lines, mut last_dropped) = (0u64, 0u64);
    while lines + last_dropped < events as u64 {
        let mut line = String::new();
        let read = late.read_line(&mut line).unwrap_or_else(|e| {
            panic!("after {lines} line(s), {last_dropped} dropped of {events}: {e}")
        });
        assert!(read > 0, "the tap hung up after {lines} line(s)");
        if let Ok(Response::Tapped(event)) = serde_json::from_str::<Response>(&line) {
            lines += 1;
            last_dropped = event.dropped;
        }
    }
    assert!(
        lines >= super::TAP_QUEUE as u64 && last_dropped > 0,
        "{lines} written, {last_dropped} dropped of {events}: the queue's worth is written, \
         the rest dropped"
    );
    drop(server);
}
