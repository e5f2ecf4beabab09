//! A module's event handler failed: said in the log and published as
//! `module.error`, the same for an in-process module (its actor) and an
//! isolated one (its child's reply or timer report).

use orch_sdk::events;

use crate::bus::Bus;
use crate::error::{Cause, Phase};

/// Logs a failed `on_event` and publishes `module.error {name, phase, topic, error}`
/// (except for failures while handling `module.error` itself: no loops).
pub fn report(name: &str, topic: &str, cause: &Cause, bus: &Bus) {
    tracing::error!(
        "module '{name}' failed handling '{topic}' (phase on_event): {cause}; \
         the event was dropped for this module, the others are unaffected"
    );
    if topic != events::MODULE_ERROR {
        bus.publish_system(&events::ModuleError {
            name: name.to_owned(),
            phase: Phase::Event.as_str().to_owned(),
            topic: Some(topic.to_owned()),
            error: cause.to_string(),
            hint: None,
        });
    }
}
