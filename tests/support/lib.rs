//! Support for the end-to-end tests: build the real `cargo-orch` binary once,
//! lay out a scratch configuration, and drive a running orchestrator process
//! through its output lines with deadlines (one process driver, [`watched`],
//! shared with xtask; [`OrchProcess`] is its face for the tests).

pub mod bridge;
pub mod debian;
pub mod http;
pub mod lean_host;
pub mod minisign;
pub mod nats;
pub mod nats_raw;
pub mod process;
pub mod promtool;
pub mod python;
pub mod releases;
pub mod scenario;
pub mod scratch;
pub mod watched;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub use http::{Receiver, http_get};
pub use nats::{NatsCluster, NatsServer, nats_server_binary};
pub use nats_raw::{RawMessage, RawNats};
pub use process::{
    Line, OrchProcess, assert_peak_within, control_ok, env_marker, mark, module_hosts, ping_seqs,
    proc_status_kib, processes_with_env, wait_until,
};
pub use python::{parse_prometheus, python_package, run_python};
pub use scenario::Scenario;
pub use scratch::ScratchWorkspace;

/// The first `program` on `PATH`.
pub(crate) fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.is_file())
}

/// The workspace root (the parent of this package).
pub fn workspace_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".."))
    })
}

/// The workspace's target folder (`CARGO_TARGET_DIR` when set).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The cargo that runs these tests, without the variables cargo sets for
/// the test binary itself (`CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`, ...):
/// a build script that reads one (ring's does) would otherwise be another
/// unit than in a plain `cargo build`, and the README's "one build" would
/// compile it twice.
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_MANIFEST_")
            || key.starts_with("CARGO_BIN_")
            || matches!(
                key,
                "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR"
            )
        {
            command.env_remove(key);
        }
    }
    command
}

/// Builds `cargo-orch` (once per test process) and returns its executable.
pub fn orch_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let output = cargo()
            .current_dir(workspace_root())
            .args([
                "build",
                "-p",
                "cargo-orch",
                "--bin",
                "cargo-orch",
                "--message-format=json",
            ])
            .output()
            .expect("cargo runs");
        assert!(
            output.status.success(),
            "building cargo-orch failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        cargo_metadata::Message::parse_stream(output.stdout.as_slice())
            .flatten()
            .find_map(|message| match message {
                cargo_metadata::Message::CompilerArtifact(a) if a.target.name == "cargo-orch" => {
                    a.executable.map(|e| e.into_std_path_buf())
                }
                _ => None,
            })
            .expect("cargo reported the cargo-orch executable")
    })
}
