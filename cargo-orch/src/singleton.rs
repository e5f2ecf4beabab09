//! What a lease change means on this node: a singleton module (see
//! `orch_runtime::lease`) starts when the bridge took its lease and stops
//! when the lease is lost; its events carry the lease's fence meanwhile.

use std::collections::HashMap;

use orch_runtime::lease::{Fences, LeaseChange};
use orch_runtime::supervisor::Supervisor;

use crate::hot_reload::HotReload;

/// Starts or stops the singleton `change` names.
pub fn apply(
    change: LeaseChange,
    supervisor: &mut Supervisor,
    reloader: &HotReload,
    fences: &Fences,
) {
    match change {
        LeaseChange::Acquired { module, fence } => {
            let running = supervisor.running().contains(&module.as_str());
            fences.set(&module, fence);
            if running {
                return;
            }
            let Some(spec) = reloader.config().module(&module).cloned() else {
                tracing::warn!("[SINGLETON] '{module}' is no longer declared; not started");
                fences.clear(&module);
                return;
            };
            let Some(library) = reloader.artifact_of(&spec) else {
                tracing::error!(
                    "[SINGLETON] '{module}': this node holds its lease but has no built library \
                     (package '{}'); the lease is given up for another node",
                    spec.package
                );
                fences.give_up(&module);
                return;
            };
            let artifacts = HashMap::from([(spec.package.clone(), library)]);
            match supervisor.add(&spec, &artifacts) {
                Ok(()) => tracing::info!(
                    "[SINGLETON] '{module}' started on this node (it holds the lease; fence {fence})"
                ),
                Err(failure) => {
                    tracing::error!(
                        "[SINGLETON] '{module}' holds the lease here but did not start: \
                         {failure}; the lease is given up for another node"
                    );
                    fences.give_up(&module);
                }
            }
        }
        LeaseChange::Lost { module, reason } => {
            if supervisor.running().contains(&module.as_str()) {
                if let Some(Err(failure)) = supervisor.remove(&module) {
                    tracing::warn!("[SINGLETON] '{module}' did not stop cleanly: {failure}");
                }
                tracing::warn!("[SINGLETON] '{module}' stopped on this node: {reason}");
            }
            fences.clear(&module);
        }
    }
}
