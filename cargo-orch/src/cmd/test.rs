//! `cargo orch test`: every module's tests (unit, integration and doc tests;
//! each test in a process of its own unless `--fast`), a load check per
//! module in a scratch host, and one combined report: a table, the total line
//! CI reads, and each failure with its output; `--junit FILE` and `--json`
//! for machines. `--retries N` runs failing tests again (a pass then is
//! flaky), `--no-timeout` never stops a test, `--no-doc` leaves doc tests out.
//!
//! Exit code: 0 when everything passed, 1 when anything failed (a test, a load
//! check, tests that do not compile), 2 for a usage or configuration error such
//! as an unknown module name.

use std::process::ExitCode;

use anyhow::Context as _;
use orch_config::{AppConfig, ModuleSpec};
use orch_runtime::logging::console_wants_color;
use orch_test::{Mode, Suite, SuiteOptions, TestReport, json, junit, table};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::cli::{EXIT_FAILURE, EXIT_USAGE, GlobalArgs, TestArgs};
use crate::session::Session;

/// Exit code after Ctrl-C (128 + SIGINT), as shells report it.
const EXIT_INTERRUPTED: i32 = 130;

/// Runs the tests and prints the report.
pub fn run(global: &GlobalArgs, args: &TestArgs) -> anyhow::Result<ExitCode> {
    let session = Session::open(global)?;
    let modules = match select(&session.config, args) {
        Ok(modules) => modules,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    if modules.is_empty() {
        eprintln!(
            "warning: no module to test: config/modules.yaml enables none (use --all to include \
             disabled modules)"
        );
    }

    // One guard process for the run: a test left running is killed even if
    // this process is SIGKILLed.
    let children = orch_process::ProcessGroups::guarded();
    let suite = Suite::new(&session.workspace, children.clone());
    stop_on_signals(children, suite.builder().clone())?;
    let report = suite.run(&modules, &options(&session.config, args));

    print_report(&report, args.json);
    let mut code = if report.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    };
    if let Some(path) = &args.junit
        && let Err(error) = junit::write(&report, path)
    {
        eprintln!("error: {error}");
        code = ExitCode::from(EXIT_FAILURE);
    }
    Ok(code)
}

/// How to run the suite, from the command line and main.yaml.
fn options(config: &AppConfig, args: &TestArgs) -> SuiteOptions {
    let mut options = SuiteOptions::new(config.main.timeouts);
    options.test_args = args.test_args.clone();
    options.mode = if args.fast { Mode::Fast } else { Mode::PerTest };
    options.retries = args.retries;
    options.no_timeout = args.no_timeout;
    options.doc = !args.no_doc;
    options.progress = true;
    options
}

/// The modules to test: the named ones (in the order given, disabled ones
/// included), every declared one with `--all`, else the enabled ones; an
/// unknown name is an error listing the known modules.
fn select<'a>(config: &'a AppConfig, args: &TestArgs) -> Result<Vec<&'a ModuleSpec>, String> {
    if args.modules.is_empty() {
        return Ok(config
            .modules
            .iter()
            .filter(|m| args.all || m.enabled)
            .collect());
    }
    let mut selected: Vec<&ModuleSpec> = Vec::new();
    let mut unknown: Vec<&str> = Vec::new();
    for name in &args.modules {
        match config.module(name) {
            Some(module) if !selected.iter().any(|m| m.name == module.name) => {
                selected.push(module);
            }
            Some(_) => {}
            None => unknown.push(name),
        }
    }
    if unknown.is_empty() {
        return Ok(selected);
    }
    let known: Vec<String> = config
        .modules
        .iter()
        .map(|m| {
            if m.enabled {
                m.name.clone()
            } else {
                format!("{} (disabled)", m.name)
            }
        })
        .collect();
    let names = unknown
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let file = config.config_dir.join("modules.yaml");
    Err(if known.is_empty() {
        format!(
            "unknown module {names}: {} declares no modules",
            file.display()
        )
    } else {
        format!(
            "unknown module {names}\n  hint: the modules of {} are: {}",
            file.display(),
            known.join(", ")
        )
    })
}

/// The human report on stdout, or the JSON on stdout and the human report on
/// stderr.
fn print_report(report: &TestReport, as_json: bool) {
    if as_json {
        eprint!("{}", table::render(report, false));
        print!("{}", json::render(report));
    } else {
        print!("{}", table::render(report, console_wants_color()));
    }
}

/// SIGINT/SIGTERM: end cargo and the test binaries (their whole process
/// groups), then exit at once.
fn stop_on_signals(
    children: orch_process::ProcessGroups,
    builder: orch_cargo::Builder,
) -> anyhow::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("cannot install signal handlers")?;
    std::thread::Builder::new()
        .name("orch-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                children.cancel();
                builder.cancel();
                let name = if signal == SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                eprintln!("cargo orch test: {name} received; test run stopped");
                std::process::exit(EXIT_INTERRUPTED);
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use orch_config::{MainConfig, TestSettings};

    use super::*;

    fn config() -> AppConfig {
        let module = |name: &str, enabled: bool| ModuleSpec {
            name: name.into(),
            package: name.into(),
            enabled,
            config: Default::default(),
            depends_on: Vec::new(),
            test: TestSettings::default(),
            line: 1,
            ..Default::default()
        };
        AppConfig {
            main: MainConfig::default(),
            modules: vec![module("a", true), module("b", false), module("c", true)],
            config_dir: PathBuf::from("config"),
            secrets: Vec::new(),
            environment: None,
        }
    }

    fn args(modules: &[&str], all: bool) -> TestArgs {
        TestArgs {
            modules: modules.iter().map(|m| (*m).to_owned()).collect(),
            all,
            junit: None,
            json: false,
            fast: false,
            retries: 0,
            no_timeout: false,
            no_doc: false,
            test_args: Vec::new(),
        }
    }

    fn names(selected: Result<Vec<&ModuleSpec>, String>) -> Vec<String> {
        selected
            .expect("selected")
            .iter()
            .map(|m| m.name.clone())
            .collect()
    }

    #[test]
    fn enabled_modules_by_default_all_with_all_and_named_ones_in_order() {
        let config = config();
        assert_eq!(names(select(&config, &args(&[], false))), ["a", "c"]);
        assert_eq!(names(select(&config, &args(&[], true))), ["a", "b", "c"]);
        assert_eq!(
            names(select(&config, &args(&["c", "b", "c"], false))),
            ["c", "b"],
            "named modules run even when disabled, each once"
        );
    }

    #[test]
    fn the_flags_become_suite_options() {
        let config = config();
        let defaults = options(&config, &args(&[], false));
        assert_eq!(defaults.mode, Mode::PerTest);
        assert!(defaults.doc && !defaults.no_timeout && defaults.progress);
        assert_eq!(defaults.retries, 0);
        let flags = TestArgs {
            fast: true,
            retries: 3,
            no_timeout: true,
            no_doc: true,
            test_args: vec!["--include-ignored".into()],
            ..args(&[], false)
        };
        let options = options(&config, &flags);
        assert_eq!((options.mode, options.retries), (Mode::Fast, 3));
        assert!(!options.doc && options.no_timeout);
        assert_eq!(options.test_args, ["--include-ignored"]);
        assert_eq!(options.timeouts.test, std::time::Duration::from_secs(60));
    }

    #[test]
    fn unknown_names_list_the_known_modules() {
        let error = select(&config(), &args(&["a", "zz", "yy"], false)).expect_err("unknown");
        assert_eq!(
            error,
            "unknown module `zz`, `yy`\n  hint: the modules of config/modules.yaml are: a, b (disabled), c"
        );
    }
}
