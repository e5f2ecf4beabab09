//! `cargo orch deploy` end to end, on a scratch copy of the workspace: a
//! signed bundle runs; a bundle in which only the consumer changed is
//! deployed (only the consumer reloads, its state kept, status and the
//! report name the new library's digest); a bundle whose consumer fails in
//! `initialize` is refused with the running generation untouched; and
//! `deploy --rollback` brings the first library back.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use orch_e2e::orch_bin;
use orch_e2e::process::OrchProcess;
use orch_e2e::scratch::ScratchWorkspace;

use super::bundle::{file_in, keygen, path, said};

const CONSUMER: &str = "modules-backend/mod-dummy-consumer/src/lib.rs";
const LIBRARY: &str = "modules/libmod_dummy_consumer.so";

/// `cargo orch bundle` in the scratch copy, signed with `key`.
fn bundle_of(scratch: &ScratchWorkspace, out: &Path, key: &Path) {
    // The copy's own target folder: an edited copy built into the
    // workspace's (a `CARGO_TARGET_DIR` the test inherits) would leave its
    // libraries there, fresh to cargo, for every other test to load.
    let output = scratch
        .orch(&["bundle", "--out", path(out), "--sign", path(key)])
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("run bundle");
    assert!(output.status.success(), "bundle:\n{}", said(&output));
}

/// The consumer library's SHA-256, as the bundle's manifest lists it.
fn library_digest(bundle: &Path) -> String {
    let bytes = std::fs::read(bundle).expect("bundle");
    let manifest: serde_json::Value =
        serde_json::from_slice(&file_in(&bytes, "manifest.json")).expect("manifest");
    manifest["files"]
        .as_array()
        .and_then(|files| files.iter().find(|f| f["path"] == LIBRARY))
        .and_then(|f| f["sha256"].as_str())
        .expect("the consumer's library is listed")
        .to_string()
}

/// `cargo orch ARGS --socket SOCKET` from `dir`.
fn control(dir: &Path, args: &[&str], socket: &Path) -> std::process::Output {
    Command::new(orch_bin())
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .arg("orch")
        .args(args)
        .args(["--socket", path(socket)])
        .output()
        .expect("run cargo-orch")
}

/// Waits (at most 30 s) until more than `before` lines hold `needle`.
fn more_lines(orch_run: &mut OrchProcess, needle: &str, before: usize) {
    for _ in 0..60 {
        if orch_run.lines_with(needle).len() > before {
            return;
        }
        orch_run.collect_for(Duration::from_millis(500));
    }
    panic!(
        "no new line with {needle:?} within 30 s:\n{}",
        orch_run.output()
    );
}

#[test]
fn deploy_swaps_only_the_changed_module_refuses_a_failing_one_and_rolls_back() {
    let scratch = ScratchWorkspace::copy_of_repo().expect("scratch copy of the workspace");
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("release.key");
    keygen(&key);
    let host = dir.path().join("host");
    std::fs::create_dir_all(&host).expect("create");
    let (v1, v2, v3, v4) = (
        host.join("v1.tar"),
        host.join("v2.tar"),
        host.join("v3.tar"),
        host.join("v4.tar"),
    );
    bundle_of(&scratch, &v1, &key);
    scratch
        .replace(
            CONSUMER,
            "\"Received test.ping:",
            "\"Deployed consumer got test.ping:",
        )
        .expect("edit the consumer");
    bundle_of(&scratch, &v2, &key);
    // v4: v2's libraries, and a modules.yaml that changes the producer's entry.
    scratch
        .replace("config/modules.yaml", "message: hello", "message: deployed")
        .expect("edit modules.yaml");
    bundle_of(&scratch, &v4, &key);
    scratch
        .replace(
            CONSUMER,
            "ctx.subscribe(PING_TOPIC)?;",
            "ctx.subscribe(PING_TOPIC)?;\n        return Err(\"refusing to start on purpose\".into());",
        )
        .expect("break the consumer's initialize");
    bundle_of(&scratch, &v3, &key);
    let (first, second) = (library_digest(&v1), library_digest(&v2));
    assert_ne!(first, second, "the edit changed the consumer's library");

    let socket = dir.path().join("control.sock");
    let mut command = Command::new(orch_bin());
    command
        .current_dir(&host)
        .env("NO_COLOR", "1")
        .args(["orch", "run", "--bundle", "v1.tar", "--trusted-key"])
        .arg(format!("{}.pub", path(&key)))
        .args(["--control-socket", path(&socket)]);
    let mut orch_run = OrchProcess::spawn(command).expect("spawn");
    orch_run
        .wait_for("Received test.ping", Duration::from_secs(60))
        .expect("v1 runs");

    // Only the consumer changed: only it reloads.
    let output = control(&host, &["deploy", "v2.tar"], &socket);
    let text = said(&output);
    assert!(output.status.success(), "deploy v2:\n{text}");
    assert!(
        text.contains("mod-dummy-consumer: library changed")
            && text.contains("mod-dummy-producer: unchanged")
            && text.contains("mod-test-module: unchanged"),
        "{text}"
    );
    orch_run
        .wait_for("Deployed consumer got test.ping", Duration::from_secs(30))
        .expect("the new consumer runs");
    let status = control(&host, &["status"], &socket);
    let status_text = said(&status);
    assert!(
        status_text.contains(&format!("library of mod-dummy-consumer: sha256 {second}")),
        "status names the deployed library:\n{status_text}"
    );

    // A consumer that fails in initialize: refused, the v2 one runs on.
    let output = control(&host, &["deploy", "v3.tar"], &socket);
    let text = said(&output);
    assert_eq!(output.status.code(), Some(1), "deploy v3:\n{text}");
    assert!(
        text.contains("mod-dummy-consumer") && text.contains("nothing was deployed"),
        "{text}"
    );
    let before = orch_run.lines_with("Deployed consumer got test.ping").len();
    more_lines(&mut orch_run, "Deployed consumer got test.ping", before);
    let status_text = said(&control(&host, &["status"], &socket));
    assert!(
        status_text.contains(&format!("library of mod-dummy-consumer: sha256 {second}")),
        "{status_text}"
    );

    // Back to v1.
    let output = control(&host, &["deploy", "--rollback"], &socket);
    let text = said(&output);
    assert!(output.status.success(), "rollback:\n{text}");
    assert!(
        text.contains("mod-dummy-consumer: library changed"),
        "{text}"
    );
    let status_text = said(&control(&host, &["status"], &socket));
    assert!(
        status_text.contains(&format!("library of mod-dummy-consumer: sha256 {first}")),
        "{status_text}"
    );
    let before = orch_run.lines_with("Received test.ping").len();
    more_lines(&mut orch_run, "Received test.ping", before);

    // A new modules.yaml entry is applied as a live edit would be.
    let output = control(&host, &["deploy", "v4.tar"], &socket);
    let text = said(&output);
    assert!(output.status.success(), "deploy v4:\n{text}");
    assert!(
        text.contains("mod-dummy-consumer: library changed")
            && text.contains("mod-dummy-producer: entry changed in modules.yaml: re-initialized")
            && text.contains("mod-test-module: unchanged"),
        "{text}"
    );
    orch_run
        .wait_for(
            "Deployed consumer got test.ping: deployed",
            Duration::from_secs(30),
        )
        .expect("the producer runs with its new config");

    orch_run.signal(Signal::SIGINT).expect("SIGINT");
    let exit = orch_run.wait_exit(Duration::from_secs(30)).expect("exits");
    assert_eq!(exit.code(), Some(0), "{}", orch_run.output());
    // The consumer's count went through every swap: it counted every ping
    // any of its generations logged.
    let logged = orch_run.lines_with("Received test.ping").len()
        + orch_run.lines_with("Deployed consumer got test.ping").len();
    let total = orch_run
        .lines_with("Consumer received")
        .last()
        .and_then(|line| {
            line.split("Consumer received ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<usize>()
                .ok()
        })
        .expect("the consumer's final count");
    assert_eq!(
        total,
        logged,
        "state was lost in a swap:\n{}",
        orch_run.output()
    );
}
