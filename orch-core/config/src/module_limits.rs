//! `limits:` what one module may take from the host: publish and log rates,
//! subscriptions, and for an isolated module its memory and processes. In
//! main.yaml it is the default of every module; a modules.yaml entry's own
//! `limits:` overrides it key by key.

use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use super::Isolation;
use super::check::Checker;
use super::delivery::byte_size;
use super::merge::merge_by_key;

/// What one module may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleLimits {
    /// `publish_rate`: publishes and requests a second an isolated module's
    /// child may send; the rest are refused and counted (default 100,000).
    pub publish_rate: u32,
    /// `subscriptions`: topic patterns a module may hold at once (default 1,000).
    pub subscriptions: u32,
    /// `subscribe_rate`: subscribe and unsubscribe calls a second an isolated
    /// module's child may send; the rest are refused (default 1,000).
    pub subscribe_rate: u32,
    /// `log_rate`: log lines a second; the rest are summed up in one line
    /// (default 1,000).
    pub log_rate: u32,
    /// `memory_max`: the data memory of an isolated module's child
    /// (setrlimit `RLIMIT_DATA`); `None`: no limit (the default).
    pub memory_max: Option<u64>,
    /// `max_processes`: processes an isolated module's child may run at once,
    /// itself included; `None`: no limit (the default).
    pub max_processes: Option<u32>,
}

impl Default for ModuleLimits {
    fn default() -> Self {
        Self {
            publish_rate: 100_000,
            subscriptions: 1_000,
            subscribe_rate: 1_000,
            log_rate: 1_000,
            memory_max: None,
            max_processes: None,
        }
    }
}

/// The smallest `memory_max`: the child host itself needs a few MiB.
pub const MIN_MEMORY_MAX: u64 = 16 << 20;

/// A `limits:` mapping as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawLimits {
    publish_rate: Option<Spanned<Value>>,
    subscriptions: Option<Spanned<Value>>,
    subscribe_rate: Option<Spanned<Value>>,
    log_rate: Option<Spanned<Value>>,
    memory_max: Option<Spanned<Value>>,
    max_processes: Option<Spanned<Value>>,
}
merge_by_key!(RawLimits {
    publish_rate,
    subscriptions,
    subscribe_rate,
    log_rate,
    memory_max,
    max_processes
});

/// `limits:`, each key falling back to `defaults`. `isolation` is `None` in
/// main.yaml; in a module entry, `memory_max` and `max_processes` need
/// `isolation: process`.
pub(crate) fn limits(
    c: &mut Checker,
    raw: Option<&RawLimits>,
    defaults: &ModuleLimits,
    isolation: Option<Isolation>,
) -> ModuleLimits {
    let Some(raw) = raw else { return *defaults };
    let memory_max = raw.memory_max.as_ref().map(|at| {
        let bytes = byte_size(c, "limits.memory_max", Some(at), MIN_MEMORY_MAX);
        if bytes < MIN_MEMORY_MAX {
            c.error(
                &at.referenced,
                format!(
                    "`limits.memory_max` is {bytes} bytes, less than the 16 MiB a child host needs"
                ),
                "write at least `limits.memory_max: 16MiB`; most modules need 64MiB or more",
            );
        }
        bytes.max(MIN_MEMORY_MAX)
    });
    let max_processes = raw
        .max_processes
        .as_ref()
        .map(|at| c.count("limits.max_processes", Some(at), 1));
    if isolation == Some(Isolation::InProcess) {
        for at in [&raw.memory_max, &raw.max_processes].into_iter().flatten() {
            c.error(
                &at.referenced,
                "`limits.memory_max` and `limits.max_processes` apply to isolated modules only",
                "add `isolation: process` to the module's entry, or remove the limit",
            );
        }
    }
    ModuleLimits {
        publish_rate: c.count(
            "limits.publish_rate",
            raw.publish_rate.as_ref(),
            defaults.publish_rate,
        ),
        subscriptions: c.count(
            "limits.subscriptions",
            raw.subscriptions.as_ref(),
            defaults.subscriptions,
        ),
        subscribe_rate: c.count(
            "limits.subscribe_rate",
            raw.subscribe_rate.as_ref(),
            defaults.subscribe_rate,
        ),
        log_rate: c.count("limits.log_rate", raw.log_rate.as_ref(), defaults.log_rate),
        memory_max: memory_max.or(defaults.memory_max),
        max_processes: max_processes.or(defaults.max_processes),
    }
}
