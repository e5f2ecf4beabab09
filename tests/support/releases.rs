//! Bundles through NATS, as the release tests and the demo drive them: a
//! bundle configuration, `bundle`, `push`, a node started with `run
//! --from-nats` in a folder of its own with nothing but the bundle's two
//! programs (empty PATH and HOME), and the cluster view read back.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};

use crate::{NatsServer, OrchProcess, orch_bin, workspace_root};

/// stdout and stderr of `output`, as one text.
pub fn said(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `cargo-orch orch ARGS` in the workspace root.
pub fn orch(args: &[&str]) -> Command {
    orch_as(orch_bin(), args)
}

/// `PROGRAM orch ARGS` in the workspace root.
fn orch_as(program: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command
        .current_dir(workspace_root())
        .arg("orch")
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("ORCH_SIGNING_PASSWORD")
        .env_remove("SOURCE_DATE_EPOCH");
    command
}

/// Runs `command`; its output, or an error with it when it failed.
pub fn succeeds(mut command: Command) -> Result<String> {
    let output = command.output().context("cannot run cargo-orch")?;
    let text = said(&output);
    ensure!(output.status.success(), "expected success:\n{text}");
    Ok(text)
}

/// What a bundle's configuration says.
pub struct BundleConfig<'a> {
    /// `app.name`.
    pub app: &'a str,
    /// `app.version`.
    pub version: &'a str,
    /// `bridge.nats.presence.bucket`.
    pub presence_bucket: &'a str,
    /// More lines under `bridge.nats` (4 spaces in).
    pub bridge_extra: &'a str,
    /// modules.yaml.
    pub modules: &'a str,
    /// More top-level lines of main.yaml.
    pub main_extra: &'a str,
}

/// A configuration folder `root/name`: a bridge to `${ORCH_NATS_URL}` as
/// node `${ORCH_NODE}` (subject prefix `rel.e2e`), presence with a 2 s TTL.
pub fn config_dir(root: &Path, name: &str, config: &BundleConfig<'_>) -> Result<PathBuf> {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("main.yaml"),
        format!(
            "app:\n  name: {}\n  version: {}\nbridge:\n  nats:\n    url: ${{ORCH_NATS_URL:-nats://127.0.0.1:4222}}\n    \
             node: ${{ORCH_NODE:-node}}\n    subject_prefix: rel.e2e\n    presence:\n      bucket: {}\n      \
             ttl: 2s\n{}{}",
            config.app,
            config.version,
            config.presence_bucket,
            config.bridge_extra,
            config.main_extra
        ),
    )?;
    std::fs::write(dir.join("modules.yaml"), config.modules)?;
    Ok(dir)
}

/// `cargo orch bundle` of `config`, signed with `key`; the bundle's digest
/// (the SHA-256 of its manifest).
///
/// Bundled from [`lean_host`](crate::lean_host::lean_host): a stripped copy
/// of the host programs, half the bytes to push, download and hash.
pub fn bundle_of(config: &Path, out: &Path, key: &Path) -> Result<String> {
    let mut command = orch_as(crate::lean_host::lean_host()?, &["--config-dir"]);
    command
        .arg(config)
        .args(["bundle", "--out"])
        .arg(out)
        .arg("--sign")
        .arg(key);
    succeeds(command)?;
    let file = std::fs::File::open(out)?;
    let entries = orch_bundle::reader::read_archive(file, |_| false)?;
    entries
        .into_iter()
        .find(|e| e.path == "manifest.json")
        .map(|e| e.sha256)
        .context("the bundle has no manifest.json")
}

/// `cargo orch push BUNDLE --nats URL --trusted-key PUB [extra]`.
pub fn push(server: &NatsServer, bundle: &Path, public: &Path, extra: &[&str]) -> Result<String> {
    let mut command = orch(&["push"]);
    command
        .arg(bundle)
        .args(["--nats", &server.url(), "--trusted-key"])
        .arg(public)
        .args(extra);
    succeeds(command)
}

/// A machine with nothing but the bundle's two programs (taken out with
/// tar) and the public key, running `--from-nats` of `app` as node `name`
/// in `root/name`.
pub fn start_node(
    (root, name): (&Path, &str),
    app: &str,
    bundle: &Path,
    server: &NatsServer,
    public: &Path,
) -> Result<(PathBuf, OrchProcess)> {
    let dir = root.join(name);
    let (empty_path, home) = (root.join("empty-bin"), root.join("home"));
    for folder in [&dir, &empty_path, &home] {
        std::fs::create_dir_all(folder)?;
    }
    let tar = Command::new("tar")
        .current_dir(&dir)
        .arg("-xf")
        .arg(bundle)
        .args(["bin/cargo-orch", "bin/orch-networked"])
        .output()?;
    ensure!(tar.status.success(), "tar: {}", said(&tar));
    std::fs::copy(public, dir.join("release.pub"))?;
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
    let process = OrchProcess::spawn(command)?;
    Ok((dir, process))
}

/// The nodes' records as `status --cluster --json`, run in `dir` with the
/// bundle's own program, shows them (`null` when it cannot).
pub fn cluster_json(dir: &Path) -> serde_json::Value {
    Command::new(dir.join("bin/cargo-orch"))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .args(["orch", "status", "--cluster", "--json"])
        .output()
        .ok()
        .and_then(|output| serde_json::from_slice(&output.stdout).ok())
        .unwrap_or_default()
}

/// Each node's (id, bundle digest, ready) as [`cluster_json`] shows them,
/// sorted.
pub fn cluster(dir: &Path) -> Vec<(String, String, bool)> {
    let nodes = cluster_json(dir);
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

/// Waits until the cluster seen from `dir` shows `nodes`, ready, on `digest`.
pub fn all_on(dir: &Path, nodes: &[&str], digest: &str, timeout: Duration) -> Result<()> {
    let want: Vec<(String, String, bool)> = nodes
        .iter()
        .map(|n| ((*n).to_owned(), digest.to_owned(), true))
        .collect();
    let mut last = Vec::new();
    for _ in 0..timeout.as_millis() / 250 {
        last = cluster(dir);
        if last == want {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    anyhow::bail!("the cluster never showed {nodes:?} ready on {digest}: {last:?}")
}
