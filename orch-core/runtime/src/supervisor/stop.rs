//! Stopping modules: the whole application at shutdown, or one module taken
//! out (and another added) while the others run (`modules.yaml` edits).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use orch_config::ModuleSpec;
use orch_sdk::duration::human;
use orch_sdk::events::{AppShutdown, ModuleUnloaded};

use super::{RunningModule, Supervisor};
use crate::error::{Cause, ModuleFailure, Phase};

impl Supervisor {
    /// Publishes `app.shutdown`, then shuts every module down in reverse startup
    /// order (each after the events already in its mailbox) and unloads it.
    /// Returns the modules whose `shutdown` failed.
    pub fn shutdown(&mut self, reason: &str) -> Vec<ModuleFailure> {
        let mut failures = Vec::new();
        if self.running.is_empty() && self.watchdog.is_none() {
            return failures;
        }
        tracing::info!("Shutting down ({reason})");
        self.stopping.store(true, Ordering::Release);
        self.bus.publish_system(&AppShutdown {
            reason: reason.to_owned(),
        });
        while let Some(module) = self.running.pop() {
            let name = module.spec.name.clone();
            let control = self.control.clone();
            failures.extend(control.in_step(&name, Phase::Shutdown, || self.stop_module(module)));
        }
        self.services.timers.stop();
        if let Some((stop, handle)) = self.watchdog.take() {
            drop(stop);
            let _ = handle.join();
        }
        if !self.stuck.is_empty() {
            let names: Vec<&str> = self.stuck.iter().map(|a| &**a.name()).collect();
            tracing::warn!(
                "stuck module threads abandoned at exit: {}",
                names.join(", ")
            );
        }
        tracing::info!("Shutdown complete");
        failures
    }

    /// Calls `shutdown` on one module (after the events already in its mailbox),
    /// drops its subscriptions and timers, ends its thread and unloads it.
    fn stop_module(&mut self, module: RunningModule) -> Option<ModuleFailure> {
        let timeout = self.timeouts.shutdown;
        let name = module.spec.name.clone();
        let started = Instant::now();
        let outcome = module
            .actor
            .call_module(Phase::Shutdown, timeout, |m| m.shutdown());
        module.ctx.drop_subscriptions_and_timers();
        self.services.requests.forget(&name);
        self.bus.remove(module.ctx.id);
        self.unwatch(&name);
        let failure = match outcome {
            Ok(()) => {
                tracing::info!(
                    "[TIMING] module '{name}' shut down in {}",
                    human(started.elapsed())
                );
                None
            }
            Err(failure) => {
                self.report_failure(&failure);
                if matches!(failure.cause, Cause::Timeout(_)) {
                    // Stuck in module code: waiting for its thread again is pointless.
                    self.stuck.push(module.actor);
                    return Some(failure);
                }
                Some(failure)
            }
        };
        match module.actor.stop(timeout) {
            Ok(state) => {
                self.retire(state);
                tracing::info!("module '{name}' unloaded");
                self.bus
                    .publish_system(&ModuleUnloaded { name: name.clone() });
            }
            Err(actor) => {
                tracing::warn!(
                    "module '{name}' did not stop within {} (timeouts.{}); its library stays loaded",
                    human(timeout),
                    Phase::Shutdown.timeout_key()
                );
                self.stuck.push(actor);
            }
        }
        failure
    }

    /// Shuts down and unloads the running module `name` while the others run.
    /// `None` if no such module runs.
    pub fn remove(&mut self, name: &str) -> Option<Result<(), ModuleFailure>> {
        let index = self.running.iter().position(|m| m.spec.name == name)?;
        let module = self.running.remove(index);
        Some(self.stop_module(module).map_or(Ok(()), Err))
    }

    /// Loads, initializes and starts one more module while the others run.
    pub fn add(
        &mut self,
        spec: &ModuleSpec,
        artifacts: &HashMap<String, PathBuf>,
    ) -> Result<(), ModuleFailure> {
        let module = self.load(spec, artifacts)?;
        if let Err(failure) = self.step(&module, Phase::Initialize) {
            self.discard(module, &failure);
            return Err(failure);
        }
        self.announce_loaded(&module);
        module.ctx.set_may_publish(true);
        if let Err(failure) = self.step(&module, Phase::Start) {
            self.discard(module, &failure);
            return Err(failure);
        }
        self.board.running(&spec.name, module.generation);
        self.running.push(module);
        Ok(())
    }

    /// The running module `name`'s entry.
    pub fn spec_of(&self, name: &str) -> Option<&ModuleSpec> {
        self.running
            .iter()
            .find(|m| m.spec.name == name)
            .map(|m| &m.spec)
    }
}
