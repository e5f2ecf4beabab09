//! Bundles through NATS end to end (a real nats-server with JetStream, on
//! loopback): `cargo orch push`, then three nodes started with `run
//! --from-nats` in empty folders, with only the two programs taken out of
//! the bundle, an empty PATH (no cargo, no rustc) and an empty HOME. They
//! run v1 with matching digests; a release signed by a key they do not
//! trust, and one whose record no longer matches the stored archive, are
//! refused while v1 runs on; a good v2 made current reaches all three.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use orch_bundle::format::sha256_hex;
use orch_e2e::nats_raw::RawNats;
use orch_e2e::{NatsServer, OrchProcess, wait_until};

use super::bundle::{file_in, keygen, orch, path, said, succeeds};

const APP: &str = "rel-e2e";
const START: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_secs(30);

/// A configuration folder `root/name`: `app` at `version`, a bridge to
/// `${ORCH_NATS_URL}` as node `${ORCH_NODE}` with presence in `bucket` and
/// `bridge_extra` lines, and `modules` as modules.yaml.
pub(crate) fn config_dir(
    root: &Path,
    name: &str,
    (app, version): (&str, &str),
    (bucket, bridge_extra): (&str, &str),
    modules: &str,
) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("create");
    std::fs::write(
        dir.join("main.yaml"),
        format!(
            "app:\n  name: {app}\n  version: {version}\nbridge:\n  nats:\n    url: ${{ORCH_NATS_URL:-nats://127.0.0.1:4222}}\n    \
             node: ${{ORCH_NODE:-node}}\n    subject_prefix: rel.e2e\n    presence:\n      bucket: {bucket}\n      \
             ttl: 2s\n{bridge_extra}"
        ),
    )
    .expect("write");
    std::fs::write(dir.join("modules.yaml"), modules).expect("write");
    dir
}

/// The shipped producer and consumer at `version`.
fn config(root: &Path, version: &str) -> PathBuf {
    config_dir(
        root,
        &format!("config-{version}"),
        (APP, version),
        ("rel_e2e_nodes", ""),
        "modules:\n  - name: mod-dummy-producer\n    config:\n      publish_interval: 200ms\n  \
         - name: mod-dummy-consumer\n",
    )
}

/// `cargo orch bundle` of `config`, signed with `key`; the bundle's digest
/// (the SHA-256 of its manifest).
pub(crate) fn bundle_of(config: &Path, out: &Path, key: &Path) -> String {
    succeeds(orch(&[
        "--config-dir",
        path(config),
        "bundle",
        "--out",
        path(out),
        "--sign",
        path(key),
    ]));
    let bytes = std::fs::read(out).expect("read the bundle");
    sha256_hex(&file_in(&bytes, "manifest.json"))
}

/// `cargo orch push BUNDLE --nats URL --trusted-key PUB [extra]`.
pub(crate) fn push(server: &NatsServer, bundle: &Path, public: &Path, extra: &[&str]) -> String {
    let mut command = orch(&[
        "push",
        path(bundle),
        "--nats",
        &server.url(),
        "--trusted-key",
    ]);
    command.arg(public).args(extra);
    succeeds(command)
}

/// A machine with nothing but the bundle's two programs, running
/// `--from-nats` of `app` as node `name`.
pub(crate) fn start_node(
    (root, name): (&Path, &str),
    app: &str,
    bundle: &Path,
    server: &NatsServer,
    public: &Path,
) -> (PathBuf, OrchProcess) {
    let dir = root.join(name);
    let (empty_path, home) = (root.join("empty-bin"), root.join("home"));
    for folder in [&dir, &empty_path, &home] {
        std::fs::create_dir_all(folder).expect("create");
    }
    let tar = Command::new("tar")
        .current_dir(&dir)
        .arg("-xf")
        .arg(bundle)
        .args(["bin/cargo-orch", "bin/orch-networked"])
        .output()
        .expect("run tar");
    assert!(tar.status.success(), "tar: {}", said(&tar));
    std::fs::copy(public, dir.join("release.pub")).expect("copy the key");
    let mut command = Command::new(dir.join("bin/cargo-orch"));
    command
        .current_dir(&dir)
        .env_clear()
        .env("PATH", &empty_path)
        .env("HOME", &home)
        .env("NO_COLOR", "1")
        .env("ORCH_NATS_URL", server.url())
        .env("ORCH_NODE", name)
        .args(["orch", "run", "--from-nats", &server.url(), "--app", app])
        .args(["--trusted-key", "release.pub"]);
    let process = OrchProcess::spawn(command).expect("spawn a node");
    (dir, process)
}

/// Each node's (id, bundle digest, ready) as `status --cluster --json`,
/// run in `dir` with the bundle's own program, shows them.
pub(crate) fn cluster(dir: &Path) -> Vec<(String, String, bool)> {
    let output = Command::new(dir.join("bin/cargo-orch"))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .args(["orch", "status", "--cluster", "--json"])
        .output()
        .expect("status --cluster");
    let nodes: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    let mut seen: Vec<(String, String, bool)> = nodes
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .map(|n| {
                    (
                        n["node"].as_str().unwrap_or_default().to_owned(),
                        n["bundle_digest"].as_str().unwrap_or_default().to_owned(),
                        n["ready"].as_bool().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    seen.sort();
    seen
}

/// Waits until the cluster shows the three nodes, ready, on `digest`.
pub(crate) fn all_on(dir: &Path, digest: &str, timeout: Duration) {
    let want: Vec<(String, String, bool)> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| ((*n).to_owned(), digest.to_owned(), true))
        .collect();
    let mut last = Vec::new();
    for _ in 0..timeout.as_millis() / 250 {
        last = cluster(dir);
        if last == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("the cluster never showed every node ready on {digest}: {last:?}");
}

/// Writes a value of the releases bucket as any client with write access
/// could (a raw `PUB` on the bucket's subject).
fn forge(server: &NatsServer, key: &str, value: &serde_json::Value) {
    let mut raw = RawNats::connect(server.port(), None).expect("connect");
    let payload = serde_json::to_vec(value).expect("json");
    raw.publish(&format!("$KV.ORCH_RELEASES.{key}"), None, &[], &payload)
        .expect("publish");
    raw.flush().expect("flush");
}

#[test]
fn nodes_run_from_nats_refuse_tampered_releases_and_follow_a_good_one() {
    let server = NatsServer::start().expect("nats-server");
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path();
    let (key, other) = (root.join("release.key"), root.join("other.key"));
    let key_id = keygen(&key);
    let other_id = keygen(&other);
    let (public, other_public) = (root.join("release.key.pub"), root.join("other.key.pub"));
    let v1 = root.join("v1.tar");
    let v1_digest = bundle_of(&config(root, "1.0.0"), &v1, &key);
    let v2 = root.join("v2.tar");
    let v2_digest = bundle_of(&config(root, "1.1.0"), &v2, &key);
    let evil = root.join("evil.tar");
    let evil_digest = bundle_of(&config(root, "6.6.6"), &evil, &other);

    let pushed = push(&server, &v1, &public, &[]);
    assert!(
        pushed.contains(&format!("pushed {APP} 1.0.0"))
            && pushed.contains(&format!("signed by {key_id}"))
            && pushed.contains("current release of rel-e2e: 1.0.0"),
        "{pushed}"
    );
    // Pushing the very same bundle again changes nothing.
    assert!(push(&server, &v1, &public, &[]).contains("already there"));

    let mut nodes: Vec<(PathBuf, OrchProcess)> = ["n1", "n2", "n3"]
        .iter()
        .map(|name| start_node((root, name), APP, &v1, &server, &public))
        .collect();
    for (_, node) in &mut nodes {
        node.wait_for("app.started", START)
            .expect("the node starts");
        let line = node
            .wait_for("[RELEASE] node", SHORT)
            .expect("its release is named");
        assert!(
            line.text.contains("1.0.0, the current release"),
            "{}",
            line.text
        );
    }
    let n1_dir = nodes[0].0.clone();
    all_on(&n1_dir, &v1_digest, SHORT);
    for (dir, _) in &nodes {
        assert!(
            dir.join(format!("{APP}-1.0.0-{}.tar", &v1_digest[..12]))
                .is_file(),
            "the archive is downloaded into the node's folder"
        );
    }

    // 1. A release signed by a key the nodes do not trust, made current by
    //    someone who may push: every node refuses it, v1 runs on.
    push(&server, &evil, &other_public, &["--current"]);
    for (_, node) in &mut nodes {
        let line = node
            .wait_for("[RELEASE] 6.6.6 refused", SHORT)
            .expect("the untrusted release is refused");
        assert!(
            line.text.contains(&other_id),
            "names the key: {}",
            line.text
        );
    }

    // 2. The record no longer matches the stored archive (a forged record
    //    of the same release, pointed at again): refused at download.
    let object = format!("{APP}/6.6.6/{evil_digest}.tar");
    let size = std::fs::metadata(&evil).expect("size").len();
    forge(
        &server,
        &format!("{APP}.release.6=2E6=2E6"),
        &serde_json::json!({
            "app": APP, "version": "6.6.6", "digest": evil_digest,
            "archive_sha256": "0".repeat(64), "size": size, "object": object,
            "signed_by": null, "pushed_at": 0
        }),
    );
    forge(
        &server,
        &format!("{APP}.current"),
        &serde_json::json!({"version": "6.6.6", "digest": evil_digest}),
    );
    for (_, node) in &mut nodes {
        node.wait_for("is not the one pushed", SHORT)
            .expect("the archive that does not match its record is refused");
    }
    // v1 ran on through both, and still takes pings.
    all_on(&n1_dir, &v1_digest, SHORT);
    for (_, node) in &mut nodes {
        let before = node.lines_with("Received test.ping").len();
        wait_until("pings go on", SHORT, || {
            node.collect_for(Duration::from_millis(200));
            node.lines_with("Received test.ping").len() > before + 2
        });
        assert!(
            node.lines_with("[DEPLOY] deploy:").is_empty(),
            "nothing was deployed"
        );
    }

    // 3. A good v2 made current: every node moves to it.
    let pushed = push(&server, &v2, &public, &["--current"]);
    assert!(
        pushed.contains("current release of rel-e2e: 1.1.0"),
        "{pushed}"
    );
    for (_, node) in &mut nodes {
        node.wait_for("[RELEASE] now running 1.1.0", SHORT)
            .expect("the node deploys v2");
    }
    all_on(&n1_dir, &v2_digest, SHORT);
    // A version is pushed once: another bundle under 1.1.0 is refused.
    let other_v2 = config(root, "1.1.0");
    let modules = std::fs::read_to_string(other_v2.join("modules.yaml")).expect("read");
    std::fs::write(
        other_v2.join("modules.yaml"),
        format!("# changed\n{modules}"),
    )
    .expect("write");
    let changed = root.join("v2-changed.tar");
    bundle_of(&other_v2, &changed, &key);
    let output = orch(&[
        "push",
        path(&changed),
        "--nats",
        &server.url(),
        "--trusted-key",
    ])
    .arg(&public)
    .output()
    .expect("push");
    let text = said(&output);
    assert!(
        !output.status.success() && text.contains("a version is pushed once"),
        "{text}"
    );

    for (_, node) in &mut nodes {
        node.signal(Signal::SIGINT).expect("SIGINT");
        let status = node.wait_exit(SHORT).expect("the node stops");
        assert_eq!(status.code(), Some(0), "{}", node.output());
    }
}
