//! Reading one configuration: the base files, an environment's overlays
//! layered over them, and everything checking them found.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::check::Checker;
use super::error::{ConfigError, ConfigErrors};
use super::merge::Merge;
use super::source::Source;
use super::{AppConfig, MainConfig, ModuleDefaults, ModuleSpec, environment};
use super::{main_file, modules_file};
use crate::workspace::Workspace;

/// Reads and validates the files of `config_dir`, with the overlays of
/// `environment` (a folder of `config_dir`) layered over them.
pub(crate) fn load(
    config_dir: &Path,
    environment: Option<&str>,
    workspace: &Workspace,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AppConfig, ConfigErrors> {
    let overlay_dir = environment
        .map(|name| environment::folder(config_dir, name))
        .transpose()
        .map_err(|error| ConfigErrors(vec![error]))?;
    let files = |name: &str| Files {
        base: config_dir.join(name),
        overlay: overlay_dir.as_ref().map(|dir| dir.join(name)),
    };
    let mut found = Found::default();
    let main = load_main(&files("main.yaml"), workspace, env, &mut found);
    let modules = load_modules(
        &files("modules.yaml"),
        workspace,
        env,
        &ModuleDefaults {
            mailbox: main.mailbox,
            circuit_breaker: main.circuit_breaker,
            limits: main.limits,
            presence: main
                .bridge
                .as_ref()
                .is_some_and(|b| b.nats.presence.is_some()),
        },
        &mut found,
    );
    if !found.errors.is_empty() {
        return Err(ConfigErrors(found.errors));
    }
    Ok(AppConfig {
        main,
        modules,
        config_dir: config_dir.to_path_buf(),
        environment: environment.map(str::to_owned),
        secrets: found.sorted_secrets(),
    })
}

/// One configuration file and, with an environment, its overlay.
struct Files {
    /// `config/<name>`.
    base: PathBuf,
    /// `config/<env>/<name>`.
    overlay: Option<PathBuf>,
}

/// What checking the files found besides the settings.
#[derive(Default)]
struct Found {
    errors: Vec<ConfigError>,
    secrets: Vec<String>,
}

impl Found {
    /// Takes one file's errors (the base file's, then its overlay's, each in
    /// line order) and secrets.
    fn absorb(&mut self, checker: Checker) {
        let Checker {
            src,
            mut errors,
            secrets,
            env,
        } = checker;
        errors.sort_by_key(|e| (e.file != src.path, e.line, e.column));
        self.errors.extend(errors);
        self.secrets.extend(secrets);
        self.secrets.extend(env.secrets);
    }

    /// The file at `path`; `None` when it does not exist or cannot be read
    /// (the error recorded).
    fn read(&mut self, path: &Path) -> Option<Source> {
        Source::read(path).unwrap_or_else(|error| {
            self.errors.push(error);
            None
        })
    }

    /// Parses `base` and `overlay` layered over it, recording every syntax
    /// error; `None` when either does not parse. The documents are `None`
    /// when their file holds none.
    fn parse<T: DeserializeOwned>(
        &mut self,
        base: Source,
        overlay: Option<Source>,
    ) -> Option<Layered<T>> {
        let base_doc = base.parse::<T>().map_err(|e| self.errors.push(e));
        let overlay_doc = match &overlay {
            Some(overlay) => base
                .parse_overlay::<T>(overlay)
                .map_err(|e| self.errors.push(e)),
            None => Ok(None),
        };
        let (Ok(base_doc), Ok(overlay_doc)) = (base_doc, overlay_doc) else {
            return None;
        };
        let source = match overlay {
            Some(overlay) => base.with_overlay(overlay),
            None => base,
        };
        Some(Layered {
            source,
            base: base_doc,
            overlay: overlay_doc,
        })
    }

    /// Unique secrets, longest first (so scrubbing replaces whole values first).
    fn sorted_secrets(mut self) -> Vec<String> {
        self.secrets
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        self.secrets.dedup();
        self.secrets
    }
}

/// A file's document and its overlay's, with the source that places both.
struct Layered<T> {
    source: Source,
    base: Option<T>,
    overlay: Option<T>,
}

/// `main.yaml` (optional) and its overlay (optional): defaults when both
/// are absent or empty.
fn load_main(
    files: &Files,
    workspace: &Workspace,
    env: &dyn Fn(&str) -> Option<String>,
    found: &mut Found,
) -> MainConfig {
    let base = found.read(&files.base);
    let overlay = files.overlay.as_deref().and_then(|path| found.read(path));
    if base.is_none() && overlay.is_none() {
        return main_file::defaults(&workspace.root);
    }
    // An overlay over an absent main.yaml is layered over an empty one.
    let base = base.unwrap_or_else(|| Source::new(&files.base, String::new()));
    let Some(layered) = found.parse::<main_file::RawMain>(base, overlay) else {
        return main_file::defaults(&workspace.root);
    };
    let mut raw = layered.base.unwrap_or_default();
    raw.merge(layered.overlay.unwrap_or_default());
    let mut checker = Checker::new(&layered.source, env);
    let main = main_file::check(&mut checker, &raw, &workspace.root);
    found.absorb(checker);
    main
}

/// `modules.yaml` (required) and its overlay (optional), whose entries
/// change the base file's modules.
fn load_modules(
    files: &Files,
    workspace: &Workspace,
    env: &dyn Fn(&str) -> Option<String>,
    defaults: &ModuleDefaults,
    found: &mut Found,
) -> Vec<ModuleSpec> {
    let base = match Source::read(&files.base) {
        Ok(Some(source)) => source,
        Ok(None) => {
            found.errors.push(ConfigError::new(
                &files.base,
                "modules.yaml not found: it lists the modules to run",
                format!("create it; {}", modules_file::EXPECTED_SHAPE),
            ));
            return Vec::new();
        }
        Err(error) => {
            found.errors.push(error);
            return Vec::new();
        }
    };
    let overlay = files.overlay.as_deref().and_then(|path| found.read(path));
    let Some(layered) = found.parse::<modules_file::RawModulesFile>(base, overlay) else {
        return Vec::new();
    };
    let mut checker = Checker::new(&layered.source, env);
    let mut raw = layered.base;
    if let Some(raw) = raw.as_mut() {
        modules_file::apply_overlay(&mut checker, raw, layered.overlay);
    }
    let modules = modules_file::check(&mut checker, raw.as_ref(), workspace, defaults);
    found.absorb(checker);
    modules
}
