//! `cargo xtask ci`: the slow lane. What `cargo test --workspace` leaves out
//! because it needs a release build, a long soak or a cluster of servers:
//! the end-to-end tests marked `#[ignore = "slow lane: ..."]` (all of them
//! live in `orch-e2e`). CI runs it after the default lane, so nothing is
//! skipped there.

use anyhow::{Result, ensure};

/// Runs the slow lane; `Ok(true)` when it passed.
pub fn run() -> Result<bool> {
    // Release builds and soaks compute: one at a time per core, not the
    // default lane's four (`.cargo/config.toml`).
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let status = orch_e2e::cargo()
        .current_dir(orch_e2e::workspace_root())
        .env("RUST_TEST_THREADS", threads.to_string())
        .args(["test", "-p", "orch-e2e", "--", "--ignored"])
        .status()?;
    ensure!(status.code().is_some(), "cargo test was killed ({status})");
    Ok(status.success())
}
