//! `cargo orch bundle --oci DIR`: the bundle as an OCI image layout. No base
//! image can be fetched, so the root filesystem is built from this machine:
//! the host binary, the shared libraries it, `orch-networked` and every
//! module link (regular files at the paths the loader looks up, the loader
//! at its `PT_INTERP` path), the bundle itself, and the folders the
//! entrypoint (`cargo-orch orch run --bundle`) uses. The format is
//! orch-bundle's [`orch_bundle::oci`].

mod libraries;
mod output;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use orch_bundle::archive::Source;
use orch_bundle::manifest::Manifest;
use orch_bundle::oci::{Content, Image, LayerEntry, Platform};

/// The bundle in the image.
pub const BUNDLE: &str = "/app/bundle.tar";
/// The host binary in the image.
pub const HOST: &str = "/app/bin/cargo-orch";
/// Where the operator mounts the trusted public keys (`*.pub`).
pub const KEYS: &str = "/etc/orch/keys";
/// Where the bundle is unpacked (writable).
pub const UNPACK: &str = "/var/lib/orch";

/// What the image is made of.
pub struct Request<'a> {
    /// The bundle archive just written.
    pub archive: &'a Path,
    /// The host binary (`bin/cargo-orch` of the bundle).
    pub host: &'a Path,
    /// Every binary and module library whose shared libraries the image
    /// needs (the host included).
    pub linked: Vec<&'a Path>,
    /// The bundle's manifest (version, commit, target).
    pub manifest: &'a Manifest,
    /// Whether the bundle is signed (else the entrypoint allows unsigned).
    pub signed: bool,
    /// The mtime of every entry of the layer.
    pub mtime: u64,
    /// The image's `created` time, when `SOURCE_DATE_EPOCH` is set.
    pub created: Option<u64>,
}

/// What was written.
pub struct Summary {
    /// The image's tag (the app version).
    pub tag: String,
    /// `architecture/os`.
    pub platform: String,
    /// The image manifest's digest.
    pub digest: String,
    /// The libraries (and loader) taken from this machine.
    pub libraries: Vec<PathBuf>,
    /// The entrypoint.
    pub entrypoint: Vec<String>,
}

/// The entrypoint: `run --bundle` with the mounted keys, or with
/// `--allow-unsigned` for an unsigned bundle.
pub fn entrypoint(signed: bool) -> Vec<String> {
    let mut args = vec![HOST, "orch", "run", "--bundle", BUNDLE];
    if signed {
        args.extend(["--trusted-key", KEYS]);
    } else {
        args.push("--allow-unsigned");
    }
    args.extend(["--unpack-dir", UNPACK]);
    args.into_iter().map(String::from).collect()
}

/// What can be refused before anything is built: `--oci DIR` neither
/// missing, empty, nor an OCI layout that may be replaced; a version that
/// is no valid tag.
pub fn preflight(dir: &Path, version: &str) -> anyhow::Result<()> {
    output::check_target(dir)?;
    orch_bundle::oci::image::check_ref_name(version)?;
    Ok(())
}

/// Writes the image layout of `request` to `dir` (see [`output`]).
pub fn write(dir: &Path, request: &Request<'_>) -> anyhow::Result<Summary> {
    let platform = Platform::of_target(&request.manifest.target)?;
    let mut entries = vec![
        file(BUNDLE, 0o644, request.archive)?,
        file(HOST, 0o755, request.host)?,
        LayerEntry::dir("tmp", 0o1777),
        LayerEntry::dir(KEYS, 0o755),
        LayerEntry::dir(UNPACK, 0o755),
        // Mount points the runtimes (and `unshare --mount-proc`) expect.
        LayerEntry::dir("proc", 0o555),
        LayerEntry::dir("sys", 0o555),
        LayerEntry::dir("dev", 0o755),
        LayerEntry::bytes(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/sbin/nologin\n\
              nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
                .to_vec(),
        ),
        LayerEntry::bytes(
            "etc/group",
            0o644,
            b"root:x:0:\nnogroup:x:65534:\n".to_vec(),
        ),
    ];

    // The loaders the executables name, and every library they resolve to.
    let mut loaders = BTreeSet::new();
    let mut libraries = BTreeSet::new();
    for path in &request.linked {
        if let Some(loader) = libraries::interpreter(path)? {
            loaders.insert(loader);
        }
        libraries.extend(libraries::linked(path)?);
    }
    libraries.extend(loaders.iter().map(PathBuf::from));
    let mut searched = BTreeSet::new();
    for loader in &loaders {
        searched.extend(libraries::system_dirs(loader));
    }
    let mut extra_dirs = BTreeSet::new();
    for library in &libraries {
        let mode = std::fs::metadata(library)
            .with_context(|| format!("cannot read {}", library.display()))?
            .permissions()
            .mode()
            & 0o755;
        let at = normalized(library);
        let name = at.to_str().with_context(|| {
            format!(
                "{} has a path that is not UTF-8; the image cannot name it\n  hint: install \
                 the library under a UTF-8 path",
                library.display()
            )
        })?;
        entries.push(file(name, mode | 0o444, library)?);
        let dir = at.parent().unwrap_or(Path::new("/"));
        let is_loader = loaders.contains(name);
        // The loader also searches the glibc-hwcaps subfolders of its own.
        let hwcaps_of = dir
            .parent()
            .filter(|p| p.file_name().is_some_and(|n| n == "glibc-hwcaps"))
            .and_then(Path::parent);
        let searched_here =
            searched.contains(dir) || hwcaps_of.is_some_and(|d| searched.contains(d));
        if !is_loader && !searched.is_empty() && !searched_here {
            extra_dirs.insert(dir.to_string_lossy().into_owned());
        }
    }

    let mut env =
        vec!["PATH=/app/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()];
    if !extra_dirs.is_empty() {
        // Found here through ld.so.cache, which the image does not carry.
        env.push(format!(
            "LD_LIBRARY_PATH={}",
            extra_dirs.into_iter().collect::<Vec<_>>().join(":")
        ));
    }
    let manifest = request.manifest;
    let mut annotations = BTreeMap::from([
        (
            "org.opencontainers.image.title".to_string(),
            manifest.app.clone(),
        ),
        (
            "org.opencontainers.image.version".to_string(),
            manifest.version.clone(),
        ),
    ]);
    if let Some(git) = &manifest.git {
        annotations.insert(
            "org.opencontainers.image.revision".into(),
            git.commit.clone(),
        );
    }
    let entrypoint = entrypoint(request.signed);
    let image = Image {
        platform: platform.clone(),
        entrypoint: entrypoint.clone(),
        env,
        working_dir: UNPACK.into(),
        stop_signal: Some("SIGINT".into()),
        created: request.created,
        ref_name: manifest.version.clone(),
        annotations,
        created_by: "cargo orch bundle --oci".into(),
    };
    let written = output::replace_dir(dir, |staging| {
        Ok(orch_bundle::oci::write_layout(
            staging,
            &image,
            entries,
            request.mtime,
        )?)
    })?;
    Ok(Summary {
        tag: manifest.version.clone(),
        platform: format!("{}/{}", platform.os, platform.architecture),
        digest: written.manifest.digest,
        libraries: libraries.into_iter().collect(),
        entrypoint,
    })
}

/// `path` with `.` and `..` components resolved lexically (`ldd` prints
/// `$ORIGIN/../lib` paths as they were searched).
fn normalized(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// A regular file of the layer, copied from `from` (symbolic links followed).
fn file(path: &str, mode: u32, from: &Path) -> anyhow::Result<LayerEntry> {
    let size = std::fs::metadata(from)
        .with_context(|| format!("cannot read {}", from.display()))?
        .len();
    Ok(LayerEntry {
        path: path.trim_start_matches('/').into(),
        mode,
        content: Content::File {
            source: Source::Path(from.to_path_buf()),
            size,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_paths_are_made_plain() {
        assert_eq!(
            normalized(Path::new("/opt/app/lib/../lib64/./libx.so")),
            PathBuf::from("/opt/app/lib64/libx.so")
        );
    }

    #[test]
    fn the_entrypoint_trusts_the_mounted_keys_or_says_unsigned() {
        assert_eq!(
            entrypoint(true).join(" "),
            "/app/bin/cargo-orch orch run --bundle /app/bundle.tar --trusted-key \
             /etc/orch/keys --unpack-dir /var/lib/orch"
        );
        assert!(entrypoint(false).contains(&"--allow-unsigned".to_string()));
        assert!(!entrypoint(false).contains(&"--trusted-key".to_string()));
    }
}
