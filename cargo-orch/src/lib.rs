//! `cargo orch` as a library: the whole command line of the `cargo-orch`
//! binary, behind [`main`]. Two programs run it: `cargo-orch` (no network
//! parts, a lean build) and `orch-networked` (with them, built on demand
//! when main.yaml has a `bridge:`, `metrics:` or `notify.webhook:` section).

mod bundled;
mod cli;
mod cmd;
mod control_actions;
mod deploy;
#[cfg(test)]
mod docs_check;
mod from_nats;
mod graph;
mod hot_reload;
pub mod network;
mod networked;
mod operator_services;
pub mod release;
mod session;
mod shown;
mod singleton;
mod top;

use std::process::ExitCode;

use clap::Parser;

pub use network::Network;

/// Runs the command line of this process; `network` supplies the bridge,
/// the metrics endpoint and webhook alerts (`None`: `cargo orch run` hands a
/// configuration that needs them over to `orch-networked`).
pub fn main(network: Option<&dyn Network>) -> ExitCode {
    // Hidden modes, started by the orchestrator itself, never shown in --help:
    // a child module host for an `isolation: process` module, and a build's
    // group guard (kills cargo and its children if the orchestrator dies).
    let mut args = std::env::args_os().skip(1);
    let mode = args.next();
    let rest = || -> Vec<String> { args.map(|a| a.to_string_lossy().into_owned()).collect() };
    if mode.as_deref() == Some(orch_runtime::isolation::HOST_MODE_ARG.as_ref()) {
        return orch_child::main(&rest());
    }
    if mode.as_deref() == Some(orch_process::GUARD_MODE_ARG.as_ref()) {
        return orch_process::guard_main(&rest());
    }
    let cli::CargoCli::Orch(orch) = cli::CargoCli::parse();
    let outcome = match orch.command {
        cli::Command::Run(args) => cmd::run::run(&orch.global, &args, network),
        cli::Command::Test(args) => cmd::test::run(&orch.global, &args),
        cli::Command::New(args) => cmd::new::run(&orch.global, &args),
        cli::Command::Check(args) if args.bundle.is_some() => cmd::bundle::check(&args),
        cli::Command::Check(args) => cmd::check::run(&orch.global, &args),
        cli::Command::Keygen(args) => cmd::bundle::keygen(&args),
        cli::Command::Bundle(args) => cmd::bundle::bundle(&orch.global, &args),
        cli::Command::Deploy(args) => cmd::control::deploy(&orch.global, &args),
        cli::Command::Push(args) => cmd::push::run(&args, network),
        cli::Command::Rollout(args) => cmd::rollout::run(&args, network),
        cli::Command::Logs(args) => cmd::logs::run(&orch.global, &args),
        cli::Command::Emit(args) => cmd::control::emit(&orch.global, &args),
        cli::Command::Tap(args) => cmd::control::tap(&orch.global, &args),
        cli::Command::Record(args) => cmd::record::record(&orch.global, &args),
        cli::Command::Top(args) => cmd::top::run(&orch.global, &args),
        cli::Command::Replay(args) => cmd::record::replay(&orch.global, &args),
        cli::Command::List(args) => cmd::list::run(&orch.global, &args),
        cli::Command::Graph(args) => cmd::graph::run(&orch.global, &args),
        cli::Command::Init(args) => cmd::init::run(&args),
        cli::Command::Status(args) => cmd::control::status(&orch.global, &args),
        cli::Command::Reload(args) => {
            cmd::control::act(&orch.global, &args, cmd::control::Verb::Reload)
        }
        cli::Command::Restart(args) => {
            cmd::control::act(&orch.global, &args, cmd::control::Verb::Restart)
        }
        cli::Command::Stop(args) => {
            cmd::control::act(&orch.global, &args, cmd::control::Verb::Stop)
        }
        cli::Command::Start(args) => {
            cmd::control::act(&orch.global, &args, cmd::control::Verb::Start)
        }
    };
    // What the pumps of a scrubbed console still hold is written first.
    orch_process::console::finish(std::time::Duration::from_millis(500));
    match outcome {
        Ok(code) => code,
        Err(error) if error.is::<bundled::Refused>() => {
            eprintln!("error: {error}");
            ExitCode::from(cli::EXIT_FAILURE)
        }
        Err(error) if error.is::<session::UsageError>() => {
            eprintln!("error: {error:#}");
            ExitCode::from(cli::EXIT_USAGE)
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(cli::EXIT_FAILURE)
        }
    }
}
