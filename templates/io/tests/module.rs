//! Drives the real module code, over a real socket, with the SDK's test
//! harness (which applies the host's rules and runs `ctx.spawn` threads for
//! real). Run with `cargo test -p {{crate_name}}`.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use orch_sdk::serde_json::{self, json};
use orch_sdk::testing::ModuleHarness;

// The module's public items: its type, payloads and constants.
use {{crate_ident}}::*;

/// A started module listening on a free port of the loopback interface.
fn started(state: Option<serde_json::Value>) -> (ModuleHarness<{{type_name}}>, SocketAddr) {
    let mut harness = ModuleHarness::new({{type_name}}::default());
    harness
        .initialize_with_state(json!({"listen": "127.0.0.1:0"}), state)
        .unwrap();
    harness.start().unwrap();
    let address = harness.module().local_addr().unwrap();
    (harness, address)
}

/// Sends `lines` on a new connection and reads one answer per line.
fn send(address: SocketAddr, lines: &str) -> Vec<String> {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(lines.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    (0..lines.matches('\n').count())
        .map(|_| {
            let mut answer = String::new();
            reader.read_line(&mut answer).unwrap();
            answer.trim_end().to_owned()
        })
        .collect()
}

/// The lines published so far.
fn published(harness: &ModuleHarness<{{type_name}}>) -> Vec<Line> {
    harness
        .host()
        .published_on(LINE_TOPIC)
        .into_iter()
        .map(|value| serde_json::from_value(value).unwrap())
        .collect()
}

/// Waits until `n` lines were published (the thread publishes them).
fn wait_for_lines(harness: &ModuleHarness<{{type_name}}>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while published(harness).len() < n {
        assert!(Instant::now() < deadline, "{:?}", published(harness));
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn publishes_each_line_from_its_thread_and_answers_stats_requests() {
    let (mut harness, address) = started(None);
    assert_eq!(harness.host().subscriptions(), vec![STATS_TOPIC]);
    let answers = send(address, "hello\r\nwörld\n");
    assert_eq!(answers, vec!["ok 1", "ok 2"]);
    wait_for_lines(&harness, 2);
    let lines = published(&harness);
    assert_eq!(lines[0].text, "hello");
    assert_eq!(lines[1].text, "wörld");
    assert!(lines[0].peer.starts_with("127.0.0.1:"), "{:?}", lines[0]);

    let request = harness
        .deliver_request(STATS_TOPIC, &json!({}), "asker")
        .unwrap()
        .unwrap();
    let replies = harness.host().replies();
    assert_eq!(replies[0].id, request);
    let stats: Stats = serde_json::from_value(replies[0].data.clone()).unwrap();
    assert_eq!((stats.connections, stats.lines), (1, 2));
    assert_eq!(stats.bytes, "hello".len() as u64 + "wörld".len() as u64);
    assert_eq!(stats.listen, address.to_string());

    harness.shutdown().unwrap();
    assert_eq!(harness.host().handed_over(), vec!["listener"]);
}

#[test]
fn a_reload_keeps_the_socket_and_the_counts() {
    let (mut old, address) = started(None);
    assert_eq!(send(address, "one\n"), vec!["ok 1"]);
    wait_for_lines(&old, 1);
    let state = old.save_state().unwrap();
    old.shutdown().unwrap();

    // A client connecting between two generations waits in the queue.
    let mut waiting = TcpStream::connect(address).expect("the socket stayed open");

    let mut new = ModuleHarness::new({{type_name}}::default());
    old.hand_over_to(&new);
    new.initialize_with_state(json!({"listen": "127.0.0.1:0"}), state)
        .unwrap();
    assert_eq!(new.module().local_addr(), Some(address), "the same socket");
    new.start().unwrap();
    waiting.write_all(b"two\n").unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = String::new();
    BufReader::new(waiting).read_line(&mut answer).unwrap();
    assert_eq!(answer, "ok 2\n", "the count went on");
    wait_for_lines(&new, 1);
    assert_eq!(
        (new.module().stats().lines, new.module().stats().connections),
        (2, 2)
    );
    new.shutdown().unwrap();
}

#[test]
fn a_port_in_use_fails_the_load_naming_the_address() {
    let (mut first, address) = started(None);
    let mut second = ModuleHarness::new({{type_name}}::default());
    let error = second
        .initialize(json!({"listen": address.to_string()}))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&format!("cannot listen on {address}")),
        "{error}"
    );
    let error = second
        .initialize(json!({"listen": "no-port"}))
        .unwrap_err()
        .to_string();
    assert!(error.contains("'no-port' is not host:port"), "{error}");
    first.shutdown().unwrap();
}

#[test]
fn a_line_past_the_limit_is_refused_and_the_client_dropped() {
    let (mut harness, address) = started(None);
    let long = "x".repeat(server::MAX_LINE + 1);
    let answers = send(address, &format!("{long}\n"));
    assert!(
        answers[0].starts_with("error: line longer than"),
        "{answers:?}"
    );
    assert!(published(&harness).is_empty());
    harness.shutdown().unwrap();
}
