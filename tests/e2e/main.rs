//! The end-to-end tests of the real `cargo orch` binary, one module per
//! concern. They are one test binary so that cargo runs them side by side
//! (see `tests/Cargo.toml`); `cargo test -p orch-e2e --test e2e <module>::`
//! runs one module.

mod bench_smoke;
mod bounded;
mod bridge;
mod bridge_flood;
mod bridge_hostile;
mod bridge_permissions;
mod bundle;
mod bundle_run;
mod crate_graph;
mod deploy;
mod emit;
mod graph;
mod hostile_child;
mod isolation;
mod limits;
mod logs;
mod module_graph;
mod new_cmd;
mod oci;
mod operate;
mod presence;
mod record;
mod releases;
mod requests;
mod rollout;
mod run;
mod secrets;
mod singleton;
mod surfaces;
mod test_cmd;
mod top;
mod typed;
mod watch;
mod work;
