//! The documentation is tested: README.md, ARCHITECTURE.md and the book in
//! docs/src. Every fenced block is checked as what it is, so a doc that rots
//! fails `cargo test --workspace` (no build, no process: a fraction of a
//! second):
//! - a ```` ```yaml ```` block names its file on its first line
//!   (`# config/main.yaml`, `# config/modules.yaml`, `# config/<env>/...`) and
//!   loads through `orch_config` as that file; ```` ```yaml ignore ```` blocks
//!   are counted and kept few;
//! - every `cargo orch ...` line of a `sh` or `console` block parses with the
//!   real clap definitions, and the synopses of `text` blocks name only flags
//!   their verb has (`cargo xtask` lines: xtask's own test);
//! - the reference pages name every configuration key (asked of the parser
//!   itself), verb, flag, system event and metric, and nothing the code lacks;
//! - the NATS permissions example is the one the e2e test runs.

mod blocks;
mod commands;
mod coverage;
mod yaml;

use std::path::Path;

use blocks::Block;

/// The info strings a block may have.
const LANGUAGES: [&str; 6] = ["yaml", "sh", "console", "text", "rust", "toml"];

/// How many ```` ```yaml ignore ```` blocks may exist: deliberately partial
/// or wrong examples stay rare.
const MAX_IGNORED_YAML: usize = 3;

fn read(root: &Path, file: &str) -> String {
    std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("cannot read {file}: {e}"))
}

fn assert_none(what: &str, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} {what}:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A ```` ```yaml ```` block loaded as the file its first line names.
fn check_yaml(block: &Block, failures: &mut Vec<String>) {
    let target = match yaml::Target::of(&block.text) {
        Ok(target) => target,
        Err(why) => return failures.push(format!("{}: {why}", block.place())),
    };
    if let Err(errors) = yaml::load_block(&block.text, &target) {
        for error in &errors.0 {
            failures.push(format!(
                "{}: ```yaml block ({}{}): {}",
                block.place(),
                target
                    .environment
                    .as_ref()
                    .map_or(String::new(), |env| format!("{env}/")),
                target.file,
                yaml::describe(error, block.line)
            ));
        }
    }
}

#[test]
fn every_block_of_the_docs_is_valid() {
    let root = blocks::root();
    let all = blocks::all(&root);
    let mut failures = Vec::new();
    let (mut yaml_checked, mut yaml_ignored, mut commands, mut synopses) = (0, 0, 0, 0);
    for block in &all {
        if !LANGUAGES.contains(&block.lang.as_str()) {
            failures.push(format!(
                "{}: a code block's info string is `{}`; use one of {}",
                block.place(),
                block.lang,
                LANGUAGES.join(", ")
            ));
        }
        match block.lang.as_str() {
            "yaml" if block.flags.iter().any(|f| f == "ignore") => yaml_ignored += 1,
            "yaml" => {
                yaml_checked += 1;
                check_yaml(block, &mut failures);
            }
            "sh" | "console" => commands += commands::check_command_block(block, &mut failures),
            "text" => synopses += commands::check_synopsis_block(block, &mut failures),
            _ => {}
        }
    }
    eprintln!(
        "docs: {} blocks in {} files; {yaml_checked} yaml blocks loaded, {yaml_ignored} ignored; \
         {commands} `cargo orch` command lines parsed; {synopses} synopsis lines checked",
        all.len(),
        blocks::files(&root).len()
    );
    assert_none("problems in the docs' code blocks", &failures);
    assert!(
        yaml_ignored <= MAX_IGNORED_YAML,
        "{yaml_ignored} ```yaml ignore blocks: at most {MAX_IGNORED_YAML}; make them whole files"
    );
    assert!(
        yaml_checked >= 15 && commands >= 10,
        "the docs lost their examples"
    );
}

#[test]
fn the_configuration_reference_names_every_key_the_parser_accepts() {
    let root = blocks::root();
    let mut failures = Vec::new();
    let main = coverage::accepted_keys("main.yaml");
    assert!(main.contains("bridge.nats.jetstream.replicas") && main.contains("timeouts.test"));
    let file = "docs/src/reference/main-yaml.md";
    coverage::check_config_page(file, &read(&root, file), &main, "", &mut failures);
    let modules = coverage::accepted_keys("modules.yaml");
    assert!(modules.contains("modules[].test.timeout"), "{modules:?}");
    let file = "docs/src/reference/modules-yaml.md";
    coverage::check_config_page(
        file,
        &read(&root, file),
        &modules,
        "modules[].",
        &mut failures,
    );
    eprintln!(
        "docs: {} main.yaml keys and {} modules.yaml keys accepted by the parser",
        main.len(),
        modules.len()
    );
    assert_none("gaps in the configuration reference", &failures);
}

#[test]
fn the_reference_names_every_verb_flag_event_and_metric() {
    let root = blocks::root();
    let mut failures = Vec::new();
    let file = "docs/src/reference/cli.md";
    coverage::check_cli_page(file, &read(&root, file), &mut failures);
    let topics: Vec<String> = orch_sdk::events::ALL
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
    let file = "docs/src/reference/events.md";
    coverage::check_names(
        file,
        &read(&root, file),
        &topics,
        "system event",
        &mut failures,
    );
    let metrics = coverage::metric_names(&root);
    assert!(metrics.len() > 30, "{metrics:?}");
    let file = "docs/src/reference/metrics.md";
    let page = read(&root, file);
    coverage::check_names(file, &page, &metrics, "metric", &mut failures);
    for line in page.lines().filter(|l| l.starts_with("| `")) {
        let name = line[3..].split('`').next().unwrap_or_default();
        let ours = name.starts_with("orch_") || name.starts_with("process_");
        if ours && !metrics.iter().any(|m| m == name) {
            failures.push(format!(
                "{file}: names the metric `{name}`, which is not exposed"
            ));
        }
    }
    assert_none("gaps in the reference", &failures);
}

#[test]
fn the_bridge_permissions_example_is_the_tested_one() {
    let root = blocks::root();
    let tested = coverage::tested_permissions(&root);
    let file = "docs/src/guide/bridge.md";
    let shown = blocks::blocks(Path::new(file), &read(&root, file))
        .into_iter()
        .any(|b| b.lang == "text" && b.text.trim() == tested);
    assert!(
        shown,
        "{file} must show, as a ```text block, the server configuration \
         tests/e2e/bridge_permissions.rs runs (PER_NODE_PERMISSIONS), exactly"
    );
}
