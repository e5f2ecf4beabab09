//! `cargo orch run` with a `bridge:`, `metrics:` or `notify.webhook:`
//! section in main.yaml: the `cargo-orch` binary has no network parts (see
//! [`crate::network`]), so it replaces itself (`exec`, same pid, same
//! arguments, same terminal) with `orch-networked`, which has them.
//!
//! Where `orch-networked` comes from: when `cargo-orch` runs from a cargo
//! target folder (the `cargo orch` alias, `cargo build`) and its sources are
//! still there, it is built on demand into that same folder and profile, as
//! the modules are, so it shares every compiled dependency and is never
//! stale; an installed `cargo-orch` finds it next to itself (`cargo install
//! --path orch-core/networked`).

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use orch_cargo::program::{ProgramBuild, build_program};
use orch_process::ProcessGroups;

/// The program's name (its package's only binary).
pub const NETWORKED_BIN: &str = "orch-networked";

/// The package's manifest, where this binary was built from.
fn networked_manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("orch-core")
        .join("networked")
        .join("Cargo.toml")
}

/// The target folder and profile (`true`: release) this executable was built
/// into, when it runs from one: `<target>/debug/cargo-orch`, with cargo's
/// `CACHEDIR.TAG` in `<target>`.
fn cargo_target_of(executable: &Path) -> Option<(PathBuf, bool)> {
    let profile_dir = executable.parent()?;
    let release = match profile_dir.file_name()?.to_str()? {
        "debug" => false,
        "release" => true,
        _ => return None,
    };
    let target = profile_dir.parent()?;
    target
        .join("CACHEDIR.TAG")
        .is_file()
        .then(|| (target.to_path_buf(), release))
}

/// Finds (building it if needed, unless `no_build`) the `orch-networked`
/// executable that matches this one.
pub(crate) fn locate(no_build: bool, timeout: Duration) -> anyhow::Result<PathBuf> {
    let executable = std::env::current_exe().context("cannot find this program's own path")?;
    let sibling = executable.with_file_name(NETWORKED_BIN);
    let manifest = networked_manifest();
    let Some((target_dir, release)) = cargo_target_of(&executable).filter(|_| manifest.is_file())
    else {
        anyhow::ensure!(
            sibling.is_file(),
            "this cargo-orch has no network parts and no {NETWORKED_BIN} beside it ({}); \
             install it next to cargo-orch: cargo install --path orch-core/networked",
            sibling.display()
        );
        return Ok(sibling);
    };
    if no_build {
        anyhow::ensure!(
            sibling.is_file(),
            "--no-build: {NETWORKED_BIN} is not built yet ({}); run once without --no-build",
            sibling.display()
        );
        return Ok(sibling);
    }
    let build = ProgramBuild {
        manifest: &manifest,
        bin: NETWORKED_BIN,
        target_dir: &target_dir,
        release,
        timeout,
    };
    build_program(&build, &ProcessGroups::default())
        .with_context(|| format!("cannot build {NETWORKED_BIN} (phase build)"))
}

/// Replaces this process with `orch-networked` running the same command
/// line (`why` says what needs it): `program` (a bundle's, verified), else
/// the one [`locate`] finds.
/// Returns only when that cannot be done, with the reason.
pub fn hand_over(
    why: &str,
    program: Option<PathBuf>,
    no_build: bool,
    build_timeout: Duration,
) -> anyhow::Error {
    eprintln!(
        "cargo orch: {why}: continuing in {NETWORKED_BIN}, the orchestrator \
         with the network parts{}",
        if program.is_some() {
            ", from the bundle"
        } else {
            " (built on first use)"
        }
    );
    let program = match program.map_or_else(|| locate(no_build, build_timeout), Ok) {
        Ok(program) => program,
        Err(error) => return error,
    };
    let error = std::process::Command::new(&program)
        .args(std::env::args_os().skip(1))
        .exec();
    anyhow::Error::new(error).context(format!("cannot start {}", program.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_folder_of_a_cargo_target_folder_is_recognised() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let target = dir.path().join("target");
        std::fs::create_dir_all(target.join("release")).expect("create");
        let exe = target.join("release").join("cargo-orch");
        assert_eq!(cargo_target_of(&exe), None, "no CACHEDIR.TAG yet");
        std::fs::write(target.join("CACHEDIR.TAG"), "Signature").expect("write");
        assert_eq!(cargo_target_of(&exe), Some((target.clone(), true)));
        assert_eq!(
            cargo_target_of(&target.join("debug").join("cargo-orch")),
            Some((target.clone(), false))
        );
        assert_eq!(
            cargo_target_of(&dir.path().join("bin").join("cargo-orch")),
            None
        );
    }

    #[test]
    fn the_networked_package_sits_beside_this_one() {
        assert!(
            networked_manifest().is_file(),
            "{} is missing",
            networked_manifest().display()
        );
    }
}
