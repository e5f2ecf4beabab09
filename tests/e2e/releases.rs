//! Bundles through NATS end to end (a real nats-server with JetStream, on
//! loopback): `cargo orch push`, then three nodes started with `run
//! --from-nats` in empty folders, with only the two programs taken out of
//! the bundle, an empty PATH (no cargo, no rustc) and an empty HOME. They
//! run v1 with matching digests; a release signed by a key they do not
//! trust, and one whose record no longer matches the stored archive, are
//! refused while v1 runs on; a good v2 made current reaches all three; a
//! v3 that changes main.yaml restarts each node into its own host.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use orch_e2e::nats_raw::RawNats;
use orch_e2e::releases::{self, BundleConfig, config_dir};
use orch_e2e::{NatsServer, OrchProcess, wait_until};

use super::bundle::{keygen, orch, path, said};

const APP: &str = "rel-e2e";
const START: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_secs(30);

/// The shipped producer and consumer at `version`, with `main_extra` in
/// main.yaml.
fn config_with(root: &Path, version: &str, main_extra: &str) -> PathBuf {
    config_dir(
        root,
        &format!("config-{version}"),
        &BundleConfig {
            app: APP,
            version,
            presence_bucket: "rel_e2e_nodes",
            bridge_extra: "",
            modules: "modules:\n  - name: mod-dummy-producer\n    config:\n      publish_interval: 200ms\n  \
                      - name: mod-dummy-consumer\n",
            main_extra,
        },
    )
    .expect("a configuration folder")
}

fn config(root: &Path, version: &str) -> PathBuf {
    config_with(root, version, "")
}

fn bundle_of(config: &Path, out: &Path, key: &Path) -> String {
    releases::bundle_of(config, out, key).expect("bundle")
}

fn push(server: &NatsServer, bundle: &Path, public: &Path, extra: &[&str]) -> String {
    releases::push(server, bundle, public, extra).expect("push")
}

fn all_on(dir: &Path, digest: &str, timeout: Duration) {
    releases::all_on(dir, &["n1", "n2", "n3"], digest, timeout).expect("every node on the digest");
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
        .map(|name| {
            releases::start_node((root, name), APP, &v1, &server, &public).expect("a node starts")
        })
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
    // Each node's presence record says what it refused and why.
    let refused_everywhere = || {
        let nodes = releases::cluster_json(&n1_dir);
        nodes.as_array().is_some_and(|nodes| {
            nodes.len() == 3
                && nodes.iter().all(|n| {
                    n["refused"]["version"] == "6.6.6"
                        && n["refused"]["reason"]
                            .as_str()
                            .is_some_and(|r| r.contains(&other_id))
                })
        })
    };
    wait_until("the refusals are in the records", SHORT, refused_everywhere);

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
    wait_until("a release that runs clears the refusal", SHORT, || {
        releases::cluster_json(&n1_dir)
            .as_array()
            .is_some_and(|nodes| nodes.iter().all(|n| n["refused"].is_null()))
    });
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

    // 4. A release with another main.yaml needs a new host: each node
    //    stops cleanly and starts the new bundle's program in its place.
    let v3 = root.join("v3.tar");
    let v3_digest = bundle_of(
        &config_with(root, "1.2.0", "timeouts:\n  start: 9s\n"),
        &v3,
        &key,
    );
    push(&server, &v3, &public, &["--current"]);
    for (_, node) in &mut nodes {
        node.wait_for("needs a new host", SHORT)
            .expect("the node sees it needs a restart");
        node.wait_for("runs rel-e2e 1.2.0", SHORT)
            .expect("the new host starts on v3");
        let before = node.lines_with("Received test.ping").len();
        wait_until("pings flow in the new host", SHORT, || {
            node.collect_for(Duration::from_millis(200));
            node.lines_with("Received test.ping").len() > before + 2
        });
    }
    all_on(&n1_dir, &v3_digest, SHORT);

    for (_, node) in &mut nodes {
        node.signal(Signal::SIGINT).expect("SIGINT");
        let status = node.wait_exit(SHORT).expect("the node stops");
        assert_eq!(status.code(), Some(0), "{}", node.output());
    }
}
