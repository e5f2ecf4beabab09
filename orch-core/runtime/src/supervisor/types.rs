//! Typed topics in the lifecycle: a module's payload types are read from its
//! library before it loads and before every reload (see
//! [`crate::typing::read`]), and checked against every running module's, both
//! ways. A module whose payloads a running subscriber could not read, or that
//! could not read what a running publisher sends, is refused in phase `types`
//! with the modules, the topic and the field named; at a reload the old
//! generation runs on untouched.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::Supervisor;
use crate::error::ModuleFailure;
use crate::typing::{self, TopicTypes};

/// The types of the modules that run, and those read ahead for a batch of
/// reloads ([`Supervisor::prepare_types`]).
#[derive(Default)]
pub(super) struct TypeBook {
    /// Module name -> the types of the generation that runs (typed modules only).
    current: HashMap<String, TopicTypes>,
    /// Module name -> (library, its types) read and checked for the reload
    /// that comes next.
    prepared: HashMap<String, (PathBuf, Option<TopicTypes>)>,
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

    /// The running modules' types, with `pending` in place of theirs.
    fn types_now<'a>(
        &'a self,
        pending: &'a HashMap<String, Option<TopicTypes>>,
    ) -> Vec<(&'a str, &'a TopicTypes)> {
        self.running
            .iter()
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
    /// against the running modules.
    pub(super) fn types_for_load(
        &self,
        name: &str,
        library: &Path,
    ) -> Result<Option<TopicTypes>, ModuleFailure> {
        let types = self.read_types(name, library)?;
        if let Some(types) = &types {
            let none = HashMap::new();
            let others = self.types_now(&none);
            typing::refuse(name, typing::conflicts_of((name, types), others))?;
        }
        Ok(types)
    }

    /// Reads the types of a batch of modules about to be reloaded together
    /// (a rebuild of several, a deploy) and checks them as they will be once
    /// all have reloaded, so a change that both sides make at once passes.
    /// The reloads that follow use what was read here.
    pub fn prepare_types(&mut self, batch: &[(&str, &Path)]) -> Result<(), ModuleFailure> {
        self.types.prepared.clear();
        let mut pending: HashMap<String, Option<TopicTypes>> = HashMap::new();
        for (name, library) in batch {
            pending.insert((*name).to_owned(), self.read_types(name, library)?);
        }
        let now = self.types_now(&pending);
        for (name, _) in batch {
            let Some(Some(types)) = pending.get(*name) else {
                continue;
            };
            let others = now.iter().filter(|(other, _)| other != name).copied();
            typing::refuse(name, typing::conflicts_of((name, types), others))?;
        }
        self.types.prepared = batch
            .iter()
            .map(|(name, library)| {
                let types = pending.remove(*name).flatten();
                ((*name).to_owned(), (library.to_path_buf(), types))
            })
            .collect();
        Ok(())
    }

    /// Module `name`'s types for a reload from `library`: as prepared, or
    /// read and checked now against the running modules.
    pub(super) fn types_for_reload(
        &mut self,
        name: &str,
        library: &Path,
    ) -> Result<Option<TopicTypes>, ModuleFailure> {
        if let Some((prepared, types)) = self.types.prepared.remove(name)
            && prepared == library
        {
            return Ok(types);
        }
        let types = self.read_types(name, library)?;
        if let Some(types) = &types {
            let none = HashMap::new();
            let others = self
                .types_now(&none)
                .into_iter()
                .filter(|(other, _)| *other != name);
            typing::refuse(name, typing::conflicts_of((name, types), others))?;
        }
        Ok(types)
    }

    /// Records the types of module `name`'s running generation.
    pub(super) fn set_types(&mut self, name: &str, types: Option<TopicTypes>) {
        self.board.set_types(name, types.clone());
        match types {
            Some(types) => self.types.current.insert(name.to_owned(), types),
            None => self.types.current.remove(name),
        };
    }
}
