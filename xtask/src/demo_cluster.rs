//! The many-machines part of `cargo xtask demo`: three orchestrators from one
//! config folder (`config/cluster-demo`, told apart by `ORCH_NODE`) on a
//! real nats-server with JetStream, loopback only. They see each other
//! (presence), run the singleton on one node, and share 3,000 jobs; the
//! singleton's node is killed mid-stream: another node takes the singleton
//! over, the others hear the node is lost, and every job is still handled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, ensure};
use nix::sys::signal::Signal;
use orch_e2e::{NatsServer, OrchProcess, orch_bin, workspace_root};

use crate::tally::Tally;

const START_DEADLINE: Duration = Duration::from_secs(180);
const DEADLINE: Duration = Duration::from_secs(30);
/// The presence TTL of config/cluster-demo/main.yaml.
const TTL: Duration = Duration::from_secs(3);
const JOBS: usize = 3_000;
const MAX_IN_FLIGHT: usize = 16;
const SINGLETON: &str = "mod-dummy-producer";

/// One node: its name, record file and process (none once killed).
struct Node {
    name: String,
    record: PathBuf,
    process: Option<OrchProcess>,
}

impl Node {
    fn start(name: &str, url: &str, records: &Path) -> Result<Self> {
        let record = records.join(format!("{name}.jobs"));
        let mut command = Command::new(orch_bin());
        command
            .current_dir(workspace_root())
            .args(["orch", "run", "--config-dir"])
            .arg(workspace_root().join("config/cluster-demo"))
            .env("ORCH_NATS_URL", url)
            .env("ORCH_NODE", name)
            .env("ORCH_JOBS_FILE", &record)
            .env("NO_COLOR", "1");
        let process = OrchProcess::spawn(command).map_err(|e| anyhow!("spawning {name}: {e}"))?;
        Ok(Self {
            name: name.to_owned(),
            record,
            process: Some(process),
        })
    }

    fn pid(&self) -> Result<u32> {
        self.process
            .as_ref()
            .map(OrchProcess::pid)
            .ok_or_else(|| anyhow!("{} is not running", self.name))
    }

    /// `cargo orch status --json` of this node: its reports, or with
    /// `cluster` the nodes it sees.
    fn status(&self, cluster: bool) -> Result<serde_json::Value> {
        let pid = self.pid()?.to_string();
        let mut args = vec!["orch", "status", "--json", "--pid", &pid];
        if cluster {
            args.push("--cluster");
        }
        let output = Command::new(orch_bin())
            .current_dir(workspace_root())
            .args(&args)
            .output()?;
        ensure!(
            output.status.success(),
            "status of {}: {}",
            self.name,
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(serde_json::from_slice(&output.stdout)?)
    }

    /// Whether the singleton runs here now.
    fn runs_singleton(&self) -> bool {
        self.status(false).is_ok_and(|reports| {
            reports[0]["modules"].as_array().is_some_and(|modules| {
                modules
                    .iter()
                    .any(|m| m["name"] == SINGLETON && m["state"] == "running")
            })
        })
    }

    /// The jobs this node recorded: job → delivery counts.
    fn handled(&self, into: &mut BTreeMap<u64, Vec<u32>>) -> usize {
        let text = std::fs::read_to_string(&self.record).unwrap_or_default();
        let mut count = 0;
        for (n, delivered) in text.lines().filter_map(|l| l.split_once(' ')) {
            if let (Ok(n), Ok(delivered)) = (n.parse(), delivered.parse()) {
                into.entry(n).or_default().push(delivered);
                count += 1;
            }
        }
        count
    }

    fn collect(&mut self, period: Duration) {
        if let Some(process) = self.process.as_mut() {
            process.collect_for(period);
        }
    }
}

/// Every job handled over all nodes, and each node's count.
fn handled(nodes: &[Node]) -> (BTreeMap<u64, Vec<u32>>, Vec<usize>) {
    let mut jobs = BTreeMap::new();
    let counts = nodes.iter().map(|n| n.handled(&mut jobs)).collect();
    (jobs, counts)
}

/// Waits until `done` holds, collecting the nodes' output meanwhile.
fn wait(
    nodes: &mut [Node],
    what: &str,
    within: Duration,
    done: impl Fn(&[Node]) -> bool,
) -> Result<()> {
    let until = Instant::now() + within;
    while !done(nodes) {
        ensure!(Instant::now() < until, "{what}: not within {within:?}");
        for node in nodes.iter_mut() {
            node.collect(Duration::from_millis(30));
        }
    }
    Ok(())
}

/// The node running the singleton, other than `not`.
fn holder(nodes: &mut [Node], not: Option<usize>, within: Duration) -> Result<usize> {
    let until = Instant::now() + within;
    loop {
        let running: Vec<usize> = (0..nodes.len())
            .filter(|&i| Some(i) != not && nodes[i].process.is_some() && nodes[i].runs_singleton())
            .collect();
        ensure!(
            running.len() <= 1,
            "the singleton runs on {} nodes",
            running.len()
        );
        if let Some(&i) = running.first() {
            return Ok(i);
        }
        ensure!(
            Instant::now() < until,
            "no node started the singleton within {within:?}"
        );
        for node in nodes.iter_mut() {
            node.collect(Duration::from_millis(50));
        }
    }
}

/// Runs the steps; errors are reserved for what stops the demo itself.
pub fn run() -> Result<Tally> {
    println!("=== demo: one application on three nodes (shared work, a singleton) ===");
    let mut tally = Tally::default();
    let server = NatsServer::start()?;
    let url = server.url();
    let records = tempfile::tempdir()?;
    let mut nodes = ["node-1", "node-2", "node-3"]
        .iter()
        .map(|name| Node::start(name, &url, records.path()))
        .collect::<Result<Vec<Node>>>()?;
    for node in &mut nodes {
        let name = node.name.clone();
        node.process
            .as_mut()
            .ok_or_else(|| anyhow!("{name} did not start"))?
            .wait_for("app.started", START_DEADLINE)
            .map_err(|e| anyhow!("{name}: {e}"))?;
    }

    let seen = wait(
        &mut nodes,
        "three nodes in the cluster view",
        DEADLINE,
        |nodes| {
            nodes[0]
                .status(true)
                .is_ok_and(|seen| seen.as_array().is_some_and(|n| n.len() == 3))
        },
    )
    .map(|()| "node-1's `status --cluster` lists node-1, node-2 and node-3".to_owned());
    tally.record("three orchestrators see each other (presence)", seen);

    let first = holder(&mut nodes, None, DEADLINE);
    tally.record(
        "the singleton runs on exactly one node",
        first
            .as_ref()
            .map(|&i| format!("on {}", nodes[i].name))
            .map_err(|e| anyhow!("{e}")),
    );
    let first = first?;
    let emitter = (first + 1) % nodes.len();
    let emit = Command::new(orch_bin())
        .current_dir(workspace_root())
        .args([
            "orch",
            "emit",
            "jobs.produce",
            &format!("{{\"count\": {JOBS}}}"),
        ])
        .args(["--pid", &nodes[emitter].pid()?.to_string()])
        .output()?;
    ensure!(
        emit.status.success(),
        "emit: {}",
        String::from_utf8_lossy(&emit.stderr)
    );
    // The jobs are all in the stream before the kill (the emitter is not
    // killed; this only keeps the count of the step exact).
    wait(
        &mut nodes,
        "a third of the jobs handled",
        DEADLINE,
        |nodes| handled(nodes).0.len() >= JOBS / 3,
    )?;
    let killed = nodes[first].name.clone();
    if let Some(mut process) = nodes[first].process.take() {
        process.signal(Signal::SIGKILL).map_err(|e| anyhow!(e))?;
        let _ = process.wait_exit(Duration::from_secs(10));
    }
    let started = Instant::now();
    let took_over = holder(
        &mut nodes,
        Some(first),
        TTL + TTL / 3 + Duration::from_secs(2),
    )
    .map(|i| {
        format!(
            "{killed} killed; {} took over after {} ms",
            nodes[i].name,
            started.elapsed().as_millis()
        )
    });
    tally.record(
        "the singleton's node is killed: another takes it over",
        took_over,
    );

    let lost = nodes
        .iter_mut()
        .filter(|n| n.process.is_some())
        .try_for_each(|node| {
            let name = node.name.clone();
            node.process
                .as_mut()
                .ok_or_else(|| anyhow!("{name} stopped"))?
                .wait_for_match(
                    |line| line.contains(&format!("node '{killed}' lost")),
                    "node_lost of the killed node",
                    DEADLINE,
                )
                .map(|_| ())
                .map_err(|e| anyhow!("{name}: {e}"))
        })
        .map(|()| format!("both others said node '{killed}' lost (bridge.node_lost)"));
    tally.record("the others hear the node is lost", lost);

    let shared = wait(
        &mut nodes,
        "every job handled",
        Duration::from_secs(120),
        |nodes| handled(nodes).0.len() >= JOBS,
    )
    .and_then(|()| {
        let (jobs, counts) = handled(&nodes);
        ensure!(jobs.len() == JOBS, "{} distinct jobs of {JOBS}", jobs.len());
        let twice: Vec<_> = jobs.iter().filter(|(_, c)| c.len() > 1).collect();
        ensure!(
            twice.len() <= MAX_IN_FLIGHT,
            "{} jobs handled twice, more than the killed node could hold",
            twice.len()
        );
        ensure!(
            twice.iter().all(|(_, c)| c.iter().any(|&d| d >= 2)),
            "a job handled again without a delivery count of 2 or more"
        );
        let shares: Vec<String> = nodes
            .iter()
            .zip(&counts)
            .map(|(n, c)| format!("{} {c}", n.name))
            .collect();
        Ok(format!(
            "{JOBS} jobs, {} handled twice (killed in hand); {}",
            twice.len(),
            shares.join(", ")
        ))
    });
    tally.record(
        "3,000 shared jobs: none lost though a node died mid-stream",
        shared,
    );

    for node in &mut nodes {
        if let Some(mut process) = node.process.take() {
            process.signal(Signal::SIGINT).map_err(|e| anyhow!(e))?;
            let _ = process.wait_exit(Duration::from_secs(30));
        }
    }
    drop(server);
    Ok(tally)
}
