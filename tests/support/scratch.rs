//! A throw-away copy of this workspace, for tests and demo steps that edit
//! modules or configuration: the repository itself is never modified, even when a
//! test fails or is interrupted.
//!
//! Each copy has a target folder of its own, so copies run in parallel and an
//! edit in one never reaches another's build. Cargo rebuilds nothing that a
//! copy did not change (nextest's seed pattern): the sources are copied with
//! their modification times kept, and the target folder is a copy (times kept)
//! of a seed that [`seed`] built once per run from an unedited copy of the
//! repository. Cargo names a workspace crate's artifacts by its path relative
//! to the workspace root, so the seed's artifacts are the copy's own.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::{orch_bin, workspace_root};

mod seed;

/// Top-level entries of the repository that are not copied.
const SKIPPED: [&str; 4] = ["target", ".git", "logs", ".env"];

/// A copy of the workspace in a temporary folder, with a target folder of its
/// own, both removed on drop.
pub struct ScratchWorkspace {
    dir: TempDir,
    target: TempDir,
}

impl ScratchWorkspace {
    /// Copies the repository (sources, config, `.cargo/`; not `target/`, `.git/`,
    /// `logs/` or `.env`) and the seed's target folder.
    pub fn copy_of_repo() -> io::Result<Self> {
        let seed = seed::seed()?;
        let dir = tempfile::Builder::new().prefix("orch-scratch-").tempdir()?;
        copy_sources(dir.path())?;
        let target = tempfile::Builder::new()
            .prefix("copy-")
            .tempdir_in(seed.parent().unwrap_or(&seed))?;
        let _reading = seed::reading()?;
        copy_tree(&seed, target.path())?;
        Ok(Self { dir, target })
    }

    /// The copy's root.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the copy.
    pub fn path(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Reads a file of the copy.
    pub fn read(&self, relative: impl AsRef<Path>) -> String {
        fs::read_to_string(self.path(relative)).unwrap_or_default()
    }

    /// Writes a file of the copy in place.
    pub fn write(&self, relative: impl AsRef<Path>, contents: &str) -> io::Result<()> {
        fs::write(self.path(relative), contents)
    }

    /// Replaces the first `from` with `to` in a file of the copy; errors if absent.
    pub fn replace(&self, relative: impl AsRef<Path>, from: &str, to: &str) -> io::Result<()> {
        let path = self.path(relative);
        let text = fs::read_to_string(&path)?;
        if !text.contains(from) {
            return Err(io::Error::other(format!(
                "{from:?} not in {}",
                path.display()
            )));
        }
        fs::write(&path, text.replacen(from, to, 1))
    }

    /// The copy's target folder.
    pub fn target_dir(&self) -> &Path {
        self.target.path()
    }

    /// `cargo-orch orch <args>` run in the copy, with plain output and its
    /// target folder.
    pub fn orch(&self, args: &[&str]) -> Command {
        let mut command = Command::new(orch_bin());
        command
            .current_dir(self.root())
            .arg("orch")
            .args(args)
            .env("CARGO_TARGET_DIR", self.target_dir())
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info");
        command
    }

    /// `cargo <args>` in the copy with its target folder.
    pub fn cargo(&self, args: &[&str]) -> Command {
        let mut command = crate::cargo();
        command
            .current_dir(self.root())
            .args(args)
            .env("CARGO_TARGET_DIR", self.target_dir());
        command
    }
}

/// Copies the repository's sources into `to`, times kept.
fn copy_sources(to: &Path) -> io::Result<()> {
    for entry in fs::read_dir(workspace_root())? {
        let entry = entry?;
        let name = entry.file_name();
        if SKIPPED.iter().any(|s| name == *s) {
            continue;
        }
        copy_tree(&entry.path(), &to.join(&name))?;
    }
    Ok(())
}

/// Copies `from` into `to` (files and folders; links and sockets are not
/// part of a source tree or a target folder's artifacts), each file's
/// modification time kept: cargo decides freshness by them.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    let metadata = fs::symlink_metadata(from)?;
    let file_type = metadata.file_type();
    if file_type.is_dir() {
        fs::create_dir_all(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else if file_type.is_file() {
        fs::copy(from, to)?;
        let times = fs::FileTimes::new()
            .set_accessed(metadata.accessed()?)
            .set_modified(metadata.modified()?);
        // futimens needs ownership, not write access: a read-only file too.
        fs::File::open(to)?.set_times(times)
    } else {
        Ok(())
    }
}
