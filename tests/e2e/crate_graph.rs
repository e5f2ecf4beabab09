//! The crates' dependency direction, read from `cargo metadata`: what each
//! crate must never depend on (ARCHITECTURE.md), checked on the resolved graph
//! of normal dependencies (dev- and build-dependencies do not ship).

use std::collections::{BTreeSet, HashMap};

use cargo_metadata::{DependencyKind, Metadata, MetadataCommand, PackageId};

fn metadata() -> Metadata {
    MetadataCommand::new()
        .manifest_path(orch_e2e::workspace_root().join("Cargo.toml"))
        .exec()
        .expect("cargo metadata runs")
}

/// Every package `name` depends on through normal dependencies, by name.
fn normal_closure(metadata: &Metadata, name: &str) -> BTreeSet<String> {
    let resolve = metadata.resolve.as_ref().expect("a resolved graph");
    let names: HashMap<&PackageId, &str> = metadata
        .packages
        .iter()
        .map(|p| (&p.id, p.name.as_str()))
        .collect();
    let nodes: HashMap<&PackageId, _> = resolve.nodes.iter().map(|n| (&n.id, n)).collect();
    let start = metadata
        .workspace_packages()
        .into_iter()
        .find(|p| p.name.as_str() == name)
        .unwrap_or_else(|| panic!("no workspace package {name}"))
        .id
        .clone();
    let mut seen = BTreeSet::new();
    let mut pending = vec![start];
    while let Some(id) = pending.pop() {
        let Some(node) = nodes.get(&id) else { continue };
        for dep in &node.deps {
            let normal = dep
                .dep_kinds
                .iter()
                .any(|k| k.kind == DependencyKind::Normal);
            if normal && seen.insert(names[&dep.pkg].to_owned()) {
                pending.push(dep.pkg.clone());
            }
        }
    }
    seen
}

fn assert_never(metadata: &Metadata, krate: &str, forbidden: &[&str]) {
    let closure = normal_closure(metadata, krate);
    let found: Vec<&&str> = forbidden.iter().filter(|f| closure.contains(**f)).collect();
    assert!(
        found.is_empty(),
        "{krate} must never depend on {found:?} (it does, directly or not)"
    );
}

#[test]
fn the_sdk_depends_on_serde_serde_json_and_tracing_only() {
    let metadata = metadata();
    let sdk = metadata
        .workspace_packages()
        .into_iter()
        .find(|p| p.name.as_str() == "orch-sdk")
        .expect("orch-sdk");
    let direct: BTreeSet<&str> = sdk
        .dependencies
        .iter()
        .filter(|d| d.kind == DependencyKind::Normal)
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(direct, BTreeSet::from(["serde", "serde_json", "tracing"]));
}

#[test]
fn the_runtime_never_knows_cargo_the_watcher_or_the_users_files() {
    let metadata = metadata();
    // The walk sees what the runtime really uses (so a miss below means something).
    let closure = normal_closure(&metadata, "orch-runtime");
    assert!(closure.contains("libloading") && closure.contains("orch-config"));
    assert!(
        normal_closure(&metadata, "cargo-orch").contains("cargo_metadata"),
        "the binary reaches cargo_metadata through orch-cargo"
    );
    assert_never(
        &metadata,
        "orch-runtime",
        &[
            "cargo_metadata",
            "notify",
            "notify-debouncer-full",
            "indicatif",
            "toml_edit",
            "orch-cargo",
            "orch-scaffold",
            "orch-test",
            "orch-bridge",
            "orch-operate",
            // The child host is built on the runtime, never the other way.
            "orch-child",
            "async-nats",
            "tokio",
            "prometheus-client",
            "hyper",
            "ureq",
        ],
    );
}

/// Our own crates (and the binary) in `closure`.
fn ours_in(closure: &BTreeSet<String>) -> BTreeSet<&str> {
    closure
        .iter()
        .map(String::as_str)
        .filter(|name| name.starts_with("orch-") || *name == "cargo-orch")
        .filter(|name| *name != "orch-workspace-hack")
        .collect()
}

#[test]
fn the_wire_format_is_a_leaf_on_the_sdk_alone() {
    let metadata = metadata();
    // Both sides of isolation speak it; it knows neither of them.
    let closure = normal_closure(&metadata, "orch-wire");
    assert!(
        closure.contains("nix"),
        "the walk sees the wire's dependencies"
    );
    assert_eq!(
        ours_in(&closure),
        BTreeSet::from(["orch-sdk"]),
        "orch-wire depends on no crate of ours but orch-sdk"
    );
    assert_never(
        &metadata,
        "orch-wire",
        &["libloading", "tracing-subscriber"],
    );
    for side in ["orch-runtime", "orch-child"] {
        assert!(
            normal_closure(&metadata, side).contains("orch-wire"),
            "{side} speaks the wire format through orch-wire"
        );
    }
}

#[test]
fn recordings_sit_on_the_sdk_alone_so_module_tests_may_use_them() {
    let metadata = metadata();
    // A module's tests depend on it: it must bring nothing of the host.
    let closure = normal_closure(&metadata, "orch-recording");
    assert!(
        closure.contains("flate2"),
        "the walk sees the recording's dependencies"
    );
    assert_eq!(
        ours_in(&closure),
        BTreeSet::from(["orch-sdk"]),
        "orch-recording depends on no crate of ours but orch-sdk"
    );
}

#[test]
fn the_child_host_runs_a_module_and_nothing_else() {
    let metadata = metadata();
    // The loader, host table and timers of the runtime, the wire format; no
    // bridge, control socket, metrics server or cargo in an isolated module's
    // process.
    assert_never(
        &metadata,
        "orch-child",
        &[
            "cargo-orch",
            "orch-cargo",
            "orch-test",
            "orch-scaffold",
            "orch-bridge",
            "orch-operate",
            "orch-monitor",
            "orch-networked",
            "cargo_metadata",
            "notify",
            "async-nats",
            "tokio",
            "prometheus-client",
            "hyper",
            "ureq",
        ],
    );
    assert!(
        normal_closure(&metadata, "cargo-orch").contains("orch-child"),
        "the binary serves its hidden module-host mode through orch-child"
    );
}

#[test]
fn lower_crates_never_depend_on_higher_ones() {
    let metadata = metadata();
    let ours = [
        "orch-wire",
        "orch-runtime",
        "orch-child",
        "orch-cargo",
        "orch-test",
        "orch-scaffold",
        "orch-config",
        "orch-process",
        "orch-bridge",
        "orch-operate",
        "orch-monitor",
        "cargo-orch",
        "orch-networked",
    ];
    assert_never(&metadata, "orch-process", &ours);
    // The operator side reads the runtime and hands actions to the binary:
    // it never builds, scaffolds or tests, and reaches no network (the
    // control socket is local; metrics and alerts are orch-monitor's).
    assert_never(
        &metadata,
        "orch-operate",
        &[
            "orch-cargo",
            "orch-test",
            "orch-scaffold",
            "orch-child",
            "cargo-orch",
            "cargo_metadata",
            "orch-bridge",
            "orch-monitor",
            "tokio",
            "hyper",
            "ureq",
        ],
    );
    // Metrics and alerts read the runtime; the bridge reaches them only as
    // the runtime's `BridgeStatus`.
    assert_never(
        &metadata,
        "orch-monitor",
        &[
            "orch-cargo",
            "orch-test",
            "orch-scaffold",
            "orch-bridge",
            "orch-operate",
            "cargo-orch",
            "async-nats",
        ],
    );
    // The bridge sits on the runtime's bus: it never builds, scaffolds or tests.
    assert_never(
        &metadata,
        "orch-bridge",
        &[
            "orch-cargo",
            "orch-test",
            "orch-scaffold",
            "orch-operate",
            "orch-monitor",
            "orch-child",
            "cargo-orch",
        ],
    );
    assert_never(
        &metadata,
        "orch-config",
        &[
            "orch-wire",
            "orch-runtime",
            "orch-child",
            "orch-cargo",
            "orch-test",
            "orch-scaffold",
            "orch-process",
            "cargo_metadata",
            "libloading",
        ],
    );
    assert_never(
        &metadata,
        "orch-cargo",
        &[
            "orch-wire",
            "orch-runtime",
            "orch-child",
            "orch-test",
            "orch-scaffold",
            "orch-bridge",
            "libloading",
        ],
    );
    assert_never(
        &metadata,
        "orch-scaffold",
        &["orch-runtime", "orch-child", "orch-test", "libloading"],
    );
    assert_never(&metadata, "orch-test", &["orch-scaffold", "toml_edit"]);
}

/// The bundle library (manifest, archive, signatures) is plain data and
/// crypto: it never builds, loads or runs anything and never talks to a
/// network, so `cargo orch check --bundle` trusts nothing it does not need.
#[test]
fn the_bundle_library_never_knows_the_runtime_cargo_or_a_network() {
    let metadata = metadata();
    let closure = normal_closure(&metadata, "orch-bundle");
    let ours = ours_in(&closure);
    assert!(
        ours.is_empty(),
        "orch-bundle depends on no other crate of ours, yet on {ours:?}"
    );
    assert_never(
        &metadata,
        "orch-bundle",
        &[
            "orch-runtime",
            "orch-cargo",
            "orch-bridge",
            "orch-monitor",
            "orch-networked",
            "orch-child",
            "cargo_metadata",
            "libloading",
            "async-nats",
            "tokio",
            "hyper",
            "ureq",
            "rustls",
            "ring",
        ],
    );
}

/// A first `cargo orch run` compiles no network stack: the `cargo-orch`
/// binary leaves the bridge, the metrics endpoint and webhook alerts to
/// `orch-networked`, built only when main.yaml asks for one of them.
#[test]
fn the_cargo_orch_binary_compiles_no_network_stack() {
    let metadata = metadata();
    let closure = normal_closure(&metadata, "orch-networked");
    assert!(
        closure.contains("tokio")
            && closure.contains("async-nats")
            && closure.contains("cargo-orch"),
        "orch-networked links the network parts into the command line"
    );
    assert_never(
        &metadata,
        "cargo-orch",
        &[
            "orch-bridge",
            "orch-monitor",
            "orch-networked",
            "async-nats",
            "tokio",
            "hyper",
            "ureq",
            "rustls",
            "ring",
            "prometheus-client",
        ],
    );
}

#[test]
fn modules_depend_on_the_sdk_and_never_on_the_host() {
    let metadata = metadata();
    for package in metadata.workspace_packages() {
        let path = package.manifest_path.as_str();
        if !path.contains("/modules-backend/") {
            continue;
        }
        assert_never(
            &metadata,
            package.name.as_str(),
            &[
                "orch-runtime",
                "orch-child",
                "orch-wire",
                "orch-config",
                "orch-cargo",
                "libloading",
            ],
        );
    }
}

/// The features of every package, as `cargo tree <args>` resolves them (a
/// package built for the host and for the target may have two sets).
fn resolved_features(args: &[&str]) -> HashMap<String, BTreeSet<String>> {
    let output = orch_e2e::cargo()
        .current_dir(orch_e2e::workspace_root())
        .arg("tree")
        .args(args)
        .args(["--prefix", "none", "--format", "{p}|{f}"])
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut features: HashMap<String, BTreeSet<String>> = HashMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Some((package, set)) = line.split_once('|') else {
            continue;
        };
        let package = package.split(" (").next().unwrap_or(package).to_owned();
        let set = set.trim_end_matches(" (*)").trim().to_owned();
        features.entry(package).or_default().insert(set);
    }
    features
}

/// The README's two commands build once: `cargo test --workspace` compiles
/// every dependency with the workspace-wide features, and the builds that
/// `cargo orch run` makes afterwards (`-p cargo-orch`, then `-p <module> ...`)
/// must ask for exactly the same ones, or cargo compiles them again. The
/// workspace-hack crate pins them; this names what drifted.
#[test]
fn the_readme_commands_resolve_the_same_features_as_the_test_build() {
    let everything = resolved_features(&["--workspace", "-e", "normal,build,dev"]);
    let modules = [
        "-p",
        "mod-test-module",
        "-p",
        "mod-dummy-producer",
        "-p",
        "mod-dummy-consumer",
    ];
    let selections = [
        &["-p", "cargo-orch"][..],
        &["-p", "orch-networked"],
        &modules,
        &["-p", "xtask"],
    ];
    for selection in selections {
        let args: Vec<&str> = selection
            .iter()
            .copied()
            .chain(["-e", "normal,build"])
            .collect();
        let selected = resolved_features(&args);
        assert!(
            selected.len() > 10,
            "cargo tree {args:?} listed {selected:?}"
        );
        let drifted: Vec<String> = selected
            .iter()
            .filter(|(package, features)| everything.get(*package) != Some(*features))
            .map(|(package, features)| {
                format!(
                    "{package}: {features:?} here, {:?} in the test build",
                    everything.get(package)
                )
            })
            .collect();
        assert!(
            drifted.is_empty(),
            "`cargo build {selection:?}` would recompile these after `cargo test --workspace`; \
             pin their features in orch-core/workspace-hack/Cargo.toml:\n{}",
            drifted.join("\n")
        );
    }
}
