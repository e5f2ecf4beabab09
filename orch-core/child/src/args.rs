//! The child host's command line, as the orchestrator writes it.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use orch_config::Contract;
use tracing::level_filters::LevelFilter;

use crate::isolation::shm::Transport;

/// The child host's arguments, after [`super::HOST_MODE_ARG`].
pub(super) struct Args {
    pub(super) name: Arc<str>,
    pub(super) library: PathBuf,
    pub(super) generation: u32,
    pub(super) parent: i32,
    pub(super) copies_dir: PathBuf,
    pub(super) level: LevelFilter,
    pub(super) shutdown_timeout: Duration,
    pub(super) contract: Contract,
    /// `limits.memory_max` in bytes, if set.
    pub(super) memory_max: Option<u64>,
    /// How events come: pipes, or the segment on fd 3.
    pub(super) transport: Transport,
}

impl Args {
    pub(super) fn parse(args: &[String]) -> Option<Self> {
        let [
            name,
            library,
            generation,
            parent,
            copies_dir,
            level,
            shutdown_ms,
            publishes,
            subscribes,
            memory_max,
            transport,
        ] = args
        else {
            return None;
        };
        Some(Self {
            name: name.as_str().into(),
            library: library.into(),
            generation: generation.parse().ok()?,
            parent: parent.parse().ok()?,
            copies_dir: copies_dir.into(),
            level: LevelFilter::from_str(level).unwrap_or(LevelFilter::INFO),
            shutdown_timeout: Duration::from_millis(shutdown_ms.parse().ok()?),
            contract: Contract {
                publishes: serde_json::from_str(publishes).ok()?,
                subscribes: serde_json::from_str(subscribes).ok()?,
            },
            memory_max: match memory_max.as_str() {
                "none" => None,
                bytes => Some(bytes.parse().ok()?),
            },
            transport: Transport::from_arg(transport)?,
        })
    }
}
