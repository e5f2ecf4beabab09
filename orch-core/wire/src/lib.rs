//! # orch-wire: what travels between the orchestrator and a child host
//!
//! An `isolation: process` module runs in a child host process. This crate is
//! the contract between the two sides, and nothing else:
//!
//! - [`protocol`]: the frames and their length-prefixed encoding, every
//!   decoder checked against hostile bytes;
//! - [`metric`]: the module metrics a child reports inside a frame;
//! - [`shm`]: the shared-memory rings that carry the frames (the only
//!   `unsafe` of isolation: `shm/segment.rs`).
//!
//! The orchestrator's side lives in `orch-runtime` (`isolation`), the child's
//! in `orch-child`; both depend on this crate, which depends on neither.

pub mod metric;
pub mod protocol;
pub mod shm;

pub use metric::{MAX_METRICS_PER_MODULE, MetricKind, MetricSample};
pub use protocol::{EventFrame, EventRef, Frame, MAX_FRAME, ProtocolError, Status};
pub use shm::Transport;
