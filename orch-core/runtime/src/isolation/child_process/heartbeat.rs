//! The heartbeat: pings the child through the writer (never waiting) and
//! kills it when it falls silent, when its module thread stays in one call
//! too long (as it says, or as the orchestrator sees it: no reply for twice
//! the heartbeat while it owes one, so a child that answers pings and lies
//! about being idle cannot hold the actor for ever), or when its process
//! group holds more processes than `limits.max_processes` (sampled on each
//! tick).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use orch_sdk::duration::human;

use super::Shared;
use super::writer::Pinger;

/// Pings the child; kills it when no answer came within `limit`, or when it
/// runs more than `max_processes`.
pub(super) fn spawn_heartbeat(
    name: &str,
    pinger: Pinger,
    shared: Arc<Shared>,
    limit: Duration,
    max_processes: Option<u32>,
    stopped: Receiver<()>,
) -> Option<JoinHandle<()>> {
    let tick = (limit / 5).clamp(Duration::from_millis(20), Duration::from_secs(1));
    shared
        .last_pong_ms
        .store(shared.since_epoch_ms(), Ordering::Release);
    std::thread::Builder::new()
        .name(format!("orch-heartbeat:{name}"))
        .spawn(move || {
            let mut n = 0u64;
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                if shared
                    .exit
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_some()
                {
                    return;
                }
                let silent = Duration::from_millis(
                    shared
                        .since_epoch_ms()
                        .saturating_sub(shared.last_pong_ms.load(Ordering::Acquire)),
                );
                if silent > limit {
                    shared.kill(format!(
                        "answered no heartbeat for {} (heartbeat: {}; the process is frozen \
                         or stopped reading)",
                        human(silent),
                        human(limit)
                    ));
                    return;
                }
                let busy = Duration::from_millis(shared.busy_ms.load(Ordering::Acquire));
                if busy > limit {
                    shared.kill(format!(
                        "has been in one call for {} (heartbeat: {}; a handler may loop forever)",
                        human(busy),
                        human(limit)
                    ));
                    return;
                }
                if let Some(owing) = shared.owing_for().filter(|owing| *owing > 2 * limit) {
                    shared.kill(format!(
                        "answered none of the calls it was sent for {} (twice its heartbeat of \
                         {}), whatever its heartbeat answers said: a handler may loop forever",
                        human(owing),
                        human(limit)
                    ));
                    return;
                }
                if let Some(max) = max_processes {
                    let group = shared.pid();
                    let running = orch_process::group::group_size(group);
                    if running > max as usize {
                        shared.kill(format!(
                            "ran {running} processes, more than its `limits.max_processes: {max}` \
                             (the child host and the helpers it started)"
                        ));
                        return;
                    }
                }
                n += 1;
                // Never waits behind the actor's writes: a child that stops
                // reading is caught by the silence above, not by a write.
                if pinger.ping(n).is_err() {
                    return;
                }
            }
        })
        .ok()
}
