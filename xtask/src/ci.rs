//! `cargo xtask ci`: the slow lane. What `cargo test --workspace` leaves out
//! because it needs a release build, a long soak or a cluster of servers:
//! the end-to-end tests marked `#[ignore = "slow lane: ..."]` (all of them
//! live in `orch-e2e`). CI runs it after the default lane, so nothing is
//! skipped there.

use anyhow::{Result, ensure};

/// Runs the slow lane; `Ok(true)` when it passed.
pub fn run() -> Result<bool> {
    let status = orch_e2e::cargo()
        .current_dir(orch_e2e::workspace_root())
        .args(["test", "-p", "orch-e2e", "--", "--ignored"])
        .status()?;
    ensure!(status.code().is_some(), "cargo test was killed ({status})");
    Ok(status.success())
}
