//! The NATS bridge against a hostile peer: a plain NATS client on the same
//! broker (the raw protocol over TCP, [`RawNats`]) that sends what no
//! orchestrator would. Real orchestrators, a real nats-server on loopback.
//!
//! - oversized ids and origins are refused, counted, said in a few lines,
//!   and do not grow the importing host;
//! - ids claimed ahead of a node (guessed from the ones it used) do not
//!   drop its real events;
//! - messages refused for good are terminated once, never redelivered, and
//!   the durable consumer goes on.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use orch_e2e::{NatsServer, OrchProcess, RawNats, Scenario, wait_until};

/// Generous: the first run of a test may compile the modules.
const BUILD: Duration = Duration::from_secs(240);
const SHORT: Duration = Duration::from_secs(30);

const PRODUCER: &str = "modules:\n  - name: fixture-event-log\n    config:\n      also: [\"bridge.>\"]\n  \
     - name: mod-dummy-producer\n    config:\n      publish_interval: 50ms\n  \
     - name: mod-dummy-consumer\n";
const CONSUMER: &str = "modules:\n  - name: fixture-event-log\n    config:\n      also: [\"bridge.>\"]\n  \
     - name: mod-dummy-consumer\n";

/// The line the bridge says its refusals for good in (paced).
const REFUSED_SAID: &str = "refused for good so far";

fn start(scenario: &Scenario) -> OrchProcess {
    OrchProcess::spawn(scenario.command(&["run"])).expect("spawn cargo-orch")
}

/// A counter of the bridge's status.
fn counter(pid: u32, name: &str) -> u64 {
    orch_e2e::bridge::status(pid)[name].as_u64().unwrap_or(0)
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// The consumer info of `durable` on `stream`, through the JetStream API.
fn consumer_info(peer: &mut RawNats, stream: &str, durable: &str) -> serde_json::Value {
    let answer = peer
        .request(&format!("$JS.API.CONSUMER.INFO.{stream}.{durable}"), b"")
        .expect("consumer info");
    serde_json::from_slice(&answer.payload).expect("consumer info is JSON")
}

/// Deliveries past the first of each message, from a consumer's info: its
/// consumer sequence counts every delivery, its stream sequence each
/// message once.
fn redeliveries(info: &serde_json::Value) -> u64 {
    let delivered = &info["delivered"];
    let all = delivered["consumer_seq"].as_u64().unwrap_or(0);
    all.saturating_sub(delivered["stream_seq"].as_u64().unwrap_or(0))
}

/// Publishes a JSON ping from a plain client until `orch` received it (its
/// import may not be subscribed yet).
fn until_delivered(server: &NatsServer, orchs: &mut [&mut OrchProcess], message: &str) {
    let mut peer = RawNats::connect(server.port(), None).expect("peer");
    let mut seq = 0;
    wait_until("a plain client's ping is delivered", SHORT, || {
        seq += 1;
        let id = format!("ready-{}-{seq}", now_ms());
        let envelope = format!("peer mod-x {seq} {} 1", now_ms());
        let payload = format!(r#"{{"message":"{message}","seq":{seq}}}"#);
        let headers = [
            ("Nats-Msg-Id", id.as_str()),
            ("Orch-Envelope", envelope.as_str()),
        ];
        peer.publish("orch.e2e.test.ping", None, &headers, payload.as_bytes())
            .expect("publish");
        peer.flush().expect("flush");
        orchs.iter_mut().all(|orch| {
            orch.collect_for(Duration::from_millis(300));
            !orch
                .lines_with(&format!("Received test.ping: {message} (seq"))
                .is_empty()
        })
    });
}

/// The most bytes an importing orchestrator may grow by while refusing
/// the flood: what its configuration holds in flight (a pull of 200
/// messages of ~120 KB, ~24 MiB; the window of ids, 8 MiB of keys; the
/// names, 64 KiB) with room for the allocator.
const GROWTH: u64 = 96 * 1024 * 1024;

#[test]
fn oversized_ids_and_origins_are_refused_counted_said_paced_and_do_not_grow_the_host() {
    let server = NatsServer::start().expect("nats-server");
    let js = format!(
        "{}metrics:\n  listen: 0\n",
        orch_e2e::bridge::jetstream("ORCH_HOSTILE", "big-js")
    );
    let with_js = Scenario::with_main(
        CONSUMER,
        &orch_e2e::bridge::section(&server.url(), "big-js", &js),
    );
    let with_core = Scenario::with_main(
        CONSUMER,
        &orch_e2e::bridge::section(&server.url(), "big-core", ""),
    );
    let mut b = start(&with_js);
    let mut c = start(&with_core);
    let metrics = b.metrics_address(BUILD);
    b.wait_for("JetStream stream 'ORCH_HOSTILE' holds orch.e2e.>", BUILD)
        .unwrap();
    b.wait_for("app.started", BUILD).unwrap();
    c.wait_for("app.started", BUILD).unwrap();
    until_delivered(&server, &mut [&mut b, &mut c], "ready");
    let before = [
        orch_e2e::proc_status_kib(b.pid(), "VmRSS") * 1024,
        orch_e2e::proc_status_kib(c.pid(), "VmRSS") * 1024,
    ];

    // 3,000 messages: 60 KB ids, 60 KB origins, or 30 KB of each (JetStream
    // itself refuses a header block over 64 KiB); unique ids (the stream
    // would drop a repeat) and origins, valid JSON on a subscribed topic, so
    // each would reach the id window and the names if it were taken (before
    // the caps, the JetStream node grew by 200 MiB and its .ids file by
    // 90 MB here).
    let mut peer = RawNats::connect(server.port(), None).expect("peer");
    let big = "x".repeat(60_000);
    let half = &big[..30_000];
    let started = Instant::now();
    for n in 0..3_000u32 {
        let (id, origin) = match n % 3 {
            0 => (format!("{n:05}-{big}"), "peer".to_owned()),
            1 => (format!("hostile-{n}"), format!("{n:05}{big}")),
            _ => (format!("{n:05}-{half}"), format!("{n:05}{half}")),
        };
        let id = id.as_str();
        let envelope = format!("{origin} mod-x {n} {} 1", now_ms());
        let payload = format!(r#"{{"message":"hostile","seq":{n}}}"#);
        let headers = [("Nats-Msg-Id", id), ("Orch-Envelope", envelope.as_str())];
        peer.publish("orch.e2e.test.ping", None, &headers, payload.as_bytes())
            .expect("publish");
        if n % 50 == 49 {
            peer.flush().expect("the server took them");
        }
        // Core NATS has no flow control: a subscriber that falls 64 MiB
        // behind is cut off by the server (and the messages on the way are
        // lost, at most once). The flood waits for node C every 300.
        if n % 300 == 299 {
            wait_until("node C keeps up", SHORT, || {
                c.collect_for(Duration::from_millis(100));
                counter(c.pid(), "import_malformed") > u64::from(n) - 100
            });
        }
    }
    peer.flush().expect("the server took them");
    assert!(peer.errors.is_empty(), "{:?}", peer.errors);
    let sent_in = started.elapsed();

    for (orch, what) in [(&mut b, "JetStream"), (&mut c, "core NATS")] {
        wait_until(
            &format!("the {what} importer counts 3,000 malformed"),
            Duration::from_secs(90),
            || {
                orch.collect_for(Duration::from_millis(200));
                counter(orch.pid(), "import_malformed") >= 3_000
            },
        );
    }
    // A normal event after them is delivered, through both.
    until_delivered(&server, &mut [&mut b, &mut c], "after");
    let flood = started.elapsed();

    for (n, orch) in [&b, &c].into_iter().enumerate() {
        let status = orch_e2e::bridge::status(orch.pid());
        assert_eq!(status["import_malformed"], 3_000, "{status:#}");
        let peak = orch_e2e::proc_status_kib(orch.pid(), "VmHWM") * 1024;
        assert!(
            peak < 200 * 1024 * 1024 && peak < before[n] + GROWTH,
            "node {n}: peak {} MiB, {} MiB before the flood",
            peak >> 20,
            before[n] >> 20
        );
        eprintln!(
            "node {n}: VmRSS {} MiB before, VmHWM {} MiB after; flood sent in {sent_in:?}, \
             handled in {flood:?}",
            before[n] >> 20,
            peak >> 20
        );
    }
    let scrape = orch_e2e::parse_prometheus(
        &orch_e2e::http_get(&metrics, "/metrics")
            .expect("GET /metrics")
            .1,
    );
    assert_eq!(
        scrape.get("orch_bridge_import_malformed_total"),
        Some(&3_000.0)
    );
    assert_eq!(scrape.get("orch_bridge_import_rejected_total"), Some(&0.0));
    let info = consumer_info(&mut peer, "ORCH_HOSTILE", "big-js");
    assert_eq!(info["num_redelivered"], 0, "{info:#}");
    assert_eq!(redeliveries(&info), 0, "{info:#}");
    assert_eq!(info["num_ack_pending"], 0, "{info:#}");
    b.stop_cleanly();
    c.stop_cleanly();
    for orch in [&b, &c] {
        let said = orch.lines_with(REFUSED_SAID);
        eprintln!("{} paced line(s):\n{}", said.len(), said.join("\n"));
        // At first, then at most every 5 s while the flood lasted.
        let most = 2 + flood.as_secs() / 5;
        assert!(
            !said.is_empty() && said.len() as u64 <= most,
            "{} lines over {flood:?}:\n{}",
            said.len(),
            said.join("\n")
        );
        assert!(said[0].contains("malformed"), "{}", said[0]);
        let output = orch.output();
        assert!(
            output.lines().all(|line| line.len() < 2_000),
            "a peer's string made a long log line"
        );
        assert!(!output.contains("Received test.ping: hostile"), "{output}");
    }
}

/// The ids a peer would claim for the next `ahead` messages of a node whose
/// ids it saw: the old scheme's `<node>-<seq>`, and the new one's with each
/// tag seen, the last tag stepped.
fn guesses(node: &str, seen: &[(u64, u64)], ahead: u64) -> Vec<String> {
    let (last_seq, last_tag) = seen[seen.len() - 1];
    let mut ids = Vec::new();
    for k in 1..=ahead {
        let seq = last_seq + k;
        ids.push(format!("{node}-{seq}"));
        ids.push(format!("{node}-{seq}-{:016x}", last_tag.wrapping_add(k)));
        for (_, tag) in seen {
            ids.push(format!("{node}-{seq}-{tag:016x}"));
        }
    }
    ids.sort();
    ids.dedup();
    ids
}

#[test]
fn ids_claimed_ahead_of_a_node_do_not_drop_its_events() {
    let server = NatsServer::start().expect("nats-server");
    let producer = Scenario::with_main(
        PRODUCER,
        &orch_e2e::bridge::section(
            &server.url(),
            "pc-a",
            &orch_e2e::bridge::jetstream("ORCH_CLAIM", "pc-a"),
        ),
    );
    let consumer = Scenario::with_main(
        CONSUMER,
        &orch_e2e::bridge::section(
            &server.url(),
            "pc-b",
            &orch_e2e::bridge::jetstream("ORCH_CLAIM", "pc-b"),
        ),
    );
    let mut peer = RawNats::connect(server.port(), None).expect("peer");
    peer.subscribe("orch.e2e.test.ping").expect("subscribe");
    peer.flush().expect("flush");
    let mut b = start(&consumer);
    b.wait_for("app.started", BUILD).unwrap();
    let mut a = start(&producer);
    a.wait_for("app.started", BUILD).unwrap();

    // The peer watches node A's first ids go by.
    let mut seen = Vec::new();
    wait_until("the peer saw five of node A's ids", SHORT, || {
        peer.read_for(Duration::from_millis(100)).expect("read");
        for message in peer.messages.drain(..) {
            let Some(id) = message.header("Nats-Msg-Id") else {
                continue;
            };
            let mut parts = id.rsplitn(3, '-');
            let (Some(tag), Some(seq), Some("pc-a")) = (parts.next(), parts.next(), parts.next())
            else {
                panic!("an id of another shape: {id}");
            };
            assert_eq!(tag.len(), 16, "{id}");
            let tag = u64::from_str_radix(tag, 16).expect("a hex tag");
            seen.push((seq.parse::<u64>().expect("a sequence"), tag));
        }
        seen.len() >= 5
    });
    // It claims what would be A's next 200 ids (10 s of pings), under A's
    // name and under its own, on a topic nobody reads.
    let claims = guesses("pc-a", &seen, 200);
    for (n, id) in claims.iter().enumerate() {
        let origin = if n % 2 == 0 { "pc-a" } else { "peer" };
        let envelope = format!("{origin} mod-dummy-producer {n} {} 1", now_ms());
        let headers = [
            ("Nats-Msg-Id", id.as_str()),
            ("Orch-Envelope", envelope.as_str()),
        ];
        peer.publish("orch.e2e.test.claimed", None, &headers, b"{}")
            .expect("publish");
    }
    peer.flush().expect("the server took them");
    a.collect_for(Duration::from_millis(100));
    let claimed_at = a.lines_with("Published test.ping").len();
    // A goes on well past the claimed ids.
    wait_until("node A publishes 150 more pings", SHORT, || {
        a.collect_for(Duration::from_millis(200));
        a.lines_with("Published test.ping").len() >= claimed_at + 150
    });
    a.stop_cleanly();
    let sent = a.lines_with("Published test.ping").len() as u64;
    // (The last few a producer logs while it stops may not be exported.)
    wait_until("node B has all of node A's pings", SHORT, || {
        b.collect_for(Duration::from_millis(200));
        b.pings_received("mod-dummy-consumer").len() as u64 + 3 >= sent
    });
    b.collect_for(Duration::from_secs(1));
    b.stop_cleanly();
    let got = b.pings_received("mod-dummy-consumer");
    let expected: Vec<u64> = (1..=got.len() as u64).collect();
    assert_eq!(
        got,
        expected,
        "{} claims; node B's pings have a gap\n{}",
        claims.len(),
        b.output()
    );
    assert!(
        got.len() as u64 + 3 >= sent,
        "sent {sent}, got {}",
        got.len()
    );
}

#[test]
fn messages_refused_for_good_are_terminated_once_and_the_durable_goes_on() {
    let server = NatsServer::start().expect("nats-server");
    let main = format!(
        "max_event_bytes: 1024\n{}",
        orch_e2e::bridge::section(
            &server.url(),
            "tiny-b",
            &orch_e2e::bridge::jetstream("ORCH_TERM", "tiny-b")
        )
    );
    // The stream and node B's durable exist already, made as an earlier
    // version made them (no max_deliver): the bridge brings it up to date.
    let mut peer = RawNats::connect(server.port(), None).expect("peer");
    let stream = r#"{"name":"ORCH_TERM","subjects":["orch.e2e.>"],"storage":"file"}"#;
    let durable = r#"{"stream_name":"ORCH_TERM","config":{"durable_name":"tiny-b",
        "ack_policy":"explicit","deliver_policy":"all","ack_wait":10000000000,
        "max_ack_pending":1000,"filter_subjects":["orch.e2e.test.>"]}}"#;
    for (subject, body) in [
        ("$JS.API.STREAM.CREATE.ORCH_TERM", stream),
        ("$JS.API.CONSUMER.CREATE.ORCH_TERM.tiny-b", durable),
    ] {
        let answer = peer
            .request(subject, body.as_bytes())
            .expect("JetStream API");
        let answer = String::from_utf8_lossy(&answer.payload).into_owned();
        assert!(!answer.contains("\"error\""), "{subject}: {answer}");
    }
    assert_eq!(
        consumer_info(&mut peer, "ORCH_TERM", "tiny-b")["config"]["max_deliver"],
        -1
    );
    let consumer = Scenario::with_main(CONSUMER, &main);
    let mut b = start(&consumer);
    b.wait_for("JetStream stream 'ORCH_TERM' holds orch.e2e.>", BUILD)
        .unwrap();
    b.wait_for("app.started", BUILD).unwrap();
    let big = format!(
        r#"{{"message":"big","seq":1,"pad":"{}"}}"#,
        "p".repeat(2_000)
    );
    let started = Instant::now();
    for n in 0..1_000 {
        let published = if n % 2 == 0 {
            // An orchestrator's event over node B's max_event_bytes.
            let id = format!("big-{n}");
            let envelope = format!("peer mod-x {n} {} 1", now_ms());
            let headers = [
                ("Nats-Msg-Id", id.as_str()),
                ("Orch-Envelope", envelope.as_str()),
            ];
            peer.publish("orch.e2e.test.ping", None, &headers, big.as_bytes())
        } else {
            // Another client's payload that is not JSON.
            let id = format!("text-{n}");
            let headers = [("Nats-Msg-Id", id.as_str())];
            peer.publish("orch.e2e.test.ping", None, &headers, b"not json")
        };
        published.expect("publish");
    }
    peer.flush().expect("the server took them");
    wait_until("node B refuses 1,000", SHORT, || {
        b.collect_for(Duration::from_millis(200));
        counter(b.pid(), "import_rejected") >= 1_000
    });
    let took = started.elapsed();
    // Past a redelivery's time (1 s then) and the acknowledgement wait
    // (10 s): still 1,000, none redelivered.
    b.collect_for(Duration::from_secs(12));
    let status = orch_e2e::bridge::status(b.pid());
    assert_eq!(status["import_rejected"], 1_000, "{status:#}");
    assert_eq!(status["import_refused"], 0, "{status:#}");
    let info = consumer_info(&mut peer, "ORCH_TERM", "tiny-b");
    assert_eq!(info["num_redelivered"], 0, "{info:#}");
    assert_eq!(redeliveries(&info), 0, "each delivered once: {info:#}");
    assert_eq!(info["num_ack_pending"], 0, "{info:#}");
    assert_eq!(info["config"]["max_deliver"], 20, "{info:#}");
    assert!(
        info["delivered"]["stream_seq"].as_u64() >= Some(1_000),
        "{info:#}"
    );
    // The durable goes on: a valid event after them is delivered.
    until_delivered(&server, &mut [&mut b], "after");
    let status = orch_e2e::bridge::status(b.pid());
    assert!(status["imported"].as_u64() >= Some(1), "{status:#}");
    b.stop_cleanly();
    let said = b.lines_with(REFUSED_SAID);
    assert!(
        !said.is_empty() && said.len() as u64 <= 2 + took.as_secs() / 5,
        "{} lines in {took:?}:\n{}",
        said.len(),
        said.join("\n")
    );
    assert!(said[0].contains("max_event_bytes"), "{}", said[0]);
    assert!(
        !b.output().contains("Received test.ping: big"),
        "{}",
        b.output()
    );
}

#[test]
fn a_delivery_a_full_mailbox_refuses_for_now_is_asked_for_again_later_and_handled() {
    let server = NatsServer::start().expect("nats-server");
    // One event at a time, 300 ms each, and a publish waits 50 ms for room:
    // a burst is refused for now, again and again.
    let slow = "modules:\n  - name: fixture-slow-consumer\n    \
                mailbox: {capacity: 1, overflow: block}\n    \
                config: {topic: test.ping, delay_ms: 300}\n";
    let main = format!(
        "timeouts:\n  publish: 50ms\n{}",
        orch_e2e::bridge::section(
            &server.url(),
            "slow-b",
            &orch_e2e::bridge::jetstream("ORCH_SLOW", "slow-b")
        )
    );
    let consumer = Scenario::with_main(slow, &main);
    let mut b = start(&consumer);
    b.wait_for("JetStream stream 'ORCH_SLOW' holds orch.e2e.>", BUILD)
        .unwrap();
    b.wait_for("app.started", BUILD).unwrap();
    let mut peer = RawNats::connect(server.port(), None).expect("peer");
    // Ids of this run alone (the window of handled ids outlives the
    // process, in target/orch/bridge/slow-b.ids).
    let run = now_ms();
    for n in 1..=10 {
        let id = format!("burst-{run}-{n}");
        let payload = format!(r#"{{"message":"burst","seq":{n}}}"#);
        peer.publish(
            "orch.e2e.test.ping",
            None,
            &[("Nats-Msg-Id", id.as_str())],
            payload.as_bytes(),
        )
        .expect("publish");
    }
    peer.flush().expect("the server took them");
    // Each is handled in the end: acknowledged, nothing left pending.
    wait_until(
        "all ten are handled after retries",
        Duration::from_secs(60),
        || {
            b.collect_for(Duration::from_millis(300));
            let info = consumer_info(&mut peer, "ORCH_SLOW", "slow-b");
            info["ack_floor"]["stream_seq"].as_u64() >= Some(10) && info["num_ack_pending"] == 0
        },
    );
    // Every refusal was one redelivery (a Nak), and each of the ten was
    // delivered to the module once in the end.
    let info = consumer_info(&mut peer, "ORCH_SLOW", "slow-b");
    let status = orch_e2e::bridge::status(b.pid());
    let refused = status["import_refused"].as_u64().unwrap_or(0);
    assert!(refused >= 1, "{status:#}\n{}", b.output());
    assert_eq!(redeliveries(&info), refused, "{info:#}\n{status:#}");
    assert_eq!(status["import_rejected"], 0, "{status:#}");
    assert_eq!(status["imported"], 10, "{status:#}");
    b.stop_cleanly();
    let said = b.lines_with("was not taken here");
    assert!(!said.is_empty() && said.len() <= 15, "{}", said.join("\n"));
    assert!(
        said[0].contains("asked for again later (try 1 of 20)"),
        "{}",
        said[0]
    );
}
