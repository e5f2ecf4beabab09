//! Requests across nodes end to end: `ctx.request` on node A answered by
//! modules on nodes B and C through a real nats-server (loopback, a port it
//! picks), each orchestrator a process of its own (`bridge.nats.ask` on A,
//! `bridge.nats.serve` on B and C).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use orch_e2e::{NatsServer, OrchProcess, RawNats, Scenario};

/// Generous: the first run may compile the modules.
const BUILD: Duration = Duration::from_secs(240);
const SHORT: Duration = Duration::from_secs(20);
/// One batch of the asker: 1,000 requests, one every 5 ms.
const BATCH: usize = 1_000;
const BATCH_TIME: Duration = Duration::from_secs(60);

const SERVICE: &str = "orch-e2e";

fn start(scenario: &Scenario) -> OrchProcess {
    OrchProcess::spawn(scenario.command(&["run"])).expect("spawn cargo-orch")
}

/// A node answering `work.ask` (module `responder`), and on B `work.slow`
/// too, slowly (module `slow-responder`).
fn responder_node(url: &str, node: &str, slow: bool) -> Scenario {
    let mut modules = format!(
        "modules:\n  - name: responder\n    package: fixture-node-responder\n    config:\n      \
         node: {node}\n"
    );
    if slow {
        modules.push_str(&format!(
            "  - name: slow-responder\n    package: fixture-node-responder\n    config:\n      \
             node: {node}\n      topic: work.slow\n      delay: 700ms\n"
        ));
    }
    let main = orch_e2e::bridge::section(url, node, "    serve: [work.ask, work.slow]\n");
    Scenario::with_main(&modules, &main)
}

/// Node A: `asker` sends 1,000 requests on `work.ask` (2 s timeout),
/// `slow-asker` two on `work.slow` (300 ms timeout).
fn asker_node(url: &str) -> Scenario {
    let modules = format!(
        "modules:\n  - name: asker\n    package: fixture-requester\n    config:\n      \
         label: asker\n      ask: work.ask\n      every: 5ms\n      timeout: 2s\n      \
         count: {BATCH}\n  \
         - name: slow-asker\n    package: fixture-requester\n    config:\n      \
         label: slow-asker\n      ask: work.slow\n      every: 1s\n      timeout: 300ms\n      \
         count: 2\n"
    );
    let main = orch_e2e::bridge::section(url, "node-a", "    ask: [\"work.>\"]\n");
    Scenario::with_main(&modules, &main)
}

/// One answer the asker logged.
#[derive(Debug, Clone)]
struct Answer {
    kind: String,
    id: u64,
    ms: u64,
    node: Option<String>,
    stray: bool,
}

/// Every answer `label` logged, in order.
fn answers(orch: &OrchProcess, label: &str) -> Vec<Answer> {
    let mut found = Vec::new();
    for line in orch.output().lines() {
        let stray = line.contains(&format!("STRAY {label} kind="));
        if !stray && !line.contains(&format!("ANSWER {label} kind=")) {
            continue;
        }
        let field = |name: &str| {
            line.split(&format!(" {name}="))
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .unwrap_or_default()
                .to_owned()
        };
        let node = line
            .split("\"node\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next().map(str::to_owned));
        found.push(Answer {
            kind: field("kind"),
            id: field("id").parse().unwrap_or(u64::MAX),
            ms: field("ms").parse().unwrap_or(u64::MAX),
            node,
            stray,
        });
    }
    found
}

/// Waits until `label` has logged `count` answers in all.
fn wait_answers(orch: &mut OrchProcess, label: &str, count: usize) -> Vec<Answer> {
    let until = Instant::now() + BATCH_TIME;
    loop {
        orch.collect_for(Duration::from_millis(200));
        let all = answers(orch, label);
        if all.len() >= count || Instant::now() > until {
            assert_eq!(all.len(), count, "answers of {label}\n{}", orch.output());
            return all;
        }
    }
}

/// The requests each node's `work.ask` endpoint answered and refused, by
/// node, from the micro protocol (`$SRV.INFO` names the node of each
/// instance, `$SRV.STATS` counts).
fn served_by_node(port: u16) -> BTreeMap<String, (u64, u64)> {
    let mut nats = RawNats::connect(port, None).expect("connect");
    let ask = |nats: &mut RawNats, verb: &str| -> Vec<serde_json::Value> {
        let inbox = format!("_INBOX.raw.{verb}");
        nats.subscribe(&inbox).expect("subscribe");
        nats.publish(&format!("$SRV.{verb}.{SERVICE}"), Some(&inbox), &[], b"")
            .expect("publish");
        nats.read_for(Duration::from_millis(700)).expect("read");
        let answers = nats
            .messages
            .iter()
            .filter(|m| m.subject == inbox)
            .map(|m| serde_json::from_slice(&m.payload).expect("JSON"))
            .collect();
        nats.messages.clear();
        answers
    };
    let infos = ask(&mut nats, "INFO");
    let stats = ask(&mut nats, "STATS");
    let mut by_node = BTreeMap::new();
    for info in &infos {
        let node = info["metadata"]["node"].as_str().expect("node").to_owned();
        let stat = stats
            .iter()
            .find(|s| s["id"] == info["id"])
            .unwrap_or_else(|| panic!("no STATS of {node}: {stats:?}"));
        let endpoint = stat["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["subject"] == "orch-req.orch.e2e.work.ask");
        let counts = endpoint.map_or((0, 0), |e| {
            (
                e["num_requests"].as_u64().unwrap_or(0),
                e["num_errors"].as_u64().unwrap_or(0),
            )
        });
        by_node.insert(node, counts);
    }
    by_node
}

/// Every request of one batch got exactly one answer, none twice.
fn assert_once_each(batch: &[Answer], output: &str) {
    assert_eq!(batch.len(), BATCH, "{output}");
    assert!(batch.iter().all(|a| !a.stray), "a stray answer\n{output}");
    let ids: HashSet<u64> = batch.iter().map(|a| a.id).collect();
    assert_eq!(ids.len(), BATCH, "an id answered twice\n{output}");
}

#[test]
fn requests_spread_over_nodes_follow_stops_and_late_replies_are_refused() {
    let server = NatsServer::start().expect("nats-server");
    let url = server.url();
    let b_config = responder_node(&url, "node-b", true);
    let c_config = responder_node(&url, "node-c", false);
    let a_config = asker_node(&url);
    let mut b = start(&b_config);
    let mut c = start(&c_config);
    for node in [&mut b, &mut c] {
        node.wait_for("app.started", BUILD).unwrap();
        node.wait_for("[BRIDGE] serving requests on 'work.ask'", SHORT)
            .unwrap();
    }
    b.wait_for("[BRIDGE] serving requests on 'work.slow'", SHORT)
        .unwrap();
    let mut a = start(&a_config);
    a.wait_for("app.started", BUILD).unwrap();

    // 1,000 requests from A, spread over B and C, each answered once.
    let first = wait_answers(&mut a, "asker", BATCH);
    assert_once_each(&first, &a.output());
    let replies: Vec<&Answer> = first.iter().filter(|a| a.kind == "Reply").collect();
    let count = |kind: &str| first.iter().filter(|a| a.kind == kind).count();
    assert_eq!(
        replies.len() + count("Timeout") + count("NoResponders"),
        BATCH,
        "{}",
        a.output()
    );
    let from_b = replies
        .iter()
        .filter(|a| a.node.as_deref() == Some("node-b"))
        .count();
    let from_c = replies
        .iter()
        .filter(|a| a.node.as_deref() == Some("node-c"))
        .count();
    assert_eq!(from_b + from_c, replies.len(), "{}", a.output());
    assert!(replies.len() >= BATCH * 9 / 10, "{} replies", replies.len());
    for (node, n) in [("node-b", from_b), ("node-c", from_c)] {
        let share = n * 100 / replies.len();
        assert!((30..=70).contains(&share), "{node} answered {share}% ({n})");
    }
    // Each node's service counts what it answered.
    let served = served_by_node(server.port());
    assert_eq!(served.len(), 2, "{served:?}");
    // (num_requests counts the errors too.)
    let answered = |node: &str| (served[node].0 - served[node].1) as usize;
    assert_eq!(answered("node-b"), from_b, "{served:?}");
    assert_eq!(answered("node-c"), from_c, "{served:?}");
    // A's status counts what it asked and what came back.
    let counts = orch_e2e::bridge::status(a.pid())["requests"].clone();
    assert!(
        counts["asked"].as_u64().unwrap_or(0) >= replies.len() as u64
            && counts["replies"].as_u64().unwrap_or(0) >= replies.len() as u64,
        "{counts}"
    );

    // A slow responder: its late reply is refused on its node, the asker
    // gets its timeout (once) and nothing after.
    let slow = wait_answers(&mut a, "slow-asker", 2);
    for answer in &slow {
        assert_eq!(answer.kind, "Timeout", "{}", a.output());
        assert!(!answer.stray);
    }
    let refused = b
        .wait_for("REPLY REFUSED node-b", SHORT)
        .expect("the late reply is refused");
    assert!(
        refused.text.contains("already answered or has timed out"),
        "{}",
        refused.text
    );

    // B's responder stops: B lets go of its queue subscription, and no
    // request goes to B any more.
    orch_e2e::control_ok(&["stop", "responder"], b.pid());
    b.wait_for("[BRIDGE] no local subscriber of 'work.ask' left", SHORT)
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let b_before = served_by_node(server.port())["node-b"];
    orch_e2e::control_ok(&["restart", "asker"], a.pid());
    let second = wait_answers(&mut a, "asker", 2 * BATCH);
    let second = &second[BATCH..];
    assert_once_each(second, &a.output());
    for answer in second {
        assert_eq!(answer.kind, "Reply", "{answer:?}\n{}", a.output());
        assert_eq!(answer.node.as_deref(), Some("node-c"), "{answer:?}");
    }
    assert_eq!(
        served_by_node(server.port())["node-b"],
        b_before,
        "a request reached node-b after its responder stopped"
    );

    // C's stops too: with no responder left, "no responders" comes at once
    // (long before the 2 s timeout).
    orch_e2e::control_ok(&["stop", "responder"], c.pid());
    c.wait_for("[BRIDGE] no local subscriber of 'work.ask' left", SHORT)
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    orch_e2e::control_ok(&["restart", "asker"], a.pid());
    let third = wait_answers(&mut a, "asker", 3 * BATCH);
    let third = &third[2 * BATCH..];
    assert_once_each(third, &a.output());
    for answer in third {
        assert_eq!(answer.kind, "NoResponders", "{answer:?}\n{}", a.output());
        assert!(answer.ms < 500, "no responders after {} ms", answer.ms);
    }

    a.collect_for(Duration::from_millis(500));
    assert!(
        answers(&a, "asker").iter().all(|a| !a.stray)
            && answers(&a, "slow-asker").iter().all(|a| !a.stray),
        "{}",
        a.output()
    );
    for orch in [&mut a, &mut b, &mut c] {
        orch.stop_cleanly();
    }
}

/// Headers as a raw NATS client sends them.
type Headers<'a> = Vec<(&'a str, &'a str)>;

/// What a peer on the broker may send a serving node: a forged envelope, a
/// time left that is no number, a payload that is not JSON or too large, a
/// flood. Each is dropped and counted or answered within the caps; the node
/// keeps serving and stops cleanly.
#[test]
fn hostile_requests_never_crash_or_block_a_serving_node() {
    let server = NatsServer::start().expect("nats-server");
    let modules = "modules:\n  - name: responder\n    package: fixture-node-responder\n    \
                   config:\n      node: node-b\n";
    let main = format!(
        "max_event_bytes: 1024\n{}",
        orch_e2e::bridge::section(&server.url(), "node-b", "    serve: [work.ask]\n")
    );
    let config = Scenario::with_main(modules, &main);
    let mut b = start(&config);
    b.wait_for("[BRIDGE] serving requests on 'work.ask'", BUILD)
        .unwrap();
    let subject = "orch-req.orch.e2e.work.ask";
    let mut peer = RawNats::connect(server.port(), None).expect("connect");
    // A plain NATS client's well-formed request (JSON, no header) is answered.
    let plain = |peer: &mut RawNats| {
        let reply = peer.request(subject, b"{\"plain\":true}").expect("a reply");
        let reply: serde_json::Value = serde_json::from_slice(&reply.payload).expect("JSON");
        assert_eq!(reply["node"], "node-b", "{reply}");
    };
    plain(&mut peer);
    peer.subscribe("_INBOX.raw.>").expect("subscribe");
    let long = "n".repeat(100);
    let big = format!("\"{}\"", "x".repeat(4_000));
    let envelope = "node-x asker 1 1700000000000 1";
    let hostile: Vec<(Headers, &[u8])> = vec![
        (vec![("Orch-Envelope", long.as_str())], b"{}"),
        (vec![("Orch-Envelope", "node.x asker 1 2 3")], b"{}"),
        (
            vec![("Orch-Envelope", envelope), ("Orch-Timeout", "soon")],
            b"{}",
        ),
        (
            vec![("Orch-Envelope", envelope), ("Orch-Timeout", "0")],
            b"{}",
        ),
        (vec![], b"not json"),
        (vec![("Orch-Envelope", envelope)], big.as_bytes()),
    ];
    for (n, (headers, payload)) in hostile.iter().enumerate() {
        let inbox = format!("_INBOX.raw.hostile.{n}");
        peer.publish(subject, Some(&inbox), headers, payload)
            .expect("publish");
    }
    // A flood: each one answered or refused, none held for ever.
    for n in 0..2_000 {
        let inbox = format!("_INBOX.raw.flood.{n}");
        peer.publish(subject, Some(&inbox), &[("Orch-Timeout", "2000")], b"{}")
            .expect("publish");
    }
    peer.read_for(Duration::from_secs(3)).expect("read");
    let answered = |peer: &RawNats, prefix: &str| {
        peer.messages
            .iter()
            .filter(|m| m.subject.starts_with(prefix))
            .count()
    };
    assert_eq!(
        answered(&peer, "_INBOX.raw.hostile."),
        0,
        "a malformed request is never answered: {:?}",
        peer.messages.first()
    );
    let flood = answered(&peer, "_INBOX.raw.flood.");
    assert!(flood <= 2_000, "{flood} answers to 2,000 requests");
    assert!(flood >= 1_000, "only {flood} of 2,000 answered");
    b.wait_for("[BRIDGE] a request on 'work.ask' is dropped", SHORT)
        .unwrap();
    // And still is.
    peer.messages.clear();
    plain(&mut peer);
    b.stop_cleanly();
}

/// Requests of 512 KB at a node whose only subscriber takes one every
/// 200 ms: the requests waiting for a local answer hold 64 MiB at most
/// (1,024 of the server's largest would be a gigabyte); the others are
/// answered "no local subscriber" at once, counted.
#[test]
fn requests_waiting_for_a_local_answer_hold_a_bounded_number_of_bytes() {
    let server = NatsServer::start_with_settings("max_pending: 1GB\n").expect("nats-server");
    let modules = orch_e2e::bridge::slow_consumer("work.big", 200);
    let main = orch_e2e::bridge::section(&server.url(), "node-b", "    serve: [work.big]\n");
    let scenario = Scenario::with_main(&modules, &main);
    let mut b = start(&scenario);
    b.wait_for("[BRIDGE] serving requests on 'work.big'", BUILD)
        .unwrap();
    let before = orch_e2e::proc_status_kib(b.pid(), "VmRSS") * 1024;
    let mut peer = RawNats::connect(server.port(), None).expect("connect");
    peer.subscribe("_INBOX.raw.>").expect("subscribe");
    let payload = format!(r#"{{"blob":"{}"}}"#, "x".repeat(512 * 1024));
    for n in 0..400 {
        let inbox = format!("_INBOX.raw.big.{n}");
        peer.publish(
            "orch-req.orch.e2e.work.big",
            Some(&inbox),
            &[("Orch-Timeout", "30000")],
            payload.as_bytes(),
        )
        .expect("publish");
        if n % 20 == 19 {
            peer.flush().expect("the server took them");
        }
    }
    peer.read_for(Duration::from_secs(3)).expect("read");
    let refused = peer
        .messages
        .iter()
        .filter(|m| m.header("Nats-Service-Error-Code") == Some("503"))
        .count();
    let unserved = orch_e2e::bridge::status(b.pid())["requests"]["unserved"]
        .as_u64()
        .unwrap_or(0);
    eprintln!("{refused} answered \"no local subscriber\" ({unserved} counted)");
    // About 120 requests of 512 KB fit in 64 MiB; the rest are refused.
    assert!(refused >= 200, "only {refused} of 400 refused");
    assert_eq!(unserved, refused as u64);
    orch_e2e::assert_peak_within(b.pid(), before, 256 << 20, "the requests");
    b.stop_cleanly();
}
