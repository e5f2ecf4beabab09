//! The child host's command line, as the orchestrator writes it.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use orch_config::Contract;
use orch_wire::shm::Transport;
use tracing::level_filters::LevelFilter;

/// The child host's arguments, after [`orch_runtime::isolation::HOST_MODE_ARG`].
pub(crate) struct Args {
    pub(crate) name: Arc<str>,
    pub(crate) library: PathBuf,
    pub(crate) generation: u32,
    pub(crate) parent: i32,
    pub(crate) copies_dir: PathBuf,
    pub(crate) level: LevelFilter,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) contract: Contract,
    /// `limits.memory_max` in bytes, if set.
    pub(crate) memory_max: Option<u64>,
    /// How events come: pipes, or the segment on fd 3.
    pub(crate) transport: Transport,
    /// How many events the orchestrator keeps in flight to this child at
    /// most (its answers go in runs of a quarter of it at most).
    pub(crate) window: u32,
}

impl Args {
    pub(crate) fn parse(args: &[String]) -> Option<Self> {
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
            window,
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
            window: window.parse().ok()?,
        })
    }
}
