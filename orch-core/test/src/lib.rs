//! `cargo orch test`: every module's tests, doc tests and a load check per
//! module, in one combined report.
//!
//! - [`compile`] builds every module's test binaries in one `cargo test
//!   --no-run` (retrying without the packages that do not compile);
//! - [`schedule`] runs them on one worker per core: by default each test in
//!   a process of its own ([`per_test`], cargo-nextest's model: listed, then
//!   `--exact NAME`), with `--fast` each binary once ([`fast`]); both through
//!   [`exec`] (process group, captured pipes, deadlines) and the helpers of
//!   [`runner`], reading libtest's output with [`libtest`] and its arguments
//!   with [`args`];
//! - [`doctest`] runs the doc tests through `cargo test --doc`, timed by
//!   [`doc_clock`];
//! - [`suite`] runs the whole thing, a scratch-host load check per module
//!   included, into a [`TestReport`] ([`model`]), with [`progress`] on
//!   stderr meanwhile;
//! - [`table`], [`junit`] and [`json`] render it for people, CI systems and
//!   scripts. Every child process runs in a process group of an
//!   `orch_process::ProcessGroups`, so a Ctrl-C ends them all.

mod args;
mod compile;
mod doc_clock;
mod doctest;
mod exec;
mod fast;
pub mod json;
pub mod junit;
mod libtest;
mod model;
mod per_test;
mod progress;
mod runner;
mod schedule;
mod suite;
pub mod table;
mod timestamp;
mod verdict;

pub use model::{
    CaseKind, Cause, Counts, Failure, ModuleReport, Outcome, Retry, Status, TestCase, TestReport,
};
pub use schedule::Mode;
pub use suite::{Suite, SuiteOptions};
