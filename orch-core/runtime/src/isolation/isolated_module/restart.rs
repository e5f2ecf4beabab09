//! The restart loop of an isolated module: after its child died, report the
//! crash, then restart it under the module's policy (back-off, intensity) and
//! deliver again what it had not acknowledged, or give up.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use orch_config::RestartPolicy;
use orch_sdk::duration::human;
use orch_sdk::events::{ModuleCrashed, ModuleFailed, ModuleRestarted};
use orch_wire::protocol::Frame;

use super::super::child_process::ChildProcess;
use super::super::supervise::{Decision, ExitKind};
use super::{Failed, IsolatedModule};
use crate::error::Cause;

impl IsolatedModule {
    /// Reports the crash and restarts the child as the policy says, or gives up.
    pub(super) fn recover(&mut self) {
        let Some(link) = self.child.take() else {
            return;
        };
        let (reason, mut kind, handled) = link.end_after_crash();
        // Events it handled and died before answering are not replayed.
        self.settle_handled(handled);
        let name = Arc::clone(&self.setup.name);
        let (handling, replay) = self.inflight.take_after_crash();
        let lost = handling
            .map(|topic| format!("; the '{topic}' event it was handling is lost for it"))
            .unwrap_or_default();
        tracing::error!("[CRASH] module '{name}' (isolated) {reason}{lost}");
        self.setup.bus.publish_system(&ModuleCrashed {
            name: name.to_string(),
            reason: reason.clone(),
            generation: self.setup.generation,
        });
        let policy = self.setup.supervision;
        loop {
            match self.tracker.on_exit(kind, Instant::now()) {
                Decision::Restart(delay) => {
                    tracing::warn!(
                        "[RESTART] module '{name}' restarts in {} ({} of at most {} restarts within {})",
                        human(delay),
                        self.tracker.recent(),
                        policy.max_restarts,
                        human(policy.restart_window)
                    );
                    if !self.back_off(delay) {
                        self.down = true;
                        tracing::warn!(
                            "module '{name}' is not restarted: the orchestrator is shutting down"
                        );
                        return;
                    }
                    match self.respawn() {
                        Ok(()) => {
                            self.restarts += 1;
                            tracing::info!(
                                "[RESTART] module '{name}' is running again (pid {}, restart {})",
                                self.pid().unwrap_or_default(),
                                self.restarts
                            );
                            self.setup.bus.publish_system(&ModuleRestarted {
                                name: name.to_string(),
                                restarts: self.restarts,
                            });
                            for event in replay {
                                self.send_event(event);
                            }
                            return;
                        }
                        Err(cause) => {
                            tracing::error!("[RESTART] module '{name}' failed to restart: {cause}");
                            kind = ExitKind::Failure;
                        }
                    }
                }
                Decision::GiveUp => {
                    self.down = true;
                    self.setup.ctx.drop_subscriptions_and_timers();
                    let why = if policy.restart == RestartPolicy::Never {
                        "restart: never".to_owned()
                    } else {
                        format!(
                            "more than {} restarts within {}",
                            policy.max_restarts,
                            human(policy.restart_window)
                        )
                    };
                    tracing::error!(
                        "[FAILED] module '{name}' stays down ({why}); the other modules go on"
                    );
                    self.setup.bus.publish_system(&ModuleFailed {
                        name: name.to_string(),
                        reason: reason.clone(),
                        restarts: self.restarts,
                    });
                    return;
                }
                Decision::StayDown => {
                    self.down = true;
                    self.setup.ctx.drop_subscriptions_and_timers();
                    tracing::warn!(
                        "module '{name}' exited cleanly and is not restarted (restart: {})",
                        if policy.restart == RestartPolicy::Never {
                            "never"
                        } else {
                            "on-failure"
                        }
                    );
                    return;
                }
            }
        }
    }

    /// Sleeps `delay`; `false` as soon as the orchestrator begins shutting down.
    fn back_off(&self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        while !self.setup.stopping.load(Ordering::Acquire) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(Duration::from_millis(20)));
        }
        false
    }

    /// A new child for the same generation, initialized with the last config and
    /// state and started if the module was.
    fn respawn(&mut self) -> Result<(), Cause> {
        let (link, declared) = ChildProcess::spawn(&self.setup)?;
        self.child = Some(link);
        self.declared = declared;
        let step = |this: &mut Self, frame, timeout| match this.request(frame, Some(timeout)) {
            Ok(_) => Ok(()),
            Err(Failed::Cause(cause)) => {
                if let Some(link) = this.child.take() {
                    link.finish(false);
                }
                Err(cause)
            }
            Err(_) => {
                let reason = this.child.take().map(|link| link.end().0);
                Err(Cause::Host(format!(
                    "its child host process died: {}",
                    reason.unwrap_or_default()
                )))
            }
        };
        if let Some((config, state)) = self.last_init.clone() {
            let timeout = self.setup.timeouts.initialize;
            step(self, Frame::Initialize { config, state }, timeout)?;
        }
        if self.started {
            let timeout = self.setup.timeouts.start;
            step(self, Frame::Start, timeout)?;
        }
        Ok(())
    }
}
