//! A scratch host: loads one module alone, runs its whole lifecycle (ABI check,
//! initialize, start, shutdown) and unloads it, without running the application.
//! `cargo orch check` and the load-check row of `cargo orch test` use it.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::bus::Bus;
use crate::error::{Cause, ModuleFailure, Phase};
use crate::loader::Loader;
use crate::supervisor::Supervisor;
use orch_config::{ModuleSpec, Timeouts};

/// Runs `spec`'s library at `artifact` through its lifecycle in a host of its own;
/// returns how long it took, or the first failure with its phase.
pub fn run(
    spec: &ModuleSpec,
    artifact: &Path,
    target_dir: &Path,
    timeouts: Timeouts,
) -> Result<Duration, ModuleFailure> {
    let started = Instant::now();
    let loader = Loader::new(target_dir).map_err(|e| {
        ModuleFailure::new(
            &spec.name,
            Phase::Load,
            Cause::Host(format!("cannot create the folder for library copies: {e}")),
        )
    })?;
    let mut supervisor = Supervisor::new(Bus::new(), loader, timeouts);
    let artifacts = HashMap::from([(spec.package.clone(), artifact.to_path_buf())]);
    let report = supervisor.start(&[spec], &artifacts);
    if let Some(failure) = report.failures.into_iter().next() {
        supervisor.shutdown("load check failed");
        return Err(failure);
    }
    match supervisor.shutdown("load check done").into_iter().next() {
        Some(failure) => Err(failure),
        None => Ok(started.elapsed()),
    }
}
