//! `cargo orch graph`: the application's dataflow from its configuration,
//! as DOT, Mermaid or SVG (see [`crate::graph`]).

use std::collections::HashMap;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use orch_operate::client;
use orch_operate::protocol::{Request, Response};
use orch_runtime::status::ModuleStatus;
use orch_runtime::typing::{self, TopicTypes};

use crate::cli::{EXIT_FAILURE, GlobalArgs, GraphArgs, GraphFormat};
use crate::graph::{live, model, render};
use crate::session::Session;

/// Runs `cargo orch graph`.
pub fn run(global: &GlobalArgs, args: &GraphArgs) -> anyhow::Result<ExitCode> {
    let session = Session::open(global)?;
    let graph = if args.live {
        let modules = match running_modules(global, args)? {
            Ok(modules) => modules,
            Err(code) => return Ok(code),
        };
        live::live(&session.config, &modules)
    } else {
        let mut notes = Vec::new();
        let types = built_types(&session, &mut notes);
        let mut graph = model::from_config(&model::typed_contracts(&session.config, &types));
        graph.notes.extend(notes);
        model::annotate_types(&mut graph, &types);
        graph
    };
    let format = args.format.unwrap_or_else(|| {
        match args
            .out
            .as_ref()
            .and_then(|p| p.extension())
            .and_then(|e| e.to_str())
        {
            Some("svg") => GraphFormat::Svg,
            Some("mmd" | "mermaid") => GraphFormat::Mermaid,
            _ => GraphFormat::Dot,
        }
    });
    let text = match format {
        GraphFormat::Dot => render::dot(&graph),
        GraphFormat::Mermaid => render::mermaid(&graph),
        GraphFormat::Svg => render::svg(&graph)
            .map_err(|e| anyhow::anyhow!("cannot draw the graph: {e}; hint: --format dot"))?,
    };
    match &args.out {
        Some(path) => {
            let partial = path.with_extension("partial");
            std::fs::write(&partial, &text)
                .with_context(|| format!("cannot write {}", partial.display()))?;
            std::fs::rename(&partial, path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!(
                "graph: {} modules, {} edges written to {}",
                graph
                    .nodes
                    .iter()
                    .filter(|n| matches!(n.kind, model::NodeKind::Module { .. }))
                    .count(),
                graph.edges.len(),
                path.display()
            );
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text.as_bytes())?;
            stdout.flush()?;
        }
    }
    for note in &graph.notes {
        eprintln!("note: {note}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The rows of the running orchestrator `args` names (`Err(code)` once a
/// problem finding it is printed).
fn running_modules(
    global: &GlobalArgs,
    args: &GraphArgs,
) -> anyhow::Result<Result<Vec<ModuleStatus>, ExitCode>> {
    let target = match super::control::find(global, &args.target, false)? {
        Ok(targets) => match targets.into_iter().next() {
            Some(target) => target,
            None => return Ok(Err(ExitCode::from(EXIT_FAILURE))),
        },
        Err(code) => return Ok(Err(code)),
    };
    let deadline = Duration::from_secs(args.target.timeout.clamp(1, 30));
    match client::send(&target.socket, &Request::Status, deadline)
        .with_context(|| format!("cannot ask {} for its status", target.socket.display()))?
    {
        Response::Status(report) => Ok(Ok(report.modules)),
        other => anyhow::bail!("the orchestrator answered {other:?} to status"),
    }
}

/// The topic types of the enabled modules whose libraries are built (read
/// without running them: see `orch_runtime::typing::read`); a module not
/// built yet, or whose types cannot be read, gets a note.
fn built_types(session: &Session, notes: &mut Vec<String>) -> HashMap<String, TopicTypes> {
    let timeout = session.config.main.timeouts.load;
    let mut types = HashMap::new();
    for spec in session.config.startup_order() {
        let Some(library) = session.workspace.artifact_path(&spec.package, false) else {
            continue;
        };
        if !library.is_file() {
            notes.push(format!(
                "'{}' is not built yet: its payload types are not shown (cargo orch check builds it)",
                spec.name
            ));
            continue;
        }
        match typing::read::read(&spec.name, &library, timeout) {
            Ok(Some(found)) => {
                types.insert(spec.name.clone(), found);
            }
            Ok(None) => {}
            Err(failure) => notes.push(format!(
                "the payload types of '{}' cannot be read: {}",
                spec.name, failure.cause
            )),
        }
    }
    types
}
