//! What the bridge's end-to-end tests share: the `bridge:` section of a
//! main.yaml, its `jetstream:` lines, and the bridge's part of `cargo orch
//! status --json`.

/// A main.yaml `bridge:` section for node `node` on `url` (prefix
/// `orch.e2e`, `test.>` exported and imported), then `extra` lines.
pub fn section(url: &str, node: &str, extra: &str) -> String {
    format!(
        "bridge:\n  nats:\n    url: {url}\n    node: {node}\n    subject_prefix: orch.e2e\n    \
         export: [\"test.>\"]\n    import: [\"test.>\"]\n{extra}"
    )
}

/// A modules.yaml running one `fixture-slow-consumer` on `topic`: a
/// mailbox of 2 that blocks its publisher, `delay_ms` per event.
pub fn slow_consumer(topic: &str, delay_ms: u64) -> String {
    format!(
        "modules:\n  - name: fixture-slow-consumer\n    mailbox: {{capacity: 2, overflow: \
         block}}\n    config: {{topic: {topic}, delay_ms: {delay_ms}}}\n"
    )
}

/// The `jetstream:` lines of a `bridge:` section: `stream`, and the durable
/// consumer `durable`.
pub fn jetstream(stream: &str, durable: &str) -> String {
    format!("    jetstream:\n      stream: {stream}\n      durable: {durable}\n")
}

/// The bridge part of `cargo orch status --json` for orchestrator `pid`.
pub fn status(pid: u32) -> serde_json::Value {
    let output = std::process::Command::new(crate::orch_bin())
        .current_dir(crate::workspace_root())
        .args(["orch", "status", "--json", "--pid", &pid.to_string()])
        .output()
        .expect("cargo orch status");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reports: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("status --json is JSON");
    reports[0]["bridge"].clone()
}
