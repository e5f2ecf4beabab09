//! `cargo orch`: build, load, run and hot-reload plugin modules that talk over an
//! event bus. Works as an installed cargo subcommand (`cargo install --path
//! cargo-orch`) and, in this repository, through the `orch` alias of
//! `.cargo/config.toml` with no install step. Built without the network
//! parts (see `cargo_orch::network`): a configuration that needs them runs in
//! `orch-networked`.

use std::process::ExitCode;

/// mimalloc, not the system allocator: an event is allocated on the
/// publisher's thread and freed on the last consumer's, and glibc takes a
/// lock of the publisher's arena for each such free, against the publisher's
/// next allocation (a futex call for every second event of a flood).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cargo_orch::main(None)
}
