//! Carries out what a saved edit means (`orch_cargo::reload_plan` decides it):
//! rebuild the affected packages (a module, or every module that depends on a
//! changed workspace crate) and swap each affected module to its new
//! generation, in startup order; apply edits of `config/modules.yaml` (modules
//! added, removed or disabled, config maps changed). Edits that arrive during a
//! build are not lost: the build runs again, so the last saved state of the
//! files always ends up loaded. This is where the cargo side and the runtime
//! meet; neither crate knows the other.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use orch_sdk::duration::human;

use orch_cargo::reload_plan::{self, ModulesChange};
use orch_cargo::watcher::{SourceChange, WatchPlan};
use orch_cargo::{BuildError, BuildOutput, BuildRequest, Builder};
use orch_config::workspace::Workspace;
use orch_config::{self as config, AppConfig, ModuleSpec};
use orch_runtime::logging::SecretScrubber;
use orch_runtime::status::ModuleState;
use orch_runtime::supervisor::Supervisor;
use orch_runtime::{Cause, ModuleFailure, Phase};

/// What handling a change did to the set of watched folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The same folders are relevant.
    SamePlan,
    /// Modules were added or removed: watch the folders of [`HotReload::watch_plan`].
    PlanChanged,
}

/// Turns source changes into builds and reloads.
pub struct HotReload {
    workspace: Workspace,
    config_dir: PathBuf,
    builder: Builder,
    release: bool,
    config: AppConfig,
    scrubber: SecretScrubber,
    /// A bundle's libraries by package: used as they are, nothing is built.
    libraries: Option<HashMap<String, PathBuf>>,
}

impl HotReload {
    /// A hot reloader for the modules of `config`.
    pub fn new(
        workspace: Workspace,
        config_dir: PathBuf,
        builder: Builder,
        release: bool,
        config: AppConfig,
        scrubber: SecretScrubber,
    ) -> Self {
        Self {
            workspace,
            config_dir,
            builder,
            release,
            config,
            scrubber,
            libraries: None,
        }
    }

    /// Runs from prebuilt `libraries` (a bundle's, by package): a reload
    /// swaps in a new generation of the same library; cargo never runs.
    pub fn use_libraries(&mut self, libraries: HashMap<String, PathBuf>) {
        self.libraries = Some(libraries);
    }

    /// Runs from another bundle from now on (a deploy): its workspace, its
    /// config folder, its configuration (already applied by the caller) and
    /// its libraries.
    pub fn switch_source(
        &mut self,
        workspace: Workspace,
        config_dir: PathBuf,
        config: AppConfig,
        libraries: HashMap<String, PathBuf>,
    ) {
        self.scrubber.add_secrets(&config.secrets);
        self.workspace = workspace;
        self.config_dir = config_dir;
        self.config = config;
        self.libraries = Some(libraries);
    }

    /// The configuration as last applied (modules.yaml edits included).
    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    /// The built library of `spec`'s package, as the last build left it.
    pub fn artifact_of(&self, spec: &ModuleSpec) -> Option<PathBuf> {
        if let Some(libraries) = &self.libraries {
            return libraries.get(&spec.package).cloned();
        }
        self.workspace
            .artifact_path(&spec.package, self.release)
            .filter(|path| path.exists())
    }

    /// Rebuilds `spec`'s package and swaps the running module to a new
    /// generation even if nothing changed (an operator's `cargo orch reload`).
    pub fn reload_now(
        &self,
        supervisor: &mut Supervisor,
        spec: &ModuleSpec,
    ) -> Result<orch_runtime::supervisor::ReloadReport, String> {
        let board = supervisor.status().clone();
        board.set_state(&spec.name, ModuleState::Reloading);
        let build_started = Instant::now();
        let result = self.build(std::slice::from_ref(spec));
        let build_time = build_started.elapsed();
        let outcome = match result {
            Err(error) => {
                self.report_build_failure(supervisor, std::slice::from_ref(spec), &error);
                Err(format!(
                    "module '{}' did not build: {}",
                    spec.name,
                    error.first_error.or(error.reason).unwrap_or_default()
                ))
            }
            Ok(output) => match output.artifacts.get(&spec.package) {
                None => Err(format!(
                    "cargo built no library for package '{}'",
                    spec.package
                )),
                Some(artifact) => supervisor
                    .reload(&spec.name, artifact, None, build_time)
                    .map_err(|failure| failure.to_string()),
            },
        };
        if board.state_of(&spec.name) == Some(ModuleState::Reloading) {
            board.set_state(&spec.name, ModuleState::Running);
        }
        outcome
    }

    /// The folders to watch: every enabled module's package and the workspace
    /// crates it depends on, and the config folder.
    pub fn watch_plan(&self) -> WatchPlan {
        reload_plan::watch_plan(&self.workspace, &self.config)
    }

    /// Handles `first` and whatever else is already waiting in `more`.
    pub fn handle(
        &mut self,
        supervisor: &mut Supervisor,
        first: SourceChange,
        more: &Receiver<SourceChange>,
    ) -> Outcome {
        let received_at = Instant::now();
        let mut change = first;
        for next in more.try_iter() {
            change.merge(next);
        }
        if change.main_yaml {
            tracing::warn!(
                "[RELOAD] {} changed: restart `cargo orch run` to apply it (only modules.yaml is applied live)",
                self.config_dir.join("main.yaml").display()
            );
        }
        let mut outcome = Outcome::SamePlan;
        if change.modules_yaml {
            outcome = self.apply_modules_yaml(supervisor);
        }
        if !change.packages.is_empty()
            && self.rebuild_and_reload(supervisor, change, received_at, more)
        {
            outcome = self.apply_modules_yaml(supervisor);
        }
        outcome
    }

    /// Running modules affected by changes to `packages`, in startup order.
    fn affected(&self, supervisor: &Supervisor, packages: &BTreeSet<String>) -> Vec<ModuleSpec> {
        let running = supervisor
            .running()
            .into_iter()
            .filter_map(|name| supervisor.spec_of(name));
        reload_plan::affected_modules(&self.workspace, running, packages)
    }

    /// Builds until no edit arrives during the build, then reloads the affected
    /// modules. Returns whether modules.yaml changed meanwhile.
    fn rebuild_and_reload(
        &mut self,
        supervisor: &mut Supervisor,
        mut change: SourceChange,
        received_at: Instant,
        more: &Receiver<SourceChange>,
    ) -> bool {
        let mut yaml_changed = false;
        // Packages an abandoned build (edits arrived during it) recompiled:
        // the build after it may find them fresh, yet their modules still run
        // the code from before, so they must be reloaded all the same.
        let mut rebuilt_earlier: Vec<String> = Vec::new();
        loop {
            let affected = self.affected(supervisor, &change.packages);
            if affected.is_empty() {
                tracing::debug!(
                    "[RELOAD] {:?} changed; no running module uses it",
                    change.packages
                );
                return yaml_changed;
            }
            let board = supervisor.status().clone();
            for spec in &affected {
                board.set_state(&spec.name, ModuleState::Reloading);
            }
            let build_started = Instant::now();
            let result = self.build(&affected);
            let done_reloading = || {
                for spec in &affected {
                    if board.state_of(&spec.name) == Some(ModuleState::Reloading) {
                        board.set_state(&spec.name, ModuleState::Running);
                    }
                }
            };
            let build_time = build_started.elapsed();
            let mut edited_during_build = false;
            for next in more.try_iter() {
                edited_during_build |= !next.packages.is_empty();
                yaml_changed |= next.modules_yaml;
                change.merge(next);
            }
            if edited_during_build {
                tracing::info!(
                    "[RELOAD] files changed during the build; building again so the last save wins"
                );
                if let Ok(output) = &result {
                    rebuilt_earlier.extend(output.rebuilt.iter().cloned());
                }
                continue;
            }
            match result {
                Err(error) if error.interrupted => {
                    done_reloading();
                    return yaml_changed;
                }
                Err(error) => {
                    self.report_build_failure(supervisor, &affected, &error);
                    done_reloading();
                    return yaml_changed;
                }
                Ok(mut output) => {
                    output.rebuilt.append(&mut rebuilt_earlier);
                    self.reload_all(
                        supervisor,
                        &affected,
                        &output,
                        &change,
                        received_at,
                        build_time,
                    );
                    done_reloading();
                    return yaml_changed;
                }
            }
        }
    }

    fn build(&self, modules: &[ModuleSpec]) -> Result<BuildOutput, BuildError> {
        if let Some(libraries) = &self.libraries {
            return Ok(BuildOutput {
                artifacts: config::packages_of(modules)
                    .into_iter()
                    .filter_map(|p| Some((p.clone(), libraries.get(&p)?.clone())))
                    .collect(),
                duration: Duration::ZERO,
                rebuilt: Vec::new(),
            });
        }
        self.builder.build(&BuildRequest {
            packages: config::packages_of(modules),
            release: self.release,
            timeout: self.config.main.timeouts.build,
        })
    }

    fn report_build_failure(
        &self,
        supervisor: &Supervisor,
        modules: &[ModuleSpec],
        error: &BuildError,
    ) {
        let cause = error
            .first_error
            .clone()
            .or_else(|| error.reason.clone())
            .unwrap_or_else(|| "cargo build failed".into());
        for spec in modules {
            let failure = ModuleFailure::new(&spec.name, Phase::Build, Cause::Error(cause.clone()))
                .with_hint("fix the compile error above; the running generation goes on meanwhile");
            supervisor.publish_reload_failed(&failure);
        }
    }

    fn reload_all(
        &self,
        supervisor: &mut Supervisor,
        modules: &[ModuleSpec],
        output: &BuildOutput,
        change: &SourceChange,
        received_at: Instant,
        build_time: Duration,
    ) {
        let mut batch: Vec<(&ModuleSpec, &std::path::Path)> = Vec::new();
        for spec in modules {
            let Some(artifact) = output.artifacts.get(&spec.package) else {
                continue;
            };
            if !reload_plan::was_rebuilt(&self.workspace, &spec.package, &output.rebuilt) {
                tracing::info!(
                    "[RELOAD] module '{}' is up to date; not reloaded",
                    spec.name
                );
                continue;
            }
            batch.push((spec, artifact));
        }
        // Their topic types are checked as they will be once all have
        // reloaded: a payload change made on both sides at once passes. A
        // module refused for its types is left out and the rest checked again.
        loop {
            let named: Vec<(&str, &std::path::Path)> = batch
                .iter()
                .map(|(spec, artifact)| (spec.name.as_str(), *artifact))
                .collect();
            let Err(failure) = supervisor.prepare_types(&named, &[]) else {
                break;
            };
            supervisor.publish_reload_failed(&failure);
            let before = batch.len();
            batch.retain(|(spec, _)| spec.name != failure.module);
            if batch.is_empty() || batch.len() == before {
                return;
            }
        }
        let several = batch.len() > 1;
        let mut any_failed = false;
        for (spec, artifact) in batch {
            let reloaded = supervisor.reload(&spec.name, artifact, None, build_time);
            any_failed |= reloaded.is_err();
            if let Ok(report) = reloaded {
                let debounce = received_at.saturating_duration_since(change.first_seen);
                tracing::info!(
                    "[TIMING] reload of '{}' to generation {}: save-to-running {} (debounce {}, build {}, swap {})",
                    spec.name,
                    report.generation,
                    human(change.first_seen.elapsed()),
                    human(debounce),
                    human(build_time),
                    human(report.swap),
                );
            }
        }
        // Checked as a batch, reloaded one by one: when one failed after
        // others reloaded, what runs now may disagree (no rollback here;
        // `cargo orch deploy` is all or nothing). Say so.
        if several && any_failed {
            for conflict in supervisor.type_conflicts_now() {
                tracing::error!(
                    "[RELOAD] payload types disagree now that part of the rebuild reloaded: \
                     {conflict}; fix the module whose reload failed"
                );
            }
        }
    }

    /// A module the operator stopped (`cargo orch stop`) is not running, so
    /// the edit looks like it adds it: it stays stopped until `cargo orch
    /// start` (which takes its entry as edited). One stopped by an edit
    /// (removed or disabled then) does come back with the edit that wants it.
    fn keep_stopped_modules_stopped(&self, supervisor: &Supervisor, change: &mut ModulesChange) {
        change.added.retain(|spec| {
            let stopped = supervisor.status().state_of(&spec.name) == Some(ModuleState::Stopped)
                && self
                    .config
                    .module(&spec.name)
                    .is_some_and(|old| old.enabled);
            if stopped {
                tracing::info!(
                    "[RELOAD] module '{}' stays stopped (stopped with `cargo orch stop`); \
                     `cargo orch start {}` starts it with its entry as edited",
                    spec.name,
                    spec.name
                );
            }
            !stopped
        });
    }

    /// Applies an edited modules.yaml: removed or disabled modules unload, added
    /// ones load, a changed `config` re-initializes only that module. An invalid
    /// file is reported and the running set stays as it was.
    fn apply_modules_yaml(&mut self, supervisor: &mut Supervisor) -> Outcome {
        if self.libraries.is_none()
            && let Ok(workspace) = orch_cargo::discover_workspace(&self.workspace.root)
        {
            self.workspace = workspace;
        }
        let environment = self.config.environment.clone();
        let new_config = match config::load_layered(
            &self.config_dir,
            environment.as_deref(),
            &self.workspace,
        ) {
            Ok(config) => {
                // Before anything logs or loads with the new values.
                self.scrubber.add_secrets(&config.secrets);
                config
            }
            Err(errors) => {
                tracing::error!(
                    "[RELOAD] the edited configuration is invalid; the running modules stay as they are:\n{errors}"
                );
                return Outcome::SamePlan;
            }
        };
        let wanted = wanted(new_config.startup_order(), supervisor);
        let running: Vec<(&str, &ModuleSpec)> = supervisor
            .running()
            .into_iter()
            .filter_map(|name| Some((name, supervisor.spec_of(name)?)))
            .collect();
        let mut change = ModulesChange::between(&running, &wanted);
        self.keep_stopped_modules_stopped(supervisor, &mut change);
        for name in &change.removed {
            tracing::info!(
                "[RELOAD] module '{name}' was removed or disabled in modules.yaml; unloading it"
            );
            supervisor.remove(name);
        }
        let to_build = change.to_build();
        if !to_build.is_empty() {
            let artifacts = match self.build(&to_build) {
                Ok(output) => output.artifacts,
                Err(error) => {
                    self.report_build_failure(supervisor, &to_build, &error);
                    HashMap::new()
                }
            };
            for spec in &wanted {
                if change.added.iter().any(|a| a.name == spec.name) {
                    if supervisor.add(spec, &artifacts).is_ok() {
                        tracing::info!("[RELOAD] module '{}' added from modules.yaml", spec.name);
                    }
                } else if change.changed.iter().any(|c| c.name == spec.name)
                    && let Some(artifact) = artifacts.get(&spec.package)
                    && let Ok(report) =
                        supervisor.reload(&spec.name, artifact, Some(spec), Duration::ZERO)
                {
                    tracing::info!(
                        "[RELOAD] module '{}' re-initialized with its new config (generation {})",
                        spec.name,
                        report.generation
                    );
                }
            }
        }
        self.config = new_config;
        Outcome::PlanChanged
    }
}

/// The modules a live edit or a deploy wants running: every enabled one,
/// but a singleton only where it runs already (its lease decides).
pub fn wanted(
    order: Vec<&orch_config::ModuleSpec>,
    supervisor: &Supervisor,
) -> Vec<orch_config::ModuleSpec> {
    let running = supervisor.running();
    order
        .into_iter()
        .filter(|spec| !spec.singleton || running.contains(&spec.name.as_str()))
        .cloned()
        .collect()
}
