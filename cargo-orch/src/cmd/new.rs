//! `cargo orch new`: a module from a template, added to the workspace and
//! declared in `config/modules.yaml`, all or nothing (see
//! `orch_scaffold`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use orch_scaffold::template::{self, TemplateKind};
use orch_scaffold::{CreatedModule, MemberChange, NewModule, ScaffoldError, create_module};

use crate::cli::{EXIT_FAILURE, EXIT_USAGE, GlobalArgs, NewArgs};

/// Creates the module, or lists the templates.
pub fn run(global: &GlobalArgs, args: &NewArgs) -> anyhow::Result<ExitCode> {
    if args.list_templates {
        return list_templates();
    }
    let Some(name) = args.name.as_deref() else {
        eprintln!("error: give the module's name: cargo orch new <NAME>");
        return Ok(ExitCode::from(EXIT_USAGE));
    };
    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    let start = global.manifest_path.clone().unwrap_or_else(|| cwd.clone());
    let workspace = orch_cargo::discover_workspace(&start)?;
    let request = NewModule {
        name: name.to_owned(),
        template: args.template.clone(),
        path: args.path.clone(),
        cwd,
        register: !args.no_register,
        config_dir: global.config_dir.clone(),
    };
    match create_module(&workspace, &request) {
        Ok(created) => {
            report(&created, &workspace.root);
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("error: {error}");
            Ok(ExitCode::from(exit_code(&error)))
        }
    }
}

/// One line per module template.
fn list_templates() -> anyhow::Result<ExitCode> {
    let templates = template::of_kind(TemplateKind::Module)?;
    let width = templates.iter().map(|t| t.name.len()).max().unwrap_or(0);
    let lines: Vec<String> = templates
        .iter()
        .map(|t| format!("{:width$}  {}", t.name, t.description))
        .collect();
    crate::cmd::list::print_lines(&lines)?;
    Ok(ExitCode::SUCCESS)
}

fn exit_code(error: &ScaffoldError) -> u8 {
    if error.is_usage() {
        EXIT_USAGE
    } else {
        EXIT_FAILURE
    }
}

/// What was created, and what to do next.
fn report(created: &CreatedModule, root: &Path) {
    let shown = |path: &Path| {
        path.strip_prefix(root)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    println!(
        "Created module `{}` from template `{}` in {}",
        created.name,
        created.template,
        shown(&created.dir)
    );
    for file in &created.files {
        println!("  {}", shown(file));
    }
    match &created.member {
        MemberChange::Covered(pattern) => {
            println!("Workspace member through \"{pattern}\" in Cargo.toml (Cargo.toml unchanged)")
        }
        MemberChange::Added(entry) => {
            println!("Added \"{entry}\" to the workspace members in Cargo.toml")
        }
    }
    if !created.dependencies_added.is_empty() {
        println!(
            "Added to [workspace.dependencies] in Cargo.toml: {}",
            created.dependencies_added.join(", ")
        );
    }
    match &created.registered_in {
        Some(file) => println!("Declared in {}", shown(file)),
        None => println!(
            "Not declared in modules.yaml (--no-register): add `- name: {}` there to run it",
            created.name
        ),
    }
    println!();
    println!("Next:");
    println!("  cargo orch check                # build it and load it once in a scratch host");
    println!("  cargo orch run                  # run it with the other modules");
    println!(
        "  cargo orch test {:<15} # its tests (tests/module.rs) and a load check",
        created.name
    );
}
