//! `idle_child` of `bench_bus bus`: the CPU time an isolated consumer's child
//! host uses while it has nothing to do.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use orch_config::Isolation;
use orch_config::workspace::Workspace;
use orch_runtime::bus::Bus;
use orch_runtime::isolation::{Transport, set_transport};
use orch_runtime::loader::Loader;
use orch_runtime::supervisor::Supervisor;
use serde_json::{Value, json};

use crate::{CONSUMER, spec, timeouts};

/// How long an idle isolated child is watched.
pub const IDLE: Duration = Duration::from_secs(10);

/// The CPU time (user + system, from `/proc/<pid>/stat`) of an isolated
/// consumer's child host over `period` with no event for it.
pub fn idle_child(
    workspace: &Workspace,
    artifacts: &HashMap<String, PathBuf>,
    transport: Transport,
    period: Duration,
) -> Result<Value, String> {
    set_transport(transport);
    let loader = Loader::new(&workspace.target_dir).map_err(|e| e.to_string())?;
    let mut supervisor = Supervisor::new(Bus::new(), loader, timeouts());
    let mut consumer = spec("idle-consumer", CONSUMER, json!({ "expect": 1 }));
    consumer.isolation = Isolation::Process;
    let report = supervisor.start(&[&consumer], artifacts);
    set_transport(Transport::SharedMemory);
    if let Some(failure) = report.failures.first() {
        return Err(failure.to_string());
    }
    let child = child_hosts()
        .into_iter()
        .next()
        .ok_or("no child host found")?;
    // Settle after start-up, then measure.
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_ticks(child)?;
    std::thread::sleep(period);
    let after = cpu_ticks(child)?;
    supervisor.shutdown("benchmark done");
    let tick_ms = 1000.0 / clock_ticks_per_s();
    Ok(json!({
        "transport": if transport == Transport::Pipe { "pipe" } else { "shm" },
        "seconds": period.as_secs_f64(),
        "cpu_ms": (after - before) as f64 * tick_ms,
    }))
}

/// This process's child module hosts.
fn child_hosts() -> Vec<u32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().nth(1));
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            ppid == Some(me.as_str()) && cmdline.windows(13).any(|w| w == b"__module-host")
        })
        .collect()
}

/// User + system clock ticks of `pid` so far.
fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    // After the name: state is field 3, utime 14 and stime 15 (1-based).
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    match (field(14), field(15)) {
        (Some(user), Some(system)) => Ok(user + system),
        _ => Err(format!("cannot read the CPU time of {pid}")),
    }
}

/// The kernel's clock ticks a second (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks_per_s() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(100.0)
}
