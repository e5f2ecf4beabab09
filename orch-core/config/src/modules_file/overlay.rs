//! An environment's `modules.yaml`: its entries change the base file's
//! modules, matched by `name`; an environment never declares a module.

use serde_json::Value;
use serde_saphyr::{Location, Spanned};

use super::{RawModule, RawModulesFile, RawTestSettings};
use crate::check::Checker;
use crate::merge::{Merge, merge_by_key, merge_json};
use crate::suggest::did_you_mean;

merge_by_key!(RawTestSettings {
    args,
    features,
    timeout
});

impl Merge for RawModule {
    /// Every key the overlay entry sets replaces the base one, mappings merge
    /// key by key (`config` at any depth). The name is the base's (they are
    /// equal); `package` and `path` are two ways to write one setting, so
    /// the overlay's replaces either.
    fn merge(&mut self, overlay: Self) {
        let RawModule {
            name: _,
            package,
            path,
            enabled,
            config,
            depends_on,
            test,
            isolation,
            restart,
            max_restarts,
            restart_window,
            heartbeat,
            publishes,
            subscribes,
            mailbox,
            circuit_breaker,
            limits,
            singleton,
            config_base: _,
        } = overlay;
        if package.is_some() || path.is_some() {
            self.package = package;
            self.path = path;
        }
        self.merge_config(config);
        self.enabled.merge(enabled);
        self.depends_on.merge(depends_on);
        self.test.merge(test);
        self.isolation.merge(isolation);
        self.restart.merge(restart);
        self.max_restarts.merge(max_restarts);
        self.restart_window.merge(restart_window);
        self.heartbeat.merge(heartbeat);
        self.publishes.merge(publishes);
        self.subscribes.merge(subscribes);
        self.mailbox.merge(mailbox);
        self.circuit_breaker.merge(circuit_breaker);
        self.limits.merge(limits);
        self.singleton.merge(singleton);
    }
}

impl RawModule {
    /// `config` deep-merged: the result takes the overlay's place, and the
    /// base's is kept in `config_base` to place errors of its values.
    fn merge_config(&mut self, overlay: Option<Spanned<Value>>) {
        let Some(overlay) = overlay else { return };
        match self.config.as_mut() {
            Some(base) => {
                self.config_base = Some(base.referenced);
                merge_json(&mut base.value, overlay.value);
                base.referenced = overlay.referenced;
                base.defined = overlay.defined;
            }
            None => self.config = Some(overlay),
        }
    }
}

/// Layers the entries of the environment's `overlay` over the base file's
/// `base`, matched by name. An entry without a name, one naming no module of
/// the base file and a second entry for the same module are errors.
pub(crate) fn apply(c: &mut Checker, base: &mut RawModulesFile, overlay: Option<RawModulesFile>) {
    let Some(changes) = overlay.and_then(|overlay| overlay.modules) else {
        return;
    };
    let Some(entries) = base.modules.as_mut() else {
        return;
    };
    let names: Vec<Option<String>> = entries
        .iter()
        .map(|entry| entry.value.name.as_ref().map(|name| base_name(c, name)))
        .collect();
    let mut changed: Vec<(String, Location)> = Vec::new();
    for change in changes {
        let Some(name) = overlay_name(c, &change) else {
            continue;
        };
        let Some(at) = change.value.name.as_ref().map(|n| n.referenced) else {
            continue;
        };
        if let Some((_, first)) = changed.iter().find(|(n, _)| *n == name) {
            let first_line = c.src.line_in_file(first);
            c.error(
                &at,
                format!(
                    "module `{name}` is changed twice in this file (first at line {first_line})"
                ),
                "an environment changes each module in one entry: merge the two",
            );
            continue;
        }
        match names
            .iter()
            .position(|n| n.as_deref() == Some(name.as_str()))
        {
            Some(index) => entries[index].value.merge(change.value),
            None => unknown_module(c, &name, &at, &names),
        }
        changed.push((name, at));
    }
}

/// A base entry's name, expanded (as written when it does not expand: its
/// entry reports that).
fn base_name(c: &mut Checker, name: &Spanned<String>) -> String {
    c.env
        .expand(&name.value)
        .unwrap_or_else(|_| name.value.clone())
}

/// An overlay entry's expanded name; `None` (error recorded) without one.
fn overlay_name(c: &mut Checker, change: &Spanned<RawModule>) -> Option<String> {
    let Some(name) = change.value.name.as_ref() else {
        let base = c.src.path.display().to_string();
        c.error(
            &change.referenced,
            "module entry has no `name`",
            format!(
                "an environment's entry changes the module of {base} with the same name: \
                 add `name: <module>`"
            ),
        );
        return None;
    };
    c.string(name)
}

/// The error for an overlay entry naming no module of the base file.
fn unknown_module(c: &mut Checker, name: &str, at: &Location, names: &[Option<String>]) {
    let base = c.src.path.display().to_string();
    let known: Vec<&str> = names.iter().flatten().map(String::as_str).collect();
    let declared = if known.is_empty() {
        format!("{base} declares none")
    } else {
        format!("modules of {base}: {}", known.join(", "))
    };
    c.error(
        at,
        format!("module `{name}` is not declared in {base}"),
        format!(
            "{}an environment changes the modules of the base file, it does not declare new \
             ones; {declared}. To run `{name}` in this environment only, declare it there with \
             `enabled: false` and write `enabled: true` here",
            did_you_mean(name, known.iter().copied()),
        ),
    );
}
