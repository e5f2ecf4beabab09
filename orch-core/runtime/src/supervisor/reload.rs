//! Reload is a transaction: pause delivery, `save_state`, `shutdown`, drop the
//! module's subscriptions and timers, load the new generation from a unique copy,
//! `initialize(config, state)`, `start`, resume. Any failure (load, ABI, panic,
//! error, timeout) rolls back to the old generation, re-initialized from the saved
//! state. Events published meanwhile wait in the mailbox and reach whichever
//! generation runs afterwards: none is lost, none is delivered twice.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use orch_sdk::events::{ModuleReloadFailed, ModuleReloaded};

use super::{RunningModule, Supervisor};
use crate::actor::{Actor, ActorState};
use crate::error::{Cause, ModuleFailure, Phase};
use orch_config::ModuleSpec;

/// A successful reload.
#[derive(Debug, Clone, Copy)]
pub struct ReloadReport {
    /// The generation now running.
    pub generation: u32,
    /// From pausing delivery to resuming it.
    pub swap: Duration,
}

impl Supervisor {
    /// Swaps module `name` to a new generation loaded from `artifact`, with
    /// `spec`'s config (its new entry in modules.yaml, or the current one).
    /// Publishes `module.reloaded` or `module.reload_failed`; on failure the old
    /// generation keeps running, re-initialized from its saved state.
    pub fn reload(
        &mut self,
        name: &str,
        artifact: &Path,
        spec: Option<&ModuleSpec>,
        build: Duration,
    ) -> Result<ReloadReport, ModuleFailure> {
        let Some(index) = self.running.iter().position(|m| m.spec.name == name) else {
            return Err(ModuleFailure::new(
                name,
                Phase::Reload,
                Cause::Host("the module is not running".into()),
            ));
        };
        // The new library's topic types first: a refusal touches nothing.
        let types = match self.types_for_reload(name, artifact) {
            Ok(types) => types,
            Err(failure) => {
                self.publish_reload_failed(&failure);
                return Err(failure);
            }
        };
        let module = self.running.remove(index);
        let started = Instant::now();
        let new_spec = spec.cloned().unwrap_or_else(|| module.spec.clone());
        match self.swap(module, artifact, new_spec) {
            Ok(module) => {
                let report = ReloadReport {
                    generation: module.generation,
                    swap: started.elapsed(),
                };
                self.running.insert(index, module);
                self.set_types(name, types);
                self.bus.publish_system(&ModuleReloaded {
                    name: name.to_owned(),
                    generation: report.generation,
                    build_ms: build.as_secs_f64() * 1e3,
                    swap_ms: report.swap.as_secs_f64() * 1e3,
                });
                Ok(report)
            }
            Err((module, failure)) => {
                let lost = module.is_none();
                if let Some(module) = module {
                    self.running.insert(index, module);
                }
                self.publish_reload_failed(&failure);
                if lost {
                    self.board
                        .out(name, crate::status::ModuleState::Failed, None);
                }
                Err(failure)
            }
        }
    }

    /// Publishes `module.reload_failed` for a failure found before the swap (a
    /// build error): the running generation was not touched.
    pub fn publish_reload_failed(&self, failure: &ModuleFailure) {
        tracing::error!("[RELOAD] {failure}");
        self.bus.publish_system(&ModuleReloadFailed {
            name: failure.module.clone(),
            phase: failure.phase.as_str().to_owned(),
            error: failure.cause.to_string(),
            hint: failure.hint.clone(),
        });
    }

    /// The transaction. Returns the module (new generation, or the old one rolled
    /// back), or the failure with the module if it still runs.
    #[allow(clippy::result_large_err)]
    fn swap(
        &mut self,
        mut module: RunningModule,
        artifact: &Path,
        new_spec: ModuleSpec,
    ) -> Result<RunningModule, (Option<RunningModule>, ModuleFailure)> {
        let timeout = self.timeouts.reload;
        // 1. and 2. In mailbox order (events queued before the reload reach the
        //    old code), then in one call on the module's thread: save_state,
        //    shutdown and retiring the thread, so that no event slips in between
        //    and the saved state is the last the old generation had. Events now
        //    wait in the mailbox.
        let phase = Arc::new(AtomicU8::new(0));
        let reached = Arc::clone(&phase);
        let outcome = module
            .actor
            .call(timeout + self.timeouts.shutdown, move |state| {
                let instance = state.instance.as_mut()?;
                let saved = instance.save_state();
                if saved.is_err() {
                    return Some((saved, None));
                }
                reached.store(1, Ordering::Release);
                state.retire = true;
                let shutdown = instance.shutdown();
                Some((saved, Some(shutdown)))
            });
        let saved = match outcome {
            Ok(Some((Ok(saved), shutdown))) => {
                if let Some(Err(cause)) = shutdown {
                    tracing::warn!(
                        "[RELOAD] module '{}' failed in shutdown of generation {}: {cause}; swapping anyway",
                        new_spec.name,
                        module.generation
                    );
                }
                saved
            }
            Ok(Some((Err(cause), _))) => {
                return Err((Some(module), failure(&new_spec, Phase::SaveState, cause)));
            }
            Ok(None) => {
                let cause = Cause::Host("no generation is loaded".into());
                return Err((Some(module), failure(&new_spec, Phase::SaveState, cause)));
            }
            Err(_) => {
                let (stuck, limit) = if phase.load(Ordering::Acquire) == 0 {
                    (Phase::SaveState, timeout)
                } else {
                    (Phase::Shutdown, self.timeouts.shutdown)
                };
                let failure = failure(&new_spec, stuck, Cause::Timeout(limit));
                self.abandon(module, &failure);
                return Err((None, failure));
            }
        };
        let Some(old_state) = module.actor.join(timeout) else {
            let failure = failure(&new_spec, Phase::Shutdown, Cause::Timeout(timeout));
            self.abandon(module, &failure);
            return Err((None, failure));
        };
        // Timers go; subscriptions stay until the next generation has made its
        // own, so events published meanwhile still wait in the mailbox.
        module.ctx.begin_swap();

        // 3. Boot the new generation on a paused thread of its own.
        module.attempts += 1;
        let new_generation = module.attempts;
        match self.boot(
            &module,
            artifact,
            new_generation,
            &new_spec,
            saved.as_deref(),
        ) {
            Ok(actor) => {
                module.ctx.finish_swap();
                module.actor = actor;
                module.generation = new_generation;
                module.spec = new_spec;
                self.watch(&module.actor.name().clone(), module.actor.activity());
                self.retire(old_state);
                Ok(module)
            }
            Err(failure) => {
                // 4. Roll back: the old generation, re-initialized from its state.
                tracing::warn!(
                    "[RELOAD] generation {new_generation} of '{}' failed in {}; rolling back to generation {}",
                    new_spec.name,
                    failure.phase,
                    module.generation
                );
                // Start the swap over for the old generation: what the failed one
                // subscribed to goes unless the old one makes it again.
                module.ctx.begin_swap();
                let old_spec = module.spec.clone();
                match self.restore(&module, old_state, &old_spec, saved.as_deref()) {
                    Ok(actor) => {
                        module.ctx.finish_swap();
                        module.actor = actor;
                        self.watch(&module.actor.name().clone(), module.actor.activity());
                        Err((Some(module), failure))
                    }
                    Err(rollback) => {
                        tracing::error!(
                            "[RELOAD] rolling back '{}' failed too ({rollback}); the module is down",
                            old_spec.name
                        );
                        module.ctx.drop_subscriptions_and_timers();
                        self.bus.remove(module.ctx.id);
                        self.unwatch(&old_spec.name);
                        Err((None, failure))
                    }
                }
            }
        }
    }

    /// Loads, initializes and starts generation `generation` on a new paused
    /// thread, and resumes delivery; any failure stops that thread again.
    fn boot(
        &mut self,
        module: &RunningModule,
        artifact: &Path,
        generation: u32,
        spec: &ModuleSpec,
        state: Option<&[u8]>,
    ) -> Result<Actor, ModuleFailure> {
        let name: Arc<str> = spec.name.as_str().into();
        let paused = ActorState::new(Arc::clone(&name), None, true)
            .with_circuit_breaker(spec.circuit_breaker);
        let actor = self.spawn_paused(module, paused)?;
        // Retire the old generation first: a thread of it that publishes now is
        // told its generation has stopped, not that publishing is not allowed yet.
        module.ctx.set_active_generation(generation);
        module.ctx.set_may_publish(false);
        module.ctx.set_contract(spec.contract.clone());
        module.ctx.set_limits(spec.limits);
        let opener = Arc::clone(&self.opener);
        let site = self.site(module, spec);
        let artifact = artifact.to_path_buf();
        let loaded = actor.control(self.timeouts.load, move |s| {
            let instance = opener.open(site, &artifact, generation)?;
            s.instance = Some(instance);
            Ok::<(), ModuleFailure>(())
        });
        let loaded = match loaded {
            Ok(result) => result,
            Err(_) => Err(ModuleFailure::new(
                &*name,
                Phase::Load,
                Cause::Timeout(self.timeouts.load),
            )),
        };
        let booted = loaded.and_then(|()| self.initialize_and_start(&actor, module, spec, state));
        match booted {
            Ok(()) => Ok(actor),
            Err(failure) => {
                self.discard_generation(actor, &failure);
                Err(failure)
            }
        }
    }

    /// Re-initializes and restarts the old generation from its saved state.
    fn restore(
        &mut self,
        module: &RunningModule,
        old_state: ActorState,
        spec: &ModuleSpec,
        state: Option<&[u8]>,
    ) -> Result<Actor, ModuleFailure> {
        module.ctx.set_active_generation(module.generation);
        module.ctx.set_may_publish(false);
        module.ctx.set_contract(spec.contract.clone());
        module.ctx.set_limits(spec.limits);
        let paused = ActorState::new(old_state.name, old_state.instance, true)
            .with_circuit_breaker(spec.circuit_breaker);
        let actor = self.spawn_paused(module, paused)?;
        // The restored generation's code runs on this new thread now: it gets
        // the generation's thread name, inherited by the threads it starts.
        let tag = crate::module_threads::tag(module.ctx.id.0, module.generation);
        let _ = actor.control(self.timeouts.load, move |_| {
            crate::module_threads::name_current_thread(&tag);
        });
        match self.initialize_and_start(&actor, module, spec, state) {
            Ok(()) => Ok(actor),
            Err(failure) => {
                self.discard_generation(actor, &failure);
                Err(failure)
            }
        }
    }

    fn spawn_paused(
        &self,
        module: &RunningModule,
        state: ActorState,
    ) -> Result<Actor, ModuleFailure> {
        let name = Arc::clone(&state.name);
        let state = match module.ctx.counters() {
            Some(counters) => state.with_counters(counters),
            None => state,
        };
        Actor::spawn(&module.mailbox, state, self.bus.clone()).map_err(|e| {
            ModuleFailure::new(
                &*name,
                Phase::Load,
                Cause::Host(format!("cannot start a thread: {e}")),
            )
        })
    }

    /// `initialize` (no publishing), then `start`, then resume delivery.
    fn initialize_and_start(
        &self,
        actor: &Actor,
        module: &RunningModule,
        spec: &ModuleSpec,
        state: Option<&[u8]>,
    ) -> Result<(), ModuleFailure> {
        let config = serde_json::to_vec(&spec.config).unwrap_or_default();
        let state = state.map(<[u8]>::to_vec);
        actor.control_module(Phase::Initialize, self.timeouts.initialize, move |i| {
            i.initialize(&config, state.as_deref())
        })?;
        module.ctx.set_may_publish(true);
        actor.control_module(Phase::Start, self.timeouts.start, |i| i.start())?;
        let _ = actor.control(self.timeouts.start, |s| s.paused = false);
        Ok(())
    }

    /// Ends a generation that failed to boot: unloads it, or abandons its thread
    /// if it is stuck in module code.
    fn discard_generation(&mut self, actor: Actor, failure: &ModuleFailure) {
        if matches!(failure.cause, Cause::Timeout(_)) {
            self.stuck.push(actor);
            return;
        }
        match actor.stop_now(self.timeouts.shutdown) {
            Ok(state) => self.retire(state),
            Err(actor) => self.stuck.push(actor),
        }
    }

    /// Takes a module whose old generation is stuck out of the running set.
    fn abandon(&mut self, module: RunningModule, failure: &ModuleFailure) {
        tracing::error!(
            "[RELOAD] module '{}' is stuck in {} of generation {}; it is taken out",
            module.spec.name,
            failure.phase,
            module.generation
        );
        module.ctx.drop_subscriptions_and_timers();
        self.bus.remove(module.ctx.id);
        self.unwatch(&module.spec.name);
        self.stuck.push(module.actor);
    }
}

fn failure(spec: &ModuleSpec, phase: Phase, cause: Cause) -> ModuleFailure {
    ModuleFailure::new(&spec.name, phase, cause)
}
