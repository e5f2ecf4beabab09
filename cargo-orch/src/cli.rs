//! The command line, with the cargo-subcommand convention: the binary is called
//! as `cargo-orch orch <verb>` (by cargo, or by the alias), so both
//! `cargo orch --help` and `cargo-orch orch --help` work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Exit code of a failure (a module did not build, a run failed).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a usage or configuration error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code of a run whose shutdown was not clean: some module's `shutdown`
/// failed, panicked or timed out (each is named in the log).
pub const EXIT_UNCLEAN_SHUTDOWN: u8 = 3;
/// Exit code of a run that did not end within `timeouts.shutdown_total` after
/// the signal: the process exited anyway, naming what was stuck.
pub const EXIT_SHUTDOWN_DEADLINE: u8 = 4;

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

    /// Layer config/ENV/main.yaml and config/ENV/modules.yaml over the base
    /// files (each key there replaces the base one; modules matched by name).
    #[arg(long = "env", global = true, value_name = "ENV", env = "ORCH_ENV")]
    pub environment: Option<String>,
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
    /// Build and run every module's tests (unit and integration), load-check each
    /// module in a scratch host, and print one combined report.
    #[command(
        after_help = "Exit code: 0 when everything passed, 1 when a test or a load check failed or \
                      tests did not compile, 2 for a usage or configuration error.\n\
                      Each test runs in a process of its own (--fast: one per test binary); doc \
                      tests are part of the report (--no-doc skips them)."
    )]
    Test(TestArgs),
    /// Create a module from a template, add it to the workspace and declare it in
    /// config/modules.yaml.
    #[command(
        after_help = "Exit code: 0 when the module was created, 1 when a step failed, 2 for a \
                      usage error (invalid name, unknown template, existing module, path outside \
                      the workspace) or an invalid configuration. Nothing is left half-written: \
                      when a step fails, every file created or edited is restored."
    )]
    New(NewArgs),
    /// Validate the configuration, build the enabled modules and load each one in a
    /// scratch host (ABI check, initialize, start, shutdown) without running the
    /// application.
    #[command(
        after_help = "Exit code: 0 when every module passed, 1 when a module did not build or \
                      load, 2 for a configuration error."
    )]
    Check(CheckArgs),
    /// List the declared modules: package, folder, enabled, dependencies, and
    /// whether the built library is up to date.
    #[command(
        after_help = "BUILT compares modification times: the library in the target folder \
                      against the sources cargo recorded for it (its .d file), the package's \
                      Cargo.toml and the workspace's. Registry dependencies and changed \
                      compiler flags are not seen; `cargo orch check` builds for certain."
    )]
    List(ListArgs),
    /// Create a new orchestrated workspace: Cargo.toml, config/, modules-backend/
    /// and .cargo/config.toml.
    Init(InitArgs),
    /// Show every module of a running `cargo orch run`: state, generation,
    /// pid, uptime, events, mailbox, restarts and last error.
    #[command(after_help = CONTROL_HELP)]
    Status(StatusArgs),
    /// Rebuild one module of a running orchestrator and swap it to a new
    /// generation, as a saved edit would.
    #[command(after_help = CONTROL_HELP)]
    Reload(ModuleArgs),
    /// Stop one module of a running orchestrator and start it again.
    #[command(after_help = CONTROL_HELP)]
    Restart(ModuleArgs),
    /// Shut one module of a running orchestrator down and unload it.
    #[command(after_help = CONTROL_HELP)]
    Stop(ModuleArgs),
    /// Load and start a stopped or failed module of a running orchestrator.
    #[command(after_help = CONTROL_HELP)]
    Start(ModuleArgs),
    /// Write a minisign key pair for signing bundles: the secret key at PATH
    /// (owner-only), the public key at PATH.pub.
    #[command(after_help = "The secret key is encrypted with the password in \
                      ORCH_SIGNING_PASSWORD, else one typed on the terminal; --no-password \
                      writes it unencrypted (for CI: guard the file itself). An existing file \
                      is never overwritten.\n\
                      Exit code: 0 when both files were written, 1 otherwise.")]
    Keygen(KeygenArgs),
    /// Build the enabled modules and write one reproducible tar archive: the
    /// host binary, each module's library, the configuration as written and a
    /// manifest of every file's SHA-256, signed with --sign.
    #[command(
        after_help = "Secrets never enter it: the YAML files are copied as written \
                      (${VAR} stays a reference) and .env files are left out. The same sources \
                      give the same bytes (SOURCE_DATE_EPOCH sets the files' time, default 0).\n\
                      Exit code: 0 when the bundle was written, 1 when a build or a step failed, \
                      2 for a configuration error."
    )]
    Bundle(BundleArgs),
    /// Send a new bundle to a running `run --bundle` orchestrator: it
    /// verifies it with its own trusted keys and hot-swaps each module whose
    /// library changed (all or nothing), then applies the new modules.yaml.
    #[command(
        after_help = "A bundle that changes the host binary, the module ABI, main.yaml or the \
                      environment is refused: a restart is needed. The bundle that ran before is \
                      kept: --rollback goes back to it.\n\
                      The orchestrator is found by --socket, else among the bundle runs \
                      unpacked beside BUNDLE or in this folder (--pid picks one of several).\n\
                      Exit code: 0 when deployed, 1 when refused or failed (nothing changed \
                      unless the report says so), 2 for a usage error."
    )]
    Deploy(DeployArgs),
    /// Print the log lines of one module, or of all, from the log files
    /// (logging.dir and logging.file of main.yaml, rotated copies included).
    #[command(after_help = "Exit code: 0, or 2 for an unknown module, level or duration.")]
    Logs(LogsArgs),
    /// Publish one event into a running orchestrator, as a named source
    /// (never a module's name), under the rules a module's publish follows.
    #[command(
        after_help = "Exit code: 0 when published (the count of subscribers that took it is \
                      printed), 1 when it was not, 2 for a topic, payload or source refused."
    )]
    Emit(EmitArgs),
    /// Follow the events of a running orchestrator whose topic matches a
    /// pattern: topic, source, id, time and payload (secrets scrubbed, long
    /// payloads cut). A tap never slows the bus: what it cannot keep up with
    /// is dropped and counted.
    #[command(
        after_help = "Exit code: 0 when it ends (Ctrl-C, --count reached, the \
                            orchestrator stopped), 1 when it cannot connect, 2 for a bad pattern."
    )]
    Tap(TapArgs),
}

/// What the control verbs' help says of finding the orchestrator.
const CONTROL_HELP: &str = "The orchestrator is found through target/orch/control/ (one entry per \
                            running `cargo orch run`, with its control socket). With several \
                            running, pass --pid.\n\
                            Exit code: 0 when done, 1 when the action failed or no orchestrator \
                            runs, 2 for a usage error (unknown module, wrong state).";

/// Which running orchestrator a control verb talks to.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// The orchestrator's pid (needed when several run in this workspace).
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,

    /// Talk to this control socket instead of looking in target/orch/control/.
    #[arg(long, value_name = "PATH", conflicts_with = "pid")]
    pub socket: Option<PathBuf>,

    /// How long to wait for the answer, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 900)]
    pub timeout: u64,
}

/// `cargo orch status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Which orchestrator.
    #[command(flatten)]
    pub target: TargetArgs,

    /// Print the report as JSON (one object per orchestrator, in an array).
    #[arg(long, conflicts_with = "watch")]
    pub json: bool,

    /// Refresh the table every second until Ctrl-C.
    #[arg(long)]
    pub watch: bool,

    /// Show the whole cluster as this node sees it (every node of its
    /// `bridge.nats.presence` bucket, each module's state); with --json,
    /// the nodes as an array.
    #[arg(long)]
    pub cluster: bool,
}

/// `cargo orch logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only the lines this module wrote (its name in modules.yaml).
    #[arg(value_name = "MODULE")]
    pub module: Option<String>,

    /// Keep printing lines as they are written, until Ctrl-C.
    #[arg(long, short)]
    pub follow: bool,

    /// Only lines written in this last stretch of time (`10m`, `2h`, `30s`).
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,

    /// Only lines of this level or above: trace, debug, info, warn, error.
    #[arg(long, value_name = "LEVEL")]
    pub level: Option<String>,
}

/// `cargo orch tap`.
#[derive(Debug, Args)]
pub struct TapArgs {
    /// A topic pattern: `test.>`, `sensor.*.raw`, `>` for everything.
    #[arg(value_name = "PATTERN")]
    pub pattern: String,

    /// One JSON object per event (a script's format).
    #[arg(long, conflicts_with = "rate")]
    pub json: bool,

    /// Stop after N events.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,

    /// Print events per second per topic, every second, instead of the events.
    #[arg(long)]
    pub rate: bool,

    /// Which orchestrator.
    #[command(flatten)]
    pub target: TargetArgs,
}

/// `cargo orch emit`.
#[derive(Debug, Args)]
pub struct EmitArgs {
    /// The topic (outside the host's app.*, module.* and bridge.*).
    #[arg(value_name = "TOPIC")]
    pub topic: String,

    /// The payload: one JSON value (at most about 60 KiB).
    #[arg(value_name = "JSON")]
    pub json: String,

    /// The name the event comes from (not a declared module's).
    #[arg(long, value_name = "NAME", default_value = "cli")]
    pub source: String,

    /// Which orchestrator.
    #[command(flatten)]
    pub target: TargetArgs,
}

/// `cargo orch deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The bundle: an archive from `cargo orch bundle`, or a folder one was
    /// unpacked into.
    #[arg(value_name = "BUNDLE", required_unless_present = "rollback")]
    pub bundle: Option<PathBuf>,

    /// Go back to the bundle that ran before the last deploy.
    #[arg(long, conflicts_with = "bundle")]
    pub rollback: bool,

    /// Which orchestrator.
    #[command(flatten)]
    pub target: TargetArgs,
}

/// `cargo orch reload|restart|stop|start NAME`.
#[derive(Debug, Args)]
pub struct ModuleArgs {
    /// The module's name in modules.yaml.
    #[arg(value_name = "NAME")]
    pub module: String,

    /// Which orchestrator.
    #[command(flatten)]
    pub target: TargetArgs,
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

    /// Listen for `cargo orch status` and the other control verbs on this
    /// Unix socket (default: target/orch/control/PID.sock).
    #[arg(long, value_name = "PATH")]
    pub control_socket: Option<PathBuf>,

    /// Skip `cargo build` and load the libraries of the last build as they are
    /// (fast restarts; the modules must have been built with the same profile).
    #[arg(long, conflicts_with = "watch")]
    pub no_build: bool,

    /// Run this bundle (an archive from `cargo orch bundle`, or a folder it
    /// was unpacked into) instead of the workspace: no cargo, no sources and
    /// no Rust toolchain needed. It is verified before anything loads.
    #[arg(long, value_name = "FILE|DIR", conflicts_with_all = ["watch", "release", "no_build"])]
    pub bundle: Option<PathBuf>,

    #[command(flatten)]
    pub trust: TrustArgs,

    /// Where an archive is unpacked, into a folder named after its app,
    /// version and digest (default: beside the archive).
    #[arg(long, value_name = "DIR", requires = "bundle")]
    pub unpack_dir: Option<PathBuf>,
}

/// Which signatures a bundle may carry.
#[derive(Debug, Clone, Default, Args)]
pub struct TrustArgs {
    /// A minisign public key (a .pub file), or a folder of them (every
    /// *.pub in it), the bundle's signature may come from; repeat for
    /// several. Never a key the bundle carries.
    #[arg(long, value_name = "PUBFILE|DIR", requires = "bundle")]
    pub trusted_key: Vec<PathBuf>,

    /// Accept an unsigned bundle (or one whose signature no trusted key can
    /// check): development only; its files are still checked against its
    /// manifest.
    #[arg(long, requires = "bundle")]
    pub allow_unsigned: bool,
}

/// `cargo orch test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The modules to test, by name in modules.yaml (default: every enabled module).
    #[arg(value_name = "MODULE", conflicts_with = "all")]
    pub modules: Vec<String>,

    /// Test every module declared in modules.yaml, disabled ones included.
    #[arg(long)]
    pub all: bool,

    /// Also write the report as JUnit XML to FILE (folders created as needed).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,

    /// Print the report as JSON on stdout, and nothing else there.
    #[arg(long)]
    pub json: bool,

    /// Run each test binary in one process, as `cargo test` does, instead of each test
    /// in a process of its own: fewer process starts, but a crash fails the whole
    /// binary and tests get no time of their own.
    #[arg(long)]
    pub fast: bool,

    /// Run a failing test up to N more times; one that passes on a retry is reported
    /// as flaky.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub retries: u32,

    /// Never stop a test (for debugging); by default a test is killed after
    /// `test.timeout` of its module, else `timeouts.test` of main.yaml (60s).
    #[arg(long)]
    pub no_timeout: bool,

    /// Doc tests run by default, as `cargo test --doc` runs them; this leaves them out.
    #[arg(long)]
    pub no_doc: bool,

    /// Arguments for every test binary, e.g. `-- --include-ignored` or a test name filter.
    #[arg(last = true, value_name = "TEST_ARGS")]
    pub test_args: Vec<String>,
}

/// `cargo orch new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The module's name, also its package name: lowercase ASCII letters, digits,
    /// `-` and `_`, starting with a letter.
    #[arg(value_name = "NAME", required_unless_present = "list_templates")]
    pub name: Option<String>,

    /// The template to render (see --list-templates).
    #[arg(long, short, value_name = "TEMPLATE", default_value = "basic")]
    pub template: String,

    /// The module's folder, inside the workspace (default: modules-backend/NAME).
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,

    /// Do not declare the module in config/modules.yaml.
    #[arg(long)]
    pub no_register: bool,

    /// Print the module templates, one line each, and exit.
    #[arg(long, conflicts_with_all = ["name", "path", "no_register"])]
    pub list_templates: bool,
}

/// `cargo orch check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Build the modules with the release profile.
    #[arg(long, conflicts_with = "bundle")]
    pub release: bool,

    /// Also print the log: each phase's timing and what the modules log.
    #[arg(long, short)]
    pub verbose: bool,

    /// Verify this bundle instead (nothing is built, loaded or run): every
    /// file's size and SHA-256 against its manifest, and the manifest's
    /// signature against --trusted-key. A folder is checked as unpacked.
    #[arg(long, value_name = "FILE|DIR")]
    pub bundle: Option<PathBuf>,

    #[command(flatten)]
    pub trust: TrustArgs,
}

/// `cargo orch keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the secret key; the public key goes to PATH.pub.
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,

    /// Write the secret key unencrypted (for CI), ignoring ORCH_SIGNING_PASSWORD.
    #[arg(long)]
    pub no_password: bool,
}

/// `cargo orch bundle`.
#[derive(Debug, Args)]
pub struct BundleArgs {
    /// Build the modules with the release profile.
    #[arg(long)]
    pub release: bool,

    /// The archive to write (default: target/orch/bundle/APP-VERSION.tar).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Sign the manifest with this minisign secret key (from `cargo orch
    /// keygen`; an encrypted key takes its password from ORCH_SIGNING_PASSWORD
    /// or the terminal).
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,

    /// Also write the bundle as an OCI image layout in this folder: the
    /// host binary, the libraries it links (from this machine) and the
    /// bundle, run with `cargo-orch orch run --bundle` (an existing layout
    /// there is replaced; any other non-empty folder is refused).
    #[arg(long, value_name = "DIR")]
    pub oci: Option<PathBuf>,
}

/// `cargo orch list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON (an object with a `modules` array) for scripts.
    #[arg(long)]
    pub json: bool,

    /// Compare with the release build instead of the debug build.
    #[arg(long)]
    pub release: bool,
}

/// `cargo orch init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The new workspace's folder (created when missing; it must not hold a
    /// Cargo.toml).
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
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
        let Command::Run(args) = orch.command else {
            panic!("run expected");
        };
        assert!(args.watch && !args.no_watch);
        assert!(
            CargoCli::try_parse_from(["cargo-orch", "orch", "run", "--watch", "--no-watch"])
                .is_err()
        );
    }

    #[test]
    fn parses_test_with_modules_and_test_arguments() {
        let cli = CargoCli::try_parse_from([
            "cargo-orch",
            "orch",
            "test",
            "mod-a",
            "mod-b",
            "--junit",
            "out/junit.xml",
            "--",
            "--include-ignored",
            "mod-c",
        ])
        .unwrap();
        let CargoCli::Orch(orch) = cli;
        let Command::Test(args) = orch.command else {
            panic!("test expected");
        };
        assert_eq!(args.modules, ["mod-a", "mod-b"]);
        assert_eq!(args.test_args, ["--include-ignored", "mod-c"]);
        assert_eq!(args.junit, Some(PathBuf::from("out/junit.xml")));
        assert!(!args.all && !args.json);
        assert!(!args.fast && !args.no_timeout && !args.no_doc && args.retries == 0);
        assert!(
            CargoCli::try_parse_from(["cargo-orch", "orch", "test", "mod-a", "--all"]).is_err()
        );
    }

    #[test]
    fn parses_the_test_run_modes() {
        let cli = CargoCli::try_parse_from([
            "cargo-orch",
            "orch",
            "test",
            "--fast",
            "--retries",
            "2",
            "--no-timeout",
            "--no-doc",
        ])
        .unwrap();
        let CargoCli::Orch(orch) = cli;
        let Command::Test(args) = orch.command else {
            panic!("test expected");
        };
        assert!(args.fast && args.no_timeout && args.no_doc);
        assert_eq!(args.retries, 2);
        for bad in [
            &["--retries"][..],
            &["--retries", "-1"],
            &["--retries", "many"],
        ] {
            let mut all = vec!["cargo-orch", "orch", "test"];
            all.extend_from_slice(bad);
            assert!(CargoCli::try_parse_from(all).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_new_check_list_and_init() {
        let parse = |args: &[&str]| {
            let mut all = vec!["cargo-orch", "orch"];
            all.extend_from_slice(args);
            CargoCli::try_parse_from(all).map(|CargoCli::Orch(orch)| orch.command)
        };
        let Ok(Command::New(new)) = parse(&["new", "mod-x", "-t", "producer", "--no-register"])
        else {
            panic!("new expected");
        };
        assert_eq!(new.name.as_deref(), Some("mod-x"));
        assert_eq!(new.template, "producer");
        assert!(new.no_register && !new.list_templates);
        let Ok(Command::New(new)) = parse(&["new", "--list-templates"]) else {
            panic!("new expected");
        };
        assert!(new.list_templates && new.name.is_none());
        assert_eq!(new.template, "basic");
        assert!(parse(&["new"]).is_err(), "a name is required");
        assert!(parse(&["new", "mod-x", "--list-templates"]).is_err());
        assert!(matches!(parse(&["check", "--release"]), Ok(Command::Check(c)) if c.release));
        assert!(matches!(parse(&["list", "--json"]), Ok(Command::List(l)) if l.json));
        let Ok(Command::Check(check)) = parse(&[
            "check",
            "--bundle",
            "b.tar",
            "--trusted-key",
            "a.pub",
            "--trusted-key",
            "b.pub",
        ]) else {
            panic!("check expected");
        };
        assert_eq!(check.bundle, Some(PathBuf::from("b.tar")));
        assert_eq!(check.trust.trusted_key.len(), 2);
        assert!(parse(&["check", "--trusted-key", "a.pub"]).is_err());
        assert!(parse(&["check", "--bundle", "b", "--release"]).is_err());
        assert!(matches!(
            parse(&["keygen", "--out", "k", "--no-password"]),
            Ok(Command::Keygen(k)) if k.no_password
        ));
        assert!(parse(&["keygen"]).is_err(), "--out is required");
        assert!(matches!(
            parse(&["bundle", "--release", "--sign", "k", "--out", "b.tar"]),
            Ok(Command::Bundle(b)) if b.release && b.sign.is_some() && b.oci.is_none()
        ));
        assert!(matches!(
            parse(&["bundle", "--oci", "image"]),
            Ok(Command::Bundle(b)) if b.oci == Some(PathBuf::from("image"))
        ));
        let Ok(Command::Init(init)) = parse(&["init"]) else {
            panic!("init expected");
        };
        assert_eq!(init.dir, PathBuf::from("."));
    }
}
