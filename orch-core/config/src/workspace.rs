//! The cargo workspace the orchestrator runs in, as plain data. `orch-cargo`
//! reads it from `cargo metadata` (`orch_cargo::discover_workspace`); the
//! configuration checks packages against it without knowing cargo.

use std::path::{Path, PathBuf};

/// One package of the workspace, as far as the orchestrator cares.
#[derive(Debug, Clone)]
pub struct WorkspacePackage {
    /// Package name (`mod-dummy-consumer`).
    pub name: String,
    /// The folder of its `Cargo.toml`.
    pub manifest_dir: PathBuf,
    /// Whether its library builds a `cdylib` (loadable as a module).
    pub is_cdylib: bool,
    /// The crate name of its library target (`mod_dummy_consumer`), if it has one.
    pub lib_name: Option<String>,
    /// Names of the workspace packages it depends on (path dependencies).
    pub workspace_dependencies: Vec<String>,
}

/// The workspace: its root, target folder and member packages.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The folder of the workspace `Cargo.toml`.
    pub root: PathBuf,
    /// Cargo's target folder.
    pub target_dir: PathBuf,
    /// The member packages.
    pub packages: Vec<WorkspacePackage>,
}

impl Workspace {
    /// Where cargo puts the cdylib of `package` for a profile (`debug`/`release`).
    pub fn artifact_path(&self, package: &str, release: bool) -> Option<PathBuf> {
        let lib = self.package(package)?.lib_name.as_ref()?;
        let profile = if release { "release" } else { "debug" };
        Some(self.target_dir.join(profile).join(format!(
            "{}{lib}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        )))
    }

    /// The package called `name`.
    pub fn package(&self, name: &str) -> Option<&WorkspacePackage> {
        self.packages.iter().find(|p| p.name == name)
    }

    /// The package whose `Cargo.toml` is in `dir` (relative to the root or absolute).
    pub fn package_at(&self, dir: &Path) -> Option<&WorkspacePackage> {
        let wanted = self.root.join(dir);
        let wanted = wanted.canonicalize().unwrap_or(wanted);
        self.packages.iter().find(|p| {
            p.manifest_dir
                .canonicalize()
                .unwrap_or_else(|_| p.manifest_dir.clone())
                == wanted
        })
    }

    /// The workspace packages `package` depends on, directly or through others.
    pub fn dependency_closure(&self, package: &str) -> std::collections::BTreeSet<String> {
        let mut closure = std::collections::BTreeSet::new();
        let mut pending = vec![package.to_owned()];
        while let Some(name) = pending.pop() {
            let Some(found) = self.package(&name) else {
                continue;
            };
            for dependency in &found.workspace_dependencies {
                if closure.insert(dependency.clone()) {
                    pending.push(dependency.clone());
                }
            }
        }
        closure
    }
}
