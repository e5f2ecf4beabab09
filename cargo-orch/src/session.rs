//! What every verb starts with: find the workspace, read and validate the
//! configuration completely, then set up logging.

use std::path::Path;

use anyhow::Context as _;
use orch_config::workspace::Workspace;
use orch_config::{self as config, AppConfig, LogFormat};
use orch_runtime::logging::{self, LogFile, LogOptions, SecretScrubber};

use crate::bundled::Bundled;
use crate::cli::{GlobalArgs, LogFormatArg, TrustArgs};

/// The workspace and its validated configuration.
pub struct Session {
    /// The cargo workspace.
    pub workspace: Workspace,
    /// `config/main.yaml` and `config/modules.yaml`, validated.
    pub config: AppConfig,
    /// Scrubs the configuration's secrets (and those of later edits) from
    /// everything the process writes.
    pub scrubber: SecretScrubber,
    /// The bundle it runs, for `run --bundle`: then `workspace` is made from
    /// the bundle's manifest, not read from cargo.
    pub bundle: Option<Bundled>,
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
        Self::with_config(workspace, &config_dir, global.environment.as_deref(), None)
    }

    /// Verifies and unpacks the bundle at `path` and reads the configuration
    /// it carries, layered with the environment it was bundled for; no
    /// cargo is run. `--env` must name that environment or be left out.
    pub fn open_bundle(
        global: &GlobalArgs,
        path: &Path,
        unpack_dir: Option<&Path>,
        trust: &TrustArgs,
    ) -> anyhow::Result<Self> {
        let bundle = crate::bundled::open(path, unpack_dir, trust)?;
        let environment = bundle.manifest.environment.clone();
        if let Some(wanted) = &global.environment
            && environment.as_ref() != Some(wanted)
        {
            return Err(anyhow::Error::new(UsageError(anyhow::anyhow!(
                "--env {wanted}: the bundle was made for {}\n  hint: leave --env out (the \
                 bundle's environment applies), or bundle again with --env {wanted}",
                environment
                    .as_deref()
                    .map_or("no environment".to_string(), |e| format!(
                        "environment '{e}'"
                    ))
            ))));
        }
        let workspace = bundle.workspace();
        let config_dir = bundle.dir.join("config");
        Self::with_config(workspace, &config_dir, environment.as_deref(), Some(bundle))
    }

    fn with_config(
        workspace: Workspace,
        config_dir: &Path,
        environment: Option<&str>,
        bundle: Option<Bundled>,
    ) -> anyhow::Result<Self> {
        let config = config::load_layered(config_dir, environment, &workspace)
            .map_err(|e| anyhow::Error::new(UsageError(anyhow::Error::new(e))))?;
        let scrubber = SecretScrubber::default();
        scrubber.set_secrets(&config.secrets);
        Ok(Self {
            workspace,
            config,
            scrubber,
            bundle,
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
