//! Seams for testing the supervisor's lifecycle in milliseconds, without a
//! library or a child process: [`FakeOpener`] opens scripted
//! fake generations (`FakeGeneration`) whose every phase succeeds, fails with a given cause,
//! panics (as the ABI boundary reports a caught panic), unwinds for real,
//! hangs until released, crashes (as an isolated child's death is reported)
//! or takes its time; a [`Journal`] records every call, and the host events
//! seen on the bus, in one order, for the tests to assert.

mod fake;
mod journal;

pub use fake::{Act, FakeOpener, Gate, Script};
pub use journal::{Call, Entry, Journal};
