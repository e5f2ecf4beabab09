//! Resource limits computed from the machine and `config/main.yaml`, and a
//! periodic usage line in the log.

use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, bounded};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use orch_config::ResourceSettings;

/// Limits derived from the machine: how many module processes and threads fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResourceLimits {
    /// Total RAM in MiB.
    pub total_memory_mb: u64,
    /// Logical cores.
    pub cores: usize,
    /// `(total RAM x (1 - reserved fraction)) / per-process MB`, at least 1.
    pub max_processes: u64,
    /// `cores x threads_per_core`.
    pub max_threads: u64,
}

impl ResourceLimits {
    /// Computes the limits for a machine with `total_memory_mb` and `cores`.
    pub fn compute(total_memory_mb: u64, cores: usize, settings: &ResourceSettings) -> Self {
        let usable = total_memory_mb as f64 * (1.0 - settings.reserved_memory_fraction);
        let per_process = settings.memory_per_process_mb.max(1) as f64;
        Self {
            total_memory_mb,
            cores,
            max_processes: ((usable / per_process).floor() as u64).max(1),
            max_threads: cores as u64 * u64::from(settings.threads_per_core),
        }
    }
}

/// Reads the machine through sysinfo and logs limits and usage.
pub struct ResourceManager {
    limits: ResourceLimits,
    reporter: Option<(Sender<()>, JoinHandle<()>)>,
}

impl ResourceManager {
    /// Measures the machine and computes the limits from `settings`.
    pub fn new(settings: &ResourceSettings) -> Self {
        let total_memory = System::new().map_or(0, |mut system| {
            system.refresh_memory();
            system.total_memory()
        });
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let limits = ResourceLimits::compute(total_memory / (1024 * 1024), cores, settings);
        Self {
            limits,
            reporter: None,
        }
    }

    /// The computed limits.
    pub fn limits(&self) -> ResourceLimits {
        self.limits
    }

    /// Logs the limits once.
    pub fn log_limits(&self, settings: &ResourceSettings) {
        let l = self.limits;
        tracing::info!(
            "[RESOURCES] {} MiB RAM, {} cores: max processes {} ({} MiB each, {:.0}% reserved), \
             max threads {} ({} per core)",
            l.total_memory_mb,
            l.cores,
            l.max_processes,
            settings.memory_per_process_mb,
            settings.reserved_memory_fraction * 100.0,
            l.max_threads,
            settings.threads_per_core,
        );
    }

    /// Logs this process's memory, CPU and thread count every `interval` until
    /// the manager is dropped.
    pub fn start_usage_reports(&mut self, interval: Duration) {
        let (stop, stopped) = bounded::<()>(0);
        let handle = std::thread::Builder::new()
            .name("orch-resources".into())
            .spawn(move || {
                let pid = Pid::from_u32(std::process::id());
                let Ok(mut system) = System::new() else {
                    tracing::warn!("[RESOURCES] cannot read system information; no usage reports");
                    return;
                };
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(interval)
                {
                    log_usage(&mut system, pid);
                }
            });
        if let Ok(handle) = handle {
            self.reporter = Some((stop, handle));
        }
    }
}

fn log_usage(system: &mut System, pid: Pid) {
    system.refresh_memory();
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        true,
        ProcessRefreshKind::nothing()
            .with_memory()
            .with_cpu()
            .with_tasks(),
    );
    let Some(process) = system.process(pid) else {
        return;
    };
    let threads = process.tasks().map_or(0, |t| t.len());
    tracing::info!(
        "[RESOURCES] usage: {:.1} MiB resident, {:.1}% CPU, {threads} threads; system {} of {} MiB used",
        process.memory() as f64 / (1024.0 * 1024.0),
        process.cpu_usage(),
        system.used_memory() / (1024 * 1024),
        system.total_memory() / (1024 * 1024),
    );
}

impl Drop for ResourceManager {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.reporter.take() {
            drop(stop);
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(reserved: f64, per_process: u64, threads_per_core: u32) -> ResourceSettings {
        ResourceSettings {
            reserved_memory_fraction: reserved,
            memory_per_process_mb: per_process,
            threads_per_core,
            usage_interval: Duration::from_secs(60),
        }
    }

    #[test]
    fn computes_limits_from_the_formula() {
        let limits = ResourceLimits::compute(24_000, 2, &settings(0.2, 256, 4));
        assert_eq!(limits.max_processes, 75); // 24000 * 0.8 / 256 = 75
        assert_eq!(limits.max_threads, 8);
        let tiny = ResourceLimits::compute(100, 1, &settings(0.5, 4096, 1));
        assert_eq!(tiny.max_processes, 1, "never zero");
    }

    #[test]
    fn measures_this_machine() {
        let manager = ResourceManager::new(&settings(0.2, 256, 4));
        assert!(manager.limits().total_memory_mb > 0);
        assert!(manager.limits().cores >= 1);
    }
}
