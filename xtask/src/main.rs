//! Project automation for cargo-orch, run as `cargo xtask <verb>`.
//!
//! Verbs: `demo [--repeat N]` (the scripted end-to-end validation) and `bench test
//! [--repeat N]` (`cargo orch test` against a plain `cargo test`). See `--help`.

mod bench_perf;

mod bench_reload;
mod bench_test;
mod demo;
mod demo_isolation;
mod demo_new;
mod demo_test;
mod demo_watch;
mod stats;
mod tally;
mod watch_output;

/// Where benchmarks write their JSON: `$ORCH_BENCH_DIR`, or `target/bench/`.
fn bench_dir(root: &std::path::Path) -> std::path::PathBuf {
    std::env::var_os("ORCH_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target").join("bench"))
}

use std::process::ExitCode;

/// The text `--help` prints.
const USAGE: &str = "\
Usage: cargo xtask <COMMAND>

Commands:
  demo [--repeat N]  Build the orchestrator and the demo modules, run `cargo orch run`,
                     check its output and its shutdown on SIGINT; N runs (default 1).
                     Exits 0 only if every check of every run passed.
  bench test [--repeat N]
                     Time `cargo orch test` against a plain `cargo test -p ...` of the
                     same modules, N timed runs each (default 5); prints the medians
                     and writes target/bench/test.json. Exits 1 if `cargo orch test`
                     was slower.
  bench reload [--edits N]
                     Edit a module N times under `cargo orch run --watch` (default 20)
                     and time save-to-running against a plain `cargo build -p` of the
                     same edit; prints median and p95, writes target/bench/reload.json.
  bench bus|startup|memory|all [--events N] [--runs N] [--smoke]
                     Release-build benchmarks: bus throughput and latency across the
                     module boundary next to bare crossbeam channels; 20-module start-up
                     (median of N runs, default 10); resident memory idle and under
                     load. Tables on stdout, JSON in target/bench/. --smoke: a tiny
                     dev-profile run that only checks the benchmarks still work.

Options:
  -h, --help         Print this help
";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Invocation {
    /// Print the usage.
    Help,
    /// Run the `cargo orch test` benchmark.
    BenchTest(bench_test::Options),
    /// Time hot reloads against a plain cargo build.
    BenchReload(bench_reload::Options),
    /// Bus, start-up and memory benchmarks.
    BenchPerf(bench_perf::Options),
    /// Run the demo.
    Demo(demo::Options),
}

/// Parses the arguments after the program name.
fn parse(args: &[String]) -> Result<Invocation, String> {
    let Some((verb, rest)) = args.split_first() else {
        return Err("no command given".to_owned());
    };
    match verb.as_str() {
        "-h" | "--help" | "help" => Ok(Invocation::Help),
        "demo" => parse_demo(rest),
        "bench" => parse_bench(rest),
        other => Err(format!("unknown command `{other}`")),
    }
}

/// Parses the arguments of `demo`.
fn parse_demo(args: &[String]) -> Result<Invocation, String> {
    let mut options = demo::Options { repeat: 1 };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let repeat = match arg.as_str() {
            "-h" | "--help" => return Ok(Invocation::Help),
            "--repeat" => args
                .next()
                .ok_or_else(|| "`--repeat` needs a number".to_owned())?,
            other => match other.strip_prefix("--repeat=") {
                Some(value) => value,
                None => return Err(format!("unexpected argument `{other}` for `demo`")),
            },
        };
        options.repeat = match repeat.parse::<u32>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(format!(
                    "`--repeat` needs a whole number of at least 1, not `{repeat}`"
                ));
            }
        };
    }
    Ok(Invocation::Demo(options))
}

/// Parses the arguments of `bench`: `test [--repeat N]`.
fn parse_bench(args: &[String]) -> Result<Invocation, String> {
    match args.split_first() {
        Some((what, rest)) if what == "test" => {
            let mut options = bench_test::Options::default();
            let mut rest = rest.iter();
            while let Some(arg) = rest.next() {
                let repeat = match arg.as_str() {
                    "-h" | "--help" => return Ok(Invocation::Help),
                    "--repeat" => rest
                        .next()
                        .ok_or_else(|| "`--repeat` needs a number".to_owned())?,
                    other => other
                        .strip_prefix("--repeat=")
                        .ok_or_else(|| format!("unexpected argument `{other}` for `bench test`"))?,
                };
                options.repeat = match repeat.parse::<u32>() {
                    Ok(n) if n >= 1 => n,
                    _ => {
                        return Err(format!(
                            "`--repeat` needs a whole number of at least 1, not `{repeat}`"
                        ));
                    }
                };
            }
            Ok(Invocation::BenchTest(options))
        }
        Some((what, rest)) if what == "reload" => {
            let mut options = bench_reload::Options::default();
            let mut rest = rest.iter();
            while let Some(arg) = rest.next() {
                let edits = match arg.as_str() {
                    "-h" | "--help" => return Ok(Invocation::Help),
                    "--edits" => rest
                        .next()
                        .ok_or_else(|| "`--edits` needs a number".to_owned())?,
                    other => other.strip_prefix("--edits=").ok_or_else(|| {
                        format!("unexpected argument `{other}` for `bench reload`")
                    })?,
                };
                options.edits = match edits.parse::<u32>() {
                    Ok(n) if n >= 1 => n,
                    _ => {
                        return Err(format!(
                            "`--edits` needs a whole number of at least 1, not `{edits}`"
                        ));
                    }
                };
            }
            Ok(Invocation::BenchReload(options))
        }
        Some((what, rest)) if ["bus", "startup", "memory", "all"].contains(&what.as_str()) => {
            parse_bench_perf(what, rest)
        }
        Some((other, _)) if other == "-h" || other == "--help" => Ok(Invocation::Help),
        Some((other, _)) => Err(format!(
            "unknown benchmark `{other}`; known: test, reload, bus, startup, memory, all"
        )),
        None => Err(
            "`bench` needs a benchmark name: test, reload, bus, startup, memory or all".to_owned(),
        ),
    }
}

/// Parses `bench bus|startup|memory|all [--events N] [--runs N]`.
fn parse_bench_perf(what: &str, rest: &[String]) -> Result<Invocation, String> {
    let which = match what {
        "bus" => bench_perf::Which::Bus,
        "startup" => bench_perf::Which::Startup,
        "memory" => bench_perf::Which::Memory,
        _ => bench_perf::Which::All,
    };
    let mut options = bench_perf::Options::new(which);
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        if arg == "--smoke" {
            options.smoke = true;
            options.events = options.events.min(2_000);
            options.runs = 1;
            continue;
        }
        let (flag, value) = match arg.split_once('=') {
            Some((flag, value)) => (flag, value.to_owned()),
            None => (
                arg.as_str(),
                rest.next()
                    .cloned()
                    .ok_or_else(|| format!("`{arg}` needs a number"))?,
            ),
        };
        let number: u64 =
            value.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                format!("`{flag}` needs a whole number of at least 1, not `{value}`")
            })?;
        match flag {
            "--events" => options.events = number,
            "--runs" => options.runs = u32::try_from(number).unwrap_or(u32::MAX),
            other => return Err(format!("unexpected argument `{other}` for `bench {what}`")),
        }
    }
    Ok(Invocation::BenchPerf(options))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args) {
        Ok(Invocation::Help) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Invocation::Demo(options)) => match demo::run(options) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(err) => {
                eprintln!("xtask demo: error: {err:#}");
                ExitCode::FAILURE
            }
        },
        Ok(Invocation::BenchTest(options)) => {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap_or_else(|| std::path::Path::new(".."));
            match bench_test::run(root, options) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(err) => {
                    eprintln!("xtask bench test: error: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Ok(Invocation::BenchPerf(options)) => {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap_or_else(|| std::path::Path::new(".."));
            match bench_perf::run(root, options) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(err) => {
                    eprintln!("xtask bench: error: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Ok(Invocation::BenchReload(options)) => {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap_or_else(|| std::path::Path::new(".."));
            match bench_reload::run(root, options) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(err) => {
                    eprintln!("xtask bench reload: error: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(message) => {
            eprintln!("xtask: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_demo_and_its_repeat_count() {
        assert_eq!(
            parse(&args(&["demo"])),
            Ok(Invocation::Demo(demo::Options { repeat: 1 }))
        );
        assert_eq!(
            parse(&args(&["demo", "--repeat", "3"])),
            Ok(Invocation::Demo(demo::Options { repeat: 3 }))
        );
        assert_eq!(
            parse(&args(&["demo", "--repeat=2"])),
            Ok(Invocation::Demo(demo::Options { repeat: 2 }))
        );
        assert_eq!(parse(&args(&["--help"])), Ok(Invocation::Help));
        assert_eq!(parse(&args(&["demo", "-h"])), Ok(Invocation::Help));
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(parse(&args(&[])).is_err());
        assert!(parse(&args(&["launch"])).is_err());
        assert!(parse(&args(&["demo", "--repeat"])).is_err());
        assert!(parse(&args(&["demo", "--repeat", "0"])).is_err());
        assert!(parse(&args(&["demo", "--repeat", "x"])).is_err());
        assert!(parse(&args(&["demo", "--fast"])).is_err());
    }

    #[test]
    fn parses_bench_test_and_its_repeat_count() {
        assert_eq!(
            parse(&args(&["bench", "test"])),
            Ok(Invocation::BenchTest(bench_test::Options { repeat: 5 }))
        );
        assert_eq!(
            parse(&args(&["bench", "test", "--repeat", "3"])),
            Ok(Invocation::BenchTest(bench_test::Options { repeat: 3 }))
        );
        assert_eq!(
            parse(&args(&["bench", "test", "--repeat=7"])),
            Ok(Invocation::BenchTest(bench_test::Options { repeat: 7 }))
        );
        assert_eq!(parse(&args(&["bench", "--help"])), Ok(Invocation::Help));
        assert!(parse(&args(&["bench"])).is_err());
        assert!(parse(&args(&["bench", "run"])).is_err());
        assert!(parse(&args(&["bench", "test", "--repeat", "0"])).is_err());
        assert!(parse(&args(&["bench", "test", "--quick"])).is_err());
    }
}
