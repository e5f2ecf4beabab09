//! Project automation for cargo-orch, run as `cargo xtask <verb>`: `demo` (the
//! scripted end-to-end validation) and `bench ...` (benchmarks that compare
//! against a baseline in the same run). See `cargo xtask --help`.

mod bench_bridge;
mod bench_first_run;
mod bench_perf;
mod bench_reload;
mod bench_suite;
mod bench_test;
mod bench_work;
mod ci;
mod coverage;
mod demo;
mod demo_bridge;
mod demo_cluster;
mod demo_isolation;
mod demo_new;
mod demo_rollout;
mod demo_test;
mod demo_watch;
#[cfg(test)]
mod docs_check;
mod release_example;
mod stats;
mod tally;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Where benchmarks write their JSON: `$ORCH_BENCH_DIR`, or `bench/` in the
/// target folder (`CARGO_TARGET_DIR` when set).
fn bench_dir() -> PathBuf {
    std::env::var_os("ORCH_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| orch_e2e::target_dir().join("bench"))
}

/// Project automation for cargo-orch.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Verb,
}

#[derive(Debug, Subcommand)]
enum Verb {
    /// Build the orchestrator and the demo modules, run `cargo orch run`, check
    /// its output and its shutdown on SIGINT, then test, new, watch and
    /// isolation steps. Exits 0 only if every check of every run passed.
    Demo {
        /// How many runs.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        repeat: u32,
        /// Only one part of the demo.
        #[arg(long, value_enum)]
        only: Option<demo::Part>,
    },
    /// The slow lane: the end-to-end tests `cargo test --workspace` leaves
    /// out (release builds, the long soak, the NATS cluster). CI runs it
    /// after the default lane.
    Ci,
    /// The line coverage of the library crates over the default lane
    /// (cargo-llvm-cov, installed on first use).
    Coverage,
    /// Benchmarks: tables on stdout, JSON in target/bench/ ($ORCH_BENCH_DIR).
    Bench {
        #[command(subcommand)]
        which: Bench,
    },
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Time `cargo orch test` (per test, `--fast`, with and without doc
    /// tests) against `cargo test -p ...` and `cargo nextest run -p ...` (when
    /// installed) of the same modules; exits 1 only if a command fails.
    Test {
        /// Timed runs of each command.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
        repeat: u32,
    },
    /// Edit a module N times under `cargo orch run --watch` and time
    /// save-to-running against a plain `cargo build -p` of the same edit.
    Reload {
        /// How many edits to time.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        edits: u32,
    },
    /// Bus throughput and latency across the module boundary next to bare
    /// crossbeam channels (release build).
    Bus(PerfArgs),
    /// 20-module start-up, process start to `app.started` (release build).
    Startup(PerfArgs),
    /// Resident memory idle and under load (release build).
    Memory(PerfArgs),
    /// A module on one orchestrator to a module on another through a real
    /// nats-server, core and JetStream, next to a bare async-nats pair
    /// (release build).
    Bridge(PerfArgs),
    /// Shared work (`bridge.nats.work`, JetStream) over 1, 2 and 3 nodes
    /// through a real nats-server, a worker per node sleeping a fixed time
    /// per job; each row's jobs/s next to one node's and the ideal (release
    /// build).
    Work {
        /// Jobs per node in a row (the row of N nodes publishes N times as many).
        #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
        jobs: u64,
        /// The handler's sleep per job, in milliseconds.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
        handler_ms: u64,
    },
    /// The bus with no tap, a stalled `cargo orch tap` (its client never
    /// reads) and a reading one, through the real control socket (release
    /// build).
    Tap(PerfArgs),
    /// bus, startup, memory, bridge and tap.
    All(PerfArgs),
    /// Time a newcomer's first run: a fresh clone and an empty target folder,
    /// `cargo orch run --watch` until the consumer's first ping.
    FirstRun,
    /// Time the README's test command (`cargo test --workspace`) warm, and
    /// cold with `--cold` (an empty target folder of its own) or as measured
    /// by the caller (`--cold-seconds`).
    Suite {
        /// Also time a run from an empty target folder.
        #[arg(long, conflicts_with = "cold_seconds")]
        cold: bool,
        /// A cold run's wall time in seconds, measured by the caller.
        #[arg(long, value_name = "SECONDS")]
        cold_seconds: Option<f64>,
    },
}

/// The sizes of the release-build benchmarks.
#[derive(Debug, Args)]
struct PerfArgs {
    /// Events per bus configuration (divided by the subscriber count).
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    events: u64,
    /// Start-up runs (the median is reported).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// A tiny configuration that only checks the benchmarks still work: the same
    /// builds and command lines as a full run, far fewer events and runs.
    #[arg(long)]
    smoke: bool,
}

impl PerfArgs {
    fn options(&self, which: bench_perf::Which) -> bench_perf::Options {
        let mut options = bench_perf::Options::new(which);
        options.events = self.events;
        options.runs = self.runs;
        if self.smoke {
            options.events = options.events.min(2_000);
            options.runs = 1;
        }
        options
    }
}

/// The repository's root (this crate's parent folder).
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or_else(|| Path::new(".."))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (what, outcome) = match cli.command {
        Verb::Demo { repeat, only } => ("demo", demo::run(demo::Options { repeat, only })),
        Verb::Ci => ("ci", ci::run()),
        Verb::Coverage => ("coverage", coverage::run(root())),
        Verb::Bench { which } => match which {
            Bench::Test { repeat } => (
                "bench test",
                bench_test::run(root(), bench_test::Options { repeat }),
            ),
            Bench::Reload { edits } => (
                "bench reload",
                bench_reload::run(bench_reload::Options { edits }),
            ),
            Bench::Bus(args) => perf(&args, bench_perf::Which::Bus),
            Bench::Startup(args) => perf(&args, bench_perf::Which::Startup),
            Bench::Memory(args) => perf(&args, bench_perf::Which::Memory),
            Bench::Bridge(args) => perf(&args, bench_perf::Which::Bridge),
            Bench::Tap(args) => perf(&args, bench_perf::Which::Tap),
            Bench::All(args) => perf(&args, bench_perf::Which::All),
            Bench::Work { jobs, handler_ms } => (
                "bench work",
                bench_work::run(root(), bench_work::Options { jobs, handler_ms }),
            ),
            Bench::FirstRun => ("bench first-run", bench_first_run::run(root())),
            Bench::Suite { cold, cold_seconds } => (
                "bench suite",
                bench_suite::run(root(), bench_suite::Options { cold, cold_seconds }),
            ),
        },
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("xtask {what}: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn perf(args: &PerfArgs, which: bench_perf::Which) -> (&'static str, anyhow::Result<bool>) {
    ("bench", bench_perf::run(root(), args.options(which)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Verb, clap::Error> {
        Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied())).map(|c| c.command)
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_demo_and_its_repeat_count() {
        assert!(matches!(
            parse(&["demo"]),
            Ok(Verb::Demo {
                repeat: 1,
                only: None
            })
        ));
        assert!(matches!(
            parse(&["demo", "--repeat", "3"]),
            Ok(Verb::Demo { repeat: 3, .. })
        ));
        assert!(matches!(
            parse(&["demo", "--repeat=2"]),
            Ok(Verb::Demo { repeat: 2, .. })
        ));
    }

    #[test]
    fn rejects_bad_arguments() {
        for args in [
            &[][..],
            &["launch"],
            &["demo", "--repeat"],
            &["demo", "--repeat", "0"],
            &["demo", "--repeat", "x"],
            &["demo", "--fast"],
            &["bench"],
            &["bench", "run"],
            &["bench", "test", "--repeat", "0"],
            &["bench", "test", "--quick"],
            &["bench", "bus", "--events", "0"],
            &["bench", "work", "--jobs", "0"],
            &["bench", "work", "--handler-ms", "0"],
            &["bench", "suite", "--cold", "--cold-seconds", "1"],
            &["bench", "suite", "--cold-seconds", "x"],
            &["ci", "--fast"],
        ] {
            assert!(parse(args).is_err(), "{args:?} was accepted");
        }
    }

    #[test]
    fn parses_the_benchmarks_and_their_sizes() {
        assert!(matches!(
            parse(&["bench", "test"]),
            Ok(Verb::Bench {
                which: Bench::Test { repeat: 5 }
            })
        ));
        assert!(matches!(
            parse(&["bench", "work"]),
            Ok(Verb::Bench {
                which: Bench::Work {
                    jobs: 1_000,
                    handler_ms: 2
                }
            })
        ));
        assert!(matches!(
            parse(&["bench", "work", "--jobs", "50", "--handler-ms", "1"]),
            Ok(Verb::Bench {
                which: Bench::Work {
                    jobs: 50,
                    handler_ms: 1
                }
            })
        ));
        assert!(matches!(
            parse(&["bench", "reload", "--edits=7"]),
            Ok(Verb::Bench {
                which: Bench::Reload { edits: 7 }
            })
        ));
        let Ok(Verb::Bench {
            which: Bench::All(args),
        }) = parse(&["bench", "all", "--smoke", "--runs", "4"])
        else {
            panic!("bench all --smoke did not parse");
        };
        let options = args.options(bench_perf::Which::All);
        assert_eq!((options.runs, options.events), (1, 2_000));
    }

    #[test]
    fn parses_the_slow_lane_and_the_suite_timing() {
        assert!(matches!(parse(&["ci"]), Ok(Verb::Ci)));
        assert!(matches!(parse(&["coverage"]), Ok(Verb::Coverage)));
        assert!(matches!(
            parse(&["bench", "suite", "--cold-seconds", "321"]),
            Ok(Verb::Bench {
                which: Bench::Suite {
                    cold: false,
                    cold_seconds: Some(s)
                }
            }) if s == 321.0
        ));
        assert!(matches!(
            parse(&["bench", "suite", "--cold"]),
            Ok(Verb::Bench {
                which: Bench::Suite {
                    cold: true,
                    cold_seconds: None
                }
            })
        ));
    }
}
