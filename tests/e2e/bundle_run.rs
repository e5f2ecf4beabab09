//! `cargo orch run --bundle` end to end: the shipped modules bundled and
//! signed, then run by the bundle's own `bin/cargo-orch` (taken out with
//! `tar`) in a folder holding nothing but the archive, with an empty PATH
//! (no cargo, no rustc, nothing) and an empty HOME; and bundles that were
//! tampered with refused by `run` with the file or key named and nothing
//! loaded.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use orch_e2e::orch_bin;
use orch_e2e::process::OrchProcess;

use super::bundle::{bundle, entries, keygen, orch, path, said, with_files_added};

/// A folder holding only `archive`'s bytes, as `app.tar`.
fn host_folder(root: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("create");
    std::fs::write(dir.join("app.tar"), bytes).expect("write");
    dir
}

/// What the folder holds besides `app.tar`.
fn unpacked_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "app.tar")
        .collect()
}

#[test]
fn a_bundle_runs_with_no_cargo_no_rust_and_no_workspace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("release.key");
    let key_id = keygen(&key);
    let built = dir.path().join("built.tar");
    bundle(&built, Some(&key));

    // The target machine: the archive and nothing else; the host binary is
    // taken out of it with tar.
    let host = host_folder(dir.path(), "host", &std::fs::read(&built).expect("read"));
    let tar = Command::new("tar")
        .current_dir(&host)
        .args(["-xf", "app.tar", "bin/cargo-orch"])
        .output()
        .expect("run tar");
    assert!(tar.status.success(), "tar: {}", said(&tar));
    let (empty_path, home) = (dir.path().join("empty-bin"), dir.path().join("home"));
    std::fs::create_dir_all(&empty_path).expect("create");
    std::fs::create_dir_all(&home).expect("create");

    let mut command = Command::new(host.join("bin/cargo-orch"));
    command
        .current_dir(&host)
        .env_clear()
        .env("PATH", &empty_path)
        .env("HOME", &home)
        .env("NO_COLOR", "1")
        .args(["orch", "run", "--bundle", "app.tar", "--trusted-key"])
        .arg(format!("{}.pub", path(&key)));
    let mut orch_run = OrchProcess::spawn(command).expect("spawn the bundled host");
    let line = orch_run
        .wait_for("[BUNDLE]", Duration::from_secs(30))
        .expect("the bundle is named");
    assert!(
        line.text.contains("cargo-orch-demo") && line.text.contains(&key_id),
        "{}",
        line.text
    );
    orch_run
        .wait_for("Received test.ping", Duration::from_secs(30))
        .expect("the first ping arrives");
    // Without cargo or a workspace, status finds the bundle run in this
    // folder and says what runs.
    let status = Command::new(host.join("bin/cargo-orch"))
        .current_dir(&host)
        .env_clear()
        .env("PATH", &empty_path)
        .env("HOME", &home)
        .env("NO_COLOR", "1")
        .args(["orch", "status"])
        .output()
        .expect("status");
    let shown = said(&status);
    assert!(status.status.success(), "{shown}");
    assert!(
        shown.contains("bundle cargo-orch-demo 0.1.0")
            && shown.contains(&format!("signed by key {key_id}"))
            && shown.contains("library of mod-dummy-consumer: sha256 "),
        "{shown}"
    );
    orch_run.signal(Signal::SIGINT).expect("SIGINT");
    let status = orch_run
        .wait_exit(Duration::from_secs(30))
        .expect("it exits");
    assert_eq!(status.code(), Some(0), "{}", orch_run.output());

    // It ran from a versioned folder beside the archive, which verifies as
    // a bundle folder; the archive itself is untouched.
    let unpacked = unpacked_in(&host);
    let folder = unpacked
        .iter()
        .find(|name| name.starts_with("cargo-orch-demo-0.1.0-"))
        .unwrap_or_else(|| panic!("no versioned folder in {unpacked:?}"));
    assert_eq!(
        std::fs::read(host.join("app.tar")).expect("read"),
        std::fs::read(&built).expect("read")
    );
    let mut check = orch(&[
        "check",
        "--bundle",
        path(&host.join(folder)),
        "--trusted-key",
    ]);
    check.arg(format!("{}.pub", path(&key)));
    let output = check.output().expect("check");
    assert!(output.status.success(), "{}", said(&output));
}

/// Runs `orch run --bundle app.tar` in `host` with `extra` arguments.
fn run_bundle(host: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(orch_bin());
    command
        .current_dir(host)
        .env("NO_COLOR", "1")
        .args(["orch", "run", "--bundle", "app.tar"])
        .args(extra);
    command
}

/// The run is refused (exit 1) naming `names`, nothing is loaded and
/// nothing is left unpacked.
fn refused_before_loading(host: &Path, extra: &[&str], names: &str) {
    let output = run_bundle(host, extra).output().expect("run");
    let text = said(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains(names),
        "the refusal does not name {names}:\n{text}"
    );
    assert!(
        text.contains("nothing was loaded") && text.contains("hint:"),
        "{text}"
    );
    for loaded in ["[TIMING] module", "app.started", "Received test.ping"] {
        assert!(
            !text.contains(loaded),
            "something loaded ({loaded}):\n{text}"
        );
    }
    assert!(
        unpacked_in(host).is_empty(),
        "left behind: {:?}",
        unpacked_in(host)
    );
}

#[test]
fn run_refuses_tampered_unsigned_and_foreign_bundles_before_loading() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("release.key");
    let other = dir.path().join("other.key");
    keygen(&key);
    let other_id = keygen(&other);
    let trusted = format!("{}.pub", path(&key));
    let trust = ["--trusted-key", trusted.as_str()];
    let signed = dir.path().join("signed.tar");
    bundle(&signed, Some(&key));
    let bytes = std::fs::read(&signed).expect("bundle");

    let library = "modules/libmod_dummy_consumer.so";
    let (_, at, size) = entries(&bytes)
        .into_iter()
        .find(|e| e.0 == library)
        .expect("the consumer's library");
    let mut flipped = bytes.clone();
    flipped[at + size / 2] ^= 0x01;
    refused_before_loading(
        &host_folder(dir.path(), "flipped", &flipped),
        &trust,
        library,
    );

    let added = with_files_added(&bytes, &[("modules/libevil.so", b"evil")]);
    refused_before_loading(
        &host_folder(dir.path(), "added", &added),
        &trust,
        "modules/libevil.so",
    );

    let by_other = dir.path().join("other.tar");
    bundle(&by_other, Some(&other));
    let foreign = std::fs::read(&by_other).expect("read");
    refused_before_loading(
        &host_folder(dir.path(), "foreign", &foreign),
        &trust,
        &other_id,
    );

    let unsigned = dir.path().join("unsigned.tar");
    bundle(&unsigned, None);
    let unsigned = std::fs::read(&unsigned).expect("read");
    let host = host_folder(dir.path(), "unsigned", &unsigned);
    refused_before_loading(&host, &trust, "manifest.json.minisig");

    // --allow-unsigned runs it, saying loudly that nothing was checked.
    let mut orch_run = OrchProcess::spawn(run_bundle(&host, &["--allow-unsigned"])).expect("spawn");
    orch_run
        .wait_for("signature was NOT checked", Duration::from_secs(30))
        .expect("a loud warning");
    orch_run
        .wait_for("Received test.ping", Duration::from_secs(30))
        .expect("the first ping arrives");
    orch_run.signal(Signal::SIGINT).expect("SIGINT");
    let status = orch_run
        .wait_exit(Duration::from_secs(30))
        .expect("it exits");
    assert_eq!(status.code(), Some(0), "{}", orch_run.output());
}

/// A bundle whose main.yaml has `metrics:` continues in the bundle's own
/// `bin/orch-networked` (nothing is built: PATH is empty), and its metrics
/// say which bundle and which libraries run.
#[test]
fn a_networked_bundle_hands_over_to_its_own_host_and_names_itself_in_metrics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("release.key");
    let key_id = keygen(&key);
    let built = dir.path().join("prod.tar");
    let output = orch(&[
        "bundle",
        "--env",
        "prod",
        "--out",
        path(&built),
        "--sign",
        path(&key),
    ])
    .output()
    .expect("bundle");
    assert!(output.status.success(), "{}", said(&output));
    let host = host_folder(dir.path(), "host", &std::fs::read(&built).expect("read"));
    let empty_path = dir.path().join("empty-bin");
    std::fs::create_dir_all(&empty_path).expect("create");
    let mut command = Command::new(orch_bin());
    command
        .current_dir(&host)
        .env("PATH", &empty_path)
        .env("NO_COLOR", "1")
        .env("ORCH_METRICS_LISTEN", "127.0.0.1:0")
        .args(["orch", "run", "--bundle", "app.tar", "--trusted-key"])
        .arg(format!("{}.pub", path(&key)));
    let mut orch_run = OrchProcess::spawn(command).expect("spawn");
    orch_run
        .wait_for("from the bundle", Duration::from_secs(30))
        .expect("the hand-over names the bundle's orch-networked");
    let address = orch_run.metrics_address(Duration::from_secs(30));
    orch_run
        .wait_for("Received test.ping", Duration::from_secs(30))
        .expect("the first ping arrives");
    let (status, body) = orch_e2e::http::http_get(&address, "/metrics").expect("scrape");
    assert_eq!(status, 200, "{body}");
    let info = body
        .lines()
        .find(|l| l.starts_with("orch_bundle_info{"))
        .unwrap_or_else(|| panic!("no orch_bundle_info:\n{body}"));
    assert!(
        info.contains("app=\"cargo-orch-demo\"")
            && info.contains("version=\"0.1.0\"")
            && info.contains(&format!("signed_by=\"{key_id}\"")),
        "{info}"
    );
    assert!(
        body.lines()
            .any(|l| l.starts_with("orch_module_library_info{")
                && l.contains("module=\"mod-dummy-consumer\"")),
        "{body}"
    );
    orch_run.signal(Signal::SIGINT).expect("SIGINT");
    let status = orch_run
        .wait_exit(Duration::from_secs(30))
        .expect("it exits");
    assert_eq!(status.code(), Some(0), "{}", orch_run.output());
}
