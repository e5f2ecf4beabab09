//! Watches module sources and `config/modules.yaml` and reports "these files
//! changed"; what that means is the hot reloader's business.
//!
//! Folders are watched, not files: an editor that saves by writing a new file and
//! renaming it over the old one replaces the inode, which a watch on the file
//! itself would lose after the first save. Events pass through
//! notify-debouncer-full (short timeout) and are filtered: build output, VCS and
//! log folders and editor temporary or backup files never count, so neither a
//! build nor a module writing files can trigger a rebuild loop.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use notify_debouncer_full::notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, DebouncedEvent, new_debouncer};

/// How long the debouncer waits for quiet after an event. Measured here: a save
/// in place (truncate + write) and a save by rename (write a temporary file,
/// rename it over the original) produce all their events within about 1 ms, so
/// 10 ms groups them with margin. A late event is not lost either way: an edit
/// that arrives during a build makes the hot reloader build again.
pub const DEBOUNCE: Duration = Duration::from_millis(10);

/// A package whose sources are watched.
#[derive(Debug, Clone)]
pub struct WatchedPackage {
    /// Package name.
    pub name: String,
    /// The folder of its `Cargo.toml`.
    pub dir: PathBuf,
}

/// What to watch.
#[derive(Debug, Clone)]
pub struct WatchPlan {
    /// Module packages and the workspace crates they depend on.
    pub packages: Vec<WatchedPackage>,
    /// The folder holding `modules.yaml` and `main.yaml`.
    pub config_dir: PathBuf,
    /// The environment's folder (`--env prod`: `config/prod/`), whose
    /// `modules.yaml` and `main.yaml` count as the base ones do.
    pub overlay_dir: Option<PathBuf>,
    /// Folders whose changes never count (the target folder, logs).
    pub ignored_dirs: Vec<PathBuf>,
}

/// Files that changed, grouped by what they belong to.
#[derive(Debug, Clone)]
pub struct SourceChange {
    /// Packages with a changed source (`src/`, `build.rs`, `Cargo.toml`).
    pub packages: BTreeSet<String>,
    /// `modules.yaml` changed.
    pub modules_yaml: bool,
    /// `main.yaml` changed.
    pub main_yaml: bool,
    /// When the first of these changes was seen.
    pub first_seen: Instant,
    /// The changed files.
    pub paths: BTreeSet<PathBuf>,
}

impl SourceChange {
    /// No change yet, first seen now.
    fn empty() -> Self {
        Self {
            packages: BTreeSet::new(),
            modules_yaml: false,
            main_yaml: false,
            first_seen: Instant::now(),
            paths: BTreeSet::new(),
        }
    }

    /// Adds `other`'s changes to these (keeping the earliest time).
    pub fn merge(&mut self, other: SourceChange) {
        self.packages.extend(other.packages);
        self.modules_yaml |= other.modules_yaml;
        self.main_yaml |= other.main_yaml;
        self.first_seen = self.first_seen.min(other.first_seen);
        self.paths.extend(other.paths);
    }

    fn is_empty(&self) -> bool {
        self.packages.is_empty() && !self.modules_yaml && !self.main_yaml
    }
}

/// Whether a file name is an editor's temporary, swap or backup file.
pub fn is_editor_artifact(file_name: &str) -> bool {
    const SUFFIXES: [&str; 10] = [
        "~",
        ".swp",
        ".swo",
        ".swx",
        ".tmp",
        ".bak",
        ".orig",
        ".kate-swp",
        ".crswap",
        ".part",
    ];
    file_name == "4913" // vim's probe file
        || file_name.starts_with(".#")
        || (file_name.starts_with('#') && file_name.ends_with('#'))
        || file_name.starts_with(".goutputstream-")
        || file_name.contains("___jb_")
        || SUFFIXES.iter().any(|s| file_name.ends_with(s))
}

impl WatchPlan {
    /// Classifies one changed path into `change`; returns whether it counted.
    fn classify(&self, path: &Path, change: &mut SourceChange) -> bool {
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            return false;
        };
        if is_editor_artifact(file_name) || self.ignored_dirs.iter().any(|d| path.starts_with(d)) {
            return false;
        }
        let parent = path.parent();
        if parent == Some(self.config_dir.as_path())
            || (parent.is_some() && parent == self.overlay_dir.as_deref())
        {
            match file_name {
                "modules.yaml" => change.modules_yaml = true,
                "main.yaml" => change.main_yaml = true,
                _ => return false,
            }
            change.paths.insert(path.to_path_buf());
            return true;
        }
        // The innermost package folder that holds the path.
        let owner = self
            .packages
            .iter()
            .filter(|p| path.starts_with(&p.dir))
            .max_by_key(|p| p.dir.components().count());
        let Some(package) = owner else {
            return false;
        };
        let Ok(relative) = path.strip_prefix(&package.dir) else {
            return false;
        };
        let counts = relative.starts_with("src")
            || relative == Path::new("build.rs")
            || relative == Path::new("Cargo.toml");
        let hidden = relative.components().any(|c| {
            let part = c.as_os_str().to_string_lossy();
            part.starts_with('.') || part == "target"
        });
        if counts && !hidden {
            change.packages.insert(package.name.clone());
            change.paths.insert(path.to_path_buf());
        }
        counts && !hidden
    }

    /// The change made of `events`, if any of them counts.
    fn change_of(&self, events: &[DebouncedEvent]) -> Option<SourceChange> {
        let mut change = SourceChange::empty();
        for event in events {
            if matches!(event.event.kind, EventKind::Access(_)) {
                continue;
            }
            let counted = event
                .event
                .paths
                .iter()
                .fold(false, |any, path| self.classify(path, &mut change) | any);
            if counted {
                change.first_seen = change.first_seen.min(event.time);
            }
        }
        (!change.is_empty()).then_some(change)
    }
}

/// The watcher thread. Dropping it stops watching.
pub struct SourceWatcher {
    updates: Option<Sender<WatchPlan>>,
    thread: Option<JoinHandle<()>>,
}

impl SourceWatcher {
    /// Starts watching in a thread of its own (setting up watches never delays
    /// the caller) and sends every counted change to `changes`.
    pub fn spawn(plan: WatchPlan, debounce: Duration, changes: Sender<SourceChange>) -> Self {
        let (updates, updated) = crossbeam_channel::unbounded::<WatchPlan>();
        let thread = std::thread::Builder::new()
            .name("orch-watcher".into())
            .spawn(move || watch(plan, debounce, &changes, &updated))
            .ok();
        Self {
            updates: Some(updates),
            thread,
        }
    }

    /// Watches the folders of `plan` from now on: new folders are added and
    /// dropped ones removed while the existing watches stay, so no edit made
    /// meanwhile is missed.
    pub fn update(&self, plan: WatchPlan) {
        if let Some(updates) = &self.updates {
            let _ = updates.send(plan);
        }
    }
}

/// The body of the watcher thread: runs until the handle is dropped.
fn watch(
    plan: WatchPlan,
    debounce: Duration,
    changes: &Sender<SourceChange>,
    updates: &crossbeam_channel::Receiver<WatchPlan>,
) {
    let current = std::sync::Arc::new(std::sync::RwLock::new(plan.clone()));
    let handler_plan = std::sync::Arc::clone(&current);
    let changes = changes.clone();
    let tick = (debounce / 3).max(Duration::from_millis(5));
    let debouncer =
        new_debouncer(
            debounce,
            Some(tick),
            move |result: DebounceEventResult| match result {
                Ok(events) => {
                    let plan = handler_plan.read().unwrap_or_else(|e| e.into_inner());
                    if let Some(change) = plan.change_of(&events) {
                        let _ = changes.send(change);
                    }
                }
                Err(errors) => {
                    for error in errors {
                        tracing::warn!("[WATCH] watcher error: {error}");
                    }
                }
            },
        );
    let mut debouncer = match debouncer {
        Ok(debouncer) => debouncer,
        Err(e) => {
            tracing::error!("[WATCH] cannot start the file watcher: {e}; hot reload is off");
            return;
        }
    };
    let mut watched: Vec<PathBuf> = Vec::new();
    let mut plan = plan;
    loop {
        let wanted = plan.folders();
        for (dir, mode) in &wanted {
            if watched.contains(dir) {
                continue;
            }
            match debouncer.watch(dir, *mode) {
                Ok(()) => watched.push(dir.clone()),
                Err(e) => tracing::warn!("[WATCH] cannot watch {}: {e}", dir.display()),
            }
        }
        watched.retain(|dir| {
            let keep = wanted.iter().any(|(d, _)| d == dir);
            if !keep {
                let _ = debouncer.unwatch(dir);
            }
            keep
        });
        tracing::info!(
            "[WATCH] watching {} folders ({} packages and the config folder), debounce {} ms",
            watched.len(),
            plan.packages.len(),
            debounce.as_millis()
        );
        match updates.recv() {
            Ok(next) => {
                *current.write().unwrap_or_else(|e| e.into_inner()) = next.clone();
                plan = next;
            }
            Err(_) => return,
        }
    }
}

impl WatchPlan {
    /// The folders to watch and how.
    fn folders(&self) -> Vec<(PathBuf, RecursiveMode)> {
        let mut folders: Vec<(PathBuf, RecursiveMode)> = self
            .packages
            .iter()
            .map(|p| (p.dir.clone(), RecursiveMode::Recursive))
            .collect();
        folders.push((self.config_dir.clone(), RecursiveMode::NonRecursive));
        if let Some(overlay) = &self.overlay_dir {
            folders.push((overlay.clone(), RecursiveMode::NonRecursive));
        }
        folders
    }
}

impl Drop for SourceWatcher {
    fn drop(&mut self) {
        drop(self.updates.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> WatchPlan {
        WatchPlan {
            packages: vec![
                WatchedPackage {
                    name: "shared".into(),
                    dir: "/ws/crates/shared".into(),
                },
                WatchedPackage {
                    name: "inner".into(),
                    dir: "/ws/crates/shared/inner".into(),
                },
                WatchedPackage {
                    name: "mod-a".into(),
                    dir: "/ws/modules/mod-a".into(),
                },
            ],
            config_dir: "/ws/config".into(),
            overlay_dir: Some("/ws/config/prod".into()),
            ignored_dirs: vec!["/ws/target".into(), "/ws/logs".into()],
        }
    }

    fn classify(path: &str) -> Option<SourceChange> {
        let mut change = SourceChange::empty();
        plan()
            .classify(Path::new(path), &mut change)
            .then_some(change)
    }

    #[test]
    fn sources_count_for_the_innermost_package() {
        let change = classify("/ws/modules/mod-a/src/lib.rs").unwrap();
        assert_eq!(change.packages, BTreeSet::from(["mod-a".to_string()]));
        let change = classify("/ws/crates/shared/inner/src/x/y.rs").unwrap();
        assert_eq!(change.packages, BTreeSet::from(["inner".to_string()]));
        assert!(classify("/ws/modules/mod-a/Cargo.toml").is_some());
        assert!(classify("/ws/modules/mod-a/build.rs").is_some());
    }

    #[test]
    fn build_output_tests_and_editor_files_never_count() {
        for path in [
            "/ws/target/debug/libmod_a.so",
            "/ws/modules/mod-a/target/x.rs",
            "/ws/modules/mod-a/tests/it.rs",
            "/ws/modules/mod-a/README.md",
            "/ws/modules/mod-a/src/.lib.rs.swp",
            "/ws/modules/mod-a/src/lib.rs~",
            "/ws/modules/mod-a/src/4913",
            "/ws/modules/mod-a/src/.#lib.rs",
            "/ws/modules/mod-a/src/#lib.rs#",
            "/ws/modules/mod-a/src/lib.rs___jb_tmp___",
            "/ws/logs/app.log",
            "/ws/config/notes.txt",
            "/elsewhere/src/lib.rs",
        ] {
            assert!(classify(path).is_none(), "{path} must not count");
        }
    }

    #[test]
    fn config_files_are_told_apart() {
        assert!(classify("/ws/config/modules.yaml").unwrap().modules_yaml);
        assert!(classify("/ws/config/main.yaml").unwrap().main_yaml);
        assert!(
            classify("/ws/config/prod/modules.yaml")
                .unwrap()
                .modules_yaml
        );
        assert!(classify("/ws/config/prod/main.yaml").unwrap().main_yaml);
        assert!(classify("/ws/config/staging/modules.yaml").is_none());
    }
}
