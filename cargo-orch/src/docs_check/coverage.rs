//! The reference pages stay complete: what the code accepts or produces is
//! named there, and what is named there exists.

use std::collections::BTreeSet;
use std::path::Path;

use clap::CommandFactory;

use super::yaml;
use crate::cli::CargoCli;

/// The key the probes add: never a key of the configuration.
const PROBE: &str = "zz_doc_probe";

/// The keys `orch_config` accepts in a mapping reached by `path`, found by
/// loading a file with an unknown key there: `None` when `path` is no mapping
/// of known keys (a value, a list, or a free-form `config`).
fn keys_at(file: &'static str, path: &[String]) -> Option<Vec<String>> {
    let mut text = format!("{{{PROBE}: 1}}");
    for segment in path.iter().rev() {
        text = if segment == "[]" {
            format!("[{text}]")
        } else {
            format!("{{{segment}: {text}}}")
        };
    }
    let errors = yaml::load_text(file, &format!("{text}\n")).err()?;
    let error = errors
        .0
        .iter()
        .find(|e| e.message.starts_with(&format!("unknown key `{PROBE}`")))?;
    let known = error.hint.split("known keys here: ").nth(1)?;
    let known = known.split(';').next().unwrap_or_default();
    Some(known.split(", ").map(|k| k.trim().to_owned()).collect())
}

/// Every key path `orch_config` accepts in `file`: `timeouts.load`; a list
/// of mappings shows as `modules[].name`.
pub fn accepted_keys(file: &'static str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut pending: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = pending.pop() {
        let keys = keys_at(file, &path)
            .unwrap_or_else(|| panic!("the probe of `{}` in {file} found no keys", path.join(".")));
        for key in keys {
            let mut child = path.clone();
            child.push(key);
            found.insert(shown(&child));
            if keys_at(file, &child).is_some() {
                pending.push(child);
                continue;
            }
            child.push("[]".to_owned());
            if keys_at(file, &child).is_some() {
                pending.push(child);
            }
        }
    }
    found
}

/// `a.[].b` as `a[].b`.
fn shown(path: &[String]) -> String {
    path.join(".").replace(".[]", "[]")
}

/// The first cells of the `| key | ... |` tables of `page` (`` `a.b` ``).
pub fn table_keys(page: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut in_key_table = false;
    for line in page.lines() {
        if !line.starts_with('|') {
            in_key_table = false;
            continue;
        }
        let first = line.trim_start_matches('|').split('|').next().unwrap_or("");
        let first = first.trim();
        if first == "key" {
            in_key_table = true;
        } else if in_key_table
            && let Some(key) = first.strip_prefix('`').and_then(|k| k.strip_suffix('`'))
        {
            keys.push(key.to_owned());
        }
    }
    keys
}

/// Checks that `page` names every accepted key (as `` `key` ``) and that its
/// key tables name nothing else. `strip` is removed from the front of each
/// accepted path (`modules[].`).
pub fn check_config_page(
    page_file: &str,
    page: &str,
    accepted: &BTreeSet<String>,
    strip: &str,
    failures: &mut Vec<String>,
) {
    let accepted: BTreeSet<String> = accepted
        .iter()
        .map(|k| k.strip_prefix(strip).unwrap_or(k).to_owned())
        .collect();
    for key in &accepted {
        if !page.contains(&format!("`{key}`")) {
            failures.push(format!(
                "{page_file}: the parser accepts `{key}`, which the page does not name"
            ));
        }
    }
    for key in table_keys(page) {
        if !accepted.contains(&key) {
            failures.push(format!(
                "{page_file}: the page documents `{key}`, which the parser does not accept"
            ));
        }
    }
}

/// The page's sections: (heading level, heading, text up to the next heading).
fn sections(page: &str) -> Vec<(usize, String, String)> {
    let mut sections: Vec<(usize, String, String)> = vec![(0, String::new(), String::new())];
    let mut in_code = false;
    for line in page.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        let level = line.chars().take_while(|&c| c == '#').count();
        if !in_code && level > 0 && line[level..].starts_with(' ') {
            sections.push((level, line[level..].trim().to_owned(), String::new()));
        } else if let Some(last) = sections.last_mut() {
            last.2.push_str(line);
            last.2.push('\n');
        }
    }
    sections
}

/// Checks that the command-line page has a section per verb (`` `cargo orch
/// run` ``) naming each of its arguments, shared ones possibly in the parent
/// section, and a section on the options of every verb naming those.
pub fn check_cli_page(page_file: &str, page: &str, failures: &mut Vec<String>) {
    let sections = sections(page);
    let mut cargo = CargoCli::command();
    cargo.build();
    let orch = cargo.find_subcommand("orch").expect("the orch subcommand");
    let names = |arg: &clap::Arg| -> Vec<String> {
        let mut names: Vec<String> = arg
            .get_long()
            .map(|l| format!("--{l}"))
            .into_iter()
            .collect();
        names.extend(arg.get_short().map(|s| format!("-{s}")));
        if arg.get_long().is_none() && arg.get_short().is_none() {
            names.extend(
                arg.get_value_names()
                    .into_iter()
                    .flatten()
                    .map(|v| v.to_string()),
            );
        }
        names
    };
    let global = sections.iter().find(|s| s.1.contains("every verb"));
    for arg in orch.get_arguments().filter(|a| a.is_global_set()) {
        for name in names(arg) {
            if !global.is_some_and(|s| s.2.contains(&format!("`{name}"))) {
                failures.push(format!(
                    "{page_file}: the options of every verb do not name `{name}`"
                ));
            }
        }
    }
    for verb in orch
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
    {
        let heading = format!("`cargo orch {}`", verb.get_name());
        let Some(at) = sections.iter().position(|s| s.1 == heading) else {
            failures.push(format!("{page_file}: no section headed {heading}"));
            continue;
        };
        let level = sections[at].0;
        let parent = sections[..at].iter().rev().find(|s| s.0 < level);
        let text = format!("{}{}", sections[at].2, parent.map_or("", |p| p.2.as_str()));
        let own = verb
            .get_arguments()
            .filter(|a| !a.is_global_set() && a.get_id() != "help" && a.get_id() != "version");
        for arg in own {
            for name in names(arg) {
                if !text.contains(&name) {
                    failures.push(format!("{page_file}: {heading} does not name `{name}`"));
                }
            }
        }
    }
}

/// Checks that `page` names (`` `name` ``) each of `names`, what `what` says
/// they are.
pub fn check_names(
    page_file: &str,
    page: &str,
    names: &[String],
    what: &str,
    failures: &mut Vec<String>,
) {
    for name in names {
        if !page.contains(&format!("`{name}`")) {
            failures.push(format!("{page_file}: does not name the {what} `{name}`"));
        }
    }
}

/// The metric names `orch-monitor` exposes, read from its source: every string
/// literal of `metrics/collect.rs` that starts with `orch_` or `process_`.
pub fn metric_names(root: &Path) -> Vec<String> {
    let path = root.join("orch-core/monitor/src/metrics/collect.rs");
    let source = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut names: Vec<String> = Vec::new();
    for piece in source.split('"').skip(1).step_by(2) {
        let is_name = (piece.starts_with("orch_") || piece.starts_with("process_"))
            && piece.chars().all(|c| c.is_ascii_lowercase() || c == '_');
        if is_name && !names.iter().any(|n| n == piece) {
            names.push(piece.to_owned());
        }
    }
    names
}

/// The per-node permissions that `tests/e2e/bridge_permissions.rs` runs a
/// real nats-server with.
pub fn tested_permissions(root: &Path) -> String {
    let path = root.join("tests/e2e/bridge_permissions.rs");
    let source = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let start = "const PER_NODE_PERMISSIONS: &str = r#\"";
    let from = source
        .find(start)
        .expect("PER_NODE_PERMISSIONS in the e2e test")
        + start.len();
    let to = source[from..]
        .find("\"#;")
        .expect("the end of the raw string")
        + from;
    source[from..to].trim().to_owned()
}
