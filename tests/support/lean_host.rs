//! A stripped copy of the host programs for tests that ship bundles around.
//!
//! `cargo orch bundle` puts the running program (and orch-networked beside
//! it) into the bundle. Debug builds carry ~60 MB of symbols and line tables
//! that a test never needs; the release tests push, download and hash every
//! bundle many times, so they bundle from a copy with those taken out
//! (`strip`, from binutils, which gcc brings). Without `strip` the copy is
//! made unstripped: slower, the same result.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context as _, Result, ensure};

use crate::{cargo, orch_bin, target_dir, workspace_root};

/// The networked program's name (built by cargo as a workspace binary).
const NETWORKED: &str = "orch-networked";

/// A stripped `cargo-orch` (built once per test process) with a stripped
/// orch-networked beside it, outside any cargo target folder, so that it
/// uses its sibling rather than building one.
pub fn lean_host() -> Result<&'static Path> {
    static HOST: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    HOST.get_or_init(|| make().map_err(|e| format!("{e:#}")))
        .as_deref()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

fn make() -> Result<PathBuf> {
    let host = orch_bin();
    let networked = build_networked()?;
    // One folder per pair of builds: the name changes when either does.
    let stamp = |path: &Path| -> Result<String> {
        let meta = std::fs::metadata(path).with_context(|| path.display().to_string())?;
        let modified = meta
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Ok(format!("{}-{}", meta.len(), modified.as_nanos()))
    };
    let name = format!("{}_{}", stamp(host)?, stamp(&networked)?);
    let base = target_dir().join("e2e-lean-host");
    let dir = base.join(&name);
    let program = dir.join("cargo-orch");
    if program.is_file() && dir.join(NETWORKED).is_file() {
        return Ok(program);
    }
    std::fs::create_dir_all(&base)?;
    // Copies of earlier builds are of no more use.
    for entry in std::fs::read_dir(&base)?.flatten() {
        let file_name = entry.file_name();
        // Folders being made (`.tmp…`) may belong to a test running now.
        if file_name != name.as_str() && !file_name.to_string_lossy().starts_with('.') {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    // Made in a folder of its own and renamed into place: tests running in
    // parallel (other test processes too) never see half a copy.
    let scratch = tempfile::tempdir_in(&base)?;
    for (from, to) in [(host, "cargo-orch"), (networked.as_path(), NETWORKED)] {
        let copy = scratch.path().join(to);
        std::fs::copy(from, &copy).with_context(|| format!("copying {}", from.display()))?;
        // Best effort: an unstripped copy works as well.
        let _ = Command::new("strip").arg(&copy).status();
    }
    let made = scratch.keep();
    if std::fs::rename(&made, &dir).is_err() {
        // Another process was first: use its copy.
        let _ = std::fs::remove_dir_all(&made);
    }
    ensure!(program.is_file(), "no lean host at {}", program.display());
    Ok(program)
}

/// Builds orch-networked (fresh after `cargo test --workspace`) and returns
/// its executable.
fn build_networked() -> Result<PathBuf> {
    let output = cargo()
        .current_dir(workspace_root())
        .args(["build", "-p", NETWORKED, "--bin", NETWORKED])
        .args(["--message-format=json"])
        .output()
        .context("cargo runs")?;
    ensure!(
        output.status.success(),
        "building {NETWORKED} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    cargo_metadata::Message::parse_stream(output.stdout.as_slice())
        .flatten()
        .find_map(|message| match message {
            cargo_metadata::Message::CompilerArtifact(a) if a.target.name == NETWORKED => {
                a.executable.map(|e| e.into_std_path_buf())
            }
            _ => None,
        })
        .context("cargo reported no orch-networked executable")
}
