//! The command line, with the cargo-subcommand convention: the binary is called
//! as `cargo-orch orch <verb>` (by cargo, or by the alias), so both
//! `cargo orch --help` and `cargo-orch orch --help` work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Exit code of a failure (a module did not build, a run failed).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a usage or configuration error.
pub const EXIT_USAGE: u8 = 2;

/// Top level: `cargo <subcommand>`.
#[derive(Debug, Parser)]
#[command(name = "cargo", bin_name = "cargo")]
pub enum CargoCli {
    /// Build, load, run and hot-reload plugin modules that talk over an event bus.
    #[command(name = "orch", version, propagate_version = true)]
    Orch(OrchCli),
}

/// `cargo orch`.
#[derive(Debug, Args)]
#[command(
    about = "Build, load, run and hot-reload plugin modules that talk over an event bus",
    long_about = "Build, load, run and hot-reload plugin modules that talk over an event bus.\n\n\
                  Modules are cdylib crates of this workspace declared in config/modules.yaml; \
                  application settings live in config/main.yaml."
)]
pub struct OrchCli {
    /// Options shared by every verb.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The verb.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every verb.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The workspace's Cargo.toml (default: the workspace containing the current folder).
    #[arg(long, global = true, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,

    /// The folder holding main.yaml and modules.yaml, relative to the workspace root.
    #[arg(long, global = true, value_name = "DIR", default_value = "config")]
    pub config_dir: PathBuf,

    /// Console log format (overrides logging.format in config/main.yaml).
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormatArg>,
}

/// Console log formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    /// One readable line per event.
    Human,
    /// One JSON object per line, for machines.
    Json,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the enabled modules, load them in a deterministic order and run until
    /// SIGINT or SIGTERM.
    Run(RunArgs),
}

/// `cargo orch run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Rebuild and hot-reload a module when its sources change (overrides hot_reload).
    #[arg(long, conflicts_with = "no_watch")]
    pub watch: bool,

    /// Do not watch sources even if config/main.yaml sets hot_reload: true.
    #[arg(long)]
    pub no_watch: bool,

    /// Build the modules with the release profile.
    #[arg(long)]
    pub release: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        CargoCli::command().debug_assert();
    }

    #[test]
    fn parses_as_cargo_calls_it() {
        let cli = CargoCli::try_parse_from(["cargo-orch", "orch", "run", "--watch"]).unwrap();
        let CargoCli::Orch(orch) = cli;
        let Command::Run(args) = orch.command;
        assert!(args.watch && !args.no_watch);
        assert!(
            CargoCli::try_parse_from(["cargo-orch", "orch", "run", "--watch", "--no-watch"])
                .is_err()
        );
    }
}
