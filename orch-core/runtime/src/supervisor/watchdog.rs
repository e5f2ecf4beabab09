//! The watchdog thread: reports, once per event, a module handler that runs
//! past `timeouts.event` (by module, topic and seconds), while the module's
//! events queue up and the others go on.

use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Sender, bounded};
use orch_sdk::duration::human;
use orch_sdk::events::ModuleError;

use super::Watched;
use crate::bus::Bus;
use crate::error::Phase;

/// Reports, once per event, a handler that runs past `limit`.
pub(super) fn spawn(
    bus: Bus,
    watched: Watched,
    limit: Duration,
) -> Option<(Sender<()>, JoinHandle<()>)> {
    let (stop, stopped) = bounded::<()>(0);
    let tick = (limit / 10).clamp(Duration::from_millis(20), Duration::from_millis(250));
    let handle = std::thread::Builder::new()
        .name("orch-watchdog".into())
        .spawn(move || {
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stopped.recv_timeout(tick)
            {
                let list = watched.lock().unwrap_or_else(|e| e.into_inner()).clone();
                for (name, activity) in list {
                    if let Some((topic, running)) = activity.overdue(limit) {
                        tracing::error!(
                            "[TIMEOUT] module '{name}' is stuck in on_event('{topic}') for {} \
                             (timeouts.event = {}); its events queue up, the other modules go on",
                            human(running),
                            human(limit)
                        );
                        bus.publish_system(&ModuleError {
                            name: name.to_string(),
                            phase: Phase::Event.as_str().to_owned(),
                            topic: Some(topic.to_string()),
                            error: format!("still running after {:.1} s", running.as_secs_f64()),
                            hint: None,
                        });
                    }
                }
            }
        })
        .ok()?;
    Some((stop, handle))
}
