//! `cargo orch` command lines, parsed with the real clap definitions.

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

use super::blocks::{self, Block};
use crate::cli::CargoCli;

/// Parses `words` (after `cargo orch`) as cargo calls the binary; `Err` with
/// clap's message when they do not parse. `--help` and `--version` parse.
pub fn parse(words: &[String]) -> Result<(), String> {
    let args = ["cargo-orch", "orch"]
        .into_iter()
        .map(str::to_owned)
        .chain(words.iter().cloned());
    match CargoCli::try_parse_from(args) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => Ok(()),
        Err(e) => Err(e.to_string().lines().next().unwrap_or_default().to_owned()),
    }
}

/// Every `cargo orch ...` line of a `sh` or `console` block: how many were
/// checked, and a message for each that does not parse.
pub fn check_command_block(block: &Block, failures: &mut Vec<String>) -> usize {
    let mut checked = 0;
    for (line, text) in blocks::command_lines(block) {
        for words in blocks::simple_commands(&text) {
            if words.len() < 2 || words[0] != "cargo" || words[1] != "orch" {
                continue;
            }
            checked += 1;
            if let Err(error) = parse(&words[2..]) {
                failures.push(format!(
                    "{}:{line}: `{}` does not parse: {error}",
                    block.file.display(),
                    words.join(" ")
                ));
            }
        }
    }
    checked
}

/// The long and short flags of verb `verb` (`run`), the options of every
/// verb included; `None` for an unknown verb.
pub fn flags_of(verb: &str) -> Option<Vec<String>> {
    let mut cargo = CargoCli::command();
    cargo.build();
    let orch = cargo.find_subcommand("orch")?;
    let command = orch.find_subcommand(verb)?;
    let mut flags = vec!["--help".to_owned(), "-h".to_owned()];
    for arg in command.get_arguments().chain(orch.get_arguments()) {
        flags.extend(arg.get_long().map(|l| format!("--{l}")));
        flags.extend(arg.get_short().map(|s| format!("-{s}")));
    }
    Some(flags)
}

/// The synopses of a `text` block: a line starting with `cargo orch VERB`
/// (or `VERB|VERB`) names the verb, and every flag on it and on the lines after
/// it that start with `-` or `[` must be one of the verb's. Returns how many synopsis
/// lines were checked.
pub fn check_synopsis_block(block: &Block, failures: &mut Vec<String>) -> usize {
    let mut checked = 0;
    let mut verbs: Vec<String> = Vec::new();
    for (offset, line) in block.text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("cargo orch ") {
            verbs = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .split('|')
                .map(str::to_owned)
                .collect();
        } else if !(trimmed.starts_with('-') || trimmed.starts_with('[')) {
            verbs.clear();
            continue;
        } else if verbs.is_empty() {
            continue;
        }
        checked += 1;
        let place = format!("{}:{}", block.file.display(), block.line + 1 + offset);
        for verb in &verbs {
            let Some(known) = flags_of(verb) else {
                failures.push(format!("{place}: `cargo orch {verb}` is no verb"));
                continue;
            };
            for flag in flags_in(trimmed) {
                if !known.contains(&flag) {
                    failures.push(format!("{place}: `cargo orch {verb}` has no flag `{flag}`"));
                }
            }
        }
    }
    checked
}

/// The `--long` and `-s` flags a synopsis line names (`[--watch | --no-watch]`).
fn flags_in(line: &str) -> Vec<String> {
    line.split(|c: char| c.is_whitespace() || "[]|(),".contains(c))
        .filter_map(|word| {
            let name = word.trim_end_matches("...");
            let long = name.strip_prefix("--").is_some_and(|rest| {
                rest.len() > 1 && rest.chars().all(|c| c.is_ascii_lowercase() || c == '-')
            });
            let short = name.len() == 2
                && name.starts_with('-')
                && name.chars().nth(1).is_some_and(|c| c.is_ascii_alphabetic());
            (long || short).then(|| name.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_cli_accepts_and_nothing_else() {
        let words =
            |line: &str| -> Vec<String> { line.split_whitespace().map(str::to_owned).collect() };
        assert!(parse(&words("run --watch --env prod")).is_ok());
        assert!(parse(&words("status --help")).is_ok());
        assert!(parse(&words("run --watch --no-watch")).is_err());
        assert!(parse(&words("runn")).is_err());
    }

    #[test]
    fn finds_flags_in_synopses() {
        assert_eq!(
            flags_in("cargo orch run [--watch | --no-watch] [-v] TEST_ARGS... --"),
            ["--watch", "--no-watch", "-v"]
        );
        let run = flags_of("run").expect("run");
        assert!(run.contains(&"--no-build".to_owned()) && run.contains(&"--env".to_owned()));
        assert!(flags_of("runn").is_none());
    }
}
