//! Every `cargo xtask ...` line of a `sh` or `console` block of the docs
//! (README.md, ARCHITECTURE.md, docs/src) parses with this crate's command
//! line, so a documented xtask command that rots fails `cargo test
//! --workspace`. The `cargo orch` lines and everything else are checked by
//! cargo-orch's `docs_check`, whose block reader this test shares.

#[path = "../../cargo-orch/src/docs_check/blocks.rs"]
mod blocks;

use clap::Parser;
use clap::error::ErrorKind;

use crate::Cli;

#[test]
fn every_documented_xtask_command_parses() {
    let root = blocks::root();
    let mut checked = 0;
    let mut failures = Vec::new();
    for block in blocks::all(&root) {
        if block.lang != "sh" && block.lang != "console" {
            continue;
        }
        for (line, text) in blocks::command_lines(&block) {
            for words in blocks::simple_commands(&text) {
                if words.len() < 2 || words[0] != "cargo" || words[1] != "xtask" {
                    continue;
                }
                checked += 1;
                let args = std::iter::once("xtask").chain(words[2..].iter().map(String::as_str));
                match Cli::try_parse_from(args) {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::DisplayHelp => {}
                    Err(e) => failures.push(format!(
                        "{} (line {line}): `{}` does not parse: {}",
                        block.place(),
                        words.join(" "),
                        e.to_string().lines().next().unwrap_or_default()
                    )),
                }
            }
        }
    }
    eprintln!("docs: {checked} `cargo xtask` command lines parsed");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 5, "the docs lost their xtask commands");
}
