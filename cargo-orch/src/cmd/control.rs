//! `cargo orch status`, `reload`, `restart`, `stop` and `start`: the client
//! side of a running orchestrator's control socket.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use orch_operate::protocol::{Request, Response};
use orch_operate::{client, registry};

use crate::cli::{
    DeployArgs, EXIT_FAILURE, EXIT_USAGE, EmitArgs, GlobalArgs, ModuleArgs, StatusArgs, TapArgs,
    TargetArgs,
};
use crate::shown::{indented, one_line};

mod table;
mod validate;

/// The action verbs.
#[derive(Debug, Clone, Copy)]
pub enum Verb {
    /// `reload NAME`.
    Reload,
    /// `restart NAME`.
    Restart,
    /// `stop NAME`.
    Stop,
    /// `start NAME`.
    Start,
}

/// One orchestrator to talk to.
pub(crate) struct Target {
    pub(crate) pid: Option<u32>,
    pub(crate) socket: PathBuf,
}

/// `cargo orch status`.
pub fn status(global: &GlobalArgs, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let targets = match find(global, &args.target, true)? {
        Ok(targets) => targets,
        Err(code) => return Ok(code),
    };
    let deadline = Duration::from_secs(args.target.timeout.max(1));
    loop {
        let mut reports = Vec::new();
        for target in &targets {
            match client::send(&target.socket, &Request::Status, deadline) {
                Ok(Response::Status(report)) => reports.push(*report),
                Ok(other) => eprintln!(
                    "error: unexpected answer to status: {}",
                    one_line(&format!("{other:?}"))
                ),
                // Of several, one may be exiting right now: the others still count.
                Err(e) if targets.len() > 1 => {
                    eprintln!("warning: {e}{}", pid_note(target.pid));
                }
                Err(e) => {
                    eprintln!("error: {e}{}", pid_note(target.pid));
                    return Ok(ExitCode::from(EXIT_FAILURE));
                }
            }
        }
        if reports.is_empty() {
            eprintln!("error: no orchestrator answered");
            return Ok(ExitCode::from(EXIT_FAILURE));
        }
        if args.cluster {
            // Every node sees the same bucket: the first report says it all.
            let Some(report) = reports.first() else {
                return Ok(ExitCode::from(EXIT_FAILURE));
            };
            if args.json {
                let nodes = report.bridge.as_ref().map(|b| b.nodes.clone());
                println!(
                    "{}",
                    serde_json::to_string_pretty(&nodes.unwrap_or_default())?
                );
                return Ok(ExitCode::SUCCESS);
            }
            match table::render_cluster(report) {
                Ok(text) if !args.watch => {
                    print!("{text}");
                    return Ok(ExitCode::SUCCESS);
                }
                Ok(text) => {
                    if orch_process::console::stdout_is_terminal() {
                        print!("\x1b[H\x1b[2J");
                    }
                    println!("{text}");
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
                Err(message) => {
                    eprintln!(
                        "error: {message}\n  hint: add `presence: {{ttl: 6s}}` under \
                         bridge.nats in main.yaml (the server needs JetStream)"
                    );
                    return Ok(ExitCode::from(EXIT_FAILURE));
                }
            }
        }
        if args.json {
            println!("{}", serde_json::to_string_pretty(&reports)?);
            return Ok(ExitCode::SUCCESS);
        }
        let text: Vec<String> = reports.iter().map(table::render).collect();
        if !args.watch {
            print!("{}", text.join("\n"));
            return Ok(ExitCode::SUCCESS);
        }
        if orch_process::console::stdout_is_terminal() {
            // Home and clear, then the table: refreshed in place.
            print!("\x1b[H\x1b[2J");
        }
        println!("{}", text.join("\n"));
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// `cargo orch reload|restart|stop|start NAME`.
pub fn act(global: &GlobalArgs, args: &ModuleArgs, verb: Verb) -> anyhow::Result<ExitCode> {
    let targets = match find(global, &args.target, false)? {
        Ok(targets) => targets,
        Err(code) => return Ok(code),
    };
    let module = args.module.clone();
    let request = match verb {
        Verb::Reload => Request::Reload { module },
        Verb::Restart => Request::Restart { module },
        Verb::Stop => Request::Stop { module },
        Verb::Start => Request::Start { module },
    };
    send_action(&targets, &request, &args.target)
}

/// `cargo orch emit TOPIC JSON [--source NAME]`.
pub fn emit(global: &GlobalArgs, args: &EmitArgs) -> anyhow::Result<ExitCode> {
    let targets = match find(global, &args.target, false)? {
        Ok(targets) => targets,
        Err(code) => return Ok(code),
    };
    let request = Request::Emit {
        topic: args.topic.clone(),
        payload: args.json.clone(),
        source: args.source.clone(),
    };
    send_action(&targets, &request, &args.target)
}

/// `cargo orch tap PATTERN [--json] [--count N] [--rate]`.
pub fn tap(global: &GlobalArgs, args: &TapArgs) -> anyhow::Result<ExitCode> {
    let targets = match find(global, &args.target, false)? {
        Ok(targets) => targets,
        Err(code) => return Ok(code),
    };
    let Some(target) = targets.first() else {
        return Ok(ExitCode::from(EXIT_FAILURE));
    };
    // Validation needs whole payloads; the line shows them cut as usual.
    let request = Request::Tap {
        pattern: args.pattern.clone(),
        count: args.count,
        full: args.validate,
    };
    let mut validator = args
        .validate
        .then(|| validate::Validator::new(&target.socket));
    let mut refused: Option<(String, Option<String>, bool)> = None;
    let mut rates: std::collections::BTreeMap<String, u64> = Default::default();
    let mut dropped = 0u64;
    let mut window_start = std::time::Instant::now();
    let followed = client::follow(&target.socket, &request, Duration::from_secs(1), |item| {
        match item {
            client::Followed::Line(Response::Tapped(event)) => {
                dropped = event.dropped;
                let verdict = validator.as_mut().map(|v| v.verdict(&event));
                if args.rate {
                    *rates.entry(event.topic.clone()).or_default() += 1;
                } else if args.json {
                    let mut value = serde_json::to_value(&event).unwrap_or_default();
                    if let (Some(verdict), Some(object)) = (&verdict, value.as_object_mut()) {
                        object.insert("validation".into(), verdict.json());
                    }
                    println!("{value}");
                } else {
                    let mut line = tap_line(&event);
                    if let Some(verdict) = &verdict {
                        line = format!("{line}  <{}>", verdict.text());
                    }
                    println!("{line}");
                }
            }
            client::Followed::Line(Response::Error {
                message,
                hint,
                usage,
            }) => {
                refused = Some((message, hint, usage));
                return false;
            }
            client::Followed::Line(_) | client::Followed::Tick => {}
        }
        if args.rate && window_start.elapsed() >= Duration::from_secs(1) {
            let seconds = window_start.elapsed().as_secs_f64();
            let shown: Vec<String> = rates
                .iter()
                .map(|(topic, n)| format!("{}: {:.1}/s", one_line(topic), *n as f64 / seconds))
                .collect();
            println!(
                "{}{}",
                if shown.is_empty() {
                    "(no events)".to_string()
                } else {
                    shown.join(", ")
                },
                if dropped > 0 {
                    format!(" ({dropped} dropped by the tap so far)")
                } else {
                    String::new()
                }
            );
            rates.clear();
            window_start = std::time::Instant::now();
        }
        true
    });
    if let Some((message, hint, usage)) = refused {
        eprintln!("error: {}", indented(&message, "  "));
        if let Some(hint) = hint {
            eprintln!("  hint: {}", indented(&hint, "    "));
        }
        return Ok(ExitCode::from(if usage {
            EXIT_USAGE
        } else {
            EXIT_FAILURE
        }));
    }
    if let Err(e) = followed {
        eprintln!("error: {e}{}", pid_note(target.pid));
        return Ok(ExitCode::from(EXIT_FAILURE));
    }
    if dropped > 0 {
        eprintln!("tap: {dropped} event(s) were dropped: the tap could not keep up");
    }
    Ok(ExitCode::SUCCESS)
}

/// One tapped event, escaped, on one line: time, topic, source, id, payload.
fn tap_line(event: &orch_operate::protocol::TapEvent) -> String {
    let secs = event.at_ms / 1000;
    let time = format!(
        "{:02}:{:02}:{:02}.{:03}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60,
        event.at_ms % 1000
    );
    let limit = orch_operate::protocol::TAP_PAYLOAD_BYTES;
    let mut payload = event.payload.as_str();
    if payload.len() > limit {
        let mut end = limit;
        while !payload.is_char_boundary(end) {
            end -= 1;
        }
        payload = &payload[..end];
    }
    let cut = if event.payload_bytes > payload.len() as u64 {
        format!(" ... ({} bytes)", event.payload_bytes)
    } else {
        String::new()
    };
    format!(
        "{time} {} [{}{}] #{} {}{cut}",
        one_line(&event.topic),
        event
            .source
            .as_deref()
            .map_or_else(|| "host".into(), one_line),
        event
            .origin
            .as_deref()
            .map(|o| format!(" from {}", one_line(o)))
            .unwrap_or_default(),
        event.id,
        one_line(payload)
    )
}

/// `cargo orch deploy BUNDLE | --rollback`.
pub fn deploy(global: &GlobalArgs, args: &DeployArgs) -> anyhow::Result<ExitCode> {
    let request = match &args.bundle {
        Some(bundle) => Request::Deploy {
            bundle: bundle
                .canonicalize()
                .with_context(|| format!("cannot find the bundle {}", bundle.display()))?,
        },
        None => Request::Rollback,
    };
    let mut places: Vec<PathBuf> = Vec::new();
    if let Request::Deploy { bundle } = &request
        && let Some(parent) = bundle.parent()
    {
        places.push(parent.to_path_buf());
    }
    places.push(std::env::current_dir().context("cannot read the current folder")?);
    let targets = if args.target.socket.is_some() {
        find(global, &args.target, false)?
    } else {
        find_bundle_runs(&places, args.target.pid)?
    };
    let targets = match targets {
        Ok(targets) => targets,
        Err(code) => return Ok(code),
    };
    send_action(&targets, &request, &args.target)
}

/// The bundle runs whose folders sit in `places` (their control sockets
/// are registered under `<folder>/state/`), `pid` among them when given.
fn find_bundle_runs(
    places: &[PathBuf],
    pid: Option<u32>,
) -> anyhow::Result<Result<Vec<Target>, ExitCode>> {
    let mut running: Vec<registry::Entry> = Vec::new();
    for place in places {
        let Ok(listing) = std::fs::read_dir(place) else {
            continue;
        };
        for folder in listing.filter_map(Result::ok).map(|e| e.path()) {
            let state = folder.join(crate::bundled::STATE_DIR);
            if state.is_dir() {
                for entry in registry::running(&state) {
                    if !running.iter().any(|r| r.pid == entry.pid) {
                        running.push(entry);
                    }
                }
            }
        }
    }
    let chosen: Vec<&registry::Entry> = running
        .iter()
        .filter(|e| pid.is_none_or(|pid| e.pid == pid))
        .collect();
    let shown: Vec<String> = places.iter().map(|p| p.display().to_string()).collect();
    match chosen.as_slice() {
        [] => {
            eprintln!(
                "error: no bundle run{} found in {}\n  hint: pass --socket PATH (the run logs \
                 it: [CONTROL] control socket ...), or run this beside the bundle's folder",
                pid.map(|p| format!(" with pid {p}")).unwrap_or_default(),
                shown.join(" or ")
            );
            Ok(Err(ExitCode::from(EXIT_FAILURE)))
        }
        [one] => Ok(Ok(vec![Target {
            pid: Some(one.pid),
            socket: one.socket.clone(),
        }])),
        several => {
            eprintln!(
                "error: {} bundle runs found: {}\n  hint: pass --pid PID to say which",
                several.len(),
                describe(&running)
            );
            Ok(Err(ExitCode::from(EXIT_USAGE)))
        }
    }
}

/// Sends an action to the first of `targets` and prints its answer.
pub(crate) fn send_action(
    targets: &[Target],
    request: &Request,
    target_args: &TargetArgs,
) -> anyhow::Result<ExitCode> {
    let Some(target) = targets.first() else {
        return Ok(ExitCode::from(EXIT_FAILURE));
    };
    let deadline = Duration::from_secs(target_args.timeout.max(1));
    match client::send(&target.socket, request, deadline) {
        Ok(Response::Done { message }) => {
            // A deploy reports a line per module; other actions one line.
            for line in message.lines() {
                println!("{}", one_line(line));
            }
            Ok(ExitCode::SUCCESS)
        }
        Ok(Response::Error {
            message,
            hint,
            usage,
        }) => {
            eprintln!("error: {}", indented(&message, "  "));
            if let Some(hint) = hint {
                eprintln!("  hint: {}", indented(&hint, "    "));
            }
            Ok(ExitCode::from(if usage {
                EXIT_USAGE
            } else {
                EXIT_FAILURE
            }))
        }
        Ok(other) => {
            eprintln!("error: unexpected answer to {}: {other:?}", request.verb());
            Ok(ExitCode::from(EXIT_FAILURE))
        }
        Err(e) => {
            eprintln!("error: {e}{}", pid_note(target.pid));
            Ok(ExitCode::from(EXIT_FAILURE))
        }
    }
}

/// The orchestrators to talk to: `--socket`, `--pid`, or every running
/// one (`all`), else the only one. `Err(code)` once the problem is printed.
pub(crate) fn find(
    global: &GlobalArgs,
    target: &TargetArgs,
    all: bool,
) -> anyhow::Result<Result<Vec<Target>, ExitCode>> {
    if let Some(socket) = &target.socket {
        return Ok(Ok(vec![Target {
            pid: None,
            socket: socket.clone(),
        }]));
    }
    let start = match &global.manifest_path {
        Some(path) => path.clone(),
        None => std::env::current_dir().context("cannot read the current folder")?,
    };
    let workspace = match orch_cargo::discover_workspace(&start) {
        Ok(workspace) => workspace,
        // No workspace (or no cargo: a machine that runs bundles): the
        // bundle runs unpacked in this folder.
        Err(error) if global.manifest_path.is_none() => {
            let found = find_bundle_runs(std::slice::from_ref(&start), target.pid)?;
            if found.is_err() {
                eprintln!("  (not in a cargo workspace either: {error})");
            }
            return Ok(found);
        }
        Err(error) => return Err(error.into()),
    };
    let folder = registry::folder(&workspace.target_dir);
    let running = registry::running(&workspace.target_dir);
    if running.is_empty() {
        eprintln!(
            "error: no cargo orch run is running in this workspace (nothing in {})\n  hint: start \
             one with `cargo orch run`, or pass --socket PATH",
            folder.display()
        );
        return Ok(Err(ExitCode::from(EXIT_FAILURE)));
    }
    let chosen: Vec<_> = match target.pid {
        Some(pid) => running.iter().filter(|e| e.pid == pid).collect(),
        None => running.iter().collect(),
    };
    if chosen.is_empty() {
        eprintln!(
            "error: no orchestrator with pid {} runs in this workspace\n  hint: running: {}",
            target.pid.unwrap_or_default(),
            describe(&running)
        );
        return Ok(Err(ExitCode::from(EXIT_USAGE)));
    }
    if chosen.len() > 1 && !all {
        eprintln!(
            "error: {} orchestrators run in this workspace: {}\n  hint: pass --pid PID to say which",
            chosen.len(),
            describe(&running)
        );
        return Ok(Err(ExitCode::from(EXIT_USAGE)));
    }
    Ok(Ok(chosen
        .into_iter()
        .map(|entry| Target {
            pid: Some(entry.pid),
            socket: entry.socket.clone(),
        })
        .collect()))
}

fn describe(running: &[registry::Entry]) -> String {
    running
        .iter()
        .map(|e| {
            let env = e
                .environment
                .as_ref()
                .map(|env| format!(", env {env}"))
                .unwrap_or_default();
            format!("pid {} ({}, {}{env})", e.pid, e.app, e.config_dir.display())
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn pid_note(pid: Option<u32>) -> String {
    pid.map(|pid| format!(" (orchestrator pid {pid})"))
        .unwrap_or_default()
}
