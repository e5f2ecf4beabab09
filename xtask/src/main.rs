//! Project automation for cargo-orch, run as `cargo xtask <verb>`.
//!
//! Verbs: `demo [--repeat N]` (the scripted end-to-end validation). See `--help`.

mod demo;
mod watch_output;

use std::process::ExitCode;

/// The text `--help` prints.
const USAGE: &str = "\
Usage: cargo xtask <COMMAND>

Commands:
  demo [--repeat N]  Build the orchestrator and the demo modules, run `cargo orch run`,
                     check its output and its shutdown on SIGINT; N runs (default 1).
                     Exits 0 only if every check of every run passed.

Options:
  -h, --help         Print this help
";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Invocation {
    /// Print the usage.
    Help,
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
}
