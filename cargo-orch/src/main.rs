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
        cli::Command::Test(args) => cmd::test::run(&orch.global, &args),
        cli::Command::New(args) => cmd::new::run(&orch.global, &args),
        cli::Command::Check(args) => cmd::check::run(&orch.global, &args),
        cli::Command::List(args) => cmd::list::run(&orch.global, &args),
        cli::Command::Init(args) => cmd::init::run(&args),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(cli::EXIT_FAILURE)
        }
    }
}
