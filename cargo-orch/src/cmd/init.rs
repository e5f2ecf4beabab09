//! `cargo orch init [DIR]`: a new orchestrated workspace (see
//! `orch_scaffold::init_workspace`), ready for `cargo orch new`.

use std::process::ExitCode;

use anyhow::Context as _;
use orch_scaffold::{InitWorkspace, init_workspace};

use crate::cli::{EXIT_FAILURE, EXIT_USAGE, InitArgs};

/// Creates the workspace.
pub fn run(args: &InitArgs) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    let request = InitWorkspace {
        dir: args.dir.clone(),
        cwd,
    };
    let created = match init_workspace(&request) {
        Ok(created) => created,
        Err(error) => {
            eprintln!("error: {error}");
            let code = if error.is_usage() {
                EXIT_USAGE
            } else {
                EXIT_FAILURE
            };
            return Ok(ExitCode::from(code));
        }
    };
    let root = &created.root;
    println!("Created an orchestrated workspace in {}", root.display());
    for file in &created.files {
        println!("  {}", file.strip_prefix(root).unwrap_or(file).display());
    }
    println!("orch-sdk comes from {}", created.sdk_dependency);
    if created.alias {
        println!(
            "`cargo orch` runs through an alias in .cargo/config.toml (cargo-orch is not \
             installed); remove it once cargo-orch is installed"
        );
    }
    println!();
    println!("Next:");
    let shown = root.display().to_string();
    if shown.contains(char::is_whitespace) {
        println!("  cd \"{shown}\"");
    } else {
        println!("  cd {shown}");
    }
    println!("  cargo orch new my-module --template consumer");
    println!("  cargo orch check");
    println!("  cargo orch run");
    Ok(ExitCode::SUCCESS)
}
