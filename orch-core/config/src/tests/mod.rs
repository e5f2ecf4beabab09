//! Loading whole configurations: valid files, every kind of error, env
//! expansion, ordering and secrets. Parallel-safe: no process env changes.
//! One file per topic; the shared fixture and helpers live here.

mod bridge;
mod bridge_requests;
mod bridge_work;
mod contracts;
mod delivery;
mod depends_on;
mod display;
mod env_expansion;
mod environments;
mod isolation;
mod missing_files;
mod names_packages;
mod operating;
mod secrets;
mod snapshots;
mod startup_order;
mod syntax;
mod test_timeout;
mod types_values;
mod unknown_keys;
mod valid;

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::*;
use crate::workspace::{Workspace, WorkspacePackage};

/// A temporary workspace root holding `config/`.
struct Fixture {
    dir: TempDir,
    workspace: Workspace,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("config")).expect("config dir");
        let workspace = fake_workspace(dir.path());
        Self { dir, workspace }
    }

    fn with(main: Option<&str>, modules: Option<&str>) -> Self {
        let fixture = Self::new();
        if let Some(main) = main {
            fixture.write("config/main.yaml", main);
        }
        if let Some(modules) = modules {
            fixture.write("config/modules.yaml", modules);
        }
        fixture
    }

    /// Writes `relative` (under the workspace root), creating its folders.
    fn write(&self, relative: &str, text: &str) {
        let path = self.dir.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("folders");
        }
        std::fs::write(path, text).expect("write");
    }

    fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn file(&self, name: &str) -> String {
        self.config_dir().join(name).display().to_string()
    }

    fn load_env(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<AppConfig, ConfigErrors> {
        load_with_env(&self.config_dir(), &self.workspace, env)
    }

    /// The configuration with `environment` layered over the base files.
    fn load_in(
        &self,
        environment: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<AppConfig, ConfigErrors> {
        load_layered_with_vars(&self.config_dir(), Some(environment), &self.workspace, env)
    }

    fn load(&self) -> AppConfig {
        self.load_env(&no_env).expect("valid configuration")
    }

    fn errors(&self) -> ConfigErrors {
        self.load_env(&no_env).expect_err("invalid configuration")
    }

    /// The one error of the configuration, displayed.
    fn error(&self) -> String {
        let errors = self.errors();
        assert_eq!(errors.0.len(), 1, "expected one error, got: {errors}");
        errors.to_string()
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn package(root: &Path, name: &str, is_cdylib: bool) -> WorkspacePackage {
    WorkspacePackage {
        name: name.to_owned(),
        manifest_dir: root.join("modules-backend").join(name),
        is_cdylib,
        lib_name: is_cdylib.then(|| name.replace('-', "_")),
        workspace_dependencies: Vec::new(),
    }
}

fn fake_workspace(root: &Path) -> Workspace {
    let cdylibs = [
        "mod-test-module",
        "mod-dummy-producer",
        "mod-dummy-consumer",
        "mod-a",
        "mod-b",
        "mod-c",
    ];
    let mut packages: Vec<_> = cdylibs.iter().map(|n| package(root, n, true)).collect();
    packages.push(package(root, "helper-lib", false));
    Workspace {
        root: root.to_path_buf(),
        target_dir: root.join("target"),
        packages,
    }
}

fn names(modules: &[&ModuleSpec]) -> Vec<String> {
    modules.iter().map(|m| m.name.clone()).collect()
}

/// The variables of the `${VAR}` and secrets tests.
fn test_env(name: &str) -> Option<String> {
    match name {
        "APP_NAME" => Some("from-env".into()),
        "DB_HOST" => Some("db.internal".into()),
        "DB_PASSWORD" => Some("hunter22".into()),
        "LOG_DIR" => Some("var/logs".into()),
        "INJECT" => Some("x\nenabled: false".into()),
        "TIMEOUT" => Some("750ms".into()),
        "ENABLED" => Some("false".into()),
        _ => None,
    }
}
