//! The limits that keep a running application bounded: `mailbox:` (in
//! main.yaml as the default, in a modules.yaml entry for one module) and
//! `max_event_bytes`.

use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use super::check::{Checker, show};
use super::merge::merge_by_key;
use super::suggest::did_you_mean;

/// What main.yaml sets for every module unless its entry says otherwise.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ModuleDefaults {
    pub mailbox: MailboxSettings,
    pub circuit_breaker: CircuitBreakerSettings,
    pub limits: super::ModuleLimits,
    /// Whether main.yaml has `bridge.nats.presence` (what `singleton` needs).
    pub presence: bool,
}

/// The default of `max_event_bytes`: 16 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: u64 = 16 << 20;

/// How many events wait for a module and what happens when that is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxSettings {
    /// `capacity`: events that may wait (default 10,000).
    pub capacity: usize,
    /// `overflow`: what a full mailbox does (default `block`).
    pub overflow: Overflow,
}

impl Default for MailboxSettings {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            overflow: Overflow::Block,
        }
    }
}

/// `mailbox.overflow`: what happens to an event for a full mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// The publisher waits up to `timeouts.publish`, then its publish fails
    /// (`block`, the default): back-pressure.
    #[default]
    Block,
    /// The oldest waiting event is dropped for the new one (`drop-oldest`).
    DropOldest,
    /// The new event is dropped (`drop-newest`).
    DropNewest,
    /// The module is taken off the bus and reported failed (`fail`).
    Fail,
}

impl Overflow {
    /// Every policy, as written in the files.
    pub const ALL: [Overflow; 4] = [
        Overflow::Block,
        Overflow::DropOldest,
        Overflow::DropNewest,
        Overflow::Fail,
    ];

    /// The policy as written in the files.
    pub fn as_str(self) -> &'static str {
        match self {
            Overflow::Block => "block",
            Overflow::DropOldest => "drop-oldest",
            Overflow::DropNewest => "drop-newest",
            Overflow::Fail => "fail",
        }
    }
}

/// `circuit_breaker`: when a module that keeps failing stops getting events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreakerSettings {
    /// `fail_max`: consecutive failed or overrun `on_event` calls that open the
    /// circuit (default 5).
    pub fail_max: u32,
    /// `reset_timeout`: how long it stays open before one event is tried
    /// (default 30 s).
    pub reset_timeout: Duration,
}

impl Default for CircuitBreakerSettings {
    fn default() -> Self {
        Self {
            fail_max: 5,
            reset_timeout: Duration::from_secs(30),
        }
    }
}

/// A `mailbox:` mapping as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawMailbox {
    capacity: Option<Spanned<Value>>,
    overflow: Option<Spanned<String>>,
}
merge_by_key!(RawMailbox { capacity, overflow });

/// A `circuit_breaker:` mapping as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawCircuitBreaker {
    fail_max: Option<Spanned<Value>>,
    reset_timeout: Option<Spanned<Value>>,
}
merge_by_key!(RawCircuitBreaker {
    fail_max,
    reset_timeout
});

/// `circuit_breaker:`, each setting falling back to `defaults`.
pub(crate) fn circuit_breaker(
    c: &mut Checker,
    raw: Option<&RawCircuitBreaker>,
    defaults: &CircuitBreakerSettings,
) -> CircuitBreakerSettings {
    let Some(raw) = raw else { return *defaults };
    CircuitBreakerSettings {
        fail_max: c.count(
            "circuit_breaker.fail_max",
            raw.fail_max.as_ref(),
            defaults.fail_max,
        ),
        reset_timeout: c.duration(
            "circuit_breaker.reset_timeout",
            raw.reset_timeout.as_ref(),
            defaults.reset_timeout,
        ),
    }
}

/// The largest `mailbox.capacity`: a million events.
const MAX_CAPACITY: usize = 1_000_000;

/// `mailbox:` (`key` is how messages name it: `mailbox`), each setting
/// falling back to `defaults`.
pub(crate) fn mailbox(
    c: &mut Checker,
    key: &str,
    raw: Option<&RawMailbox>,
    defaults: &MailboxSettings,
) -> MailboxSettings {
    let Some(raw) = raw else { return *defaults };
    let capacity_key = format!("{key}.capacity");
    let capacity: usize = c.count(&capacity_key, raw.capacity.as_ref(), defaults.capacity);
    let capacity = match raw.capacity.as_ref() {
        Some(at) if capacity > MAX_CAPACITY => {
            c.error(
                &at.referenced,
                format!("`{capacity_key}` is {capacity}, more than the limit of {MAX_CAPACITY}"),
                "a mailbox this deep holds minutes of events and their memory; a consumer \
                 that needs it is too slow: use `overflow: drop-oldest` or speed it up",
            );
            defaults.capacity
        }
        _ => capacity,
    };
    MailboxSettings {
        capacity,
        overflow: overflow(c, key, raw.overflow.as_ref(), defaults.overflow),
    }
}

fn overflow(
    c: &mut Checker,
    key: &str,
    raw: Option<&Spanned<String>>,
    default: Overflow,
) -> Overflow {
    let Some(raw) = raw else { return default };
    let Some(text) = c.string(raw) else {
        return default;
    };
    let text = text.trim();
    if let Some(policy) = Overflow::ALL.into_iter().find(|p| p.as_str() == text) {
        return policy;
    }
    let names = Overflow::ALL.map(Overflow::as_str);
    c.error(
        &raw.referenced,
        format!(
            "`{key}.overflow` must be one of {}, found `{}`",
            names.join(", "),
            text.escape_debug()
        ),
        format!(
            "{}`block` slows the publisher down (up to `timeouts.publish`), `drop-oldest` / \
             `drop-newest` drop events (to `module.dead_letter`), `fail` takes the module \
             off the bus",
            did_you_mean(text, names)
        ),
    );
    default
}

/// A size in bytes named `key`: a whole number of bytes or a number with a
/// unit (`64KiB`, `16 MiB`, `1MB`), at least 1 byte.
pub(crate) fn byte_size(
    c: &mut Checker,
    key: &str,
    raw: Option<&Spanned<Value>>,
    default: u64,
) -> u64 {
    let Some(raw) = raw else { return default };
    let value = c.json(raw);
    let parsed = match &value {
        Value::Number(n) => n.as_u64(),
        Value::String(text) => text
            .trim()
            .parse::<ByteSize>()
            .ok()
            .map(|size| size.as_u64()),
        _ => None,
    };
    match parsed {
        Some(bytes) if bytes > 0 => bytes,
        _ => {
            c.error(
                &raw.referenced,
                format!("`{key}` must be a size of at least 1 byte, found {}", show(&value)),
                format!("write a number of bytes or a number with a unit: `{key}: 16MiB`, `64KiB`, `1MB`"),
            );
            default
        }
    }
}
