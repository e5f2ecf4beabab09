//! The NATS bridge end to end: two real orchestrators (two config folders of
//! this workspace) and a real nats-server (provisioned by the tests
//! themselves, on a loopback port it picks, with a temporary store).

use std::time::Duration;

use nix::sys::signal::Signal;
use orch_e2e::{NatsServer, OrchProcess, Scenario, wait_until};

/// Generous: the first run of a test may compile the modules.
const BUILD: Duration = Duration::from_secs(240);
const SHORT: Duration = Duration::from_secs(20);

const PRODUCER: &str = "modules:\n  - name: fixture-event-log\n    config:\n      also: [\"bridge.>\"]\n  \
     - name: mod-dummy-producer\n    config:\n      publish_interval: 50ms\n  \
     - name: mod-dummy-consumer\n";
const CONSUMER: &str = "modules:\n  - name: fixture-event-log\n    config:\n      also: [\"bridge.>\"]\n  \
     - name: mod-dummy-consumer\n";

fn start(scenario: &Scenario, env: &[(&str, &str)]) -> OrchProcess {
    let mut command = scenario.command(&["run"]);
    for (key, value) in env {
        command.env(key, value);
    }
    OrchProcess::spawn(command).expect("spawn cargo-orch")
}

/// The sequence numbers the consumer logged, in order.
fn received(orch: &OrchProcess) -> Vec<u64> {
    orch.pings_received("mod-dummy-consumer")
}

/// `seqs` is a run of consecutive numbers: no gap, no repeat.
fn assert_consecutive(seqs: &[u64], what: &str, output: &str) {
    assert!(seqs.len() > 5, "{what}: too few pings {seqs:?}\n{output}");
    let first = seqs[0];
    let expected: Vec<u64> = (first..first + seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "{what}: a gap or a repeat\n{output}");
}

#[test]
fn two_orchestrators_share_events_through_nats_and_none_loops_back() {
    let server = NatsServer::start().expect("nats-server");
    let producer = Scenario::with_main(
        PRODUCER,
        &orch_e2e::bridge::section(&server.url(), "node-a", ""),
    );
    let consumer = Scenario::with_main(
        CONSUMER,
        &orch_e2e::bridge::section(&server.url(), "node-b", ""),
    );
    let mut b = start(&consumer, &[]);
    b.wait_for("app.started", BUILD).unwrap();
    b.wait_for("EVENT bridge.connected {\"server\":\"127.0.0.1:", SHORT)
        .unwrap();
    let mut a = start(&producer, &[]);
    a.wait_for("app.started", BUILD).unwrap();
    a.wait_for("(core NATS: at most once)", SHORT).unwrap();
    wait_until("node-b receives node-a's pings", SHORT, || {
        b.collect_for(Duration::from_millis(100));
        received(&b).len() >= 20
    });
    a.collect_for(Duration::from_millis(500));
    a.stop_cleanly();
    b.collect_for(Duration::from_millis(500));
    b.stop_cleanly();
    // Both export and import test.>: each ping reaches each consumer once.
    let at_a = received(&a);
    let at_b = received(&b);
    assert_consecutive(&at_a, "node-a (local)", &a.output());
    assert_consecutive(&at_b, "node-b (through NATS)", &b.output());
    // The payload's bytes and the source module crossed unchanged.
    assert!(
        b.lines_with("Received test.ping: hello (seq").len() == at_b.len(),
        "{}",
        b.output()
    );
}

/// Two orchestrators given one node id by mistake: each would take the
/// other's events for its own come back and drop them in silence. The one
/// that receives them says why, names the fix and counts them; the producer,
/// which gets its own events back, does not take itself for a namesake.
#[test]
fn two_orchestrators_given_one_node_id_are_warned_about_not_silently_deaf() {
    let server = NatsServer::start().expect("nats-server");
    let producer = Scenario::with_main(
        PRODUCER,
        &orch_e2e::bridge::section(&server.url(), "twin", ""),
    );
    let consumer = Scenario::with_main(
        CONSUMER,
        &orch_e2e::bridge::section(&server.url(), "twin", ""),
    );
    let mut b = start(&consumer, &[]);
    b.wait_for("EVENT bridge.connected", BUILD).unwrap();
    let mut a = start(&producer, &[]);
    let warned = b
        .wait_for(
            "[BRIDGE] another orchestrator publishes as node 'twin'",
            BUILD,
        )
        .unwrap();
    assert!(
        warned
            .text
            .contains("give each orchestrator its own `bridge.nats.node`"),
        "{}",
        warned.text
    );
    wait_until("node-b counts the namesake's messages", SHORT, || {
        b.collect_for(Duration::from_millis(100));
        orch_e2e::bridge::status(b.pid())["import_namesakes"].as_u64() >= Some(3)
    });
    a.wait_for(
        "[mod-dummy-consumer] Received test.ping: hello (seq 5)",
        SHORT,
    )
    .unwrap();
    a.stop_cleanly();
    b.stop_cleanly();
    assert!(received(&b).is_empty(), "{}", b.output());
    assert!(
        a.lines_with("another orchestrator publishes").is_empty(),
        "{}",
        a.output()
    );
}

/// An event larger than the server's `max_payload` can never be sent: it
/// stays on its node with a warning that names it and the fix, and does not
/// hold up the events behind it (JetStream would otherwise try it for ever).
#[test]
fn with_jetstream_an_event_too_large_for_the_server_stays_local_and_holds_up_nothing() {
    let server = NatsServer::start_with_settings("max_payload: 1024\n").expect("nats-server");
    let js = |node: &str| orch_e2e::bridge::jetstream("ORCH_BIG", node);
    let big = "b".repeat(2_000);
    let modules = format!(
        "modules:\n  - name: big-producer\n    package: mod-dummy-producer\n    config:\n      \
         publish_interval: 200ms\n      message: {big}\n  \
         - name: mod-dummy-producer\n    config:\n      publish_interval: 50ms\n"
    );
    let producer = Scenario::with_main(
        &modules,
        &orch_e2e::bridge::section(&server.url(), "big-a", &js("big-a")),
    );
    let consumer = Scenario::with_main(
        CONSUMER,
        &orch_e2e::bridge::section(&server.url(), "big-b", &js("big-b")),
    );
    let mut b = start(&consumer, &[]);
    b.wait_for("EVENT bridge.connected", BUILD).unwrap();
    let mut a = start(&producer, &[]);
    let warned = a
        .wait_for(
            "[BRIDGE] 'test.ping' from module 'big-producer' is not exported",
            BUILD,
        )
        .unwrap();
    assert!(warned.text.contains("max_payload"), "{}", warned.text);
    // The small pings go on crossing after the big ones were refused.
    let crossed = received(&b).len();
    wait_until("small pings go on crossing", SHORT, || {
        b.collect_for(Duration::from_millis(100));
        received(&b).len() >= crossed + 20
    });
    let too_large = orch_e2e::bridge::status(a.pid())["export_too_large"].as_u64();
    assert!(too_large >= Some(1), "{too_large:?}");
    a.stop_cleanly();
    b.stop_cleanly();
    assert!(!b.output().contains(&big[..100]), "a big event crossed");
}

/// Another NATS client (no orchestrator, no envelope) publishing under the
/// prefix: a JSON payload reaches the local subscribers, one that is not JSON
/// is refused with the reason (every subscriber counts on one JSON value).
#[test]
fn a_message_from_a_plain_nats_client_is_delivered_if_json_and_refused_if_not() {
    let server = NatsServer::start().expect("nats-server");
    let consumer = Scenario::with_main(
        CONSUMER,
        &orch_e2e::bridge::section(&server.url(), "plain-b", ""),
    );
    let mut b = start(&consumer, &[]);
    b.wait_for("EVENT bridge.connected", BUILD).unwrap();
    b.wait_for("app.started", SHORT).unwrap();
    wait_until("a plain client's JSON ping is delivered", SHORT, || {
        server
            .publish_raw("orch.e2e.test.ping", br#"{"message":"outside","seq":1}"#)
            .expect("publish");
        b.collect_for(Duration::from_millis(200));
        !b.lines_with("Received test.ping: outside (seq 1)")
            .is_empty()
    });
    server
        .publish_raw("orch.e2e.test.ping", b"not json at all")
        .expect("publish");
    let refused = b
        .wait_for("came from outside an orchestrator", SHORT)
        .unwrap();
    assert!(
        refused.text.contains("'orch.e2e.test.ping'"),
        "{}",
        refused.text
    );
    assert!(refused.text.contains("not JSON"), "{}", refused.text);
    b.stop_cleanly();
    assert!(
        !b.output().contains("not json at all"),
        "the bytes never reached a module\n{}",
        b.output()
    );
}

/// A stream of the configured name that exists and holds other subjects
/// (another prefix's): nothing exported would be stored and nothing imported
/// seen. The bridge names the stream, what it holds and the fix, instead of
/// claiming it holds the prefix.
#[test]
fn with_jetstream_a_stream_that_holds_other_subjects_is_named_as_the_cause() {
    let server = NatsServer::start().expect("nats-server");
    let stream = orch_e2e::bridge::jetstream("ORCH_SHARED", "first");
    let first = Scenario::with_main(
        CONSUMER,
        &orch_e2e::bridge::section(&server.url(), "first", &stream),
    );
    let mut x = start(&first, &[]);
    x.wait_for(
        "[BRIDGE] JetStream stream 'ORCH_SHARED' holds orch.e2e.>",
        BUILD,
    )
    .unwrap();
    x.stop_cleanly();
    let other = orch_e2e::bridge::section(
        &server.url(),
        "second",
        &orch_e2e::bridge::jetstream("ORCH_SHARED", "second"),
    )
    .replace("subject_prefix: orch.e2e", "subject_prefix: orch.other");
    let second = Scenario::with_main(CONSUMER, &other);
    let mut y = start(&second, &[]);
    let named = y
        .wait_for(
            "[BRIDGE] the JetStream stream 'ORCH_SHARED' exists and holds [orch.e2e.>], not \
             orch.other.>",
            BUILD,
        )
        .unwrap();
    assert!(
        named.text.contains("nats stream edit ORCH_SHARED"),
        "{}",
        named.text
    );
    y.stop_cleanly();
    assert!(
        y.lines_with("JetStream stream 'ORCH_SHARED' holds")
            .is_empty(),
        "{}",
        y.output()
    );
}

#[test]
fn with_jetstream_a_broker_restart_mid_stream_loses_and_repeats_nothing() {
    let mut server = NatsServer::start().expect("nats-server");
    let js = |node: &str| orch_e2e::bridge::jetstream("ORCH_E2E", node);
    let with_metrics = format!("{}metrics:\n  listen: 0\n", js("js-a"));
    let producer = Scenario::with_main(
        PRODUCER,
        &orch_e2e::bridge::section(&server.url(), "js-a", &with_metrics),
    );
    let consumer = Scenario::with_main(
        CONSUMER,
        &orch_e2e::bridge::section(&server.url(), "js-b", &js("js-b")),
    );
    let mut b = start(&consumer, &[]);
    b.wait_for("app.started", BUILD).unwrap();
    b.wait_for("JetStream stream 'ORCH_E2E' holds orch.e2e.>", SHORT)
        .unwrap();
    let mut a = start(&producer, &[]);
    let metrics = a.metrics_address(BUILD);
    a.wait_for("app.started", BUILD).unwrap();
    wait_until("pings flow through the stream", SHORT, || {
        b.collect_for(Duration::from_millis(100));
        received(&b).len() >= 10
    });
    server.stop();
    a.wait_for("EVENT bridge.disconnected", SHORT).unwrap();
    // The producer goes on while the broker is away: its pings wait in the outbox.
    a.collect_for(Duration::from_millis(1500));
    let away = orch_e2e::bridge::status(a.pid());
    assert_eq!(away["connected"], false, "{away:#}");
    assert!(
        away["outbox_depth"].as_u64().is_some_and(|n| n > 0),
        "{away:#}"
    );
    assert_eq!(away["node"], "js-a");
    server.restart().expect("nats-server again");
    wait_until("both nodes reconnect", SHORT, || {
        a.collect_for(Duration::from_millis(100));
        b.collect_for(Duration::from_millis(100));
        a.lines_with("EVENT bridge.connected").len() >= 2
            && b.lines_with("EVENT bridge.connected").len() >= 2
    });
    let before = received(&b).len();
    wait_until("pings flow again, the waiting ones first", SHORT, || {
        b.collect_for(Duration::from_millis(100));
        received(&b).len() >= before + 40
    });
    let scrape = orch_e2e::parse_prometheus(
        &orch_e2e::http_get(&metrics, "/metrics")
            .expect("GET /metrics")
            .1,
    );
    assert_eq!(scrape.get("orch_bridge_connected"), Some(&1.0));
    assert!(
        scrape
            .get("orch_bridge_reconnects_total")
            .is_some_and(|&n| n >= 1.0)
    );
    assert!(
        scrape
            .get("orch_bridge_messages_exported_total")
            .is_some_and(|&n| n > 10.0)
    );
    let back = orch_e2e::bridge::status(b.pid());
    assert_eq!(back["connected"], true, "{back:#}");
    assert!(
        back["imported"].as_u64().is_some_and(|n| n > 10),
        "{back:#}"
    );
    assert!(
        back["reconnects"].as_u64().is_some_and(|n| n >= 1),
        "{back:#}"
    );
    a.stop_cleanly();
    b.collect_for(Duration::from_millis(1000));
    b.stop_cleanly();
    assert_consecutive(
        &received(&b),
        "node-b across the broker restart",
        &b.output(),
    );
    let sent = a.lines_with("Published test.ping").len();
    let got = received(&b).len();
    assert!(
        got + 3 >= sent,
        "sent {sent}, received {got}\n{}",
        b.output()
    );
}

#[test]
fn a_token_from_the_environment_authenticates_and_never_reaches_the_log() {
    let token = "s3cret-nats-token-7";
    let server = NatsServer::start_with_token(Some(token)).expect("nats-server");
    let auth = "    auth: {token: \"${E2E_NATS_TOKEN}\"}\n";
    let consumer = Scenario::with_main(
        CONSUMER,
        &orch_e2e::bridge::section(&server.url(), "tok-b", auth),
    );
    let mut b = start(&consumer, &[("E2E_NATS_TOKEN", token)]);
    b.wait_for("EVENT bridge.connected", BUILD).unwrap();
    b.stop_cleanly();
    assert!(!b.output().contains(token), "{}", b.output());
    let wrong = Scenario::with_main(
        CONSUMER,
        &orch_e2e::bridge::section(&server.url(), "tok-c", auth),
    );
    let mut c = start(&wrong, &[("E2E_NATS_TOKEN", "wrong-token-123")]);
    c.wait_for("app.started", BUILD).unwrap();
    c.wait_for_match(
        |line| line.contains("[BRIDGE]") && line.to_lowercase().contains("authorization"),
        "an authorization error",
        SHORT,
    )
    .unwrap();
    c.stop_cleanly();
    assert!(!c.output().contains("wrong-token-123"), "{}", c.output());
}

/// The sequence numbers in a log file (it is written directly, so what a
/// SIGKILLed process had logged is there).
fn received_in_log(path: &std::path::Path) -> Vec<u64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    orch_e2e::ping_seqs(text.lines(), "mod-dummy-consumer")
}

#[test]
fn with_jetstream_a_consumer_node_killed_and_restarted_misses_nothing_and_repeats_nothing() {
    let server = NatsServer::start().expect("nats-server");
    let js = |node: &str| orch_e2e::bridge::jetstream("ORCH_E2E", node);
    let producer = Scenario::with_main(
        PRODUCER,
        &orch_e2e::bridge::section(&server.url(), "kill-a", &js("kill-a")),
    );
    let consumer = Scenario::with_main(
        CONSUMER,
        &orch_e2e::bridge::section(&server.url(), "kill-b", &js("kill-b")),
    );
    let mut a = start(&producer, &[]);
    a.wait_for("app.started", BUILD).unwrap();
    let mut b = start(&consumer, &[]);
    wait_until("node-b receives pings", BUILD, || {
        b.collect_for(Duration::from_millis(100));
        received(&b).len() >= 15
    });
    b.signal(Signal::SIGKILL).expect("SIGKILL");
    b.wait_exit(Duration::from_secs(10)).expect("killed");
    // The producer goes on: the stream keeps what node-b misses.
    a.collect_for(Duration::from_millis(1500));
    let mut b = start(&consumer, &[]);
    b.wait_for("app.started", BUILD).unwrap();
    wait_until("the restarted node-b catches up and goes on", SHORT, || {
        b.collect_for(Duration::from_millis(100));
        received(&b).len() >= 40
    });
    a.stop_cleanly();
    // A ping on its way to node-b when it was killed comes again once the
    // acknowledgement wait has passed, after later ones (bridge guide): wait
    // until every ping up to the last one is there.
    let every_ping_so_far = || {
        let mut seqs = received_in_log(&consumer.log_file());
        seqs.sort_unstable();
        seqs.dedup();
        seqs.last().is_some_and(|&last| seqs.len() as u64 == last)
    };
    wait_until(
        "the ping in flight at the kill comes again",
        // orch_bridge::durable::ACK_WAIT (10 s), then some.
        Duration::from_secs(10) + SHORT,
        || {
            b.collect_for(Duration::from_millis(100));
            every_ping_so_far()
        },
    );
    b.stop_cleanly();
    let mut all = received_in_log(&consumer.log_file());
    all.sort_unstable();
    assert_consecutive(&all, "node-b across its SIGKILL", &b.output());
    assert_eq!(all.first(), Some(&1), "from the first ping on");
}

#[test]
#[ignore = "slow lane (a three-server cluster): cargo xtask ci runs it"]
fn with_jetstream_in_a_three_server_cluster_the_loss_of_the_connected_server_loses_nothing() {
    let mut cluster = orch_e2e::NatsCluster::start(3).expect("a cluster");
    let urls = format!("[{}]", cluster.urls().join(", "));
    let js = |node: &str| {
        format!(
            "{}      replicas: 3\n",
            orch_e2e::bridge::jetstream("ORCH_E2E", node)
        )
    };
    let producer = Scenario::with_main(
        PRODUCER,
        &orch_e2e::bridge::section(&urls, "ha-a", &js("ha-a")),
    );
    let consumer = Scenario::with_main(
        CONSUMER,
        &orch_e2e::bridge::section(&urls, "ha-b", &js("ha-b")),
    );
    let mut b = start(&consumer, &[]);
    b.wait_for("app.started", BUILD).unwrap();
    let mut a = start(&producer, &[]);
    a.wait_for("app.started", BUILD).unwrap();
    wait_until(
        "pings flow through the cluster",
        Duration::from_secs(60),
        || {
            b.collect_for(Duration::from_millis(100));
            received(&b).len() >= 10
        },
    );
    // The server the producer is connected to goes down.
    let connected = a
        .wait_for("[BRIDGE] connected to NATS at 127.0.0.1:", SHORT)
        .unwrap();
    let port: u16 = connected
        .text
        .rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("{}", connected.text));
    let victim = cluster
        .servers
        .iter()
        .position(|s| s.port() == port)
        .unwrap_or_else(|| panic!("port {port} is none of {:?}", cluster.urls()));
    cluster.servers[victim].kill();
    a.wait_for("EVENT bridge.disconnected", SHORT).unwrap();
    wait_until("node-a fails over to another server", SHORT, || {
        a.collect_for(Duration::from_millis(100));
        a.lines_with("EVENT bridge.connected").len() >= 2
    });
    let before = received(&b).len();
    wait_until("pings flow again", Duration::from_secs(30), || {
        b.collect_for(Duration::from_millis(100));
        received(&b).len() >= before + 30
    });
    a.stop_cleanly();
    // A ping on its way to node-b when the consumer's server died comes again
    // from the new leader after the acknowledgement wait (10 s): later than
    // those after it, but it comes.
    wait_until(
        "every ping reached node-b, one in flight at the fail-over too",
        Duration::from_secs(30),
        || {
            b.collect_for(Duration::from_millis(200));
            let mut seqs = received(&b);
            seqs.sort_unstable();
            seqs.dedup();
            seqs.last().is_some_and(|&last| seqs.len() as u64 == last)
        },
    );
    b.collect_for(Duration::from_millis(1000));
    b.stop_cleanly();
    let mut seqs = received(&b);
    seqs.sort_unstable();
    assert_consecutive(
        &seqs,
        "node-b across the fail-over (in any order)",
        &b.output(),
    );
    let sent = a.lines_with("Published test.ping").len() as u64;
    assert!(
        seqs.last().is_some_and(|&last| last + 3 >= sent),
        "sent {sent}, node-b got up to {:?}",
        seqs.last()
    );
}

#[test]
fn an_unreachable_server_is_named_and_never_holds_the_orchestrator_up() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
    let url = format!("nats://127.0.0.1:{closed}");
    let consumer = Scenario::with_main(CONSUMER, &orch_e2e::bridge::section(&url, "lonely", ""));
    let mut b = start(&consumer, &[]);
    b.wait_for("app.started", BUILD).unwrap();
    b.wait_for(
        &format!("[BRIDGE] cannot reach NATS at {url} after 5 s: still trying"),
        SHORT,
    )
    .unwrap();
    b.stop_cleanly();
}
