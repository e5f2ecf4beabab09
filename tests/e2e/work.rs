//! Shared work end to end: three orchestrators on a real nats-server
//! (loopback, JetStream), each with a worker module on `jobs.run` and the
//! work group `workers`; node A also runs the producer. Every job is
//! handled by one node; a node killed mid-stream loses none (its jobs go to
//! the others, the few it handled and had not acknowledged are handled
//! again, with a delivery count of 2 or more); a slow node takes no more
//! than it has room for. On core NATS the nodes form a queue group.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use orch_e2e::{NatsServer, OrchProcess, Scenario, orch_bin, workspace_root};

/// Generous: the first run may compile the modules.
const BUILD: Duration = Duration::from_secs(240);

/// One node of the group: its configuration, its record file, its process.
struct Node {
    name: String,
    scenario: Scenario,
    record: PathBuf,
    process: Option<OrchProcess>,
}

/// How a test's nodes are set up.
struct Setup<'a> {
    url: &'a str,
    /// The `jetstream:` stream, or core NATS.
    stream: Option<&'a str>,
    max_in_flight: usize,
    /// The worker's mailbox capacity (`overflow: fail`: one overflow fails
    /// the module, so the test sees it).
    mailbox: usize,
    records: &'a Path,
}

impl Node {
    fn new(setup: &Setup, name: &str, delay: &str, producer: bool) -> Self {
        let record = setup.records.join(format!("{name}.jobs"));
        let mut modules = format!(
            "modules:\n  - name: worker\n    package: fixture-job-worker\n    mailbox: \
             {{capacity: {}, overflow: fail}}\n    config:\n      delay: {delay}\n      \
             record: {}\n",
            setup.mailbox,
            record.display()
        );
        if producer {
            modules.push_str("  - name: producer\n    package: fixture-job-producer\n");
        }
        let jetstream = setup
            .stream
            .map(|stream| format!("    jetstream:\n      stream: {stream}\n"))
            .unwrap_or_default();
        let main = orch_e2e::bridge::section(
            setup.url,
            name,
            &format!(
                "{jetstream}    outbox: {{capacity: 30000, overflow: block}}\n    work:\n      \
                 - group: workers\n        topics: [jobs.run]\n        max_in_flight: {}\n",
                setup.max_in_flight
            ),
        );
        let mut node = Self {
            name: name.to_owned(),
            scenario: Scenario::with_main(&modules, &main),
            record,
            process: None,
        };
        node.start();
        node
    }

    fn start(&mut self) {
        let mut process =
            OrchProcess::spawn(self.scenario.command(&["run"])).expect("spawn cargo-orch");
        process.wait_for("app.started", BUILD).unwrap();
        self.process = Some(process);
    }

    fn pid(&self) -> u32 {
        self.process.as_ref().expect("running").pid()
    }

    fn kill(&mut self) {
        let mut process = self.process.take().expect("running");
        process.signal(Signal::SIGKILL).expect("SIGKILL");
        let _ = process.wait_exit(Duration::from_secs(10));
    }

    /// Asks this node's producer for `count` jobs.
    fn produce(&self, count: u64) {
        orch_e2e::control_ok(
            &["emit", "jobs.produce", &format!("{{\"count\": {count}}}")],
            self.pid(),
        );
    }

    /// `(job, delivery count)` of every job this node recorded.
    fn handled(&self) -> Vec<(u64, u32)> {
        let text = std::fs::read_to_string(&self.record).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let (n, count) = line.split_once(' ')?;
                Some((n.parse().ok()?, count.parse().ok()?))
            })
            .collect()
    }
}

/// Every job handled, over all nodes: job → the delivery counts it was
/// handled with.
fn all_handled(nodes: &[Node]) -> BTreeMap<u64, Vec<u32>> {
    let mut jobs: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for node in nodes {
        for (n, count) in node.handled() {
            jobs.entry(n).or_default().push(count);
        }
    }
    jobs
}

/// Waits until `done` holds of the jobs handled, collecting the nodes'
/// output meanwhile; names what was handled when it does not.
fn wait_jobs(
    nodes: &mut [Node],
    what: &str,
    within: Duration,
    done: impl Fn(&BTreeMap<u64, Vec<u32>>) -> bool,
) -> BTreeMap<u64, Vec<u32>> {
    let until = Instant::now() + within;
    loop {
        let jobs = all_handled(nodes);
        if done(&jobs) {
            return jobs;
        }
        if Instant::now() >= until {
            let outputs: Vec<String> = nodes
                .iter()
                .filter_map(|n| {
                    n.process.as_ref().map(|p| {
                        format!(
                            "--- {} ({} jobs)\n{}",
                            n.name,
                            n.handled().len(),
                            p.output()
                        )
                    })
                })
                .collect();
            panic!(
                "{what}: not within {within:?} ({} distinct jobs handled)\n{}",
                jobs.len(),
                outputs.join("\n")
            );
        }
        for node in nodes.iter_mut() {
            if let Some(process) = node.process.as_mut() {
                process.collect_for(Duration::from_millis(30));
            }
        }
    }
}

/// The work group's counters in a node's `cargo orch status --json`.
fn work_status(pid: u32) -> serde_json::Value {
    orch_e2e::bridge::status(pid)["work"][0].clone()
}

/// The worker's state in a node's status.
fn worker_state(pid: u32) -> String {
    let output = Command::new(orch_bin())
        .current_dir(workspace_root())
        .args(["orch", "status", "--json", "--pid", &pid.to_string()])
        .output()
        .expect("status");
    let reports: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    reports[0]["modules"]
        .as_array()
        .and_then(|modules| modules.iter().find(|m| m["name"] == "worker"))
        .map(|m| m["state"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

#[test]
#[ignore = "slow lane (20,000 jobs on three nodes, one killed): cargo xtask ci runs it"]
fn twenty_thousand_jobs_survive_a_node_killed_mid_stream() {
    const JOBS: u64 = 20_000;
    const MAX_IN_FLIGHT: usize = 16;
    let server = NatsServer::start().expect("nats-server");
    let records = tempfile::tempdir().expect("temp dir");
    let url = server.url();
    let setup = Setup {
        url: &url,
        stream: Some("E2E_WORK_KILL"),
        max_in_flight: MAX_IN_FLIGHT,
        mailbox: 64,
        records: records.path(),
    };
    let mut nodes = vec![
        Node::new(&setup, "work-a", "2ms", true),
        Node::new(&setup, "work-b", "2ms", false),
        Node::new(&setup, "work-c", "2ms", false),
    ];
    nodes[0].produce(JOBS);
    wait_jobs(
        &mut nodes,
        "8,000 jobs handled",
        Duration::from_secs(120),
        |j| j.len() >= 8_000,
    );
    nodes[2].kill();
    let killed_had = nodes[2].handled().len();
    wait_jobs(
        &mut nodes,
        "12,000 jobs handled",
        Duration::from_secs(120),
        |j| j.len() >= 12_000,
    );
    nodes[2].start();
    let jobs = wait_jobs(
        &mut nodes,
        "every job handled",
        Duration::from_secs(180),
        |j| j.len() as u64 >= JOBS,
    );
    assert_eq!(jobs.len() as u64, JOBS, "none lost, none invented");
    assert_eq!(jobs.keys().next_back(), Some(&(JOBS - 1)));
    let twice: Vec<(&u64, &Vec<u32>)> = jobs.iter().filter(|(_, c)| c.len() > 1).collect();
    assert!(
        twice.len() <= MAX_IN_FLIGHT,
        "{} jobs handled twice, more than the killed node could hold: {twice:?}",
        twice.len()
    );
    for (job, counts) in &twice {
        assert!(
            counts.iter().any(|&c| c >= 2),
            "job {job} handled again without a delivery count of 2 or more: {counts:?}"
        );
    }
    for node in &nodes {
        let share = node.handled().len();
        let least = if node.name == "work-c" {
            // Killed for a third of the run: it handled its share before.
            killed_had.max(1)
        } else {
            (JOBS / 5) as usize
        };
        assert!(
            share >= least,
            "{} handled {share} of {JOBS} jobs, less than {least}",
            node.name
        );
    }
    let counts = work_status(nodes[0].pid());
    assert_eq!(counts["group"], "workers", "{counts}");
    assert!(
        counts["in_flight_peak"].as_u64() <= Some(MAX_IN_FLIGHT as u64),
        "{counts}"
    );
}

#[test]
fn a_slow_node_takes_only_what_it_has_room_for_and_no_job_is_handled_twice() {
    const JOBS: u64 = 1_500;
    const MAX_IN_FLIGHT: usize = 8;
    const MAILBOX: usize = 4;
    let server = NatsServer::start().expect("nats-server");
    let records = tempfile::tempdir().expect("temp dir");
    let url = server.url();
    let setup = Setup {
        url: &url,
        stream: Some("E2E_WORK_SLOW"),
        max_in_flight: MAX_IN_FLIGHT,
        // Less room than max_in_flight (`overflow: fail`: one job too
        // many fails the worker): the mailbox bounds what a node holds.
        mailbox: MAILBOX,
        records: records.path(),
    };
    let mut nodes = vec![
        Node::new(&setup, "slow-a", "1ms", true),
        Node::new(&setup, "slow-b", "1ms", false),
        Node::new(&setup, "slow-c", "50ms", false),
    ];
    nodes[0].produce(JOBS);
    let jobs = wait_jobs(
        &mut nodes,
        "every job handled",
        Duration::from_secs(120),
        |j| j.len() as u64 >= JOBS,
    );
    assert_eq!(jobs.len() as u64, JOBS);
    let twice: Vec<_> = jobs.iter().filter(|(_, c)| c.len() > 1).collect();
    assert!(twice.is_empty(), "handled twice without a kill: {twice:?}");
    let again: Vec<_> = jobs.iter().filter(|(_, c)| c != &&[1]).collect();
    assert!(
        again.is_empty(),
        "a delivery count above 1 without a kill: {again:?}\n{}",
        nodes
            .iter()
            .map(|n| n
                .process
                .as_ref()
                .map(OrchProcess::output)
                .unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
    let slow = nodes[2].handled().len();
    let fast = nodes[0].handled().len().min(nodes[1].handled().len());
    assert!(slow > 0, "the slow node took no job");
    assert!(
        slow * 4 < fast,
        "the slow node (50 ms a job) took {slow}, the others at least {fast}"
    );
    for node in &nodes {
        let counts = work_status(node.pid());
        let peak = counts["in_flight_peak"].as_u64().unwrap_or(u64::MAX);
        assert!(
            (1..=MAILBOX as u64).contains(&peak),
            "{} held {peak} jobs at once (max_in_flight {MAX_IN_FLIGHT}, mailbox \
             {MAILBOX}): {counts}",
            node.name
        );
        assert_eq!(counts["dead_letters"], 0, "{counts}");
        assert_eq!(
            worker_state(node.pid()),
            "running",
            "{}: overflowed",
            node.name
        );
    }
}

#[test]
fn on_core_nats_each_job_goes_to_one_node_of_the_queue_group() {
    const JOBS: u64 = 600;
    let server = NatsServer::start().expect("nats-server");
    let records = tempfile::tempdir().expect("temp dir");
    let url = server.url();
    let setup = Setup {
        url: &url,
        stream: None,
        max_in_flight: 8,
        mailbox: 10_000,
        records: records.path(),
    };
    let mut nodes = vec![
        Node::new(&setup, "queue-a", "1ms", true),
        Node::new(&setup, "queue-b", "1ms", false),
    ];
    nodes[0]
        .process
        .as_mut()
        .expect("running")
        .wait_for("at most once", Duration::from_secs(5))
        .unwrap();
    // The queue subscriptions are made once the workers subscribe.
    std::thread::sleep(Duration::from_millis(500));
    nodes[0].produce(JOBS);
    let jobs = wait_jobs(
        &mut nodes,
        "every job handled",
        Duration::from_secs(60),
        |j| j.len() as u64 >= JOBS,
    );
    assert!(jobs.values().all(|c| c.len() == 1), "a job handled twice");
    for node in &nodes {
        let share = node.handled().len();
        assert!(share > 0, "{} took no job", node.name);
    }
    assert_eq!(work_status(nodes[0].pid())["durable"], false);
}

/// The permissions the Many machines chapter gives a node sharing work on
/// JetStream (group `workers`, stream `E2E_PERM`, prefix `orch.e2e`), as
/// they are, with the events stream's info and create besides.
fn work_permissions(user: &str) -> String {
    let allow = [
        "orch-work.orch.e2e.workers.>",
        "orch-dead.orch.e2e.workers.>",
        "$JS.API.INFO",
        "$JS.API.STREAM.INFO.E2E_PERM",
        "$JS.API.STREAM.CREATE.E2E_PERM",
        "$JS.API.STREAM.INFO.E2E_PERM_WORK_workers",
        "$JS.API.STREAM.CREATE.E2E_PERM_WORK_workers",
        "$JS.API.CONSUMER.INFO.E2E_PERM_WORK_workers.workers",
        "$JS.API.CONSUMER.CREATE.E2E_PERM_WORK_workers.workers",
        "$JS.API.CONSUMER.CREATE.E2E_PERM_WORK_workers.workers.>",
        "$JS.API.CONSUMER.MSG.NEXT.E2E_PERM_WORK_workers.workers",
        "$JS.ACK.E2E_PERM_WORK_workers.workers.>",
        "$KV.E2E_PERM_WORK_workers_DONE.>",
        "$JS.API.STREAM.INFO.KV_E2E_PERM_WORK_workers_DONE",
        "$JS.API.STREAM.CREATE.KV_E2E_PERM_WORK_workers_DONE",
        "$JS.API.DIRECT.GET.KV_E2E_PERM_WORK_workers_DONE.>",
        "$JS.API.STREAM.MSG.GET.KV_E2E_PERM_WORK_workers_DONE",
        "$JS.API.STREAM.MSG.GET.E2E_PERM_WORK_workers",
        "$JS.API.STREAM.MSG.DELETE.E2E_PERM_WORK_workers",
    ];
    let allow: Vec<String> = allow.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "    {{\n      user: \"{user}\"\n      password: \"{user}-secret\"\n      \
         permissions: {{\n        publish: {{ allow: [{}] }}\n        subscribe: {{ allow: \
         [\"_INBOX.{user}.>\", \
         \"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.E2E_PERM_WORK_workers.workers\"] }}\n      \
         }}\n    }}\n",
        allow.join(", ")
    )
}

#[test]
fn under_per_node_permissions_the_documented_subjects_are_enough_to_share_work() {
    const JOBS: u64 = 200;
    let settings = format!(
        "jetstream: enabled\nauthorization {{\n  users = [\n{}{}  ]\n}}\n",
        work_permissions("perm-a"),
        work_permissions("perm-b")
    );
    let server = NatsServer::start_with_settings(&settings).expect("nats-server");
    let records = tempfile::tempdir().expect("temp dir");
    let start = |name: &str, producer: bool| {
        let record = records.path().join(format!("{name}.jobs"));
        let mut modules = format!(
            "modules:\n  - name: worker\n    package: fixture-job-worker\n    config:\n      \
             delay: 1ms\n      record: {}\n",
            record.display()
        );
        if producer {
            modules.push_str("  - name: producer\n    package: fixture-job-producer\n");
        }
        let main = format!(
            "bridge:\n  nats:\n    url: {}\n    node: {name}\n    subject_prefix: orch.e2e\n    \
             auth: {{user: {name}, password: \"{name}-secret\"}}\n    jetstream:\n      \
             stream: E2E_PERM\n    work:\n      - group: workers\n        topics: [jobs.run]\n",
            server.url()
        );
        let mut node = Node {
            name: name.to_owned(),
            scenario: Scenario::with_main(&modules, &main),
            record,
            process: None,
        };
        node.start();
        node
    };
    let mut nodes = vec![start("perm-a", true), start("perm-b", false)];
    // Both pull before the jobs come (each pull is a request of its own).
    std::thread::sleep(Duration::from_millis(500));
    nodes[0].produce(JOBS);
    let jobs = wait_jobs(
        &mut nodes,
        "every job handled",
        Duration::from_secs(60),
        |j| j.len() as u64 >= JOBS,
    );
    assert!(jobs.values().all(|c| c == &[1]), "{jobs:?}");
    for node in &mut nodes {
        let process = node.process.as_mut().expect("running");
        process.collect_for(Duration::from_millis(300));
        assert!(
            process.lines_with("Permissions Violation").is_empty()
                && process.lines_with("cannot").is_empty(),
            "{}",
            process.output()
        );
        assert!(!node.handled().is_empty(), "{} took no job", node.name);
    }
    assert!(
        !server.log().contains("Permissions Violation"),
        "{}",
        server.log()
    );
}

#[test]
fn a_job_no_node_takes_becomes_a_dead_letter_after_its_last_delivery() {
    let server = NatsServer::start().expect("nats-server");
    let records = tempfile::tempdir().expect("temp dir");
    let record = records.path().join("dead.jobs");
    // The group has two topics; the only worker subscribes to one. A job on
    // the other is refused by every delivery (no local subscriber).
    let modules = format!(
        "modules:\n  - name: worker\n    package: fixture-job-worker\n    config:\n      \
         record: {}\n  - name: producer\n    package: fixture-job-producer\n    config:\n      \
         topic: jobs.orphan\n  - name: fixture-event-log\n    config:\n      \
         topics: [module.dead_letter]\n",
        record.display()
    );
    let main = orch_e2e::bridge::section(
        &server.url(),
        "dead-a",
        "    jetstream:\n      stream: E2E_WORK_DEAD\n    work:\n      - group: workers\n        \
         topics: [jobs.run, jobs.orphan]\n",
    );
    let scenario = Scenario::with_main(&modules, &main);
    let mut orch = OrchProcess::spawn(scenario.command(&["run"])).expect("spawn");
    orch.wait_for("app.started", BUILD).unwrap();
    let mut watcher = orch_e2e::RawNats::connect(server.port(), None).expect("connect");
    watcher
        .subscribe("orch-dead.orch.e2e.workers.>")
        .expect("subscribe");
    watcher.flush().expect("flush");
    orch_e2e::control_ok(&["emit", "jobs.produce", "{\"count\": 1}"], orch.pid());
    let letter = orch
        .wait_for_match(
            |line| line.contains("EVENT module.dead_letter") && line.contains("max-deliver"),
            "the job's dead letter",
            Duration::from_secs(30),
        )
        .unwrap();
    assert!(
        letter.text.contains("\"name\":\"work:workers\"")
            && letter.text.contains("\"topic\":\"jobs.orphan\"")
            && letter.text.contains("\"data\":{\"n\":0}")
            && letter.text.contains("\"source\":\"producer\""),
        "{}",
        letter.text
    );
    watcher.read_for(Duration::from_millis(500)).expect("read");
    let sent: Vec<&str> = watcher
        .messages
        .iter()
        .map(|m| m.subject.as_str())
        .collect();
    assert_eq!(sent, ["orch-dead.orch.e2e.workers.jobs.orphan"]);
    let counts = work_status(orch.pid());
    assert_eq!(counts["dead_letters"], 1, "{counts}");
    assert_eq!(counts["refused"], 5, "one refusal per delivery: {counts}");
    assert_eq!(counts["in_flight"], 0, "{counts}");
    assert!(
        std::fs::read_to_string(&record)
            .unwrap_or_default()
            .is_empty()
    );
}

#[test]
fn a_node_stopped_cleanly_mid_stream_acknowledges_every_job_it_handled() {
    const JOBS: u64 = 2_000;
    let server = NatsServer::start().expect("nats-server");
    let records = tempfile::tempdir().expect("temp dir");
    let url = server.url();
    let setup = Setup {
        url: &url,
        stream: Some("E2E_WORK_STOP"),
        max_in_flight: 16,
        mailbox: 64,
        records: records.path(),
    };
    let mut nodes = vec![
        Node::new(&setup, "stop-a", "1ms", true),
        Node::new(&setup, "stop-b", "3ms", false),
    ];
    nodes[0].produce(JOBS);
    wait_jobs(
        &mut nodes,
        "a fifth of the jobs",
        Duration::from_secs(60),
        |j| j.len() as u64 >= JOBS / 5,
    );
    // b drains its mailbox (handling what it holds) and acknowledges
    // before its bridge stops.
    nodes[1].process.as_mut().expect("running").stop_cleanly();
    nodes[1].process = None;
    let jobs = wait_jobs(
        &mut nodes,
        "every job handled",
        Duration::from_secs(60),
        |j| j.len() as u64 >= JOBS,
    );
    // A job on its way to b's mailbox when b's modules stopped is refused
    // there and offered again (delivery count 2), but none is handled twice.
    let twice: Vec<_> = jobs.iter().filter(|(_, c)| c.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "handled twice after a clean stop: {twice:?}"
    );
    assert!(
        !nodes[1].handled().is_empty(),
        "b took no job before it stopped"
    );
    // Nothing b handled waits for an acknowledgement (it would come back to
    // a after the ack wait, and be handled twice).
    let mut nats = orch_e2e::RawNats::connect(server.port(), None).expect("connect");
    let until = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let info = nats
            .request(
                "$JS.API.CONSUMER.INFO.E2E_WORK_STOP_WORK_workers.workers",
                b"",
            )
            .expect("consumer info");
        let info: serde_json::Value = serde_json::from_slice(&info.payload).expect("JSON");
        if info["num_ack_pending"] == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "jobs left unacknowledged: {info}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
