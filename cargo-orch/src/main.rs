//! `cargo orch`: build, load, run and hot-reload plugin modules that talk over an
//! event bus. Works as an installed cargo subcommand (`cargo install --path
//! cargo-orch`) and, in this repository, through the `orch` alias of
//! `.cargo/config.toml` with no install step. Built without the network
//! parts (see `cargo_orch::network`): a configuration that needs them runs in
//! `orch-networked`.

use std::process::ExitCode;

fn main() -> ExitCode {
    cargo_orch::main(None)
}
