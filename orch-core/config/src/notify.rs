//! `notify:` in main.yaml: alerts sent out of the process. Its one channel is
//! `webhook`: chosen events POSTed to a URL.

use std::time::Duration;

use orch_sdk::events;
use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::{Location, Spanned};

use super::check::Checker;
use super::merge::merge_by_key;
use super::suggest::did_you_mean;
use super::variables::referenced_variables;
use super::webhook_url;

/// `notify.webhook.events` when the key is left out.
pub const DEFAULT_WEBHOOK_EVENTS: [&str; 3] = [
    events::MODULE_FAILED,
    events::MODULE_CRASHED,
    events::MODULE_RELOAD_FAILED,
];

/// `notify:`: where alerts go (default: nowhere).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NotifySettings {
    /// `webhook`: events POSTed to a URL; `None` without the key.
    pub webhook: Option<WebhookSettings>,
}

/// `notify.webhook`: each matching event is POSTed to `url`.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// `url`: the `http://` or `https://` URL, `${VAR}`s expanded. A secret
    /// (it is in [`crate::AppConfig::secrets`]): log
    /// [`WebhookSettings::redacted_url`] instead.
    pub url: String,
    /// `events`: topic patterns of the events sent (default
    /// [`DEFAULT_WEBHOOK_EVENTS`]).
    pub events: Vec<String>,
    /// `timeout`: how long one POST attempt may take (default 5 s).
    pub timeout: Duration,
    /// `retries`: attempts after the first failed one, 0 to 20 (default 5).
    pub retries: u32,
    /// `queue`: alerts waiting to be sent, 1 to 100,000 (default 256); beyond
    /// it the newest are dropped.
    pub queue: usize,
}

impl WebhookSettings {
    /// Where the URL points, safe to log: scheme, host and port only
    /// (`https://hooks.slack.com/***`).
    pub fn redacted_url(&self) -> String {
        webhook_url::redacted(&self.url)
    }
}

impl std::fmt::Debug for WebhookSettings {
    /// Hides the URL's user info, path and query.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &self.redacted_url())
            .field("events", &self.events)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("queue", &self.queue)
            .finish()
    }
}

/// `notify:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawNotify {
    webhook: Option<Spanned<RawWebhook>>,
}
merge_by_key!(RawNotify { webhook });

/// `notify.webhook:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawWebhook {
    url: Option<Spanned<String>>,
    events: Option<Vec<Spanned<String>>>,
    timeout: Option<Spanned<Value>>,
    retries: Option<Spanned<Value>>,
    queue: Option<Spanned<Value>>,
}
merge_by_key!(RawWebhook {
    url,
    events,
    timeout,
    retries,
    queue
});

/// The largest `notify.webhook.retries`.
const MAX_RETRIES: u64 = 20;
/// The largest `notify.webhook.queue`.
const MAX_QUEUE: u64 = 100_000;

/// `notify:`; the default without it.
pub(crate) fn notify(c: &mut Checker, raw: Option<&RawNotify>) -> NotifySettings {
    let webhook = raw
        .and_then(|raw| raw.webhook.as_ref())
        .map(|webhook| self::webhook(c, webhook));
    NotifySettings { webhook }
}

fn webhook(c: &mut Checker, raw: &Spanned<RawWebhook>) -> WebhookSettings {
    let at = raw.referenced;
    let raw = &raw.value;
    let retries = c.number_in(
        "notify.webhook.retries",
        raw.retries.as_ref(),
        (0, MAX_RETRIES),
        5,
    );
    let queue = c.number_in(
        "notify.webhook.queue",
        raw.queue.as_ref(),
        (1, MAX_QUEUE),
        256,
    );
    WebhookSettings {
        url: url(c, raw.url.as_ref(), &at),
        events: self::events(c, raw.events.as_deref(), &at),
        timeout: c.duration(
            "notify.webhook.timeout",
            raw.timeout.as_ref(),
            Duration::from_secs(5),
        ),
        retries: u32::try_from(retries).unwrap_or(5),
        queue: usize::try_from(queue).unwrap_or(256),
    }
}

/// `url`: required, expanded, `http://` or `https://`; remembered as a secret.
fn url(c: &mut Checker, raw: Option<&Spanned<String>>, section: &Location) -> String {
    let Some(raw) = raw else {
        c.error(
            section,
            "`notify.webhook` has no `url`",
            "add `url: ${ALERT_URL}` (the http:// or https:// URL alerts are POSTed to, \
             from the environment or .env), or remove notify.webhook",
        );
        return String::new();
    };
    let Some(url) = c.string(raw) else {
        return String::new();
    };
    let url = url.trim().to_owned();
    if url.is_empty() {
        let variables = referenced_variables(&raw.value);
        let hint = if variables.is_empty() {
            "write the http:// or https:// URL alerts are POSTed to, or remove notify.webhook"
                .to_owned()
        } else {
            format!("set {} or remove notify.webhook", variables.join(" and "))
        };
        c.error(&raw.referenced, "`notify.webhook.url` is empty", hint);
        return url;
    }
    c.secrets.push(url.clone());
    if let Err(reason) = webhook_url::check(&url) {
        c.error(
            &raw.referenced,
            format!("`notify.webhook.url` is not a webhook URL: {reason}"),
            "write `https://host/path` (or `http://`), for example `url: ${ALERT_URL}`",
        );
    }
    url
}

/// `events`: topic patterns, each once; concrete topics of the host's
/// namespaces must be events the host sends.
fn events(c: &mut Checker, raw: Option<&[Spanned<String>]>, section: &Location) -> Vec<String> {
    let Some(raw) = raw else {
        return DEFAULT_WEBHOOK_EVENTS.map(str::to_owned).to_vec();
    };
    if raw.is_empty() {
        c.error(
            section,
            "`notify.webhook.events` is empty: no alert would ever be sent",
            format!(
                "list the events to send, or leave the key out for the default: {}",
                DEFAULT_WEBHOOK_EVENTS.join(", ")
            ),
        );
    }
    let mut patterns: Vec<String> = Vec::new();
    for entry in raw {
        let Some(text) = c.string(entry) else {
            continue;
        };
        let pattern = text.trim();
        if let Err(reason) = orch_sdk::topic::validate_pattern(pattern) {
            c.error(
                &entry.referenced,
                format!(
                    "`notify.webhook.events` entry `{}` is not a topic pattern: {reason}",
                    pattern.escape_debug()
                ),
                "a pattern is dot-separated tokens; `*` matches one token, `>` the rest: \
                 `module.failed`, `module.*`",
            );
        } else if is_unknown_host_event(pattern) {
            c.error(
                &entry.referenced,
                format!("`notify.webhook.events`: the host sends no event `{pattern}`"),
                format!(
                    "{}the host's events: {}",
                    did_you_mean(pattern, events::ALL.iter().copied()),
                    events::ALL.join(", ")
                ),
            );
        } else if !patterns.iter().any(|p| p == pattern) {
            patterns.push(pattern.to_owned());
        }
    }
    patterns
}

/// A topic without wildcards in the host's namespaces that is none of its
/// events: only the host publishes there, so it could never be sent.
fn is_unknown_host_event(pattern: &str) -> bool {
    let first = pattern.split('.').next().unwrap_or_default();
    orch_sdk::topic::RESERVED_NAMESPACES.contains(&first)
        && !orch_sdk::topic::is_pattern(pattern)
        && !events::ALL.contains(&pattern)
}
