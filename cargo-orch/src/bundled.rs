//! `cargo orch run --bundle`: a signed bundle made ready to run without
//! cargo, sources or a Rust toolchain. The archive is unpacked into a
//! versioned folder and verified (or a folder verified in place) by
//! orch-bundle; here the result becomes what `run --no-build` needs: a
//! workspace made from the manifest (root: the bundle's folder, target
//! folder: its `state/`), the configuration it carries, and each module's
//! library from `modules/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use orch_bundle::manifest::Manifest;
use orch_bundle::signing::TrustedKey;
use orch_bundle::unpack::{unpack_archive, verify_dir};
use orch_config::workspace::{Workspace, WorkspacePackage};

use crate::cli::TrustArgs;

/// The folder under a bundle's folder the orchestrator writes to (copies of
/// loaded libraries, the control socket, the bridge's state).
pub const STATE_DIR: &str = "state";

/// A verified bundle, unpacked, ready to run.
#[derive(Debug, Clone)]
pub struct Bundled {
    /// The folder it runs from.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// The SHA-256 of its manifest (the bundle's digest).
    pub digest: String,
    /// The key id its signature was made with; `None` when unsigned.
    pub signed_by: Option<String>,
}

/// A bundle refused: reported as it is, exit code 1, nothing loaded.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The keys `--trusted-key` names (files, or folders of `*.pub` files).
pub fn trusted_keys(trust: &TrustArgs) -> anyhow::Result<Vec<TrustedKey>> {
    let mut keys = Vec::new();
    for path in &trust.trusted_key {
        keys.extend(TrustedKey::from_path(path)?);
    }
    Ok(keys)
}

/// Verifies the bundle at `path` (an archive, unpacked into `unpack_dir`
/// or beside it; or an unpacked folder) against the keys of `trust`, and
/// checks this host can run it.
pub fn open(path: &Path, unpack_dir: Option<&Path>, trust: &TrustArgs) -> anyhow::Result<Bundled> {
    let keys = trusted_keys(trust)?;
    let refused = |error: orch_bundle::BundleError| {
        anyhow::Error::new(Refused(format!(
            "bundle {} refused, nothing was loaded: {error}",
            path.display()
        )))
    };
    let (dir, verified) = if path.is_dir() {
        let verified = verify_dir(path, &keys, trust.allow_unsigned).map_err(refused)?;
        (path.to_path_buf(), verified)
    } else {
        let into = match unpack_dir {
            Some(dir) => dir.to_path_buf(),
            None => path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf(),
        };
        let unpacked = unpack_archive(path, &into, &keys, trust.allow_unsigned).map_err(refused)?;
        (unpacked.dir, unpacked.verified)
    };
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let manifest = verified.manifest;
    check_host(&manifest).map_err(|cause| {
        anyhow::Error::new(Refused(format!(
            "bundle {} refused, nothing was loaded: {cause}",
            path.display()
        )))
    })?;
    Ok(Bundled {
        dir,
        manifest,
        digest: verified.manifest_sha256,
        signed_by: verified.signature.map(|s| s.key_id),
    })
}

/// Refuses a bundle this host cannot load: another module ABI, operating
/// system or architecture.
fn check_host(manifest: &Manifest) -> Result<(), String> {
    if manifest.abi_version != orch_sdk::abi::ABI_VERSION {
        return Err(format!(
            "its modules speak module ABI v{} and this cargo-orch v{}\n  hint: run the \
             bundle's own host: tar -xf BUNDLE bin/cargo-orch && bin/cargo-orch orch run \
             --bundle BUNDLE",
            manifest.abi_version,
            orch_sdk::abi::ABI_VERSION
        ));
    }
    let arch = std::env::consts::ARCH;
    let os = std::env::consts::OS;
    let mut parts = manifest.target.split('-');
    let (bundle_arch, rest): (Option<&str>, Vec<&str>) = (parts.next(), parts.collect());
    if bundle_arch != Some(arch) || !rest.contains(&os) {
        return Err(format!(
            "built for {} and this host is {arch} {os}\n  hint: bundle on (or for) a \
             machine like this one",
            manifest.target
        ));
    }
    Ok(())
}

impl Bundled {
    /// The workspace the bundle's configuration is checked against: its
    /// packages as the manifest lists them, rooted at the bundle's folder.
    pub fn workspace(&self) -> Workspace {
        Workspace {
            root: self.dir.clone(),
            target_dir: self.dir.join(STATE_DIR),
            packages: self
                .manifest
                .packages
                .iter()
                .map(|package| WorkspacePackage {
                    name: package.name.clone(),
                    manifest_dir: self.dir.join(&package.dir),
                    is_cdylib: true,
                    lib_name: package.library.as_deref().map(library_crate_name),
                    workspace_dependencies: Vec::new(),
                })
                .collect(),
        }
    }

    /// Each package's library in the bundle's folder.
    pub fn libraries(&self) -> HashMap<String, PathBuf> {
        self.manifest
            .packages
            .iter()
            .filter_map(|package| {
                let library = package.library.as_ref()?;
                Some((package.name.clone(), self.dir.join(library)))
            })
            .collect()
    }

    /// Each package's library digest (SHA-256).
    pub fn libraries_by_package(&self) -> HashMap<String, String> {
        self.manifest
            .packages
            .iter()
            .filter_map(|package| {
                let file = self.manifest.file(package.library.as_ref()?)?;
                Some((package.name.clone(), file.sha256.clone()))
            })
            .collect()
    }

    /// `bin/<name>` in the bundle's folder, when the bundle carries it.
    pub fn program(&self, name: &str) -> Option<PathBuf> {
        let path = format!("bin/{name}");
        self.manifest.file(&path).map(|_| self.dir.join(path))
    }

    /// One line saying what runs: app, version, commit, digest, signer.
    pub fn describe(&self) -> String {
        format!(
            "bundle {} {} (commit {}, digest {}, {}) from {}",
            self.manifest.app,
            self.manifest.version,
            self.manifest.commit(),
            self.digest.get(..12).unwrap_or_default(),
            match &self.signed_by {
                Some(key) => format!("signed by key {key}"),
                None => "UNSIGNED".to_string(),
            },
            self.dir.display()
        )
    }
}

/// `modules/libmod_x.so` → `mod_x`.
fn library_crate_name(library: &str) -> String {
    let file = library.rsplit('/').next().unwrap_or(library);
    let file = file
        .strip_suffix(std::env::consts::DLL_SUFFIX)
        .unwrap_or(file);
    file.strip_prefix(std::env::consts::DLL_PREFIX)
        .unwrap_or(file)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_library_file_gives_its_crate_name() {
        assert_eq!(library_crate_name("modules/libmod_x.so"), "mod_x");
    }
}
