//! The command line, with the cargo-subcommand convention: the binary is called
//! as `cargo-orch orch <verb>` (by cargo, or by the alias), so both
//! `cargo orch --help` and `cargo-orch orch --help` work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod bundle;
mod control;
mod workspace;

pub use bundle::{BundleArgs, KeygenArgs, PushArgs, RolloutArgs, TrustArgs};
pub use control::{
    DeployArgs, EmitArgs, ModuleArgs, RecordArgs, ReplayArgs, StatusArgs, TapArgs, TargetArgs,
    TopArgs,
};
pub use workspace::{
    CheckArgs, GraphArgs, GraphFormat, InitArgs, ListArgs, LogsArgs, NewArgs, RunArgs, TestArgs,
};

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
    /// Draw which module talks to which: modules as nodes, topics as edges
    /// from publisher to subscriber, from the contracts in modules.yaml
    /// (`publishes:` / `subscribes:`) and the bridge's exports and imports.
    #[command(
        after_help = "Wildcards connect when some topic matches both sides. Topics nobody hears, \
                      subscriptions nothing feeds and modules that declare no contract are \
                      printed as notes on stderr (and as comments in DOT and Mermaid).\n\
                      Exit code: 0, or 2 for a configuration error."
    )]
    Graph(GraphArgs),
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
    /// Store a signed bundle in a NATS JetStream object store and record it
    /// as a release of its application, for nodes started with `run
    /// --from-nats` (digests checked on both ends).
    #[command(
        after_help = "The bundle is verified first, as a node would (--trusted-key, or \
                      --allow-unsigned for development). A version is pushed once: the same \
                      bundle again is a no-op, another one with that version is refused.\n\
                      Exit code: 0 when stored (or there already), 1 when refused or failed, 2 \
                      for a usage error."
    )]
    Push(PushArgs),
    /// Move the nodes that run an application from NATS to a pushed
    /// version, one batch at a time, each gated on its nodes' health; halt
    /// (and with --auto-revert, go back) when a batch is not healthy.
    #[command(
        after_help = "The controller holds a lock per application (two operators cannot run two \
                      rollouts) and writes its state to the releases bucket: --status and a \
                      controller started again (the same command) see the same thing and resume \
                      from the recorded step. --pause, --resume and --abort are carried out by the \
                      running controller, or by this command when none runs.\n\
                      Exit code: 0 when it succeeded (or a request was taken), 1 when it failed \
                      or was aborted, 2 for a usage error."
    )]
    Rollout(RolloutArgs),
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
    /// Record the events of a running orchestrator whose topic matches a
    /// pattern into a file (gzip of JSON lines, versioned): topic, source,
    /// ids, times and whole payloads (secrets scrubbed).
    #[command(
        after_help = "Stops after --count events, after --duration, or at Ctrl-C; the file is \
                      written whole at the end. Events the recorder could not keep up with are \
                      dropped and counted, never slowing the bus.\n\
                      Exit code: 0 when written, 1 when it cannot connect or write, 2 for a bad \
                      pattern or duration."
    )]
    Record(RecordArgs),
    /// A live view of a running orchestrator's modules, every second: state,
    /// events in and out a second, mailbox depth against capacity, handler
    /// p50/p99, restarts, circuit, last error.
    #[command(
        after_help = "Full-screen on a terminal: `s` changes the sort (start order, events in, \
                      mailbox, handler p99, restarts), `q` leaves, the window may be resized. \
                      When stdout is not a terminal, a plain table every second (--once: one).\n\
                      Exit code: 0 when left, 1 when the orchestrator cannot be reached."
    )]
    Top(TopArgs),
    /// Publish the events of a recording into a running orchestrator, in
    /// order, at the recorded pace (--speed X, --as-fast-as-possible), as a
    /// named source under the rules a module's publish follows.
    #[command(
        after_help = "Exit code: 0 when every event was taken, 1 when one was not (replay stops \
                      there), 2 for a file that is not a recording."
    )]
    Replay(ReplayArgs),
}

/// What the control verbs' help says of finding the orchestrator.
const CONTROL_HELP: &str = "The orchestrator is found through target/orch/control/ (one entry per \
                            running `cargo orch run`, with its control socket). With several \
                            running, pass --pid.\n\
                            Exit code: 0 when done, 1 when the action failed or no orchestrator \
                            runs, 2 for a usage error (unknown module, wrong state).";

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
