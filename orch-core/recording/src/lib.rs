//! # orch-recording: recordings of bus events
//!
//! The file `cargo orch record` writes and `cargo orch replay` plays
//! ([`format`]), and [`feed`]: a recording delivered to a module under the
//! SDK's [`ModuleHarness`], so a recorded incident becomes a unit test.
//!
//! ```no_run
//! use orch_recording::{feed, format};
//! use orch_sdk::testing::ModuleHarness;
//! # use orch_sdk::prelude::*;
//! # #[derive(Default)] struct Consumer;
//! # impl Module for Consumer {
//! #     fn initialize(&mut self, ctx: &mut Context, _: &Config) -> Result<()> {
//! #         ctx.subscribe("test.ping")
//! #     }
//! # }
//!
//! let recording = format::read("tests/data/incident.orch".as_ref()).unwrap();
//! let mut harness = ModuleHarness::new(Consumer::default());
//! harness.initialize(serde_json::json!({})).unwrap();
//! harness.start().unwrap();
//! let fed = feed(&mut harness, &recording).unwrap();
//! assert_eq!(fed.delivered, recording.events.len());
//! ```

pub mod format;

use orch_sdk::Module;
use orch_sdk::testing::ModuleHarness;

pub use format::{Recorded, Recording};

/// What [`feed`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fed {
    /// Events the module was subscribed to, handed to its `on_event`.
    pub delivered: usize,
    /// Events it was not subscribed to (as the host would, not delivered).
    pub skipped: usize,
}

/// Why [`feed`] stopped.
#[derive(Debug)]
pub struct FeedError {
    /// The event (0-based) whose handler failed.
    pub index: usize,
    /// Its topic.
    pub topic: String,
    /// What the handler returned.
    pub error: orch_sdk::Error,
}

impl std::fmt::Display for FeedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "event {} of the recording ({}) failed: {}",
            self.index + 1,
            self.topic,
            self.error
        )
    }
}

impl std::error::Error for FeedError {}

/// Delivers every event of `recording`, in order, to the module under
/// `harness` (initialized and started by the caller), as the host would:
/// only those it subscribed to. Stops at the first handler that fails.
pub fn feed<M: Module>(
    harness: &mut ModuleHarness<M>,
    recording: &Recording,
) -> Result<Fed, FeedError> {
    let mut fed = Fed::default();
    for (index, event) in recording.events.iter().enumerate() {
        match harness.deliver(&event.topic, &event.payload) {
            Ok(true) => fed.delivered += 1,
            Ok(false) => fed.skipped += 1,
            Err(error) => {
                return Err(FeedError {
                    index,
                    topic: event.topic.clone(),
                    error,
                });
            }
        }
    }
    Ok(fed)
}
