//! The rollout part of `cargo xtask demo`: three nodes run an application
//! from NATS (each in an empty folder with only the bundle's two programs,
//! no cargo on PATH); a good version is rolled over them batch by batch,
//! then a version whose new module aborts two seconds after it starts: the
//! rollout halts at the canary, reverts it, and the other nodes never take it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, ensure};
use orch_e2e::releases::{self, BundleConfig};
use orch_e2e::{NatsServer, OrchProcess};

use crate::tally::Tally;

const APP: &str = "rollout-demo";
const NODES: [&str; 3] = ["node-1", "node-2", "node-3"];
const DEADLINE: Duration = Duration::from_secs(60);
const PRODUCER: &str = "  - name: mod-dummy-producer\n    config:\n      publish_interval: 200ms\n";
const CONSUMER: &str = "  - name: mod-dummy-consumer\n";
const CONSUMER_V2: &str = "  - name: mod-dummy-consumer\n    config:\n      note: v2\n";
/// Aborts its process on its tenth ping: two seconds after it starts.
const CRASHER: &str = "  - name: crasher\n    package: fixture-crash\n    isolation: process\n    \
                       config:\n      fault: abort\n      crash_after: 10\n";

/// One signed bundle of the demo application at `version`.
fn release(root: &Path, version: &str, modules: &str) -> Result<(PathBuf, String)> {
    let config = releases::config_dir(
        root,
        &format!("config-{version}"),
        &BundleConfig {
            app: APP,
            version,
            presence_bucket: "rollout_demo_nodes",
            bridge_extra: "",
            modules: &format!("modules:\n{PRODUCER}{modules}"),
            main_extra: "",
        },
    )?;
    let out = root.join(format!("{APP}-{version}.tar"));
    let digest = releases::bundle_of(&config, &out, &root.join("release.key"))?;
    Ok((out, digest))
}

/// `cargo orch rollout APP ARGS --nats URL`: exit success and output.
fn rollout(server: &NatsServer, args: &[&str]) -> Result<(bool, String)> {
    let output = releases::orch(&["rollout", APP])
        .args(args)
        .args(["--nats", &server.url()])
        .output()?;
    let text = releases::said(&output);
    for line in text.lines().filter(|l| l.starts_with("rollout")) {
        println!("  {line}");
    }
    Ok((output.status.success(), text))
}

/// Runs the part; every check is counted.
pub fn run() -> Result<Tally> {
    println!("=== rollout: a good version over three nodes, then a crashing one reverted ===");
    let mut tally = Tally::default();
    let server = NatsServer::start().context("cannot start nats-server")?;
    let folder = tempfile::tempdir()?;
    let root = folder.path();
    let mut keygen = releases::orch(&["keygen", "--out"]);
    keygen.arg(root.join("release.key")).arg("--no-password");
    releases::succeeds(keygen)?;
    let public = root.join("release.key.pub");
    let (v1, v1_digest) = release(root, "1.0.0", CONSUMER)?;
    let (v2, v2_digest) = release(root, "1.1.0", CONSUMER_V2)?;
    let (v3, _) = release(root, "1.2.0", &format!("{CONSUMER_V2}{CRASHER}"))?;
    for bundle in [&v1, &v2, &v3] {
        releases::push(&server, bundle, &public, &[])?;
    }
    let mut nodes: Vec<(PathBuf, OrchProcess)> = NODES
        .iter()
        .map(|name| releases::start_node((root, name), APP, &v1, &server, &public))
        .collect::<Result<_>>()?;
    let first = nodes
        .first()
        .map(|(dir, _)| dir.clone())
        .ok_or_else(|| anyhow!("no node"))?;
    tally.record(
        "three nodes run 1.0.0 from NATS, no cargo on PATH, one digest",
        releases::all_on(&first, &NODES, &v1_digest, DEADLINE).map(|()| String::new()),
    );

    let good = rollout(
        &server,
        &[
            "1.1.0",
            "--canary",
            "1",
            "--max-unavailable",
            "1",
            "--min-healthy",
            "2s",
            "--healthy-deadline",
            "30s",
        ],
    )?;
    tally.record(
        "rollout to 1.1.0 succeeds batch by batch",
        if good.0 && good.1.contains("succeeded") {
            Ok(String::new())
        } else {
            Err(anyhow!("{}", good.1))
        },
    );
    tally.record(
        "every node runs 1.1.0",
        releases::all_on(&first, &NODES, &v2_digest, DEADLINE).map(|()| String::new()),
    );

    let bad = rollout(
        &server,
        &[
            "1.2.0",
            "--min-healthy",
            "5s",
            "--healthy-deadline",
            "20s",
            "--auto-revert",
        ],
    )?;
    tally.record(
        "rollout to 1.2.0 halts at the canary, naming the crash",
        if !bad.0 && bad.1.contains("failed") && bad.1.contains("module.crashed") {
            Ok(String::new())
        } else {
            Err(anyhow!("{}", bad.1))
        },
    );
    let reverted = releases::all_on(&first, &NODES, &v2_digest, DEADLINE).and_then(|()| {
        let others_took_it = nodes[1..]
            .iter()
            .any(|(_, node)| !node.lines_with("deploying 1.2.0").is_empty());
        ensure!(!others_took_it, "a node other than the canary took 1.2.0");
        Ok(String::new())
    });
    tally.record(
        "the canary is back on 1.1.0; no other node took 1.2.0",
        reverted,
    );
    for (_, node) in &mut nodes {
        let _ = node.signal(nix::sys::signal::Signal::SIGINT);
        let _ = node.wait_exit(Duration::from_secs(30));
    }
    Ok(tally)
}
