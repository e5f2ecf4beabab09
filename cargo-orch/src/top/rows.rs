//! The rows of `cargo orch top`: one per module, from two status reports a
//! moment apart (rates and handler quantiles over that moment), sorted, and
//! laid out to the screen's width.

use std::time::Duration;

use orch_runtime::status::{HANDLER_BUCKETS, ModuleStatus};

use crate::shown::one_line;

/// What the rows are sorted by (`s` cycles through them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortBy {
    /// Start order (as status lists them).
    #[default]
    Start,
    /// Events in per second, most first.
    EventsIn,
    /// Mailbox fill, fullest first.
    Mailbox,
    /// Handler p99, slowest first.
    HandlerP99,
    /// Restarts, most first.
    Restarts,
}

impl SortBy {
    /// The next key (`s`).
    pub fn next(self) -> Self {
        match self {
            Self::Start => Self::EventsIn,
            Self::EventsIn => Self::Mailbox,
            Self::Mailbox => Self::HandlerP99,
            Self::HandlerP99 => Self::Restarts,
            Self::Restarts => Self::Start,
        }
    }

    /// As the header shows it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Start => "start order",
            Self::EventsIn => "events in/s",
            Self::Mailbox => "mailbox",
            Self::HandlerP99 => "handler p99",
            Self::Restarts => "restarts",
        }
    }
}

/// One module's row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Its name.
    pub name: String,
    /// Its state.
    pub state: String,
    /// Events handled a second.
    pub in_per_s: f64,
    /// Events published a second.
    pub out_per_s: f64,
    /// Mailbox depth.
    pub depth: usize,
    /// Mailbox capacity.
    pub capacity: usize,
    /// Handler time, median, seconds (`None`: no calls yet).
    pub p50: Option<f64>,
    /// Handler time, 99th percentile, seconds.
    pub p99: Option<f64>,
    /// Restarts.
    pub restarts: u64,
    /// Circuit open.
    pub circuit_open: bool,
    /// The last error, on one line.
    pub last_error: String,
}

/// The upper bound of the bucket holding the `q` quantile of `counts`
/// (cumulative per bucket, the total last).
fn quantile(counts: &[u64], q: f64) -> Option<f64> {
    let total = *counts.last()?;
    if total == 0 {
        return None;
    }
    let wanted = (q * total as f64).ceil().max(1.0) as u64;
    let index = counts.iter().position(|&c| c >= wanted)?;
    Some(HANDLER_BUCKETS.get(index).copied().unwrap_or(f64::INFINITY))
}

/// The rows of `now`, with rates and quantiles since `before` (`elapsed`
/// apart); a module new since `before` counts from zero.
pub fn rows(before: &[ModuleStatus], now: &[ModuleStatus], elapsed: Duration) -> Vec<Row> {
    let seconds = elapsed.as_secs_f64().max(1e-3);
    now.iter()
        .map(|module| {
            let old = before.iter().find(|m| m.name == module.name);
            let delta = |get: fn(&ModuleStatus) -> u64| {
                get(module).saturating_sub(old.map_or(0, get)) as f64 / seconds
            };
            let buckets: Vec<u64> = match old {
                Some(old) if old.handler_buckets.len() == module.handler_buckets.len() => module
                    .handler_buckets
                    .iter()
                    .zip(&old.handler_buckets)
                    .map(|(n, o)| n.saturating_sub(*o))
                    .collect(),
                _ => module.handler_buckets.clone(),
            };
            // No call in the moment: the whole life's quantiles.
            let counts = if buckets.last().copied().unwrap_or(0) == 0 {
                &module.handler_buckets
            } else {
                &buckets
            };
            Row {
                name: module.name.clone(),
                state: module.state.as_str().to_owned(),
                in_per_s: delta(|m| m.events_in),
                out_per_s: delta(|m| m.events_out),
                depth: module.mailbox_depth,
                capacity: module.mailbox_capacity,
                p50: quantile(counts, 0.5),
                p99: quantile(counts, 0.99),
                restarts: module.restarts,
                circuit_open: module.circuit_open,
                last_error: module
                    .last_error
                    .as_ref()
                    .map(|e| one_line(&format!("{}: {}", e.phase, e.message)).into_owned())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// Sorts `rows` by `key` (start order keeps theirs).
pub fn sort(rows: &mut [Row], key: SortBy) {
    let fill = |r: &Row| r.depth as f64 / r.capacity.max(1) as f64;
    match key {
        SortBy::Start => {}
        SortBy::EventsIn => rows.sort_by(|a, b| b.in_per_s.total_cmp(&a.in_per_s)),
        SortBy::Mailbox => rows.sort_by(|a, b| fill(b).total_cmp(&fill(a))),
        SortBy::HandlerP99 => {
            rows.sort_by(|a, b| b.p99.unwrap_or(-1.0).total_cmp(&a.p99.unwrap_or(-1.0)))
        }
        SortBy::Restarts => rows.sort_by_key(|r| std::cmp::Reverse(r.restarts)),
    }
}

/// A duration in seconds as top shows it (`<=50µs`, `<=5ms`, `>5s`).
fn time(seconds: Option<f64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s.is_infinite() => ">5s".into(),
        Some(s) if s < 0.001 => format!("<={:.0}µs", s * 1e6),
        Some(s) if s < 1.0 => format!("<={:.0}ms", s * 1e3),
        Some(s) => format!("<={s:.0}s"),
    }
}

/// Cuts `text` to `width` characters.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// The table: a header line and one line per row, none wider than `width`.
pub fn table(rows: &[Row], width: usize) -> Vec<String> {
    let name_width = rows
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(6)
        .clamp(6, 28);
    let mut lines = vec![fit(
        &format!(
            "{:<name_width$} {:<10} {:>8} {:>8} {:>11} {:>8} {:>8} {:>4} {:>7} LAST ERROR",
            "MODULE", "STATE", "IN/s", "OUT/s", "MAILBOX", "P50", "P99", "RST", "CIRCUIT"
        ),
        width,
    )];
    for row in rows {
        let line = format!(
            "{:<name_width$} {:<10} {:>8.1} {:>8.1} {:>11} {:>8} {:>8} {:>4} {:>7} {}",
            fit(&row.name, name_width),
            row.state,
            row.in_per_s,
            row.out_per_s,
            format!("{}/{}", row.depth, row.capacity),
            time(row.p50),
            time(row.p99),
            row.restarts,
            if row.circuit_open { "open" } else { "-" },
            row.last_error
        );
        lines.push(fit(&line, width));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_buckets() {
        // 10 calls: 5 within 10µs, 9 within 1ms, all within 5ms.
        let mut counts = vec![5, 5, 5, 5, 9, 10, 10, 10, 10, 10, 10, 10];
        counts.push(10);
        assert_eq!(quantile(&counts, 0.5), Some(0.000_01));
        assert_eq!(quantile(&counts, 0.99), Some(0.005));
        assert_eq!(quantile(&[0; 13], 0.5), None);
        let mut slow = vec![0; 12];
        slow.push(3);
        assert_eq!(quantile(&slow, 0.5), Some(f64::INFINITY));
    }

    #[test]
    fn the_table_fits_the_width() {
        let row = Row {
            name: "mod-dummy-consumer".into(),
            state: "running".into(),
            in_per_s: 12.0,
            out_per_s: 0.0,
            depth: 3,
            capacity: 1000,
            p50: Some(0.000_05),
            p99: Some(0.005),
            restarts: 1,
            circuit_open: false,
            last_error: "on_event: a very long error ".repeat(10),
        };
        for width in [40, 80, 200] {
            let lines = table(std::slice::from_ref(&row), width);
            assert!(
                lines.iter().all(|l| l.chars().count() <= width),
                "{lines:?}"
            );
        }
        let wide = table(&[row], 200);
        assert!(
            wide[1].contains("3/1000") && wide[1].contains("<=5ms"),
            "{wide:?}"
        );
    }
}
