//! Reading the workspace once with `cargo metadata` (through `cargo_metadata`)
//! into the plain [`Workspace`] model of `orch-config`.

use std::path::{Path, PathBuf};

use cargo_metadata::{MetadataCommand, TargetKind};
use orch_config::workspace::{Workspace, WorkspacePackage};

/// `cargo metadata` failed: where we looked and what cargo said.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "cannot read the cargo workspace at {}: {cause}\n  hint: run cargo orch inside a workspace created by `cargo orch init`, or pass --manifest-path",
    path.display()
)]
pub struct WorkspaceError {
    /// Where we looked.
    pub path: PathBuf,
    /// cargo's message.
    pub cause: String,
}

/// Reads the workspace that contains `start` (a folder or a `Cargo.toml`).
pub fn discover_workspace(start: &Path) -> Result<Workspace, WorkspaceError> {
    let mut command = MetadataCommand::new();
    command.no_deps();
    if start.is_file() {
        command.manifest_path(start);
    } else {
        command.current_dir(start);
    }
    let metadata = command.exec().map_err(|e| WorkspaceError {
        path: start.to_path_buf(),
        cause: e.to_string(),
    })?;
    let member_names: Vec<String> = metadata
        .workspace_packages()
        .iter()
        .map(|p| p.name.to_string())
        .collect();
    let packages = metadata
        .workspace_packages()
        .into_iter()
        .map(|package| {
            let cdylib = package
                .targets
                .iter()
                .find(|t| t.kind.contains(&TargetKind::CDyLib));
            WorkspacePackage {
                name: package.name.to_string(),
                manifest_dir: package
                    .manifest_path
                    .parent()
                    .map(|p| p.as_std_path().to_path_buf())
                    .unwrap_or_default(),
                is_cdylib: cdylib.is_some(),
                lib_name: cdylib.map(|t| t.name.replace('-', "_")),
                workspace_dependencies: package
                    .dependencies
                    .iter()
                    .filter(|d| member_names.contains(&d.name))
                    .map(|d| d.name.clone())
                    .collect(),
            }
        })
        .collect();
    Ok(Workspace {
        root: metadata.workspace_root.into_std_path_buf(),
        target_dir: metadata.target_directory.into_std_path_buf(),
        packages,
    })
}
