//! `cargo orch run`: build the enabled modules, load them in a deterministic
//! order, and run until SIGINT or SIGTERM.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::deploy::Deployer;
use crate::hot_reload::{HotReload, Outcome};
use anyhow::Context as _;
use crossbeam_channel::{Receiver, bounded, select, unbounded};
use orch_cargo::watcher::{DEBOUNCE, SourceWatcher};
use orch_cargo::{BuildRequest, Builder};
use orch_runtime::bus::Bus;
use orch_runtime::loader::Loader;
use orch_runtime::resources::ResourceManager;
use orch_runtime::supervisor::{Control, Supervisor};
use orch_sdk::duration::human;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::cli::{
    EXIT_FAILURE, EXIT_SHUTDOWN_DEADLINE, EXIT_UNCLEAN_SHUTDOWN, GlobalArgs, RunArgs,
};
use crate::network::{BridgeSetup, Network, NoNetwork, sections_needed};
use crate::operator_services::OperatorServices;
use crate::session::Session;
use orch_operate::server::Pending;

/// Runs the application until a signal.
pub fn run(
    global: &GlobalArgs,
    args: &RunArgs,
    network: Option<&dyn Network>,
) -> anyhow::Result<ExitCode> {
    let process_start = Instant::now();
    let mut from_nats = None;
    let session = match (&args.bundle, &args.from_nats) {
        (Some(bundle), _) => {
            Session::open_bundle(global, bundle, args.unpack_dir.as_deref(), &args.trust)?
        }
        (None, Some(url)) => {
            let Some(network) = network else {
                return Err(crate::networked::hand_over(
                    "--from-nats needs the NATS client",
                    None,
                    args.no_build,
                    Duration::from_secs(600),
                ));
            };
            let (session, from) = crate::from_nats::open(global, args, url, network)?;
            from_nats = Some(from);
            session
        }
        (None, None) => Session::open(global)?,
    };
    let needed = sections_needed(&session.config);
    let network = match network {
        Some(network) => network,
        None if needed.is_empty() => &NoNetwork,
        None => {
            let bundled = session.bundle.as_ref().map(|bundle| {
                bundle
                    .program(crate::networked::NETWORKED_BIN)
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "the bundle's main.yaml has {} but the bundle carries no bin/{}; \
                             bundle again (bundle adds it when main.yaml needs it)",
                            needed.join(", "),
                            crate::networked::NETWORKED_BIN
                        )
                    })
            });
            let program = match bundled {
                Some(Ok(program)) => Some(program),
                Some(Err(error)) => return Err(error),
                None => None,
            };
            return Err(crate::networked::hand_over(
                &format!("main.yaml has {}", needed.join(", ")),
                program,
                args.no_build,
                session.config.main.timeouts.build,
            ));
        }
    };
    session.scrub_console()?;
    session.init_logging(global)?;
    if let Some(bundle) = &session.bundle {
        tracing::info!("[BUNDLE] {}", bundle.describe());
        if bundle.signed_by.is_none() {
            tracing::warn!(
                "[BUNDLE] --allow-unsigned: this bundle's signature was NOT checked; anyone who \
                 could change the archive could have changed what now runs with this host's \
                 rights. Never do this in production"
            );
        }
    }
    if let Some(from) = &from_nats {
        tracing::info!(
            "[RELEASE] node '{}' runs {} {}, the {} release at {}; following its release",
            from.node,
            from.app,
            from.started_with.version,
            from.started_with.source,
            args.from_nats.as_deref().unwrap_or_default()
        );
    }
    let config = &session.config;
    tracing::info!(
        "{} {} starting ({} of {} declared modules enabled{})",
        config.main.app.name,
        config.main.app.version,
        config.startup_order().len(),
        config.modules.len(),
        config
            .environment
            .as_ref()
            .map(|env| format!(", environment '{env}'"))
            .unwrap_or_default()
    );
    let hot_reload = (config.main.hot_reload || args.watch) && !args.no_watch;
    tracing::info!(
        "Hot-reload: {}",
        if hot_reload { "enabled" } else { "disabled" }
    );

    let builder = Builder::new(&session.workspace);
    let control = Control::default();
    let shutdown = watch_signals(
        builder.clone(),
        control.clone(),
        config.main.timeouts.shutdown_total,
    )?;

    let mut resources = ResourceManager::new(&config.main.resources);
    resources.log_limits(&config.main.resources);
    resources.start_usage_reports(config.main.resources.usage_interval);

    let modules = config.startup_order();
    let request = BuildRequest {
        packages: orch_config::packages_of(modules.iter().copied()),
        release: args.release,
        timeout: config.main.timeouts.build,
    };
    let build = if request.packages.is_empty() {
        tracing::warn!("no module is enabled in config/modules.yaml; nothing to build");
        Default::default()
    } else if let Some(bundle) = &session.bundle {
        bundle.libraries()
    } else if args.no_build {
        prebuilt_artifacts(&session.workspace, &request)?
    } else {
        match builder.build(&request) {
            Ok(output) => {
                tracing::info!(
                    "[TIMING] build of {} module packages took {} ({} recompiled)",
                    request.packages.len(),
                    human(output.duration),
                    output.rebuilt.len()
                );
                output.artifacts
            }
            Err(error) => {
                if let Ok(signal) = shutdown.try_recv() {
                    tracing::info!("Build interrupted by {signal}; nothing was started");
                    return Ok(ExitCode::SUCCESS);
                }
                tracing::error!("{error}");
                return Ok(ExitCode::from(EXIT_FAILURE));
            }
        }
    };

    let loader = Loader::new(&session.workspace.target_dir)
        .context("cannot create the folder for loaded module copies under target/")?;
    let bus = Bus::new();
    bus.set_max_event_bytes(config.main.max_event_bytes);
    bus.set_scrubber(session.scrubber.clone());
    let mut supervisor = Supervisor::new(bus, loader, config.main.timeouts);
    supervisor.set_control(control);
    if let Some(bundle) = &session.bundle {
        supervisor
            .status()
            .set_deployment(Some(crate::deploy::deployment(bundle, config)));
    }
    // The outbox takes the exported topics before any module starts, so
    // nothing published while starting is missed; imports wait for app.started.
    // Singletons start where the bridge holds their lease, not here.
    let (lease_tx, leases) = bounded(64);
    let fences = orch_runtime::lease::Fences::default();
    let mut bridge = match &config.main.bridge {
        Some(settings) => Some(
            network
                .start_bridge(BridgeSetup {
                    settings: &node_named(&settings.nats, from_nats.as_ref()),
                    bus: supervisor.bus(),
                    timers: supervisor.timers(),
                    publish_timeout: config.main.timeouts.publish,
                    state_dir: &session.workspace.target_dir.join("orch").join("bridge"),
                    board: supervisor.status().clone(),
                    app: (
                        config.main.app.name.clone(),
                        config.main.app.version.clone(),
                    ),
                    requests: supervisor.requests(),
                    singletons: modules
                        .iter()
                        .filter(|m| m.singleton)
                        .map(|m| m.name.clone())
                        .collect(),
                    leases: lease_tx.clone(),
                    fences: fences.clone(),
                })
                .context("cannot start the NATS bridge")?,
        ),
        None => None,
    };
    let (actions_tx, actions) = bounded(orch_operate::server::QUEUED_ACTIONS);
    let operating = OperatorServices::start(
        &session,
        args,
        &supervisor,
        network,
        bridge.as_ref().map(|bridge| bridge.status()),
        actions_tx,
        process_start,
    )?;
    let here: Vec<&orch_config::ModuleSpec> =
        modules.iter().copied().filter(|m| !m.singleton).collect();
    let report = supervisor.start(&here, &build);
    if let Some(bridge) = bridge.as_mut() {
        bridge.start_import();
    }
    tracing::info!(
        "[TIMING] from process start to app.started: {}",
        human(process_start.elapsed())
    );
    if report.running.is_empty() && !modules.is_empty() {
        tracing::warn!("no module is running; fix the errors above and run again");
    }
    // A node run from NATS follows its release once every module started.
    let (release_tx, releases) = bounded(2);
    let running_digest = Arc::new(Mutex::new(
        session
            .bundle
            .as_ref()
            .map(|b| b.digest.clone())
            .unwrap_or_default(),
    ));
    let follower = match from_nats {
        Some(from) => Some(
            from.follow(Arc::clone(&running_digest), release_tx)
                .context("cannot follow the releases")?,
        ),
        None => None,
    };

    let mut restart = None;
    let signal = if report.cancelled {
        shutdown.recv().unwrap_or("signal")
    } else {
        let watch = hot_reload.then_some(DEBOUNCE);
        serve(
            &session,
            &builder,
            args,
            &mut supervisor,
            &Inputs {
                shutdown: &shutdown,
                actions: &actions,
                leases: &leases,
                fences: &fences,
                releases: &releases,
                running_digest: &running_digest,
            },
            watch,
            &mut restart,
        )
    };
    // Control requests still queued, and any from now on, are answered at
    // once: shutting down. The status, metrics and alerts stay until the
    // modules are down.
    crate::control_actions::refuse_queued(&actions);
    drop(actions);
    if let Some(bridge) = bridge.as_mut() {
        bridge.stop_import();
    }
    let reason = if restart.is_some() {
        signal.to_owned()
    } else {
        format!("{signal} received")
    };
    let failures = supervisor.shutdown(&reason);
    if let Some(bridge) = bridge.take() {
        bridge.shutdown(Duration::from_secs(2));
    }
    drop(operating);
    drop(resources);
    drop(follower);
    if let Some(program) = restart {
        return Err(crate::from_nats::restart_into(&program));
    }
    if failures.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let names: Vec<String> = failures
        .iter()
        .map(|f| format!("{} ({})", f.module, f.phase))
        .collect();
    tracing::error!(
        "[SHUTDOWN] {} module(s) did not shut down cleanly: {}; exit code {EXIT_UNCLEAN_SHUTDOWN}",
        failures.len(),
        names.join(", ")
    );
    Ok(ExitCode::from(EXIT_UNCLEAN_SHUTDOWN))
}

/// Runs until a signal arrives: carries out the control socket's actions
/// and, when `watch` is set, rebuilds and reloads on every saved edit of
/// the sources and modules.yaml. Returns the signal (or why it stops: a
/// release that needs a new host sets `restart` to its program).
fn serve(
    session: &Session,
    builder: &Builder,
    args: &RunArgs,
    supervisor: &mut Supervisor,
    inputs: &Inputs<'_>,
    watch: Option<Duration>,
    restart: &mut Option<std::path::PathBuf>,
) -> &'static str {
    let Inputs {
        shutdown,
        actions,
        leases,
        fences,
        releases,
        running_digest,
    } = *inputs;
    let (changes_tx, changes) = unbounded();
    let mut reloader = HotReload::new(
        session.workspace.clone(),
        session.config.config_dir.clone(),
        builder.clone(),
        args.release,
        session.config.clone(),
        session.scrubber.clone(),
    );
    let mut deployer = match &session.bundle {
        Some(bundle) => {
            reloader.use_libraries(bundle.libraries());
            Some(Deployer::new(
                bundle.clone(),
                args.trust.clone(),
                args.unpack_dir.as_deref(),
            ))
        }
        None => None,
    };
    // Without watching, the sender stays here: `changes` never disconnects.
    let (watcher, _idle) = match watch {
        Some(debounce) => (
            Some(SourceWatcher::spawn(
                reloader.watch_plan(),
                debounce,
                changes_tx,
            )),
            None,
        ),
        None => (None, Some(changes_tx)),
    };
    loop {
        select! {
            recv(shutdown) -> signal => return signal.unwrap_or("signal"),
            recv(changes) -> change => {
                let Ok(change) = change else { return "watcher ended" };
                if reloader.handle(supervisor, change, &changes) == Outcome::PlanChanged
                    && let Some(watcher) = &watcher
                {
                    watcher.update(reloader.watch_plan());
                }
            }
            recv(leases) -> change => {
                if let Ok(change) = change {
                    crate::singleton::apply(change, supervisor, &reloader, fences);
                }
            }
            recv(releases) -> event => {
                if let Ok(event) = event
                    && let Some(program) = crate::from_nats::deploy(
                        event,
                        deployer.as_mut(),
                        supervisor,
                        &mut reloader,
                        running_digest,
                    )
                {
                    *restart = Some(program);
                    return "a release that needs a new host";
                }
            }
            recv(actions) -> pending => {
                if let Ok(pending) = pending {
                    crate::control_actions::handle(
                        pending,
                        supervisor,
                        &mut reloader,
                        deployer.as_mut(),
                    );
                    // A deploy or rollback through the socket changes what
                    // runs: the release follower compares with it.
                    if let (Some(deployer), Ok(mut digest)) =
                        (deployer.as_ref(), running_digest.lock())
                    {
                        deployer.current_digest().clone_into(&mut digest);
                    }
                }
            }
        }
    }
}

/// What the main loop waits on besides the watcher.
#[derive(Clone, Copy)]
struct Inputs<'a> {
    /// SIGINT / SIGTERM.
    shutdown: &'a Receiver<&'static str>,
    /// The control socket's actions.
    actions: &'a Receiver<Pending>,
    /// Singleton leases taken and lost (from the bridge).
    leases: &'a Receiver<orch_runtime::lease::LeaseChange>,
    /// The fences of running singletons.
    fences: &'a orch_runtime::lease::Fences,
    /// Releases a node run from NATS fetched (never, otherwise).
    releases: &'a Receiver<crate::release::FollowEvent>,
    /// The digest of the bundle running now, for the release follower.
    running_digest: &'a Mutex<String>,
}

/// `bridge.nats` with the node id of a node run from NATS when main.yaml
/// names none (its presence record then has the key its releases use).
fn node_named(
    settings: &orch_config::NatsSettings,
    from_nats: Option<&crate::from_nats::FromNats>,
) -> orch_config::NatsSettings {
    let mut settings = settings.clone();
    if settings.node.is_none()
        && let Some(from) = from_nats
    {
        settings.node = Some(from.node.clone());
    }
    settings
}

/// The libraries of the last build, for `--no-build`; an error names a missing one.
fn prebuilt_artifacts(
    workspace: &orch_config::workspace::Workspace,
    request: &BuildRequest,
) -> anyhow::Result<std::collections::HashMap<String, std::path::PathBuf>> {
    request
        .packages
        .iter()
        .map(|package| {
            let path = workspace
                .artifact_path(package, request.release)
                .filter(|path| path.exists())
                .with_context(|| {
                    format!(
                        "--no-build: package '{package}' has no built library{}; run once without --no-build",
                        if request.release { " (release)" } else { "" }
                    )
                })?;
            Ok((package.clone(), path))
        })
        .collect()
}

/// SIGINT/SIGTERM: the first cancels a running build or start-up, asks for a
/// clean shutdown and arms the `timeouts.shutdown_total` deadline; a second
/// one exits at once.
fn watch_signals(
    builder: Builder,
    control: Control,
    shutdown_total: Duration,
) -> anyhow::Result<Receiver<&'static str>> {
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("cannot install signal handlers")?;
    let (tx, rx) = unbounded();
    std::thread::Builder::new()
        .name("orch-signals".into())
        .spawn(move || {
            let mut received = 0;
            for signal in signals.forever() {
                received += 1;
                if received > 1 {
                    eprintln!("second signal: exiting at once");
                    orch_process::console::finish(Duration::from_millis(200));
                    std::process::exit(130);
                }
                builder.cancel();
                control.cancel();
                arm_shutdown_deadline(control.clone(), shutdown_total);
                let _ = tx.send(if signal == SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                });
            }
        })
        .context("cannot start the signal thread")?;
    Ok(rx)
}

/// Ends the process `limit` after the signal if the shutdown is still going
/// on, naming the step that is stuck. Isolated modules' children die with
/// the process (`PR_SET_PDEATHSIG`), build processes with their guard.
fn arm_shutdown_deadline(control: Control, limit: Duration) {
    let armed = std::thread::Builder::new()
        .name("orch-deadline".into())
        .spawn(move || {
            std::thread::sleep(limit);
            let stuck = control
                .current_step()
                .unwrap_or_else(|| "the host itself".to_owned());
            let message = format!(
                "[SHUTDOWN] not done within timeouts.shutdown_total ({}): {stuck} is stuck; \
                 exiting anyway with code {EXIT_SHUTDOWN_DEADLINE}",
                human(limit)
            );
            tracing::error!("{message}");
            eprintln!("{message}");
            orch_process::console::finish(Duration::from_millis(200));
            std::process::exit(i32::from(EXIT_SHUTDOWN_DEADLINE));
        });
    if let Err(e) = armed {
        tracing::warn!("cannot arm the shutdown deadline: {e}");
    }
}
