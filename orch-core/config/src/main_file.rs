//! `config/main.yaml`: application settings, timeouts, resources and logging.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use super::bridge::{self, RawBridge};
use super::check::Checker;
use super::delivery::{self, RawCircuitBreaker, RawMailbox};
use super::merge::merge_by_key;
use super::metrics::{self, RawMetrics};
use super::module_limits::{self, RawLimits};
use super::notify::{self, RawNotify};
use super::suggest::did_you_mean;
use super::{AppInfo, LogFormat, LoggingSettings, MainConfig, ResourceSettings, Timeouts};

/// `main.yaml` as written. Every field is optional; `key:` with no value means
/// "use the default".
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawMain {
    app: Option<RawApp>,
    hot_reload: Option<Spanned<Value>>,
    timeouts: Option<RawTimeouts>,
    resources: Option<RawResources>,
    logging: Option<RawLogging>,
    mailbox: Option<RawMailbox>,
    max_event_bytes: Option<Spanned<Value>>,
    circuit_breaker: Option<RawCircuitBreaker>,
    limits: Option<RawLimits>,
    bridge: Option<RawBridge>,
    metrics: Option<RawMetrics>,
    notify: Option<RawNotify>,
}
merge_by_key!(RawMain {
    app,
    hot_reload,
    timeouts,
    resources,
    logging,
    mailbox,
    max_event_bytes,
    circuit_breaker,
    limits,
    bridge,
    metrics,
    notify,
});

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawApp {
    name: Option<Spanned<String>>,
    version: Option<Spanned<String>>,
}
merge_by_key!(RawApp { name, version });

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawTimeouts {
    load: Option<Spanned<Value>>,
    initialize: Option<Spanned<Value>>,
    start: Option<Spanned<Value>>,
    event: Option<Spanned<Value>>,
    shutdown: Option<Spanned<Value>>,
    reload: Option<Spanned<Value>>,
    build: Option<Spanned<Value>>,
    publish: Option<Spanned<Value>>,
    shutdown_total: Option<Spanned<Value>>,
    test: Option<Spanned<Value>>,
}
merge_by_key!(RawTimeouts {
    load,
    initialize,
    start,
    event,
    shutdown,
    reload,
    build,
    publish,
    shutdown_total,
    test
});

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawResources {
    reserved_memory_fraction: Option<Spanned<Value>>,
    memory_per_process_mb: Option<Spanned<Value>>,
    threads_per_core: Option<Spanned<Value>>,
    usage_interval: Option<Spanned<Value>>,
}
merge_by_key!(RawResources {
    reserved_memory_fraction,
    memory_per_process_mb,
    threads_per_core,
    usage_interval
});

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawLogging {
    level: Option<Spanned<String>>,
    format: Option<Spanned<String>>,
    dir: Option<Spanned<String>>,
    file: Option<Spanned<String>>,
    max_size_mb: Option<Spanned<Value>>,
    max_files: Option<Spanned<Value>>,
}
merge_by_key!(RawLogging {
    level,
    format,
    dir,
    file,
    max_size_mb,
    max_files
});

/// The levels `logging.level` accepts, alone or after `target=`.
const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// The defaults, with the log folder resolved against the workspace `root`.
pub(crate) fn defaults(root: &Path) -> MainConfig {
    let mut main = MainConfig::default();
    main.logging.dir = root.join(&main.logging.dir);
    main
}

/// Checks and converts `raw`; relative paths are resolved against `root`.
pub(crate) fn check(c: &mut Checker, raw: &RawMain, root: &Path) -> MainConfig {
    let defaults = MainConfig::default();
    let mailbox = delivery::mailbox(c, "mailbox", raw.mailbox.as_ref(), &defaults.mailbox);
    MainConfig {
        app: app(c, raw.app.as_ref().unwrap_or(&RawApp::default())),
        hot_reload: c.boolean("hot_reload", raw.hot_reload.as_ref(), defaults.hot_reload),
        timeouts: timeouts(c, raw.timeouts.as_ref().unwrap_or(&RawTimeouts::default())),
        resources: resources(
            c,
            raw.resources.as_ref().unwrap_or(&RawResources::default()),
        ),
        logging: logging(
            c,
            raw.logging.as_ref().unwrap_or(&RawLogging::default()),
            root,
        ),
        mailbox,
        bridge: bridge::bridge(c, raw.bridge.as_ref(), &mailbox, root),
        max_event_bytes: delivery::byte_size(
            c,
            "max_event_bytes",
            raw.max_event_bytes.as_ref(),
            defaults.max_event_bytes,
        ),
        circuit_breaker: delivery::circuit_breaker(
            c,
            raw.circuit_breaker.as_ref(),
            &defaults.circuit_breaker,
        ),
        limits: module_limits::limits(c, raw.limits.as_ref(), &defaults.limits, None),
        metrics: metrics::metrics(c, raw.metrics.as_ref()),
        notify: notify::notify(c, raw.notify.as_ref()),
    }
}

fn app(c: &mut Checker, raw: &RawApp) -> AppInfo {
    let defaults = AppInfo::default();
    AppInfo {
        name: c.non_empty_text("app.name", raw.name.as_ref(), &defaults.name),
        version: c.non_empty_text("app.version", raw.version.as_ref(), &defaults.version),
    }
}

fn timeouts(c: &mut Checker, raw: &RawTimeouts) -> Timeouts {
    let d = Timeouts::default();
    Timeouts {
        load: c.duration("timeouts.load", raw.load.as_ref(), d.load),
        initialize: c.duration("timeouts.initialize", raw.initialize.as_ref(), d.initialize),
        start: c.duration("timeouts.start", raw.start.as_ref(), d.start),
        event: c.duration("timeouts.event", raw.event.as_ref(), d.event),
        shutdown: c.duration("timeouts.shutdown", raw.shutdown.as_ref(), d.shutdown),
        reload: c.duration("timeouts.reload", raw.reload.as_ref(), d.reload),
        build: c.duration("timeouts.build", raw.build.as_ref(), d.build),
        publish: c.duration("timeouts.publish", raw.publish.as_ref(), d.publish),
        shutdown_total: c.duration(
            "timeouts.shutdown_total",
            raw.shutdown_total.as_ref(),
            d.shutdown_total,
        ),
        test: c.duration("timeouts.test", raw.test.as_ref(), d.test),
    }
}

fn resources(c: &mut Checker, raw: &RawResources) -> ResourceSettings {
    let d = ResourceSettings::default();
    ResourceSettings {
        reserved_memory_fraction: c.fraction(
            "resources.reserved_memory_fraction",
            raw.reserved_memory_fraction.as_ref(),
            d.reserved_memory_fraction,
        ),
        memory_per_process_mb: c.count(
            "resources.memory_per_process_mb",
            raw.memory_per_process_mb.as_ref(),
            d.memory_per_process_mb,
        ),
        threads_per_core: c.count(
            "resources.threads_per_core",
            raw.threads_per_core.as_ref(),
            d.threads_per_core,
        ),
        usage_interval: c.duration(
            "resources.usage_interval",
            raw.usage_interval.as_ref(),
            d.usage_interval,
        ),
    }
}

fn logging(c: &mut Checker, raw: &RawLogging, root: &Path) -> LoggingSettings {
    let d = LoggingSettings::default();
    let dir = c.non_empty_text("logging.dir", raw.dir.as_ref(), &d.dir.to_string_lossy());
    LoggingSettings {
        level: level(c, raw.level.as_ref(), &d.level),
        format: format(c, raw.format.as_ref(), d.format),
        dir: root.join(dir),
        file: file_name(c, raw.file.as_ref(), &d.file),
        max_size_mb: c.count(
            "logging.max_size_mb",
            raw.max_size_mb.as_ref(),
            d.max_size_mb,
        ),
        max_files: c.count("logging.max_files", raw.max_files.as_ref(), d.max_files),
    }
}

/// `logging.level`: a level, or a filter such as `info,orch_runtime=debug`.
fn level(c: &mut Checker, raw: Option<&Spanned<String>>, default: &str) -> String {
    let text = c.non_empty_text("logging.level", raw, default);
    match (raw, bad_level(&text)) {
        (Some(raw), Some(bad)) => {
            c.error(
                &raw.referenced,
                format!("`logging.level`: `{bad}` is not a log level"),
                format!(
                    "{}use one of {}, or a filter such as `info,orch_runtime=debug`",
                    did_you_mean(bad, LEVELS),
                    LEVELS.join(", ")
                ),
            );
            default.to_owned()
        }
        _ => text,
    }
}

/// The first level word of a filter that is not a level. A lone word must be a
/// level (a bare target such as `hyper` is almost always a typo in a config file).
fn bad_level(filter: &str) -> Option<&str> {
    let directives: Vec<&str> = filter.split(',').map(str::trim).collect();
    directives.iter().find_map(|directive| {
        let level = match directive.rsplit_once('=') {
            Some((_, level)) => level.trim(),
            None if directives.len() == 1 => directive,
            None => return None,
        };
        (!LEVELS.contains(&level.to_ascii_lowercase().as_str())).then_some(level)
    })
}

/// `logging.format`: `human` or `json`.
fn format(c: &mut Checker, raw: Option<&Spanned<String>>, default: LogFormat) -> LogFormat {
    let Some(raw) = raw else { return default };
    let Some(text) = c.string(raw) else {
        return default;
    };
    match text.trim() {
        "human" => LogFormat::Human,
        "json" => LogFormat::Json,
        other => {
            c.error(
                &raw.referenced,
                format!("`logging.format` must be `human` or `json`, found `{other}`"),
                format!(
                    "{}write `format: human` for people or `format: json` for log collectors",
                    did_you_mean(other, ["human", "json"])
                ),
            );
            default
        }
    }
}

/// `logging.file`: a plain file name inside `logging.dir`.
fn file_name(c: &mut Checker, raw: Option<&Spanned<String>>, default: &str) -> String {
    let name = c.non_empty_text("logging.file", raw, default);
    match raw {
        Some(raw) if name.contains(['/', '\\']) => {
            c.error(
                &raw.referenced,
                format!("`logging.file` must be a file name, found the path `{name}`"),
                "put the folder in `logging.dir` and only the file name in `logging.file`",
            );
            default.to_owned()
        }
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_bad_levels() {
        assert_eq!(bad_level("info"), None);
        assert_eq!(bad_level("DEBUG"), None);
        assert_eq!(bad_level("info,orch_runtime=debug"), None);
        assert_eq!(bad_level("orch_runtime=debug,hyper"), None);
        assert_eq!(bad_level("verbose"), Some("verbose"));
        assert_eq!(bad_level("info,orch_runtime=loud"), Some("loud"));
    }
}
