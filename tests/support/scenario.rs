//! A scratch configuration folder (main.yaml + modules.yaml) and log folder,
//! removed when dropped, so tests run in parallel without sharing files.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::{orch_bin, workspace_root};

/// A temporary config folder for one test.
pub struct Scenario {
    dir: TempDir,
}

impl Scenario {
    /// A scenario whose `modules.yaml` is `modules_yaml` and whose `main.yaml` has
    /// short timeouts (`initialize_timeout`, e.g. `"1s"`) and logs into the scratch folder.
    pub fn new(modules_yaml: &str) -> Self {
        Self::with_timeouts(modules_yaml, "2s")
    }

    /// As [`Scenario::new`] with every module phase bounded by `timeout`.
    pub fn with_timeouts(modules_yaml: &str, timeout: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let logs = dir.path().join("logs");
        let main_yaml = format!(
            "app:\n  name: e2e\n  version: 0.0.1\nhot_reload: false\n\
             timeouts:\n  load: {timeout}\n  initialize: {timeout}\n  start: {timeout}\n  \
             event: {timeout}\n  shutdown: {timeout}\n  reload: {timeout}\n  build: 10m\n\
             logging:\n  level: info\n  dir: {}\n",
            logs.display()
        );
        std::fs::write(dir.path().join("main.yaml"), main_yaml).expect("write main.yaml");
        std::fs::write(dir.path().join("modules.yaml"), modules_yaml).expect("write modules.yaml");
        Self { dir }
    }

    /// A scenario whose `main.yaml` is the usual app and logging settings plus
    /// `main_yaml` (whole sections, such as `timeouts:` with a few keys).
    pub fn with_main(modules_yaml: &str, main_yaml: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let logs = dir.path().join("logs");
        let main = format!(
            "app:\n  name: e2e\n  version: 0.0.1\nhot_reload: false\n{main_yaml}\
             logging:\n  level: info\n  dir: {}\n",
            logs.display()
        );
        std::fs::write(dir.path().join("main.yaml"), main).expect("write main.yaml");
        std::fs::write(dir.path().join("modules.yaml"), modules_yaml).expect("write modules.yaml");
        Self { dir }
    }

    /// The config folder.
    pub fn config_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The log file the orchestrator writes.
    pub fn log_file(&self) -> PathBuf {
        self.dir.path().join("logs").join("app.log")
    }

    /// `cargo-orch orch <args> --config-dir <scratch>` in the workspace root,
    /// with plain, predictable output.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(orch_bin());
        command
            .current_dir(workspace_root())
            .arg("orch")
            .args(args)
            .arg("--config-dir")
            .arg(self.config_dir())
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info");
        command
    }
}
