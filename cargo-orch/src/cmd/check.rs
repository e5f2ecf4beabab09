//! `cargo orch check`: validate the configuration, build the enabled modules
//! with one cargo build, and load each one alone in a scratch host (ABI check,
//! initialize, start, shutdown) without running the application. One line per
//! module: `ok` with its time, or `FAIL` with the phase, the cause and a hint.
//!
//! Exit code: 0 when every module passed, 1 when one did not build or load, 2
//! for a configuration error. When nothing changed the build is a no-op.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use orch_cargo::{BuildRequest, Builder};
use orch_config::ModuleSpec;
use orch_runtime::load_check;
use orch_runtime::typing::{self, TopicTypes};
use orch_runtime::{Cause, ModuleFailure, Phase};
use orch_sdk::duration::human;

use crate::cli::{CheckArgs, EXIT_FAILURE, GlobalArgs};
use crate::session::Session;
use crate::shown::{indented, one_line};

/// One module's outcome.
enum Outcome {
    Ok(std::time::Duration),
    Failed(ModuleFailure),
    NotChecked(String),
}

/// Checks every enabled module.
pub fn run(global: &GlobalArgs, args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let session = Session::open(global)?;
    // A module's initialize error may quote its secrets: the report and
    // whatever the modules print are scrubbed.
    session.scrub_console()?;
    if args.verbose {
        session.init_logging(global)?;
    }
    let config = &session.config;
    println!(
        "config: ok ({} of {} declared modules enabled)",
        config.startup_order().len(),
        config.modules.len()
    );
    let modules = config.startup_order();
    if modules.is_empty() {
        println!("no module is enabled in modules.yaml: nothing to build or load");
        return Ok(ExitCode::SUCCESS);
    }

    let outcomes: Vec<Outcome> = match build(&session, &modules, args.release) {
        Ok(artifacts) => {
            let mut refused = check_types(&modules, &artifacts, config.main.timeouts.load);
            modules
                .iter()
                .map(|spec| match artifacts.get(&spec.package) {
                    Some(_) if refused.contains_key(&spec.name) => {
                        Outcome::Failed(refused.remove(&spec.name).unwrap_or_else(|| {
                            ModuleFailure::new(&spec.name, Phase::Types, Cause::Host(String::new()))
                        }))
                    }
                    Some(artifact) => match load_check::run(
                        spec,
                        artifact,
                        &session.workspace.target_dir,
                        config.main.timeouts,
                    ) {
                        Ok(took) => Outcome::Ok(took),
                        Err(failure) => Outcome::Failed(failure),
                    },
                    None => Outcome::Failed(
                        ModuleFailure::new(
                            &spec.name,
                            Phase::Build,
                            Cause::Host(format!(
                                "cargo produced no cdylib for package '{}'",
                                spec.package
                            )),
                        )
                        .with_hint("check that its [lib] has crate-type = [\"cdylib\", \"rlib\"]"),
                    ),
                })
                .collect()
        }
        Err(error) => {
            eprintln!("{error}");
            modules
                .iter()
                .map(|spec| {
                    if error.failed_packages.contains(&spec.package) {
                        Outcome::Failed(
                            ModuleFailure::new(
                                &spec.name,
                                Phase::Build,
                                Cause::Host(format!("package '{}' did not compile", spec.package)),
                            )
                            .with_hint("fix the compiler error shown above"),
                        )
                    } else {
                        Outcome::NotChecked("the build stopped before it was built".into())
                    }
                })
                .collect()
        }
    };

    let failed = print_outcomes(&modules, &outcomes);
    let disabled = config.modules.iter().filter(|m| !m.enabled).count();
    let skipped = if disabled > 0 {
        format!(", {disabled} disabled not checked")
    } else {
        String::new()
    };
    if failed == 0 {
        println!(
            "check: {} modules ok{skipped} in {}",
            modules.len(),
            human(started.elapsed())
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "check: {failed} of {} modules failed{skipped}",
            modules.len()
        );
        Ok(ExitCode::from(EXIT_FAILURE))
    }
}

/// The topic types of every built module, checked as a start-up checks
/// them: each against the modules before it in start order. A module whose
/// types cannot be read or conflict is refused (phase `types`).
fn check_types(
    modules: &[&ModuleSpec],
    artifacts: &HashMap<String, PathBuf>,
    timeout: std::time::Duration,
) -> HashMap<String, ModuleFailure> {
    let mut accepted: Vec<(String, TopicTypes)> = Vec::new();
    let mut refused = HashMap::new();
    for spec in modules {
        let Some(artifact) = artifacts.get(&spec.package) else {
            continue;
        };
        let types = match typing::read::read(&spec.name, artifact, timeout) {
            Ok(Some(types)) => types,
            Ok(None) => continue,
            Err(failure) => {
                refused.insert(spec.name.clone(), failure);
                continue;
            }
        };
        let conflicts = typing::conflicts_of(
            (&spec.name, &types),
            accepted.iter().map(|(name, types)| (name.as_str(), types)),
        );
        if conflicts.is_empty() {
            accepted.push((spec.name.clone(), types));
            continue;
        }
        if let Err(failure) = typing::refuse(&spec.name, conflicts) {
            refused.insert(spec.name.clone(), failure);
        }
    }
    refused
}

/// Builds every enabled module's package in one cargo invocation.
fn build(
    session: &Session,
    modules: &[&ModuleSpec],
    release: bool,
) -> Result<HashMap<String, PathBuf>, orch_cargo::BuildError> {
    let request = BuildRequest {
        packages: orch_config::packages_of(modules.iter().copied()),
        release,
        timeout: session.config.main.timeouts.build,
    };
    Builder::new(&session.workspace)
        .build(&request)
        .map(|output| output.artifacts)
}

/// One line per module (and the hint under a failure); the number of failures.
fn print_outcomes(modules: &[&ModuleSpec], outcomes: &[Outcome]) -> usize {
    let width = modules.iter().map(|m| m.name.len()).max().unwrap_or(0);
    let mut failed = 0;
    for (spec, outcome) in modules.iter().zip(outcomes) {
        let name = &spec.name;
        match outcome {
            Outcome::Ok(took) => println!(
                "ok    {name:width$}  loaded, initialized, started, shut down in {}",
                human(*took)
            ),
            Outcome::Failed(failure) => {
                failed += 1;
                let indent = " ".repeat(width + 8);
                println!(
                    "FAIL  {name:width$}  phase {}: {}",
                    failure.phase,
                    indented(&failure.cause.to_string(), &indent)
                );
                println!(
                    "      {:width$}  hint: {}",
                    "",
                    indented(&failure.hint, &indent)
                );
            }
            Outcome::NotChecked(why) => {
                failed += 1;
                println!("FAIL  {name:width$}  not checked: {}", one_line(why));
            }
        }
    }
    failed
}
