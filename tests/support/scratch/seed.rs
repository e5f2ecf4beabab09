//! The seed of every scratch copy's target folder: the shipped modules (and
//! their test binaries) built once per test process from an unedited copy
//! of the repository into `target/scratch/seed/`. It outlives the run, so a
//! later run rebuilds only what changed in the repository since.
//!
//! Processes that share the target folder take turns: one builds the seed
//! under an exclusive lock on `target/scratch/.seed-lock` while the others
//! say what they wait for; copying it takes a shared lock.

use std::fs::{self, File};
use std::io;
use std::path::PathBuf;
use std::sync::OnceLock;

use cargo_metadata::MetadataCommand;

/// The seed's target folder, built (or found fresh) once per process.
pub(super) fn seed() -> io::Result<PathBuf> {
    static SEED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    SEED.get_or_init(|| build().map_err(|e| e.to_string()))
        .clone()
        .map_err(io::Error::other)
}

/// A shared lock on the seed while a copy reads it.
pub(super) fn reading() -> io::Result<File> {
    let lock = File::create(lock_path())?;
    lock.lock_shared()?;
    Ok(lock)
}

fn lock_path() -> PathBuf {
    crate::target_dir().join("scratch").join(".seed-lock")
}

fn build() -> io::Result<PathBuf> {
    let scratch = crate::target_dir().join("scratch");
    fs::create_dir_all(&scratch)?;
    let lock = File::create(lock_path())?;
    if lock.try_lock().is_err() {
        eprintln!(
            "waiting for {}: another test process builds the scratch seed",
            lock_path().display()
        );
        lock.lock()?;
    }
    let seed = scratch.join("seed");
    let pristine = tempfile::Builder::new().prefix("orch-seed-").tempdir()?;
    super::copy_sources(pristine.path())?;
    let shipped = shipped_modules(pristine.path())?;
    for verb in [&["build"][..], &["test", "--no-run"][..]] {
        let mut command = crate::cargo();
        command
            .current_dir(pristine.path())
            .args(verb)
            .arg("-q")
            .env("CARGO_TARGET_DIR", &seed);
        for package in &shipped {
            command.args(["-p", package]);
        }
        let output = command.output()?;
        if !output.status.success() {
            return Err(io::Error::other(format!(
                "building the scratch seed (cargo {}) failed:\n{}",
                verb.join(" "),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
    }
    Ok(seed)
}

/// The packages of `modules-backend/` in the workspace at `root`.
fn shipped_modules(root: &std::path::Path) -> io::Result<Vec<String>> {
    let metadata = MetadataCommand::new()
        .manifest_path(root.join("Cargo.toml"))
        .no_deps()
        .exec()
        .map_err(io::Error::other)?;
    let backend = root.join("modules-backend");
    Ok(metadata
        .workspace_packages()
        .into_iter()
        .filter(|p| p.manifest_path.as_std_path().starts_with(&backend))
        .map(|p| p.name.to_string())
        .collect())
}
