//! What a running host cannot take without a restart: another application,
//! environment, module ABI or host binary, or a main.yaml that differs in
//! more than `app.version`.

use orch_bundle::manifest::Manifest;
use orch_config as config;

use super::{Refusal, refuse};
use crate::bundled::Bundled;

/// Refuses what a running host cannot take without a restart.
pub(super) fn check_compatible(current: &Manifest, next: &Manifest) -> Result<(), Refusal> {
    let restart = "a restart is needed: stop this orchestrator and run the new bundle \
                   (cargo-orch orch run --bundle NEW)";
    if current.app != next.app {
        return Err(refuse(
            format!(
                "the bundle is another application ('{}', this one runs '{}')",
                next.app, current.app
            ),
            "deploy a bundle of the same application",
        ));
    }
    if current.environment != next.environment {
        return Err(refuse(
            format!(
                "the bundle was made for environment {:?}, this orchestrator runs {:?}",
                next.environment, current.environment
            ),
            restart,
        ));
    }
    if current.abi_version != next.abi_version {
        return Err(refuse(
            format!(
                "the bundle's modules speak module ABI v{}, the running ones v{}",
                next.abi_version, current.abi_version
            ),
            restart,
        ));
    }
    let digest_of = |m: &Manifest, path: &str| m.file(path).map(|f| f.sha256.clone());
    for path in ["bin/cargo-orch", "bin/orch-networked"] {
        if digest_of(current, path) != digest_of(next, path) {
            return Err(refuse(
                format!("the bundle changes the host binary: {path} differs"),
                restart,
            ));
        }
    }
    Ok(())
}

/// Refuses a main.yaml (the base one, and the environment's) that differs
/// from the running bundle's in more than `app.version`: a new version of
/// the application is what a deploy brings; anything else in main.yaml
/// shapes the host and needs a restart.
pub(super) fn check_main_yaml(current: &Bundled, next: &Bundled) -> Result<(), Refusal> {
    let files = ["config/main.yaml".to_owned()].into_iter().chain(
        current
            .manifest
            .environment
            .iter()
            .map(|env| format!("config/{env}/main.yaml")),
    );
    for path in files {
        let digest_of = |b: &Bundled| b.manifest.file(&path).map(|f| f.sha256.clone());
        if digest_of(current) == digest_of(next) {
            continue;
        }
        let text_of = |b: &Bundled| std::fs::read_to_string(b.dir.join(&path)).unwrap_or_default();
        match config::raw_main::differs_beyond_version(&text_of(current), &text_of(next)) {
            Ok(false) => {}
            Ok(true) => {
                return Err(refuse(
                    format!(
                        "the bundle changes {path} beyond app.version (only modules.yaml and \
                         the version are applied live)"
                    ),
                    "a restart is needed: stop this orchestrator and run the new bundle \
                     (cargo-orch orch run --bundle NEW)",
                ));
            }
            Err(error) => return Err(refuse(error, "bundle again from a valid main.yaml")),
        }
    }
    Ok(())
}
