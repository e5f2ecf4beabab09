//! `cargo orch deploy`: a running bundle orchestrator swaps in the modules
//! and configuration of another bundle, and `deploy --rollback` goes back.
//!
//! The orchestrator checks a deployed bundle with its own trusted keys (the
//! client names a path, nothing more), refuses what a running host cannot
//! take (another application, host binary, module ABI, main.yaml beyond
//! `app.version`, or environment: a restart is needed), then applies it in
//! two steps:
//!
//! 1. each running module whose library digest changed (and whose entry in
//!    modules.yaml did not) goes through the reload transaction (save_state,
//!    new generation, rollback on failure); if one fails, the ones already
//!    swapped are reloaded from their old library and the deploy is refused:
//!    the old bundle goes on as it was;
//! 2. the modules.yaml of the new bundle is applied as a live edit is:
//!    removed or disabled modules unload, added ones load, a changed entry
//!    re-initializes its module with the new library.
//!
//! The bundle that ran before is kept (its folder and its description), so
//! `--rollback` deploys it again, verified again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use orch_bundle::signing::TrustedKey;
use orch_bundle::unpack::{unpack_archive, verify_dir};
use orch_config::{self as config, AppConfig, ModuleSpec};
use orch_operate::protocol::Response;
use orch_runtime::status::Deployment;
use orch_runtime::supervisor::Supervisor;

use crate::bundled::Bundled;
use crate::cli::TrustArgs;
use crate::hot_reload::HotReload;

mod compatible;
use compatible::{check_compatible, check_main_yaml};

/// The running bundle and the one before it.
pub struct Deployer {
    current: Bundled,
    previous: Option<Bundled>,
    trust: TrustArgs,
    unpack_dir: PathBuf,
}

/// Why a deploy did not happen: the message and a hint.
struct Refusal {
    message: String,
    hint: String,
}

fn refuse(message: impl Into<String>, hint: impl Into<String>) -> Refusal {
    Refusal {
        message: message.into(),
        hint: hint.into(),
    }
}

impl Deployer {
    /// The deployer of a run of `bundle`, trusting what the run trusted:
    /// the key files and folders are read again at every deploy, so a key
    /// added to a keys folder (or removed from it) counts at once.
    pub fn new(bundle: Bundled, trust: TrustArgs, unpack_dir: Option<&Path>) -> Self {
        let unpack_dir = unpack_dir.map(Path::to_path_buf).unwrap_or_else(|| {
            bundle
                .dir
                .parent()
                .map_or_else(|| bundle.dir.clone(), Path::to_path_buf)
        });
        Self {
            current: bundle,
            previous: None,
            trust,
            unpack_dir,
        }
    }

    /// Deploys the bundle at `path` (an archive or an unpacked folder).
    pub fn deploy(
        &mut self,
        supervisor: &mut Supervisor,
        reloader: &mut HotReload,
        path: &Path,
    ) -> Response {
        self.deploy_expecting(supervisor, reloader, path, None)
    }

    /// The digest of the bundle running now.
    pub fn current_digest(&self) -> &str {
        &self.current.digest
    }

    /// [`Self::deploy`], refusing a bundle whose digest is not `expected`
    /// (a release record names the digest its bundle must have).
    pub fn deploy_expecting(
        &mut self,
        supervisor: &mut Supervisor,
        reloader: &mut HotReload,
        path: &Path,
        expected: Option<&str>,
    ) -> Response {
        match self.open_verified(path, expected) {
            Ok(next) => self.deploy_verified(supervisor, reloader, next),
            Err(response) => response,
        }
    }

    /// The bundle at `path` (an archive is unpacked), verified with this
    /// run's trusted keys and, with `expected`, of that digest; or the
    /// answer that refuses it.
    pub fn open_verified(&self, path: &Path, expected: Option<&str>) -> Result<Bundled, Response> {
        let keys = self.keys()?;
        let allow_unsigned = self.trust.allow_unsigned;
        let next = if path.is_dir() {
            verify_dir(path, &keys, allow_unsigned).map(|v| (path.to_path_buf(), v))
        } else {
            unpack_archive(path, &self.unpack_dir, &keys, allow_unsigned)
                .map(|u| (u.dir, u.verified))
        };
        let next = match next {
            Ok((dir, verified)) => Bundled {
                dir: dir.canonicalize().unwrap_or(dir),
                manifest: verified.manifest,
                digest: verified.manifest_sha256,
                signed_by: verified.signature.map(|s| s.key_id),
            },
            Err(error) => {
                return Err(Response::error(
                    format!(
                        "bundle {} refused, nothing changed: {} {}: {}",
                        path.display(),
                        error.phase,
                        error.subject,
                        error.cause
                    ),
                    Some(error.hint),
                ));
            }
        };
        if let Some(expected) = expected
            && next.digest != expected
        {
            return Err(Response::error(
                format!(
                    "bundle {} refused, nothing changed: its digest is {}, its release names {}",
                    path.display(),
                    short(&next.digest),
                    short(expected)
                ),
                Some("push the bundle again from its archive".into()),
            ));
        }
        Ok(next)
    }

    /// Why `next` (of this application) cannot be taken by this running
    /// host but by a new one (another host binary, module ABI, environment,
    /// or main.yaml beyond `app.version`); `None` when a deploy can take it,
    /// or when it is another application (a refusal, not a restart).
    pub fn restart_needed(&self, next: &Bundled) -> Option<String> {
        if self.current.manifest.app != next.manifest.app {
            return None;
        }
        check_compatible(&self.current.manifest, &next.manifest)
            .and_then(|()| check_main_yaml(&self.current, next))
            .err()
            .map(|refusal| refusal.message)
    }

    /// Deploys a bundle [`Self::open_verified`] gave.
    pub fn deploy_verified(
        &mut self,
        supervisor: &mut Supervisor,
        reloader: &mut HotReload,
        next: Bundled,
    ) -> Response {
        self.switch(supervisor, reloader, next, "deploy")
    }

    /// Deploys the bundle that ran before the last deploy again.
    pub fn rollback(&mut self, supervisor: &mut Supervisor, reloader: &mut HotReload) -> Response {
        let Some(previous) = self.previous.clone() else {
            return Response::refused(
                "nothing to roll back to: no bundle was deployed since this orchestrator started",
                "deploy a bundle first; --rollback goes back to the one before it",
            );
        };
        let keys = match self.keys() {
            Ok(keys) => keys,
            Err(response) => return response,
        };
        match verify_dir(&previous.dir, &keys, self.trust.allow_unsigned) {
            Ok(verified) if verified.manifest_sha256 == previous.digest => {
                self.switch(supervisor, reloader, previous, "rollback")
            }
            Ok(_) => Response::error(
                format!(
                    "the previous bundle's folder {} holds another bundle now",
                    previous.dir.display()
                ),
                Some("deploy the bundle you want by its archive".into()),
            ),
            Err(error) => Response::error(
                format!(
                    "the previous bundle's folder {} no longer verifies, nothing changed: {error}",
                    previous.dir.display()
                ),
                Some("deploy the bundle you want by its archive".into()),
            ),
        }
    }

    /// The trusted keys as their files say now.
    fn keys(&self) -> Result<Vec<TrustedKey>, Response> {
        crate::bundled::trusted_keys(&self.trust).map_err(|error| {
            Response::error(
                format!("cannot read the trusted keys, nothing changed: {error:#}"),
                Some("fix the files this orchestrator was started with (--trusted-key)".into()),
            )
        })
    }

    fn switch(
        &mut self,
        supervisor: &mut Supervisor,
        reloader: &mut HotReload,
        next: Bundled,
        verb: &str,
    ) -> Response {
        if next.digest == self.current.digest {
            return Response::Done {
                message: format!(
                    "{verb}: {} {} (digest {}) is already running; nothing changed",
                    next.manifest.app,
                    next.manifest.version,
                    short(&next.digest)
                ),
            };
        }
        let applied = check_compatible(&self.current.manifest, &next.manifest)
            .and_then(|()| check_main_yaml(&self.current, &next))
            .and_then(|()| load_config(&next, reloader.config()))
            .and_then(|config| apply(supervisor, reloader, &self.current, &next, config));
        match applied {
            Ok(lines) => {
                let header = format!(
                    "{verb}: {} {} (digest {}) -> {} (digest {})",
                    self.current.manifest.app,
                    self.current.manifest.version,
                    short(&self.current.digest),
                    next.manifest.version,
                    short(&next.digest)
                );
                tracing::info!("[DEPLOY] {header}");
                for line in &lines {
                    tracing::info!("[DEPLOY]   {line}");
                }
                let config = reloader.config().clone();
                supervisor
                    .status()
                    .set_deployment(Some(deployment(&next, &config)));
                self.previous = Some(std::mem::replace(&mut self.current, next));
                Response::Done {
                    message: format!("{header}\n{}", lines.join("\n")),
                }
            }
            Err(refusal) => {
                tracing::warn!("[DEPLOY] {verb} refused: {}", refusal.message);
                Response::error(refusal.message, Some(refusal.hint))
            }
        }
    }
}

/// The first 12 hex digits of a digest.
pub fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// What status and the metrics show of a running bundle.
pub fn deployment(bundle: &Bundled, config: &AppConfig) -> Deployment {
    let libraries = bundle.libraries_by_package();
    Deployment {
        app: bundle.manifest.app.clone(),
        version: bundle.manifest.version.clone(),
        commit: bundle.manifest.commit(),
        digest: bundle.digest.clone(),
        signed_by: bundle.signed_by.clone(),
        libraries: config
            .startup_order()
            .into_iter()
            .filter_map(|spec| {
                let sha = libraries.get(&spec.package)?;
                Some((spec.name.clone(), sha.clone()))
            })
            .collect(),
    }
}

/// The new bundle's configuration, layered as the running one is.
fn load_config(next: &Bundled, running: &AppConfig) -> Result<AppConfig, Refusal> {
    config::load_layered(
        &next.dir.join("config"),
        running.environment.as_deref(),
        &next.workspace(),
    )
    .map_err(|errors| {
        refuse(
            format!("the bundle's configuration is invalid, nothing changed:\n{errors}"),
            "fix the configuration, bundle again and deploy that",
        )
    })
}

/// Applies `next` (see the module docs): the report lines, one per module.
fn apply(
    supervisor: &mut Supervisor,
    reloader: &mut HotReload,
    current: &Bundled,
    next: &Bundled,
    new_config: AppConfig,
) -> Result<Vec<String>, Refusal> {
    let old_sha = current.libraries_by_package();
    let new_sha = next.libraries_by_package();
    let old_paths = current.libraries();
    let new_paths = next.libraries();
    let wanted = crate::hot_reload::wanted(new_config.startup_order(), supervisor);
    let running: Vec<ModuleSpec> = supervisor
        .running()
        .into_iter()
        .filter_map(|name| supervisor.spec_of(name).cloned())
        .collect();
    let running_refs: Vec<(&str, &ModuleSpec)> =
        running.iter().map(|s| (s.name.as_str(), s)).collect();
    let change = orch_cargo::reload_plan::ModulesChange::between(&running_refs, &wanted);
    let entry_changed = |name: &str| {
        change.changed.iter().any(|s| s.name == name) || change.removed.iter().any(|n| n == name)
    };

    // 1. Library changes, all or nothing; the topic types checked first, as
    //    they will be once every library has changed, the changed entries
    //    re-initialized and the removed modules gone.
    let mut batch: Vec<(&str, &Path)> = running
        .iter()
        .filter(|spec| !entry_changed(&spec.name))
        .filter(|spec| old_sha.get(&spec.package) != new_sha.get(&spec.package))
        .filter(|spec| old_paths.contains_key(&spec.package))
        .filter_map(|spec| {
            let library = new_paths.get(&spec.package)?;
            Some((spec.name.as_str(), library.as_path()))
        })
        .collect();
    batch.extend(change.changed.iter().filter_map(|spec| {
        let library = new_paths.get(&spec.package)?;
        Some((spec.name.as_str(), library.as_path()))
    }));
    let leaving: Vec<&str> = change.removed.iter().map(String::as_str).collect();
    if let Err(failure) = supervisor.prepare_types(&batch, &leaving) {
        return Err(refuse(
            format!(
                "nothing was deployed: module '{}' failed in phase {}: {}",
                failure.module, failure.phase, failure.cause
            ),
            failure.hint.clone(),
        ));
    }
    let mut lines = Vec::new();
    let mut swapped: Vec<(String, PathBuf)> = Vec::new();
    for spec in &running {
        if entry_changed(&spec.name) {
            continue;
        }
        let (before, after) = (old_sha.get(&spec.package), new_sha.get(&spec.package));
        if before == after {
            lines.push(format!("{}: unchanged", spec.name));
            continue;
        }
        let (Some(new_library), Some(old_library)) =
            (new_paths.get(&spec.package), old_paths.get(&spec.package))
        else {
            continue;
        };
        match supervisor.reload(&spec.name, new_library, None, Duration::ZERO) {
            Ok(report) => {
                lines.push(format!(
                    "{}: library changed ({} -> {}): reloaded, generation {}",
                    spec.name,
                    before.map_or("none", |s| short(s)),
                    after.map_or("none", |s| short(s)),
                    report.generation
                ));
                swapped.push((spec.name.clone(), old_library.clone()));
            }
            Err(failure) => {
                // Back as they were: the old types agreed before.
                let back: Vec<(&str, &Path)> = swapped
                    .iter()
                    .map(|(name, library)| (name.as_str(), library.as_path()))
                    .collect();
                if let Err(again) = supervisor.prepare_types(&back, &[]) {
                    tracing::error!("[DEPLOY] the old libraries' types: {again}");
                }
                for (name, old_library) in swapped.iter().rev() {
                    if let Err(again) = supervisor.reload(name, old_library, None, Duration::ZERO) {
                        tracing::error!(
                            "[DEPLOY] module '{name}' could not go back to its old library: {again}"
                        );
                    }
                }
                return Err(refuse(
                    format!(
                        "module '{}' failed to take its new library, so nothing was deployed \
                         (its old generation runs on{}): {failure}",
                        spec.name,
                        if swapped.is_empty() {
                            String::new()
                        } else {
                            format!(
                                "; {} went back to their old library",
                                swapped
                                    .iter()
                                    .map(|(n, _)| n.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        }
                    ),
                    failure.hint.clone(),
                ));
            }
        }
    }

    // 2. The new modules.yaml, as a live edit.
    reloader.switch_source(
        next.workspace(),
        next.dir.join("config"),
        new_config,
        new_paths.clone(),
    );
    for name in &change.removed {
        match supervisor.remove(name) {
            Some(Err(failure)) => lines.push(format!("{name}: removed (not cleanly: {failure})")),
            _ => lines.push(format!(
                "{name}: removed or disabled in modules.yaml: unloaded"
            )),
        }
    }
    let artifacts: HashMap<String, PathBuf> = new_paths;
    for spec in &wanted {
        if change.added.iter().any(|a| a.name == spec.name) {
            match supervisor.add(spec, &artifacts) {
                Ok(()) => lines.push(format!("{}: added", spec.name)),
                Err(failure) => lines.push(format!("{}: FAILED to start: {failure}", spec.name)),
            }
        } else if change.changed.iter().any(|c| c.name == spec.name) {
            let Some(library) = artifacts.get(&spec.package) else {
                continue;
            };
            match supervisor.reload(&spec.name, library, Some(spec), Duration::ZERO) {
                Ok(report) => lines.push(format!(
                    "{}: entry changed in modules.yaml: re-initialized, generation {}",
                    spec.name, report.generation
                )),
                Err(failure) => lines.push(format!(
                    "{}: entry changed but FAILED to re-initialize (old generation runs on): \
                     {failure}",
                    spec.name
                )),
            }
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_bundle::manifest::{FORMAT, FileEntry, Manifest};

    fn manifest(files: &[(&str, &str)]) -> Manifest {
        Manifest {
            format: FORMAT,
            app: "demo".into(),
            version: "1".into(),
            git: None,
            target: "x86_64-unknown-linux-gnu".into(),
            rustc: "rustc".into(),
            abi_version: 4,
            profile: "debug".into(),
            environment: None,
            packages: Vec::new(),
            files: files
                .iter()
                .map(|(path, sha)| FileEntry {
                    path: (*path).into(),
                    size: 1,
                    sha256: (*sha).repeat(64),
                })
                .collect(),
        }
    }

    const BASE: [(&str, &str); 4] = [
        ("bin/cargo-orch", "a"),
        ("config/main.yaml", "b"),
        ("config/modules.yaml", "c"),
        ("modules/libm.so", "d"),
    ];

    fn with(path: &str, sha: &'static str) -> Manifest {
        let files: Vec<(&str, &str)> = BASE
            .iter()
            .map(|&(p, s)| if p == path { (p, sha) } else { (p, s) })
            .collect();
        manifest(&files)
    }

    #[test]
    fn modules_and_modules_yaml_may_change_live() {
        let current = manifest(&BASE);
        assert!(check_compatible(&current, &with("modules/libm.so", "e")).is_ok());
        assert!(check_compatible(&current, &with("config/modules.yaml", "e")).is_ok());
    }

    #[test]
    fn a_new_host_abi_app_or_environment_needs_a_restart() {
        let current = manifest(&BASE);
        let refused = |next: Manifest, names: &str| {
            let refusal = check_compatible(&current, &next).expect_err("refused");
            assert!(refusal.message.contains(names), "{}", refusal.message);
        };
        refused(with("bin/cargo-orch", "e"), "host binary");
        let mut networked = manifest(&BASE);
        networked.files.push(FileEntry {
            path: "bin/orch-networked".into(),
            size: 1,
            sha256: "f".repeat(64),
        });
        refused(networked, "bin/orch-networked");
        let mut abi = manifest(&BASE);
        abi.abi_version = 5;
        refused(abi, "ABI");
        let mut app = manifest(&BASE);
        app.app = "other".into();
        refused(app, "another application");
        let mut env = manifest(&BASE);
        env.environment = Some("prod".into());
        refused(env, "environment");
    }
}
