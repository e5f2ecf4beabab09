//! `config/modules.yaml`: the modules to run, their packages, settings and
//! dependencies.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::{Location, Spanned};

use super::check::{Checker, show};
use super::delivery::{self, RawCircuitBreaker, RawMailbox};
use super::module_limits::{self, RawLimits};
use super::order::{self, Declared};
use super::redact::collect_secrets;
use super::suggest::did_you_mean;
use super::{
    Contract, Isolation, ModuleDefaults, ModuleSpec, RestartPolicy, Supervision, TestSettings,
};
use crate::workspace::{Workspace, WorkspacePackage};

mod overlay;
pub(crate) use overlay::apply as apply_overlay;

/// The shape of the file, shown when it is missing or empty.
pub(crate) const EXPECTED_SHAPE: &str = "the file lists the modules to run, for example:
        modules:
          - name: mod-dummy-consumer     # a cdylib package of the workspace
          - name: mod-dummy-producer
            config:                      # the module's own settings
              publish_interval: 1s";

/// `modules.yaml` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawModulesFile {
    #[serde(default)]
    modules: Option<Vec<Spanned<RawModule>>>,
}

/// One entry of `modules:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModule {
    name: Option<Spanned<String>>,
    package: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    enabled: Option<Spanned<Value>>,
    config: Option<Spanned<Value>>,
    depends_on: Option<Vec<Spanned<String>>>,
    test: Option<RawTestSettings>,
    isolation: Option<Spanned<String>>,
    restart: Option<Spanned<String>>,
    max_restarts: Option<Spanned<Value>>,
    restart_window: Option<Spanned<Value>>,
    heartbeat: Option<Spanned<Value>>,
    publishes: Option<Vec<Spanned<String>>>,
    subscribes: Option<Vec<Spanned<String>>>,
    mailbox: Option<RawMailbox>,
    circuit_breaker: Option<RawCircuitBreaker>,
    limits: Option<RawLimits>,
    singleton: Option<Spanned<Value>>,
    /// Where the base file's `config` is, when an environment's `config` was
    /// merged over it (`config` then has the overlay's place).
    #[serde(skip)]
    config_base: Option<Location>,
}

/// A module's `test:` mapping as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTestSettings {
    args: Option<Vec<Spanned<String>>>,
    features: Option<Vec<Spanned<String>>>,
    timeout: Option<Spanned<Value>>,
}

/// Checks every entry, then the names and dependencies between them.
/// `raw` is `None` for a file with no YAML document in it.
pub(crate) fn check(
    c: &mut Checker,
    raw: Option<&RawModulesFile>,
    workspace: &Workspace,
    defaults: &ModuleDefaults,
) -> Vec<ModuleSpec> {
    let Some(entries) = raw.and_then(|raw| raw.modules.as_ref()) else {
        let error = c.src.error_at(
            &Location::UNKNOWN,
            "no `modules:` list: the file declares no modules",
            EXPECTED_SHAPE,
        );
        c.errors.push(error);
        return Vec::new();
    };
    let declared: Vec<Declared> = entries
        .iter()
        .filter_map(|entry| check_entry(c, entry, workspace, defaults))
        .collect();
    check_unique_names(c, &declared);
    order::check_dependencies(c, &declared);
    declared.into_iter().map(|d| d.spec).collect()
}

/// One entry; `None` when it has no usable name (the error is recorded).
fn check_entry(
    c: &mut Checker,
    entry: &Spanned<RawModule>,
    ws: &Workspace,
    defaults: &ModuleDefaults,
) -> Option<Declared> {
    let raw = &entry.value;
    let name = module_name(c, raw.name.as_ref(), &entry.referenced);
    let package = package(c, raw, name.as_deref(), ws);
    let enabled = c.boolean("enabled", raw.enabled.as_ref(), true);
    let config = module_config(c, raw.config.as_ref(), raw.config_base.as_ref());
    let (depends_on, deps_at) = dependencies(c, raw.depends_on.as_deref().unwrap_or_default());
    let test = test_settings(c, raw.test.as_ref());
    let isolation = isolation(c, raw.isolation.as_ref());
    let supervision = supervision(c, raw);
    let contract = Contract {
        publishes: contract(c, "publishes", raw.publishes.as_deref()),
        subscribes: contract(c, "subscribes", raw.subscribes.as_deref()),
    };
    let mailbox = delivery::mailbox(c, "mailbox", raw.mailbox.as_ref(), &defaults.mailbox);
    let circuit_breaker =
        delivery::circuit_breaker(c, raw.circuit_breaker.as_ref(), &defaults.circuit_breaker);
    let limits = module_limits::limits(c, raw.limits.as_ref(), &defaults.limits, Some(isolation));
    let singleton = c.boolean("singleton", raw.singleton.as_ref(), false);
    if let Some(at) = raw
        .singleton
        .as_ref()
        .filter(|_| singleton && !defaults.presence)
    {
        c.error(
            &at.referenced,
            "`singleton: true` needs `bridge.nats.presence` in main.yaml",
            "a singleton runs on the node that holds its lease, kept in the presence bucket's \
             JetStream key-value store: add `bridge: {nats: {url: ..., presence: {ttl: 6s}}}`",
        );
    }
    let name_at = raw.name.as_ref()?.referenced;
    Some(Declared {
        spec: ModuleSpec {
            name: name?,
            package: package.unwrap_or_default(),
            enabled,
            config,
            depends_on,
            test,
            line: u32::try_from(entry.referenced.line()).unwrap_or(0),
            isolation,
            supervision,
            contract,
            mailbox,
            circuit_breaker,
            limits,
            singleton,
        },
        name_at,
        deps_at,
    })
}

/// The entry's expanded, valid `name`.
fn module_name(c: &mut Checker, raw: Option<&Spanned<String>>, entry: &Location) -> Option<String> {
    let Some(raw) = raw else {
        c.error(
            entry,
            "module entry has no `name`",
            "add `name: <module>`; the name is also the cargo package unless `package:` or `path:` says otherwise",
        );
        return None;
    };
    let name = c.string(raw)?;
    if is_module_name(&name) {
        return Some(name);
    }
    c.error(
        &raw.referenced,
        format!("`{}` is not a valid module name", name.escape_debug()),
        "module names follow cargo package names: ASCII letters, digits, `-` and `_`, starting with a letter",
    );
    None
}

/// ASCII letters, digits, `-` and `_`, starting with a letter.
fn is_module_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The cargo package of the entry, from `path`, `package` or the name.
fn package(c: &mut Checker, raw: &RawModule, name: Option<&str>, ws: &Workspace) -> Option<String> {
    match (&raw.package, &raw.path, name) {
        (Some(_), Some(path), _) => {
            c.error(
                &path.referenced,
                "both `package` and `path` are set",
                "keep one: `package` names a workspace package, `path` is the folder of its Cargo.toml",
            );
            None
        }
        (None, Some(path), _) => by_path(c, path, ws),
        (Some(package), None, _) => {
            let wanted = c.string(package)?;
            by_name(c, &wanted, &package.referenced, ws, false)
        }
        (None, None, Some(name)) => {
            let at = raw
                .name
                .as_ref()
                .map_or(Location::UNKNOWN, |n| n.referenced);
            by_name(c, name, &at, ws, true)
        }
        (None, None, None) => None,
    }
}

/// The workspace package called `wanted`, which must be a cdylib.
fn by_name(
    c: &mut Checker,
    wanted: &str,
    at: &Location,
    ws: &Workspace,
    defaulted: bool,
) -> Option<String> {
    if let Some(package) = ws.package(wanted) {
        return cdylib(c, package, at);
    }
    let mut hint = format!(
        "{}{}",
        did_you_mean(wanted, ws.packages.iter().map(|p| p.name.as_str())),
        cdylib_list(ws)
    );
    if defaulted {
        hint.push_str("; a module's package is its `name` unless `package:` or `path:` is set");
    }
    c.error(at, format!("no package `{wanted}` in the workspace"), hint);
    None
}

/// The workspace package whose Cargo.toml is in `path`, which must be a cdylib.
fn by_path(c: &mut Checker, raw: &Spanned<String>, ws: &Workspace) -> Option<String> {
    let path = c.string(raw)?;
    if let Some(package) = ws.package_at(Path::new(&path)) {
        return cdylib(c, package, &raw.referenced);
    }
    c.error(
        &raw.referenced,
        format!("no workspace package at `{path}`"),
        format!(
            "`path` is the folder of a member package's Cargo.toml, relative to the workspace root {}; {}",
            ws.root.display(),
            cdylib_list(ws)
        ),
    );
    None
}

/// `package`'s name if it builds a cdylib; an error otherwise.
fn cdylib(c: &mut Checker, package: &WorkspacePackage, at: &Location) -> Option<String> {
    if package.is_cdylib {
        return Some(package.name.clone());
    }
    c.error(
        at,
        format!(
            "package `{}` is not a cdylib, so it cannot be loaded as a module",
            package.name
        ),
        format!(
            "add `[lib] crate-type = [\"cdylib\", \"rlib\"]` to {}",
            package.manifest_dir.join("Cargo.toml").display()
        ),
    );
    None
}

/// "cdylib packages of this workspace: a, b" (or how to make one).
fn cdylib_list(ws: &Workspace) -> String {
    let names: Vec<&str> = ws
        .packages
        .iter()
        .filter(|p| p.is_cdylib)
        .map(|p| p.name.as_str())
        .collect();
    if names.is_empty() {
        "this workspace has no cdylib packages yet: create one with `cargo orch new <name>`"
            .to_owned()
    } else {
        format!("cdylib packages of this workspace: {}", names.join(", "))
    }
}

/// The module's `config` mapping, expanded (`{}` when absent or empty);
/// `base` is where the base file's part is when an overlay's was merged in.
fn module_config(c: &mut Checker, raw: Option<&Spanned<Value>>, base: Option<&Location>) -> Value {
    let Some(raw) = raw else {
        return Value::Object(Default::default());
    };
    match c.json_layered(raw, base) {
        Value::Null => Value::Object(Default::default()),
        config @ Value::Object(_) => {
            collect_secrets(&config, &mut c.secrets);
            config
        }
        other => {
            c.error(
                &raw.referenced,
                format!(
                    "`config` must be a mapping of settings, found {}",
                    show(&other)
                ),
                "write the module's settings as `key: value` lines indented under `config:`",
            );
            Value::Object(Default::default())
        }
    }
}

/// The entry's `isolation`: `in-process` (default) or `process`.
fn isolation(c: &mut Checker, raw: Option<&Spanned<String>>) -> Isolation {
    let Some(raw) = raw else {
        return Isolation::default();
    };
    match c.string(raw).as_deref() {
        Some("in-process") => Isolation::InProcess,
        Some("process") => Isolation::Process,
        Some(other) => {
            c.error(
                &raw.referenced,
                format!("`isolation` must be `in-process` or `process`, found `{}`", other.escape_debug()),
                "`process` runs the module in a child host process of its own, so a crash there \
                 never takes the orchestrator down; `in-process` (the default) loads it into the orchestrator",
            );
            Isolation::default()
        }
        None => Isolation::default(),
    }
}

/// The entry's `restart`, `max_restarts`, `restart_window` and `heartbeat`.
fn supervision(c: &mut Checker, raw: &RawModule) -> Supervision {
    let default = Supervision::default();
    let restart = match raw.restart.as_ref() {
        None => default.restart,
        Some(spanned) => match c.string(spanned).as_deref() {
            Some("always") => RestartPolicy::Always,
            Some("on-failure") => RestartPolicy::OnFailure,
            Some("never") => RestartPolicy::Never,
            Some(other) => {
                c.error(
                    &spanned.referenced,
                    format!(
                        "`restart` must be `always`, `on-failure` or `never`, found `{}`",
                        other.escape_debug()
                    ),
                    "`on-failure` (the default) restarts an isolated module after a crash or a \
                     non-zero exit, `always` after any exit, `never` leaves it down",
                );
                default.restart
            }
            None => default.restart,
        },
    };
    Supervision {
        restart,
        max_restarts: c.count(
            "max_restarts",
            raw.max_restarts.as_ref(),
            default.max_restarts,
        ),
        restart_window: c.duration(
            "restart_window",
            raw.restart_window.as_ref(),
            default.restart_window,
        ),
        heartbeat: c.duration("heartbeat", raw.heartbeat.as_ref(), default.heartbeat),
    }
}

/// A `publishes:` or `subscribes:` list: valid topic patterns (first of
/// duplicates kept), none in the host's namespaces for `publishes`; `None`
/// when the key is absent (no contract).
fn contract(c: &mut Checker, key: &str, raw: Option<&[Spanned<String>]>) -> Option<Vec<String>> {
    let raw = raw?;
    let mut patterns: Vec<String> = Vec::new();
    for entry in raw {
        let Some(pattern) = c.string(entry) else {
            continue;
        };
        if let Err(error) = orch_sdk::topic::validate_pattern(&pattern) {
            c.error(
                &entry.referenced,
                format!("`{key}` entry '{pattern}' is not a topic pattern: {error}"),
                "write dot-separated tokens; `*` stands for one token and a last `>` for the rest, \
                 e.g. `sensor.>`",
            );
            continue;
        }
        let first = pattern.split('.').next().unwrap_or_default();
        if key == "publishes" && orch_sdk::topic::RESERVED_NAMESPACES.contains(&first) {
            c.error(
                &entry.referenced,
                format!("`publishes` entry '{pattern}' is in the host's namespace '{first}.*'"),
                "only the host publishes app.*, module.* and bridge.*; list the module's own topics",
            );
            continue;
        }
        if !patterns.contains(&pattern) {
            patterns.push(pattern);
        }
    }
    Some(patterns)
}

/// The expanded `depends_on` names (first of duplicates kept) and their places.
fn dependencies(c: &mut Checker, raw: &[Spanned<String>]) -> (Vec<String>, Vec<Location>) {
    let mut names: Vec<String> = Vec::new();
    let mut places = Vec::new();
    for dep in raw {
        if let Some(name) = c.string(dep).filter(|name| !names.contains(name)) {
            names.push(name);
            places.push(dep.referenced);
        }
    }
    (names, places)
}

/// The entry's `test:` settings, expanded; features checked to be plain
/// names, `timeout` a duration (absent: `timeouts.test` of main.yaml).
fn test_settings(c: &mut Checker, raw: Option<&RawTestSettings>) -> TestSettings {
    let Some(raw) = raw else {
        return TestSettings::default();
    };
    let args = raw
        .args
        .iter()
        .flatten()
        .filter_map(|arg| c.string(arg))
        .collect();
    let mut features: Vec<String> = Vec::new();
    for raw in raw.features.iter().flatten() {
        let Some(feature) = c.string(raw) else {
            continue;
        };
        if !is_feature_name(&feature) {
            c.error(
                &raw.referenced,
                format!("`{}` is not a feature name", feature.escape_debug()),
                "write the name of a feature of the module's own package (a key of its \
                 [features] table) such as `extra`; `cargo orch test` adds the package for you",
            );
        } else if !features.contains(&feature) {
            features.push(feature);
        }
    }
    let timeout = raw.timeout.as_ref().map(|timeout| {
        c.duration(
            "test.timeout",
            Some(timeout),
            crate::Timeouts::default().test,
        )
    });
    TestSettings {
        args,
        features,
        timeout,
    }
}

/// Cargo feature names: ASCII letters, digits, `_`, `-`, `+` and `.`, starting
/// with a letter, digit or `_` (no `/`: the package is added by `cargo orch test`).
fn is_feature_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '.'))
}

/// Each module name is declared once.
fn check_unique_names(c: &mut Checker, declared: &[Declared]) {
    let mut first: HashMap<&str, u64> = HashMap::new();
    for module in declared {
        let line = module.name_at.line();
        match first.get(module.spec.name.as_str()) {
            Some(first_line) => c.error(
                &module.name_at,
                format!(
                    "module `{}` is declared twice (first declared at line {first_line})",
                    module.spec.name
                ),
                "module names must be unique: remove one entry or rename it (two modules may share a `package`)",
            ),
            None => {
                first.insert(&module.spec.name, line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Spanned` fields keep their places inside `Option` and under
    /// `deny_unknown_fields`; `key:` with no value reads as absent.
    #[test]
    fn spanned_fields_keep_locations() {
        let yaml =
            "modules:\n  - name: a\n    enabled:\n    config:\n      x: 1s\n    depends_on: [b]\n";
        let file: Option<RawModulesFile> = serde_saphyr::from_str(yaml).expect("valid");
        let entries = file.and_then(|f| f.modules).expect("modules");
        let entry = &entries[0];
        assert_eq!((entry.referenced.line(), entry.referenced.column()), (2, 5));
        let name = entry.value.name.as_ref().expect("name");
        assert_eq!((name.referenced.line(), name.referenced.column()), (2, 11));
        assert!(entry.value.enabled.is_none());
        let config = entry.value.config.as_ref().expect("config");
        assert_eq!(config.value, serde_json::json!({"x": "1s"}));
        assert_eq!(config.referenced.line(), 5);
        let deps = entry.value.depends_on.as_ref().expect("deps");
        assert_eq!(
            (deps[0].referenced.line(), deps[0].referenced.column()),
            (6, 18)
        );
    }

    #[test]
    fn test_settings_are_read_and_unknown_keys_inside_are_rejected() {
        let yaml = "modules:\n  - name: a\n    test:\n      args: [--include-ignored]\n      features: [extra]\n";
        let file: Option<RawModulesFile> = serde_saphyr::from_str(yaml).expect("valid");
        let entries = file.and_then(|f| f.modules).expect("modules");
        let test = entries[0].value.test.as_ref().expect("test");
        let args = test.args.as_ref().expect("args");
        assert_eq!(args[0].value, "--include-ignored");
        assert_eq!(
            (args[0].referenced.line(), args[0].referenced.column()),
            (4, 14)
        );
        assert_eq!(test.features.as_ref().expect("features")[0].value, "extra");

        let error = serde_saphyr::from_str::<RawModulesFile>(
            "modules:\n  - name: a\n    test:\n      args: []\n      featurs: [x]\n",
        )
        .expect_err("unknown key inside test");
        let location = error.location().expect("location");
        assert_eq!((location.line(), location.column()), (5, 7));
    }

    #[test]
    fn feature_names_follow_cargo_rules() {
        for good in ["extra", "serde_json", "v1.2", "a+b", "_x", "2d"] {
            assert!(is_feature_name(good), "{good}");
        }
        for bad in ["", "pkg/extra", "-x", "two words", "dep:serde"] {
            assert!(!is_feature_name(bad), "{bad}");
        }
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_place() {
        let error =
            serde_saphyr::from_str::<RawModulesFile>("modules:\n  - name: a\n    enabeld: true\n")
                .expect_err("unknown key");
        let location = error.location().expect("location");
        assert_eq!((location.line(), location.column()), (3, 5));
    }
}
