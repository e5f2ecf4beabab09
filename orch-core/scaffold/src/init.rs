//! `cargo orch init`: a new orchestrated workspace from the `workspace`
//! template, all or nothing, checked with `cargo metadata` and
//! [`orch_config::load`] before it is kept.

use std::path::PathBuf;

use super::template::{self, TemplateKind};
use super::transaction::FileTransaction;
use super::{ScaffoldError, paths, workspace_values};
use orch_config as config;

/// What `cargo orch init` was asked for.
#[derive(Debug, Clone)]
pub struct InitWorkspace {
    /// The new workspace's folder, absolute or relative to `cwd`; it may exist
    /// if it holds none of the files to create.
    pub dir: PathBuf,
    /// The folder relative paths start from.
    pub cwd: PathBuf,
}

/// What [`init_workspace`] did.
#[derive(Debug, Clone)]
pub struct InitializedWorkspace {
    /// The workspace root.
    pub root: PathBuf,
    /// The files written, in order.
    pub files: Vec<PathBuf>,
    /// The `orch-sdk` dependency written into `[workspace.dependencies]`.
    pub sdk_dependency: String,
    /// Whether `.cargo/config.toml` got an `orch` alias (cargo-orch is not installed).
    pub alias: bool,
}

/// Creates the workspace `request` describes.
pub fn init_workspace(request: &InitWorkspace) -> Result<InitializedWorkspace, ScaffoldError> {
    let root = paths::canonical_prefix(&paths::normalize(&request.cwd.join(&request.dir)));
    if root.is_file() {
        return Err(ScaffoldError::AlreadyExists {
            what: format!("{} is a file", root.display()),
            hint: "give `cargo orch init` a new or empty folder".into(),
        });
    }
    if root.join("Cargo.toml").exists() {
        return Err(ScaffoldError::AlreadyExists {
            what: format!("{} already has a Cargo.toml", root.display()),
            hint: "`cargo orch init` creates a new workspace; in an existing workspace, add \
                   modules with `cargo orch new <name>`"
                .into(),
        });
    }
    let folder = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let template = template::find("workspace", TemplateKind::Workspace)?;
    let owned = workspace_values(&folder);
    let values: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let files: Vec<(PathBuf, String)> = template
        .render(&values)?
        .into_iter()
        .map(|file| (root.join(&file.path), file.contents))
        .collect();
    if let Some((existing, _)) = files.iter().find(|(path, _)| path.exists()) {
        return Err(ScaffoldError::AlreadyExists {
            what: format!("{} already exists", existing.display()),
            hint: "give `cargo orch init` a new or empty folder; nothing is overwritten".into(),
        });
    }

    let mut tx = FileTransaction::new();
    let outcome = (|| {
        tx.create_dir_all(&root).map_err(|e| {
            ScaffoldError::io(format!("cannot create the folder {}", root.display()), e)
        })?;
        for (path, contents) in &files {
            tx.create_file(path, contents.as_bytes())
                .map_err(|e| ScaffoldError::io(format!("cannot write {}", path.display()), e))?;
        }
        let workspace = orch_cargo::discover_workspace(&root)?;
        config::load(&root.join("config"), &workspace).map_err(|errors| ScaffoldError::Config {
            context: "the new workspace's configuration does not validate".into(),
            errors,
            hint: "this is a bug in cargo-orch's workspace template".into(),
        })?;
        Ok(())
    })();
    match outcome {
        Ok(()) => {
            let written = tx.created_files().iter().map(|p| p.to_path_buf()).collect();
            tx.commit();
            let sdk_dependency = value_of(&owned, "sdk_dependency");
            let alias = value_of(&owned, "orch_alias").contains("[alias]");
            Ok(InitializedWorkspace {
                root,
                files: written,
                sdk_dependency,
                alias,
            })
        }
        Err(cause) => Err(ScaffoldError::Undone {
            cause: Box::new(cause),
            leftovers: tx.rollback(),
        }),
    }
}

fn value_of(values: &[(&str, String)], key: &str) -> String {
    values
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_workspace_that_cargo_and_the_config_accept() {
        let dir = tempfile::tempdir().unwrap();
        let request = InitWorkspace {
            dir: PathBuf::from("My App"),
            cwd: dir.path().to_path_buf(),
        };
        let created = init_workspace(&request).unwrap();
        assert!(created.root.ends_with("My App"));
        let manifest = std::fs::read_to_string(created.root.join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains("members = [\"modules-backend/*\"]"),
            "{manifest}"
        );
        assert!(manifest.contains(&format!("orch-sdk = {}", created.sdk_dependency)));
        let main = std::fs::read_to_string(created.root.join("config/main.yaml")).unwrap();
        assert!(main.contains("name: my-app"), "{main}");
        assert!(created.root.join(".cargo/config.toml").is_file());
        assert!(!created.root.join("template.toml").exists());

        let again = init_workspace(&request).unwrap_err().to_string();
        assert!(again.contains("already has a Cargo.toml"), "{again}");
    }

    #[test]
    fn refuses_to_overwrite_any_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("app/config")).unwrap();
        std::fs::write(dir.path().join("app/config/main.yaml"), "mine").unwrap();
        let error = init_workspace(&InitWorkspace {
            dir: PathBuf::from("app"),
            cwd: dir.path().to_path_buf(),
        })
        .unwrap_err();
        assert!(
            error.to_string().contains("main.yaml already exists"),
            "{error}"
        );
        assert!(!dir.path().join("app/Cargo.toml").exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("app/config/main.yaml")).unwrap(),
            "mine"
        );
    }
}
