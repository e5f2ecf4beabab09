//! What every verb starts with: find the workspace, read and validate the
//! configuration completely, then set up logging.

use std::path::Path;

use anyhow::Context as _;
use orch_config::workspace::Workspace;
use orch_config::{self as config, AppConfig, LogFormat};
use orch_runtime::logging::{self, LogFile, LogOptions, SecretScrubber};

use crate::cli::{GlobalArgs, LogFormatArg};

/// The workspace and its validated configuration.
pub struct Session {
    /// The cargo workspace.
    pub workspace: Workspace,
    /// `config/main.yaml` and `config/modules.yaml`, validated.
    pub config: AppConfig,
    /// Scrubs the configuration's secrets (and those of later edits) from
    /// everything the process writes.
    pub scrubber: SecretScrubber,
}

/// A usage or configuration error: reported as it is, exit code 2.
#[derive(Debug)]
pub struct UsageError(pub anyhow::Error);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for UsageError {}

impl Session {
    /// Reads the workspace and the configuration. An invalid configuration is a
    /// [`UsageError`] (exit code 2); anything else exits with 1.
    pub fn open(global: &GlobalArgs) -> anyhow::Result<Self> {
        let start = match &global.manifest_path {
            Some(path) => path.clone(),
            None => std::env::current_dir().context("cannot read the current folder")?,
        };
        let workspace = orch_cargo::discover_workspace(&start)?;
        let config_dir = workspace.root.join(&global.config_dir);
        let config = config::load_layered(&config_dir, global.environment.as_deref(), &workspace)
            .map_err(|e| anyhow::Error::new(UsageError(anyhow::Error::new(e))))?;
        let scrubber = SecretScrubber::default();
        scrubber.set_secrets(&config.secrets);
        Ok(Self {
            workspace,
            config,
            scrubber,
        })
    }

    /// Routes the process's stdout and stderr through the secret scrubber, so
    /// what modules print (and their panic messages, and the processes they
    /// start) is scrubbed like the log. `main` puts the real streams back
    /// before the process exits.
    pub fn scrub_console(&self) -> anyhow::Result<()> {
        let scrubber = self.scrubber.clone();
        orch_process::console::install(std::sync::Arc::new(move |text: &str| {
            scrubber.scrub(text).into_owned()
        }))
        .context("cannot route stdout and stderr through the secret scrubber")
    }

    /// Installs logging as `config/main.yaml` and the flags say, scrubbing the
    /// configuration's secret values from every line.
    pub fn init_logging(&self, global: &GlobalArgs) -> anyhow::Result<()> {
        let settings = &self.config.main.logging;
        let format = match global.log_format {
            Some(LogFormatArg::Human) => LogFormat::Human,
            Some(LogFormatArg::Json) => LogFormat::Json,
            None => settings.format,
        };
        let options = LogOptions {
            level: settings.level.clone(),
            format,
            file: Some(LogFile {
                path: log_path(&self.workspace.root, &settings.dir, &settings.file),
                max_bytes: usize::try_from(settings.max_size_mb.saturating_mul(1024 * 1024))
                    .unwrap_or(usize::MAX),
                max_files: settings.max_files,
            }),
            ansi: logging::console_wants_color(),
        };
        logging::init(&options, &self.scrubber).map_err(anyhow::Error::msg)
    }
}

fn log_path(root: &Path, dir: &Path, file: &str) -> std::path::PathBuf {
    root.join(dir).join(file)
}
