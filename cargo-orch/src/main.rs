//! `cargo orch`: build, load, run and hot-reload plugin modules that talk over an
//! event bus. Works as an installed cargo subcommand (`cargo install --path
//! cargo-orch`) and, in this repository, through the `orch` alias of
//! `.cargo/config.toml` with no install step.

mod cli;
mod cmd;
mod session;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli::CargoCli::Orch(orch) = cli::CargoCli::parse();
    let outcome = match orch.command {
        cli::Command::Run(args) => cmd::run::run(&orch.global, &args),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(cli::EXIT_FAILURE)
        }
    }
}
