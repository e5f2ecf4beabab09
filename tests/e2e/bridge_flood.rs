//! A core NATS import flooded past what the node takes: a plain client on
//! the same broker (the raw protocol, [`RawNats`]) sends faster than the
//! node's modules handle or the node checks. Real orchestrators, a real
//! nats-server on loopback.
//!
//! - while a full `block` mailbox holds deliveries up, what the node holds
//!   is bounded in bytes (a peer's 512 KB messages do not grow it by their
//!   total, which the client alone would keep), and every message is
//!   either delivered or counted as dropped, in the status and the
//!   metrics, and said;
//! - a flood faster than the node checks leaves it connected (the server
//!   cuts off a client that falls 64 MB behind), every message delivered or
//!   counted as dropped, and the node's memory bounded;
//! - a JetStream import held up the same way holds a bounded number of
//!   bytes unacknowledged (the server hands out 1,000 messages of up to its
//!   `max_payload` each), and delivers every message;
//! - a core work queue whose workers fall behind lets go of the queue
//!   group (the server hands the next jobs to other nodes) with what it
//!   holds bounded in bytes, accounts for every job it took, and takes
//!   jobs again once it caught up.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use orch_e2e::{NatsServer, OrchProcess, RawNats, Scenario, wait_until};

/// Generous: the first run of a test may compile the modules.
const BUILD: Duration = Duration::from_secs(240);

/// What a core import holds for the local bus, at most: messages not
/// judged yet and events not delivered yet (orch-bridge's `UNREAD_BYTES`
/// and `BACKLOG_BYTES`).
const HELD: u64 = (64 + 32) * 1024 * 1024;

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// The bridge's status counter `name`.
fn counter(pid: u32, name: &str) -> u64 {
    orch_e2e::bridge::status(pid)[name].as_u64().unwrap_or(0)
}

/// Sends `count` enveloped messages of `payload` on `subject`, flushing
/// every `flush_every`.
fn flood(peer: &mut RawNats, subject: &str, count: u32, payload: &[u8], flush_every: u32) {
    let run = now_ms();
    for n in 0..count {
        let envelope = format!("peer mod-x {n} {run} 1");
        peer.publish(
            subject,
            None,
            &[("Orch-Envelope", envelope.as_str())],
            payload,
        )
        .expect("publish");
        if n % flush_every == flush_every - 1 {
            peer.flush().expect("the server took them");
        }
    }
    peer.flush().expect("the server took them");
    assert!(peer.errors.is_empty(), "{:?}", peer.errors);
}

/// Waits until node `orch` delivered or counted as dropped all `sent`
/// messages; its status then.
fn until_accounted(
    orch: &mut OrchProcess,
    server: &NatsServer,
    sent: u64,
    within: Duration,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        orch.collect_for(Duration::from_millis(200));
        let status = orch_e2e::bridge::status(orch.pid());
        let imported = status["imported"].as_u64().unwrap_or(0);
        if imported + status["import_dropped"].as_u64().unwrap_or(0) >= sent {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{sent} sent, not all delivered or dropped within {within:?}: {status:#}\n\
             node:\n{}\nserver:\n{}",
            orch.lines_with("BRIDGE").join("\n"),
            server.log()
        );
    }
}

#[test]
fn a_held_up_core_import_holds_a_bounded_backlog_and_counts_what_it_drops() {
    // A server that never cuts the node off (a busy machine may keep its
    // bridge thread from reading for a moment): what is measured here is
    // what the node holds.
    let server = NatsServer::start_with_settings("max_pending: 1GB\n").expect("nats-server");
    // One event at a time, 20 ms each, waited for (`block`): the import's
    // delivery is held up for as long as the flood lasts.
    let slow = orch_e2e::bridge::slow_consumer("test.big", 20);
    let main = format!(
        "metrics:\n  listen: 0\n{}",
        orch_e2e::bridge::section(&server.url(), "held-c", "")
    );
    let scenario = Scenario::with_main(&slow, &main);
    let mut c = OrchProcess::spawn(scenario.command(&["run"])).expect("spawn cargo-orch");
    let metrics = c.metrics_address(BUILD);
    c.wait_for("app.started", BUILD).unwrap();
    c.wait_for("[BRIDGE] connected to NATS", BUILD).unwrap();
    let before = orch_e2e::proc_status_kib(c.pid(), "VmRSS") * 1024;

    // 1,600 messages of 512 KB: 800 MiB, which the client alone would
    // hold (it keeps 65,536 messages per subscription, whatever their size).
    let payload = format!(r#"{{"blob":"{}"}}"#, "x".repeat(512 * 1024));
    let mut peer = RawNats::connect(server.port(), None).expect("peer");
    // The import subscribes once connected: a first message shows it is.
    wait_until("node C takes a first message", BUILD, || {
        flood(&mut peer, "orch.e2e.test.big", 1, payload.as_bytes(), 1);
        c.collect_for(Duration::from_millis(300));
        counter(c.pid(), "imported") > 0
    });
    let first = counter(c.pid(), "imported");
    flood(
        &mut peer,
        "orch.e2e.test.big",
        1_600,
        payload.as_bytes(),
        20,
    );
    let status = until_accounted(&mut c, &server, first + 1_600, Duration::from_secs(60));

    let dropped = status["import_dropped"].as_u64().unwrap_or(0);
    assert!(dropped >= 1_000, "{status:#}");
    assert_eq!(status["reconnects"], 0, "{status:#}");
    eprintln!("node C: {dropped} dropped");
    // What the import holds, what is on its way (the client's read buffer,
    // the batches waiting for the delivery thread, 4 MiB each, the
    // mailbox) and the allocator's slack (events freed on other threads
    // than the bridge's, which made them, come back to it late): 230-250
    // MiB here, under a third of the flood the client alone would hold.
    orch_e2e::assert_peak_within(c.pid(), before, 4 * HELD, "the flood");
    let scrape = orch_e2e::parse_prometheus(
        &orch_e2e::http_get(&metrics, "/metrics")
            .expect("GET /metrics")
            .1,
    );
    assert_eq!(
        scrape.get("orch_bridge_import_dropped_total"),
        Some(&(dropped as f64))
    );
    c.stop_cleanly();
    let said = c.lines_with("import fell behind the broker");
    assert!(!said.is_empty() && said.len() <= 5, "{}", said.join("\n"));
    assert!(
        said[0].contains("it holds for the local bus"),
        "{}",
        said[0]
    );
}

#[test]
fn a_core_import_flooded_faster_than_it_checks_stays_connected_and_accounts_for_all() {
    // The server cuts a client off once 64 MB wait for it (its default).
    let server = NatsServer::start().expect("nats-server");
    let scenario = Scenario::with_main(
        "modules:\n  - name: mod-dummy-consumer\n",
        &orch_e2e::bridge::section(&server.url(), "flooded-c", ""),
    );
    let mut c = OrchProcess::spawn(scenario.command(&["run"])).expect("spawn cargo-orch");
    c.wait_for("app.started", BUILD).unwrap();
    c.wait_for("[BRIDGE] connected to NATS", BUILD).unwrap();
    let mut peer = RawNats::connect(server.port(), None).expect("peer");
    wait_until("node C takes a first message", BUILD, || {
        flood(&mut peer, "orch.e2e.test.flood", 1, b"{}", 1);
        c.collect_for(Duration::from_millis(300));
        counter(c.pid(), "imported") > 0
    });
    let first = counter(c.pid(), "imported");
    let before = orch_e2e::proc_status_kib(c.pid(), "VmRSS") * 1024;
    // JSON from outside an orchestrator (no envelope), which the node
    // checks message by message: 32 KB of 16,000 numbers each, a run of
    // 1,000 made once and written again and again for 3 s, far more than
    // the node checks.
    let json = format!("[{}0]", "0,".repeat(16_000));
    let mut run = Vec::new();
    for _ in 0..1_000 {
        run.extend_from_slice(format!("PUB orch.e2e.test.flood {}\r\n", json.len()).as_bytes());
        run.extend_from_slice(json.as_bytes());
        run.extend_from_slice(b"\r\n");
    }
    let began = Instant::now();
    let mut sent = 0;
    while began.elapsed() < Duration::from_secs(3) {
        peer.send_raw(&run).expect("publish");
        sent += 1_000;
    }
    peer.flush().expect("the server took them");
    assert!(peer.errors.is_empty(), "{:?}", peer.errors);
    let status = until_accounted(&mut c, &server, first + sent, Duration::from_secs(60));
    eprintln!("sent {sent}: {status:#}");
    assert_eq!(status["reconnects"], 0, "{status:#}\n{}", server.log());
    assert!(!server.log().contains("Slow Consumer"), "{}", server.log());
    // Whether the node dropped some (it read faster than it checked) or the
    // server held the peer back (nats-server stalls a producer whose
    // subscribers fall behind) depends on the sitting; never a cut-off,
    // never a loss that is not counted.
    orch_e2e::assert_peak_within(c.pid(), before, 4 * HELD, "the flood");
    c.stop_cleanly();
}

/// The work group's counters in node `pid`'s status.
fn work_counts(pid: u32) -> serde_json::Value {
    orch_e2e::bridge::status(pid)["work"][0].clone()
}

#[test]
fn a_core_work_queue_held_up_lets_go_and_accounts_for_every_job_it_took() {
    let server = NatsServer::start_with_settings("max_pending: 1GB\n").expect("nats-server");
    let slow = orch_e2e::bridge::slow_consumer("test.big", 20);
    let main = orch_e2e::bridge::section(
        &server.url(),
        "queue-c",
        "    work:\n      - group: workers\n        topics: [test.big]\n",
    );
    let scenario = Scenario::with_main(&slow, &main);
    let mut c = OrchProcess::spawn(scenario.command(&["run"])).expect("spawn cargo-orch");
    c.wait_for("app.started", BUILD).unwrap();
    c.wait_for("[BRIDGE] connected to NATS", BUILD).unwrap();
    let subject = "orch-work.orch.e2e.workers.test.big";
    let payload = format!(r#"{{"blob":"{}"}}"#, "x".repeat(512 * 1024));
    let mut peer = RawNats::connect(server.port(), None).expect("peer");
    // The queue subscription is made once the worker subscribes.
    wait_until("node C takes a first job", BUILD, || {
        flood(&mut peer, subject, 1, payload.as_bytes(), 1);
        c.collect_for(Duration::from_millis(300));
        work_counts(c.pid())["handled"].as_u64().unwrap_or(0) > 0
    });
    let before = orch_e2e::proc_status_kib(c.pid(), "VmRSS") * 1024;
    let first = work_counts(c.pid())["taken"].as_u64().unwrap_or(0);

    // 1,600 jobs of 512 KB (800 MiB) at a worker that takes 50 a second.
    flood(&mut peer, subject, 1_600, payload.as_bytes(), 20);
    let deadline = Instant::now() + Duration::from_secs(60);
    let (taken, handled, dropped) = loop {
        c.collect_for(Duration::from_millis(200));
        let status = orch_e2e::bridge::status(c.pid());
        let work = &status["work"][0];
        let taken = work["taken"].as_u64().unwrap_or(0);
        let handled = work["handled"].as_u64().unwrap_or(0);
        let dropped = status["import_dropped"].as_u64().unwrap_or(0);
        if taken > first && handled + dropped == taken && work["in_flight"] == 0 {
            break (taken, handled, dropped);
        }
        assert!(
            Instant::now() < deadline,
            "the jobs taken not all handled or dropped: {status:#}\n{}",
            c.lines_with("BRIDGE").join("\n")
        );
    };
    eprintln!(
        "node C took {taken} of {}: {handled} handled, {dropped} dropped",
        first + 1_600
    );
    // It let go: the jobs sent meanwhile were the server's to give to
    // another node (there is none here: no one took them).
    assert!(taken < first + 1_600, "taken {taken}");
    let said = c.lines_with("takes no more until");
    assert!(!said.is_empty(), "{}", c.lines_with("BRIDGE").join("\n"));
    assert!(said[0].contains("work group 'workers'"), "{}", said[0]);
    orch_e2e::assert_peak_within(c.pid(), before, 4 * HELD, "the flood of jobs");

    // Caught up, it takes jobs again.
    wait_until("node C takes jobs again", Duration::from_secs(30), || {
        flood(&mut peer, subject, 1, payload.as_bytes(), 1);
        c.collect_for(Duration::from_millis(300));
        work_counts(c.pid())["handled"].as_u64().unwrap_or(0) > handled
    });
    c.stop_cleanly();
}

#[test]
fn a_held_up_jetstream_import_holds_a_bounded_number_of_bytes_unacknowledged() {
    // Messages of up to 8 MB; the node's pulls must never ask for less.
    let server = NatsServer::start_with_settings("max_payload: 8MB\nmax_pending: 1GB\n")
        .expect("nats-server");
    let slow = orch_e2e::bridge::slow_consumer("test.big", 20);
    let main = orch_e2e::bridge::section(
        &server.url(),
        "held-js",
        &orch_e2e::bridge::jetstream("ORCH_HELD", "held-js"),
    );
    let scenario = Scenario::with_main(&slow, &main);
    let start = || {
        let mut c = OrchProcess::spawn(scenario.command(&["run"])).expect("spawn cargo-orch");
        c.wait_for("app.started", BUILD).unwrap();
        c.wait_for("[BRIDGE] connected to NATS", BUILD).unwrap();
        c
    };
    // A first run makes the stream and the node's durable consumer, and
    // shows what the node takes idle.
    let mut c = start();
    let mut peer = RawNats::connect(server.port(), None).expect("peer");
    wait_until("node C takes a first message", BUILD, || {
        flood(&mut peer, "orch.e2e.test.big", 1, b"{}", 1);
        c.collect_for(Duration::from_millis(300));
        counter(c.pid(), "imported") > 0
    });
    c.collect_for(Duration::from_millis(500));
    let idle = orch_e2e::proc_status_kib(c.pid(), "VmRSS") * 1024;
    c.stop_cleanly();

    // 100 messages of 4 MiB (400 MiB) stored while the node is away, each
    // waited for (the stream's intake drops what floods it), which one pull
    // of the client's default size (200 messages, no bound in bytes) would
    // hand over at once when it comes back.
    let payload = format!(r#"{{"blob":"{}"}}"#, "x".repeat(4 * 1024 * 1024));
    flood(&mut peer, "orch.e2e.test.big", 100, payload.as_bytes(), 1);
    let mut c = start();
    let deadline = Instant::now() + Duration::from_secs(60);
    while counter(c.pid(), "imported") < 100 {
        c.collect_for(Duration::from_millis(200));
        assert!(
            Instant::now() < deadline,
            "not all delivered: {:#}\n{}",
            orch_e2e::bridge::status(c.pid()),
            c.lines_with("BRIDGE").join("\n")
        );
    }
    let status = orch_e2e::bridge::status(c.pid());
    assert_eq!(status["import_dropped"], 0, "{status:#}");
    // 64 MiB held unacknowledged (a message's payload counted twice: its
    // own and its event's), pulls of at most 16 MB half a pull ahead, the
    // client's read buffer, the allocator's slack (about 190 MiB in all
    // here): well under the 400 MiB one pull of 200 would hold, which
    // took the node to about 900 MiB.
    orch_e2e::assert_peak_within(c.pid(), idle, 320 << 20, "the stored messages");
    c.stop_cleanly();
}
