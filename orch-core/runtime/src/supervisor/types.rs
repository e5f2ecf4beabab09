//! Typed topics in the lifecycle: a module's payload types are read from its
//! library before it loads and before every reload (see
//! [`crate::typing::read`]), and checked against the types of every module
//! that runs, both ways. A module whose payloads a running subscriber could
//! not read, or that could not read what a running publisher sends, is
//! refused in phase `types` with the modules, the topic and the field named;
//! at a reload the old generation runs on untouched. Modules that are down
//! (failed, stopped) do not count: they are checked again when they start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::Supervisor;
use crate::error::ModuleFailure;
use crate::status::ModuleState;
use crate::typing::{self, TopicTypes, TypeConflict};

/// Which build of a library: its path, size and modification time.
type LibraryId = (PathBuf, u64, Option<SystemTime>);

fn library_id(path: &Path) -> LibraryId {
    let meta = std::fs::metadata(path).ok();
    (
        path.to_path_buf(),
        meta.as_ref().map_or(0, std::fs::Metadata::len),
        meta.and_then(|m| m.modified().ok()),
    )
}

/// The types of the modules that run, and those read ahead for a batch of
/// reloads ([`Supervisor::prepare_types`]).
#[derive(Default)]
pub(super) struct TypeBook {
    /// Module name -> the types of the generation that runs (typed modules only).
    current: HashMap<String, TopicTypes>,
    /// Module name -> (library, its types) read and checked for the reload
    /// that comes next; used only while the library is the same build.
    prepared: HashMap<String, (LibraryId, Option<TopicTypes>)>,
}

impl Supervisor {
    /// The types in `library`, or a failure naming module `name`.
    fn read_types(&self, name: &str, library: &Path) -> Result<Option<TopicTypes>, ModuleFailure> {
        let types = typing::read::read(name, library, self.timeouts.load)?;
        if let Some(types) = &types {
            tracing::debug!(
                "module '{name}' types {} published and {} subscribed topics",
                types.publishes.len(),
                types.subscribes.len()
            );
        }
        Ok(types)
    }

    /// The types of the modules that run (not those that are down, not
    /// `leaving`), with `pending` in place of theirs.
    fn types_now<'a>(
        &'a self,
        pending: &'a HashMap<String, Option<TopicTypes>>,
        leaving: &[&str],
    ) -> Vec<(&'a str, &'a TopicTypes)> {
        self.running
            .iter()
            .filter(|m| !leaving.contains(&m.spec.name.as_str()))
            .filter(|m| {
                !matches!(
                    self.board.state_of(&m.spec.name),
                    Some(ModuleState::Failed | ModuleState::Stopped)
                )
            })
            .filter_map(|m| {
                let name = m.spec.name.as_str();
                match pending.get(name) {
                    Some(types) => types.as_ref().map(|t| (name, t)),
                    None => self.types.current.get(name).map(|t| (name, t)),
                }
            })
            .collect()
    }

    /// Reads module `name`'s types before its first load and checks them
    /// against the modules that run.
    pub(super) fn types_for_load(
        &self,
        name: &str,
        library: &Path,
    ) -> Result<Option<TopicTypes>, ModuleFailure> {
        let types = self.read_types(name, library)?;
        if let Some(types) = &types {
            let none = HashMap::new();
            let others = self.types_now(&none, &[name]);
            typing::refuse(name, typing::conflicts_of((name, types), others))?;
        }
        Ok(types)
    }

    /// Reads the types of a batch of modules about to be reloaded together
    /// (a rebuild of several, a deploy) and checks them as they will be once
    /// all have reloaded and the modules `leaving` are gone, so a change that
    /// both sides make at once passes. The reloads that follow use what was
    /// read here while their library is the same build.
    pub fn prepare_types(
        &mut self,
        batch: &[(&str, &Path)],
        leaving: &[&str],
    ) -> Result<(), ModuleFailure> {
        self.types.prepared.clear();
        let mut pending: HashMap<String, Option<TopicTypes>> = HashMap::new();
        let mut ids = HashMap::new();
        for (name, library) in batch {
            ids.insert((*name).to_owned(), library_id(library));
            pending.insert((*name).to_owned(), self.read_types(name, library)?);
        }
        let now = self.types_now(&pending, leaving);
        for (name, _) in batch {
            let Some(Some(types)) = pending.get(*name) else {
                continue;
            };
            let others = now.iter().filter(|(other, _)| other != name).copied();
            typing::refuse(name, typing::conflicts_of((name, types), others))?;
        }
        self.types.prepared = batch
            .iter()
            .filter_map(|(name, _)| {
                let id = ids.remove(*name)?;
                let types = pending.remove(*name).flatten();
                Some(((*name).to_owned(), (id, types)))
            })
            .collect();
        Ok(())
    }

    /// Module `name`'s types for a reload from `library`: as prepared (the
    /// same build), or read and checked now against the modules that run.
    pub(super) fn types_for_reload(
        &mut self,
        name: &str,
        library: &Path,
    ) -> Result<Option<TopicTypes>, ModuleFailure> {
        if let Some((prepared, types)) = self.types.prepared.remove(name)
            && prepared == library_id(library)
        {
            return Ok(types);
        }
        self.types_for_load(name, library)
    }

    /// Records the types of module `name`'s running generation.
    pub(super) fn set_types(&mut self, name: &str, types: Option<TopicTypes>) {
        self.board.set_types(name, types.clone());
        match types {
            Some(types) => self.types.current.insert(name.to_owned(), types),
            None => self.types.current.remove(name),
        };
    }

    /// The conflicts between the types of the modules that run now: none,
    /// unless a batch of reloads stopped half-way.
    pub fn type_conflicts_now(&self) -> Vec<TypeConflict> {
        let none = HashMap::new();
        let now = self.types_now(&none, &[]);
        let mut found = Vec::new();
        for (index, (name, types)) in now.iter().enumerate() {
            for (other, theirs) in &now[index + 1..] {
                found.extend(typing::conflicts((name, types), (other, theirs)));
                found.extend(typing::conflicts((other, theirs), (name, types)));
            }
        }
        found
    }
}
