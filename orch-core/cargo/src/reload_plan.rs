//! What a change means, decided without running anything: which folders to
//! watch, which running modules a rebuilt package affects, and what an edit of
//! `modules.yaml` adds, removes or re-initializes. The caller (the `run` verb)
//! carries the plan out on the supervisor.

use std::collections::BTreeSet;

use orch_config::workspace::Workspace;
use orch_config::{AppConfig, ModuleSpec};

use crate::watcher::{WatchPlan, WatchedPackage};

/// The folders to watch: every enabled module's package and the workspace
/// crates it depends on, and the config folder; build output, logs and `.git`
/// never count.
pub fn watch_plan(workspace: &Workspace, config: &AppConfig) -> WatchPlan {
    let mut names = BTreeSet::new();
    for spec in config.startup_order() {
        names.insert(spec.package.clone());
        names.extend(workspace.dependency_closure(&spec.package));
    }
    let packages = names
        .into_iter()
        .filter_map(|name| {
            let package = workspace.package(&name)?;
            Some(WatchedPackage {
                name,
                dir: package.manifest_dir.clone(),
            })
        })
        .collect();
    WatchPlan {
        packages,
        config_dir: config.config_dir.clone(),
        overlay_dir: config
            .environment
            .as_ref()
            .map(|environment| config.config_dir.join(environment)),
        ignored_dirs: vec![
            workspace.target_dir.clone(),
            config.main.logging.dir.clone(),
            workspace.root.join(".git"),
        ],
    }
}

/// The modules of `running` (in the order given) that changes to `packages`
/// affect: their own package changed, or a workspace crate they depend on.
pub fn affected_modules<'a>(
    workspace: &Workspace,
    running: impl IntoIterator<Item = &'a ModuleSpec>,
    packages: &BTreeSet<String>,
) -> Vec<ModuleSpec> {
    running
        .into_iter()
        .filter(|spec| {
            packages.contains(&spec.package)
                || !workspace
                    .dependency_closure(&spec.package)
                    .is_disjoint(packages)
        })
        .cloned()
        .collect()
}

/// Whether a build that recompiled `rebuilt` changed the library of `package`
/// (itself or a workspace crate it depends on).
pub fn was_rebuilt(workspace: &Workspace, package: &str, rebuilt: &[String]) -> bool {
    rebuilt.iter().any(|p| p == package)
        || workspace
            .dependency_closure(package)
            .iter()
            .any(|p| rebuilt.contains(p))
}

/// What an edited `modules.yaml` changes in the running set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModulesChange {
    /// Running modules no longer wanted (removed or disabled), in reverse
    /// startup order: the order to unload them in.
    pub removed: Vec<String>,
    /// Wanted modules not running yet, in startup order.
    pub added: Vec<ModuleSpec>,
    /// Running modules whose package or `config` changed: they need a new
    /// generation.
    pub changed: Vec<ModuleSpec>,
}

impl ModulesChange {
    /// Compares the running modules (name and entry, in startup order) with
    /// the wanted ones (in startup order).
    pub fn between(running: &[(&str, &ModuleSpec)], wanted: &[ModuleSpec]) -> Self {
        let removed = running
            .iter()
            .rev()
            .filter(|(name, _)| !wanted.iter().any(|s| s.name == *name))
            .map(|(name, _)| (*name).to_owned())
            .collect();
        let added = wanted
            .iter()
            .filter(|s| !running.iter().any(|(name, _)| *name == s.name))
            .cloned()
            .collect();
        let changed = wanted
            .iter()
            .filter(|s| {
                running
                    .iter()
                    .any(|(name, old)| *name == s.name && needs_new_generation(old, s))
            })
            .cloned()
            .collect();
        Self {
            removed,
            added,
            changed,
        }
    }

    /// The modules to build: the added and the changed ones.
    pub fn to_build(&self) -> Vec<ModuleSpec> {
        self.added.iter().chain(&self.changed).cloned().collect()
    }
}

/// Whether a module's entry changed in a way that needs a new generation.
fn needs_new_generation(old: &ModuleSpec, new: &ModuleSpec) -> bool {
    old.package != new.package || old.config != new.config || old.contract != new.contract
}
