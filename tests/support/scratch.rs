//! A throw-away copy of this workspace, for tests and demo steps that edit
//! modules or configuration: the repository itself is never modified, even when a
//! test fails or is interrupted. Builds share the repository's target folder, so
//! registry dependencies are not compiled again.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};
use tempfile::TempDir;

use crate::{orch_bin, workspace_root};

/// Top-level entries that are not copied.
const SKIPPED: [&str; 4] = ["target", ".git", "logs", ".env"];

/// A copy of the workspace in a temporary folder, removed on drop.
///
/// Copies share one target folder, and cargo names a cdylib by its crate name
/// alone, so two copies building the same module at once would overwrite each
/// other's library: a copy holds an exclusive lock on the shared target folder
/// for its whole life (across threads and processes), and scratch tests run one
/// at a time.
pub struct ScratchWorkspace {
    dir: TempDir,
    target_dir: PathBuf,
    _lock: Flock<fs::File>,
}

impl ScratchWorkspace {
    /// Copies the repository (sources, config, `.cargo/`; not `target/`, `.git/`,
    /// `logs/` or `.env`).
    pub fn copy_of_repo() -> io::Result<Self> {
        let root = workspace_root();
        let target_dir = root.join("target").join("scratch");
        fs::create_dir_all(&target_dir)?;
        let lock_file = fs::File::create(target_dir.join(".scratch-lock"))?;
        let lock =
            Flock::lock(lock_file, FlockArg::LockExclusive).map_err(|(_, e)| io::Error::from(e))?;
        let dir = tempfile::Builder::new().prefix("orch-scratch-").tempdir()?;
        for entry in fs::read_dir(root)? {
            let entry = entry?;
            let name = entry.file_name();
            if SKIPPED.iter().any(|s| name == *s) {
                continue;
            }
            copy_tree(&entry.path(), &dir.path().join(&name))?;
        }
        Ok(Self {
            dir,
            target_dir,
            _lock: lock,
        })
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

    /// The shared target folder of every scratch copy.
    pub fn target_dir(&self) -> &Path {
        &self.target_dir
    }

    /// `cargo-orch orch <args>` run in the copy, with plain output and the shared
    /// target folder.
    pub fn orch(&self, args: &[&str]) -> Command {
        let mut command = Command::new(orch_bin());
        command
            .current_dir(self.root())
            .arg("orch")
            .args(args)
            .env("CARGO_TARGET_DIR", &self.target_dir)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info");
        command
    }

    /// `cargo <args>` in the copy with the shared target folder.
    pub fn cargo(&self, args: &[&str]) -> Command {
        let mut command = crate::cargo();
        command
            .current_dir(self.root())
            .args(args)
            .env("CARGO_TARGET_DIR", &self.target_dir);
        command
    }
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    let file_type = fs::symlink_metadata(from)?.file_type();
    if file_type.is_dir() {
        fs::create_dir_all(to)?;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else if file_type.is_file() {
        fs::copy(from, to).map(drop)
    } else {
        Ok(()) // symlinks and sockets are not part of a source tree
    }
}
