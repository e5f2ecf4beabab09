//! Counting the demo's checks: each prints `[OK] <check>` or `[FAIL] <check>: <why>`.

use anyhow::Result;

/// Checks passed and failed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Checks that passed.
    pub passed: usize,
    /// Checks that failed.
    pub failed: usize,
}

impl Tally {
    /// Prints and counts one check; `Ok` details are shown in parentheses.
    pub fn record(&mut self, name: &str, outcome: Result<String>) {
        match outcome {
            Ok(details) if details.is_empty() => {
                self.passed += 1;
                println!("[OK] {name}");
            }
            Ok(details) => {
                self.passed += 1;
                println!("[OK] {name} ({details})");
            }
            Err(why) => {
                self.failed += 1;
                println!("[FAIL] {name}: {why:#}");
            }
        }
    }

    /// Adds another step's counts.
    pub fn add(&mut self, other: Tally) {
        self.passed += other.passed;
        self.failed += other.failed;
    }
}
