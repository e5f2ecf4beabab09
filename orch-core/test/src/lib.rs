//! `cargo orch test`: every module's tests and a load check per module, in one
//! combined report.
//!
//! - [`compile`] builds every module's test binaries in one `cargo test
//!   --no-run` (retrying without the packages that do not compile);
//! - [`runner`] runs them, several at once, and reads their output with
//!   [`libtest`];
//! - [`suite`] runs the whole thing, a scratch-host load check per module
//!   included, into a [`TestReport`] ([`model`]);
//! - [`table`], [`junit`] and [`json`] render it for people, CI systems and
//!   scripts. Every child process runs in a process group of an
//!   `orch_process::ProcessGroups`, so a Ctrl-C ends them all.
//!
//! The unit tests of each module's library and its integration tests
//! (`tests/*.rs`) are in the report; doc tests are not (run `cargo test --doc
//! -p <package>` for them): running them takes one more cargo run of its own,
//! which would make `cargo orch test` slower than a plain `cargo test`.

mod compile;
pub mod json;
pub mod junit;
mod libtest;
mod model;
mod runner;
mod suite;
pub mod table;

pub use model::{CaseKind, Counts, ModuleReport, Outcome, TestCase, TestReport};
pub use suite::{Suite, SuiteOptions};
