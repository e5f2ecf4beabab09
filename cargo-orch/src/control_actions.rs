//! What the control socket's actions do to the running orchestrator, on its
//! main thread: `reload`, `restart`, `stop` and `start` of one module.

use std::collections::HashMap;

use orch_config::ModuleSpec;
use orch_operate::protocol::{Request, Response};
use orch_operate::server::Pending;
use orch_runtime::status::ModuleState;
use orch_runtime::supervisor::Supervisor;
use orch_sdk::duration::human;

use crate::deploy::Deployer;
use crate::hot_reload::HotReload;

/// Carries out `pending` and sends its answer. `deployer` is there for a
/// bundle run only.
pub fn handle(
    pending: Pending,
    supervisor: &mut Supervisor,
    reloader: &mut HotReload,
    deployer: Option<&mut Deployer>,
) {
    if pending.is_abandoned() {
        tracing::info!(
            "[CONTROL] '{}' skipped: its client hung up before it began",
            pending.request.verb()
        );
        return;
    }
    let response = match &pending.request {
        Request::Status | Request::Tap { .. } => {
            Response::refused("status and tap are answered by the socket", "ask again")
        }
        Request::Reload { module } => {
            with_spec(reloader, module, |spec| reload(supervisor, reloader, spec))
        }
        Request::Restart { module } => {
            with_spec(reloader, module, |spec| restart(supervisor, reloader, spec))
        }
        Request::Stop { module } => with_spec(reloader, module, |spec| stop(supervisor, spec)),
        Request::Start { module } => {
            with_spec(reloader, module, |spec| start(supervisor, reloader, spec))
        }
        Request::Deploy { bundle } => match deployer {
            Some(deployer) => deployer.deploy(supervisor, reloader, bundle),
            None => not_a_bundle_run(),
        },
        Request::Rollback => match deployer {
            Some(deployer) => deployer.rollback(supervisor, reloader),
            None => not_a_bundle_run(),
        },
        Request::Emit {
            topic,
            payload,
            source,
        } => emit(supervisor, reloader, topic, payload, source),
    };
    match &response {
        Response::Done { message } => tracing::info!("[CONTROL] {message}"),
        Response::Error { message, .. } => tracing::warn!(
            "[CONTROL] {} refused or failed: {message}",
            pending.request.verb()
        ),
        Response::Status(_) | Response::Tapped(_) => {}
    }
    pending.answer(response);
}

/// `cargo orch emit`: one event, published as `source` under the rules a
/// module's publish follows (no reserved namespace, JSON, `max_event_bytes`,
/// a full `block` mailbox waited for up to `timeouts.publish`).
fn emit(
    supervisor: &Supervisor,
    reloader: &HotReload,
    topic: &str,
    payload: &str,
    source: &str,
) -> Response {
    if let Err(reason) = orch_sdk::topic::validate_module_topic(topic) {
        return Response::refused(reason, "emit on a topic of the application, like test.ping");
    }
    let valid_source = !source.is_empty()
        && source.len() <= 64
        && source
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_source {
        return Response::refused(
            format!("source '{}' is not a name", source.escape_debug()),
            "a source is 1 to 64 letters, digits, `-` and `_` (default: cli)",
        );
    }
    if reloader.config().module(source).is_some() {
        return Response::refused(
            format!("source '{source}' is the name of a declared module"),
            "events from emit never pass as a module's: choose another --source",
        );
    }
    if let Err(e) = serde_json::from_str::<serde_json::Value>(payload) {
        return Response::refused(
            format!("the payload is not JSON: {e}"),
            "quote it for the shell: cargo orch emit test.ping '{\"message\":\"hi\",\"seq\":1}'",
        );
    }
    match supervisor
        .bus()
        .publish(topic, payload, Some(source.into()))
    {
        Ok(delivered) => {
            tracing::info!(
                "[CONTROL] emit: '{topic}' from '{source}' handed to {delivered} subscriber(s)"
            );
            Response::Done {
                message: format!("published '{topic}' as '{source}' to {delivered} subscriber(s)"),
            }
        }
        Err(e) => Response::error(
            format!("'{topic}' was not published: {e}"),
            Some("a subscriber's mailbox is full, or the payload is over max_event_bytes".into()),
        ),
    }
}

fn not_a_bundle_run() -> Response {
    Response::refused(
        "this orchestrator runs a workspace, not a bundle: there is nothing to deploy into",
        "start it from a bundle (cargo orch run --bundle FILE); a workspace run reloads on \
         save with --watch, or with `cargo orch reload MODULE`",
    )
}

/// Runs `f` on the module declared as `name`, or refuses an unknown name.
fn with_spec(
    reloader: &HotReload,
    name: &str,
    f: impl FnOnce(&ModuleSpec) -> Response,
) -> Response {
    let config = reloader.config();
    match config.module(name) {
        Some(spec) => f(&spec.clone()),
        None => {
            let names: Vec<&str> = config.modules.iter().map(|m| m.name.as_str()).collect();
            Response::refused(
                format!("no module named '{name}' is declared in modules.yaml"),
                format!("declared modules: {}", names.join(", ")),
            )
        }
    }
}

fn is_running(supervisor: &Supervisor, name: &str) -> bool {
    supervisor.running().contains(&name)
}

fn state_of(supervisor: &Supervisor, name: &str) -> &'static str {
    supervisor
        .status()
        .state_of(name)
        .map_or("never started", ModuleState::as_str)
}

fn reload(supervisor: &mut Supervisor, reloader: &HotReload, spec: &ModuleSpec) -> Response {
    if !is_running(supervisor, &spec.name) {
        return Response::refused(
            format!(
                "module '{}' is not running ({})",
                spec.name,
                state_of(supervisor, &spec.name)
            ),
            format!("start it with `cargo orch start {}`", spec.name),
        );
    }
    match reloader.reload_now(supervisor, spec) {
        Ok(report) => Response::Done {
            message: format!(
                "module '{}' reloaded: generation {} running (swap {})",
                spec.name,
                report.generation,
                human(report.swap)
            ),
        },
        Err(message) => Response::error(
            message,
            Some("the running generation goes on; see the orchestrator's log".into()),
        ),
    }
}

fn stop(supervisor: &mut Supervisor, spec: &ModuleSpec) -> Response {
    match supervisor.remove(&spec.name) {
        None => Response::refused(
            format!(
                "module '{}' is not running ({})",
                spec.name,
                state_of(supervisor, &spec.name)
            ),
            "nothing to stop",
        ),
        Some(Ok(())) => Response::Done {
            message: format!("module '{}' stopped", spec.name),
        },
        Some(Err(failure)) => Response::error(
            format!("module '{}' stopped, but not cleanly: {failure}", spec.name),
            Some(failure.hint.clone()),
        ),
    }
}

fn start(supervisor: &mut Supervisor, reloader: &HotReload, spec: &ModuleSpec) -> Response {
    if is_running(supervisor, &spec.name) {
        return Response::refused(
            format!("module '{}' is already running", spec.name),
            format!("restart it with `cargo orch restart {}`", spec.name),
        );
    }
    if !spec.enabled {
        return Response::refused(
            format!("module '{}' is disabled in modules.yaml", spec.name),
            "set `enabled: true` in its entry (the running orchestrator applies the edit when it watches)",
        );
    }
    load(supervisor, reloader, spec, "started")
}

fn restart(supervisor: &mut Supervisor, reloader: &HotReload, spec: &ModuleSpec) -> Response {
    if !spec.enabled {
        return Response::refused(
            format!("module '{}' is disabled in modules.yaml", spec.name),
            "set `enabled: true` in its entry",
        );
    }
    let board = supervisor.status().clone();
    if is_running(supervisor, &spec.name) {
        board.set_state(&spec.name, ModuleState::Restarting);
        if let Some(Err(failure)) = supervisor.remove(&spec.name) {
            tracing::warn!(
                "[CONTROL] module '{}' did not stop cleanly: {failure}",
                spec.name
            );
        }
    }
    let response = load(supervisor, reloader, spec, "restarted");
    if matches!(response, Response::Done { .. }) {
        board.count_restart(&spec.name);
    }
    response
}

/// Loads, initializes and starts `spec` from its last built library.
fn load(
    supervisor: &mut Supervisor,
    reloader: &HotReload,
    spec: &ModuleSpec,
    verb: &str,
) -> Response {
    let Some(artifact) = reloader.artifact_of(spec) else {
        supervisor
            .status()
            .out(&spec.name, ModuleState::Failed, None);
        return Response::error(
            format!(
                "module '{}' has no built library (package '{}')",
                spec.name, spec.package
            ),
            Some(format!(
                "use `cargo orch reload {}` after it builds",
                spec.name
            )),
        );
    };
    let artifacts = HashMap::from([(spec.package.clone(), artifact)]);
    match supervisor.add(spec, &artifacts) {
        Ok(()) => {
            let pid = supervisor
                .status()
                .snapshot()
                .into_iter()
                .find(|m| m.name == spec.name)
                .and_then(|m| m.pid)
                .map(|pid| format!(" (child pid {pid})"))
                .unwrap_or_default();
            Response::Done {
                message: format!("module '{}' {verb}{pid}", spec.name),
            }
        }
        Err(failure) => Response::error(failure.to_string(), Some(failure.hint.clone())),
    }
}

/// Answers every action still queued: the orchestrator is shutting down.
pub fn refuse_queued(actions: &crossbeam_channel::Receiver<Pending>) {
    for pending in actions.try_iter() {
        let verb = pending.request.verb();
        pending.answer(Response::error(
            format!("'{verb}' was not carried out: the orchestrator is shutting down"),
            None,
        ));
    }
}
