//! `cargo orch top`: every module of a running orchestrator, refreshed every
//! second: state, events in and out a second, mailbox depth against
//! capacity, handler p50/p99, restarts, circuit, last error. [`rows`] makes
//! the table, [`terminal`] draws it full-screen.

pub mod rows;
pub mod terminal;
