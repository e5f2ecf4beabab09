//! `cargo orch logs [MODULE] [--follow] [--since DURATION] [--level LEVEL]`:
//! the log lines of one module or of all, read from the log files
//! (`logging.dir`/`logging.file` and its rotated copies, oldest first).
//!
//! A record starts with its RFC 3339 time (the file layer's human format:
//! `TIME LEVEL target: message`) or is a JSON object (`{"timestamp", "level",
//! "target", "fields": {"message"}}`); a line that starts otherwise continues
//! the record before it (a message with newlines). A module's own lines are
//! those its `ctx.log` wrote: target `module`, message `[NAME] ...`.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;

use crate::cli::{EXIT_USAGE, GlobalArgs, LogsArgs};
use crate::session::Session;

/// Severity, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// `TRACE`.
    Trace,
    /// `DEBUG`.
    Debug,
    /// `INFO`.
    Info,
    /// `WARN`.
    Warn,
    /// `ERROR`.
    Error,
}

impl Level {
    /// Parses `trace`..`error` (any case, `warning` too).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "trace" => Some(Self::Trace),
            "debug" => Some(Self::Debug),
            "info" => Some(Self::Info),
            "warn" | "warning" => Some(Self::Warn),
            "error" => Some(Self::Error),
            _ => None,
        }
    }
}

/// One log record: its text (all its lines) and what was read off it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The record as written.
    pub text: String,
    /// Seconds since the Unix epoch.
    pub time: Option<f64>,
    /// Its level.
    pub level: Option<Level>,
    /// The module that wrote it (`ctx.log`), if one did.
    pub module: Option<String>,
}

/// Whether `line` starts a record (a time or a JSON object).
fn starts_record(line: &str) -> bool {
    line.starts_with('{') || parse_time(line.split_whitespace().next().unwrap_or("")).is_some()
}

/// `2026-12-06T19:54:08.633392Z` as seconds since the Unix epoch.
fn parse_time(text: &str) -> Option<f64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date_parts = date.split('-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (
        date_parts.next()??,
        date_parts.next()??,
        date_parts.next()??,
    );
    let mut time_parts = time.split(':');
    let hour: i64 = time_parts.next()?.parse().ok()?;
    let minute: i64 = time_parts.next()?.parse().ok()?;
    let second: f64 = time_parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // Days since the epoch (Howard Hinnant's civil-from-days, inverted).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hour * 3_600 + minute * 60) as f64 + second)
}

/// Reads what a record's first line says.
fn describe(first: &str) -> (Option<f64>, Option<Level>, Option<String>) {
    if first.starts_with('{') {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(first) else {
            return (None, None, None);
        };
        let time = value["timestamp"].as_str().and_then(parse_time);
        let level = value["level"].as_str().and_then(Level::parse);
        let message = value["fields"]["message"].as_str().unwrap_or_default();
        let module = (value["target"] == "module")
            .then(|| module_of(message))
            .flatten();
        return (time, level, module);
    }
    let mut words = first
        .splitn(4, char::is_whitespace)
        .filter(|w| !w.is_empty());
    let time = words.next().and_then(parse_time);
    let rest = first
        .split_once(char::is_whitespace)
        .map_or("", |(_, rest)| rest.trim_start());
    let (level, rest) = rest
        .split_once(char::is_whitespace)
        .map_or((None, ""), |(level, rest)| {
            (Level::parse(level), rest.trim_start())
        });
    let module = rest.strip_prefix("module: ").and_then(module_of);
    (time, level, module)
}

/// `[NAME] message` → `NAME`.
fn module_of(message: &str) -> Option<String> {
    let name = message.strip_prefix('[')?.split_once(']')?.0;
    (!name.is_empty()).then(|| name.to_owned())
}

/// Splits `text` into records.
pub fn records(text: &str) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    for line in text.lines() {
        if starts_record(line) || out.is_empty() {
            let (time, level, module) = describe(line);
            out.push(Record {
                text: line.to_owned(),
                time,
                level,
                module,
            });
        } else if let Some(last) = out.last_mut() {
            last.text.push('\n');
            last.text.push_str(line);
        }
    }
    out
}

/// What to show.
struct Filter {
    module: Option<String>,
    since: Option<f64>,
    level: Option<Level>,
}

impl Filter {
    fn keeps(&self, record: &Record) -> bool {
        self.module
            .as_ref()
            .is_none_or(|m| record.module.as_ref() == Some(m))
            && self
                .since
                .is_none_or(|since| record.time.is_some_and(|t| t >= since))
            && self
                .level
                .is_none_or(|min| record.level.is_some_and(|l| l >= min))
    }
}

/// The log file and its rotated copies (`FILE.N` ... `FILE.1`, then `FILE`),
/// oldest first.
fn files(path: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(u32, PathBuf)> = Vec::new();
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str()))
        && let Ok(listing) = std::fs::read_dir(dir)
    {
        for entry in listing.filter_map(Result::ok) {
            let file = entry.file_name();
            let Some(file) = file.to_str() else { continue };
            if let Some(n) = file
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('.'))
                .and_then(|n| n.parse::<u32>().ok())
            {
                rotated.push((n, entry.path()));
            }
        }
    }
    rotated.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    let mut all: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    all.push(path.to_path_buf());
    all
}

/// `cargo orch logs`.
pub fn run(global: &GlobalArgs, args: &LogsArgs) -> anyhow::Result<ExitCode> {
    let session = Session::open(global)?;
    let config = &session.config;
    if let Some(module) = &args.module
        && config.module(module).is_none()
    {
        let names: Vec<&str> = config.modules.iter().map(|m| m.name.as_str()).collect();
        eprintln!(
            "error: no module named '{module}' is declared in modules.yaml\n  hint: declared: {}",
            names.join(", ")
        );
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    let level = match &args.level {
        Some(text) => match Level::parse(text) {
            Some(level) => Some(level),
            None => {
                eprintln!(
                    "error: --level {text} is not a level\n  hint: trace, debug, info, warn or error"
                );
                return Ok(ExitCode::from(EXIT_USAGE));
            }
        },
        None => None,
    };
    let since = match &args.since {
        Some(text) => match orch_sdk::duration::parse(text) {
            Ok(back) => Some(now_secs() - back.as_secs_f64()),
            Err(e) => {
                eprintln!("error: --since {text}: {e}\n  hint: for example --since 10m");
                return Ok(ExitCode::from(EXIT_USAGE));
            }
        },
        None => None,
    };
    let filter = Filter {
        module: args.module.clone(),
        since,
        level,
    };
    let logging = &config.main.logging;
    let path = session
        .workspace
        .root
        .join(&logging.dir)
        .join(&logging.file);
    let mut shown = 0usize;
    for file in files(&path) {
        let Ok(text) = std::fs::read(&file) else {
            continue;
        };
        for record in records(&String::from_utf8_lossy(&text)) {
            if filter.keeps(&record) {
                println!("{}", record.text);
                shown += 1;
            }
        }
    }
    if !args.follow {
        if shown == 0 && !path.exists() {
            eprintln!(
                "no log file at {} yet: cargo orch run writes it (logging.dir and logging.file \
                 in main.yaml)",
                path.display()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    follow(&path, &filter)
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Prints the records appended to `path` from now on until the process is
/// interrupted; a rotated (shorter) file is read from its start.
fn follow(path: &Path, filter: &Filter) -> anyhow::Result<ExitCode> {
    let mut offset = std::fs::metadata(path).map_or(0, |m| m.len());
    let mut pending = String::new();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let Ok(mut file) = std::fs::File::open(path) else {
            continue;
        };
        let len = file.metadata().map_or(0, |m| m.len());
        if len < offset {
            offset = 0;
        }
        if len == offset {
            continue;
        }
        file.seek(SeekFrom::Start(offset))
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut chunk = Vec::new();
        // At most 4 MiB a round: a flood is read over several.
        file.take(4 * 1024 * 1024).read_to_end(&mut chunk)?;
        offset += chunk.len() as u64;
        pending.push_str(&String::from_utf8_lossy(&chunk));
        // Complete lines only; a record's continuation lines may still come.
        let Some(cut) = pending.rfind('\n') else {
            continue;
        };
        let complete: String = pending.drain(..=cut).collect();
        for record in records(&complete) {
            if filter.keeps(&record) {
                println!("{}", record.text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
2026-12-06T19:54:05.627580Z  INFO module: [mod-dummy-producer] Published test.ping: hello (seq 2)
2026-12-06T19:54:05.627667Z  WARN module: [mod-dummy-consumer] slow
  second line of the same record
2026-12-06T19:54:08.629421Z  INFO orch_runtime::supervisor::stop: Shutting down (SIGINT received)
{\"timestamp\":\"2026-12-06T19:54:09.000000Z\",\"level\":\"ERROR\",\"fields\":{\"message\":\"[mod-dummy-consumer] boom\"},\"target\":\"module\"}
";

    #[test]
    fn records_are_split_and_read() {
        let all = records(LOG);
        assert_eq!(all.len(), 4);
        assert_eq!(all[1].module.as_deref(), Some("mod-dummy-consumer"));
        assert!(all[1].text.ends_with("second line of the same record"));
        assert_eq!(all[1].level, Some(Level::Warn));
        assert_eq!(all[2].module, None);
        assert_eq!(all[3].module.as_deref(), Some("mod-dummy-consumer"));
        assert_eq!(all[3].level, Some(Level::Error));
        let t = all[0].time.expect("time");
        assert!((t - 1_796_586_845.627_58).abs() < 0.001, "{t}");
    }

    #[test]
    fn filters_by_module_level_and_time() {
        let all = records(LOG);
        let keep = |filter: Filter| all.iter().filter(|r| filter.keeps(r)).count();
        let by_module = Filter {
            module: Some("mod-dummy-consumer".into()),
            since: None,
            level: None,
        };
        assert_eq!(keep(by_module), 2);
        let warn = Filter {
            module: None,
            since: None,
            level: Some(Level::Warn),
        };
        assert_eq!(keep(warn), 2);
        let late = Filter {
            module: None,
            since: Some(1_796_586_848.0),
            level: None,
        };
        assert_eq!(keep(late), 2);
    }

    #[test]
    fn rotated_files_come_oldest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["app.log", "app.log.1", "app.log.2", "app.log.x"] {
            std::fs::write(dir.path().join(name), "").expect("write");
        }
        let names: Vec<String> = files(&dir.path().join("app.log"))
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        assert_eq!(names, ["app.log.2", "app.log.1", "app.log"]);
    }
}
