//! `cargo orch list`: the modules declared in `config/modules.yaml`, one row
//! each: name, package, folder, enabled, `depends_on`, its topic contract
//! (`publishes` / `subscribes`), and whether its library
//! is built and up to date (see [`mod@freshness`]), under a line naming the
//! environment when `--env` layers one. `--json` prints the same as an
//! object with `environment` (or null) and a `modules` array, for scripts.

mod freshness;

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use orch_config::{Contract, ModuleSpec};
use orch_scaffold::manifest::lib_name;
use serde_json::json;

use crate::cli::{GlobalArgs, ListArgs};
use crate::session::Session;
use freshness::{Freshness, artifact_path, freshness};

/// One declared module, as listed.
struct Row {
    name: String,
    package: String,
    path: String,
    enabled: bool,
    depends_on: Vec<String>,
    contract: Contract,
    artifact: Option<String>,
    built: Freshness,
    /// The input that is newer than the library, relative to the root.
    stale_because: Option<String>,
}

/// Prints the table (or JSON).
pub fn run(global: &GlobalArgs, args: &ListArgs) -> anyhow::Result<ExitCode> {
    let session = Session::open(global)?;
    let profile = if args.release { "release" } else { "debug" };
    let rows: Vec<Row> = session
        .config
        .modules
        .iter()
        .map(|spec| row(&session, spec, profile))
        .collect();
    let environment = session.config.environment.as_deref();
    if args.json {
        print_json(environment, &rows)?;
    } else {
        if let Some(name) = environment {
            let base = relative(&session.workspace.root, &session.config.config_dir);
            print_lines(&[format!(
                "environment '{name}': {base}/{name}/ layered over {base}/"
            )])?;
        }
        print_table(&rows, profile)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn row(session: &Session, spec: &ModuleSpec, profile: &str) -> Row {
    let root = &session.workspace.root;
    let package = session.workspace.package(&spec.package);
    let (path, artifact, built) = match package {
        Some(package) => {
            let library = artifact_path(
                &session.workspace.target_dir.join(profile),
                &lib_name(&package.manifest_dir, &package.name),
            );
            let built = freshness(&library, &package.manifest_dir, &root.join("Cargo.toml"));
            let shown = (built != Freshness::NotBuilt).then(|| relative(root, &library));
            (relative(root, &package.manifest_dir), shown, built)
        }
        None => (String::new(), None, Freshness::NotBuilt),
    };
    let stale_because = match &built {
        Freshness::Stale(input) => Some(relative(root, input)),
        _ => None,
    };
    Row {
        name: spec.name.clone(),
        package: spec.package.clone(),
        path,
        enabled: spec.enabled,
        depends_on: spec.depends_on.clone(),
        contract: spec.contract.clone(),
        artifact,
        built,
        stale_because,
    }
}

/// `publishes a.>; subscribes b.*, c` (`-` without a contract; `none` for an
/// empty list).
fn contract_text(contract: &Contract) -> String {
    let list = |patterns: &[String]| {
        if patterns.is_empty() {
            "none".to_owned()
        } else {
            patterns.join(", ")
        }
    };
    let parts: Vec<String> = [
        ("publishes", &contract.publishes),
        ("subscribes", &contract.subscribes),
    ]
    .into_iter()
    .filter_map(|(key, patterns)| Some(format!("{key} {}", list(patterns.as_ref()?))))
    .collect();
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join("; ")
    }
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn print_json(environment: Option<&str>, rows: &[Row]) -> anyhow::Result<()> {
    let modules: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            json!({
                "name": row.name,
                "package": row.package,
                "path": row.path,
                "enabled": row.enabled,
                "depends_on": row.depends_on,
                "publishes": row.contract.publishes,
                "subscribes": row.contract.subscribes,
                "artifact": row.artifact,
                "built": row.built.as_str(),
                "stale_because": row.stale_because,
            })
        })
        .collect();
    let text =
        serde_json::to_string_pretty(&json!({ "environment": environment, "modules": modules }))?;
    print_lines(&[text])
}

/// Prints `lines` on stdout; a reader that went away (`| head`) ends the
/// output quietly instead of a panic.
pub fn print_lines(lines: &[String]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for line in lines {
        match writeln!(out, "{line}") {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

fn print_table(rows: &[Row], profile: &str) -> anyhow::Result<()> {
    if rows.is_empty() {
        return print_lines(&[
            "no module is declared in modules.yaml: add one with `cargo orch new <name>`".into(),
        ]);
    }
    let header = [
        "NAME",
        "PACKAGE",
        "PATH",
        "ENABLED",
        "DEPENDS ON",
        "CONTRACT",
        &format!("BUILT ({profile})"),
    ]
    .map(String::from);
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|row| {
            [
                row.name.clone(),
                row.package.clone(),
                row.path.clone(),
                if row.enabled { "yes" } else { "no" }.to_owned(),
                if row.depends_on.is_empty() {
                    "-".to_owned()
                } else {
                    row.depends_on.join(", ")
                },
                contract_text(&row.contract),
                match (&row.built, &row.stale_because) {
                    (Freshness::NotBuilt, _) => "not built".to_owned(),
                    (Freshness::UpToDate, _) => "up to date".to_owned(),
                    (Freshness::Stale(_), Some(input)) => format!("stale ({input} changed)"),
                    (Freshness::Stale(_), None) => "stale".to_owned(),
                },
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.len());
    for line in &cells {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let lines: Vec<String> = std::iter::once(&header)
        .chain(&cells)
        .map(|line| {
            let text: Vec<String> = line
                .iter()
                .zip(widths)
                .map(|(cell, width)| format!("{cell:width$}"))
                .collect();
            text.join("  ").trim_end().to_owned()
        })
        .collect();
    print_lines(&lines)
}
