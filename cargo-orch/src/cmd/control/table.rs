//! The status table.

use orch_operate::protocol::StatusReport;
use std::fmt::Write as _;

use crate::shown::one_line;

/// The report as a header line, one row per module and the bridge's line.
pub fn render(report: &StatusReport) -> String {
    let mut out = String::new();
    let env = report
        .environment
        .as_ref()
        .map(|env| format!(", env {env}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{} {}: pid {}, up {}, {}{}",
        one_line(&report.app),
        one_line(&report.version),
        report.pid,
        seconds(report.uptime_secs),
        if report.ready { "ready" } else { "not ready" },
        one_line(&env)
    );
    if let Some(bundle) = &report.bundle {
        let _ = writeln!(
            out,
            "bundle {} {}: commit {}, digest {}, {}",
            one_line(&bundle.app),
            one_line(&bundle.version),
            one_line(&bundle.commit),
            one_line(bundle.digest.get(..12).unwrap_or(&bundle.digest)),
            match &bundle.signed_by {
                Some(key) => format!("signed by key {}", one_line(key)),
                None => "UNSIGNED".to_string(),
            }
        );
        for (module, sha256) in &bundle.libraries {
            let _ = writeln!(
                out,
                "  library of {}: sha256 {}",
                one_line(module),
                one_line(sha256)
            );
        }
    }
    let header = [
        "MODULE",
        "STATE",
        "GEN",
        "ISOLATION",
        "PID",
        "UPTIME",
        "IN",
        "OUT",
        "MAILBOX",
        "RESTARTS",
        "LAST ERROR",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    for m in &report.modules {
        rows.push(vec![
            one_line(&m.name).into_owned(),
            m.state.as_str().to_owned(),
            m.generation.to_string(),
            one_line(&m.isolation).into_owned(),
            m.pid.map_or_else(|| "-".into(), |p| p.to_string()),
            m.uptime_secs.map_or_else(|| "-".into(), seconds),
            m.events_in.to_string(),
            m.events_out.to_string(),
            format!("{}/{}", m.mailbox_depth, m.mailbox_capacity),
            m.restarts.to_string(),
            m.last_error.as_ref().map_or_else(
                || "-".into(),
                |e| format!("{}: {}", one_line(&e.phase), first_line(&e.message)),
            ),
        ]);
    }
    write_rows(&mut out, &rows);
    if report.modules.is_empty() {
        let _ = writeln!(out, "(no module has started)");
    }
    if let Some(b) = &report.bridge {
        let _ = writeln!(
            out,
            "bridge: node {}, {}, exported {}, imported {}, reconnects {}, outbox {}/{}",
            one_line(&b.node),
            match (&b.server, b.connected) {
                (Some(server), true) => format!("connected to {}", one_line(server)),
                (Some(server), false) => format!("disconnected (last {})", one_line(server)),
                (None, _) => "not connected yet".into(),
            },
            b.exported,
            b.imported,
            b.reconnects,
            b.outbox_depth,
            b.outbox_capacity
        );
        let r = &b.requests;
        if r.asked + r.served + r.unserved + r.malformed > 0 {
            let _ = writeln!(
                out,
                "requests: asked {} ({} replies, {} no responders, {} late, {} refused), \
                 served {} ({} replies, {} unserved, {} expired), {} malformed",
                r.asked,
                r.replies,
                r.no_responders,
                r.late,
                r.ask_refused,
                r.served,
                r.served_replies,
                r.unserved,
                r.expired,
                r.malformed
            );
        }
        for w in &b.work {
            let _ = writeln!(
                out,
                "work group {} ({}): {} taken, {} handled, {} held (peak {} of {}), {} \
                 redelivered, {} repeats, {} refused, {} dead letters",
                one_line(&w.group),
                if w.durable { "JetStream" } else { "core NATS" },
                w.taken,
                w.handled,
                w.in_flight,
                w.in_flight_peak,
                w.max_in_flight,
                w.redelivered,
                w.repeats,
                w.refused,
                w.dead_letters
            );
        }
    }
    out
}

/// `rows` (the first one the header) in aligned columns, the last one
/// left as it is.
fn write_rows(out: &mut String, rows: &[Vec<String>]) {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |cell| cell.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[c]);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

/// The cluster as `report`'s node sees it (`status --cluster`): one row per
/// node and module. `Err` when the node has no presence.
pub fn render_cluster(report: &StatusReport) -> Result<String, String> {
    let nodes = match &report.bridge {
        Some(bridge) if !bridge.nodes.is_empty() => &bridge.nodes,
        Some(bridge) => {
            return Err(format!(
                "node {} sees no cluster: its main.yaml has no bridge.nats.presence section, \
                 or it has not reached the bucket yet",
                one_line(&bridge.node)
            ));
        }
        None => {
            return Err(format!(
                "{} (pid {}) has no bridge: no cluster to show",
                one_line(&report.app),
                report.pid
            ));
        }
    };
    let mut out = String::new();
    let ready = nodes.iter().filter(|n| n.record.ready).count();
    let _ = writeln!(
        out,
        "cluster of {} node(s), {ready} ready, as node {} sees it",
        nodes.len(),
        report
            .bridge
            .as_ref()
            .map_or_else(String::new, |b| one_line(&b.node).into_owned())
    );
    let header = [
        "NODE", "VERSION", "BUNDLE", "READY", "SEEN", "MODULE", "STATE", "GEN",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    for node in nodes {
        let r = &node.record;
        let first = [
            one_line(&r.node).into_owned(),
            one_line(&r.version).into_owned(),
            r.bundle_digest.as_deref().map_or_else(
                || "-".into(),
                |d| one_line(d.get(..12).unwrap_or(d)).into_owned(),
            ),
            if r.ready { "yes" } else { "no" }.to_owned(),
            format!("{:.1}s ago", node.last_seen_ms as f64 / 1000.0),
        ];
        if r.modules.is_empty() {
            let mut row = first.to_vec();
            row.extend(["-".into(), "-".into(), "-".into()]);
            rows.push(row);
        }
        for (i, m) in r.modules.iter().enumerate() {
            let mut row = if i == 0 {
                first.to_vec()
            } else {
                vec![String::new(); first.len()]
            };
            row.extend([
                one_line(&m.name).into_owned(),
                one_line(&m.state).into_owned(),
                m.generation.to_string(),
            ]);
            rows.push(row);
        }
    }
    write_rows(&mut out, &rows);
    Ok(out)
}

/// `45s`, `3m12s`, `2h05m`, `3d04h`.
fn seconds(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{}m{:02}s", s / 60, s % 60),
        3_600..86_400 => format!("{}h{:02}m", s / 3_600, s % 3_600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3_600),
    }
}

/// At most 80 characters of the first line, escaped.
fn first_line(text: &str) -> String {
    let line = one_line(text.lines().next().unwrap_or_default()).into_owned();
    if line.chars().count() > 80 {
        format!("{}...", line.chars().take(77).collect::<String>())
    } else {
        line.to_owned()
    }
}
