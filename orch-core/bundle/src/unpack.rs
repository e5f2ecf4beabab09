//! A bundle made ready to run: unpacked into a versioned folder and
//! verified, or an unpacked folder verified in place.
//!
//! An archive is unpacked in one pass into a fresh staging folder beside the
//! destination (every file hashed as it is written), verified there
//! (signature, then every file against the manifest), and only then renamed
//! to `<app>-<version>-<first 12 hex digits of the manifest's SHA-256>`: a
//! refused bundle leaves nothing behind, and a folder of that name is always
//! one that passed. A folder that already exists (the same bundle run again)
//! is verified again file by file instead and reused, so its `state/` and
//! logs survive; an altered one is refused, never overwritten.
//!
//! What the verified folder may hold besides the manifest's files: anything
//! outside `bin/`, `modules/` and `config/` (state, logs, an operator's
//! `.env`); inside them only the listed files, and no symbolic links.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use crate::format::{file_safe, sha256_of};
use crate::manifest::{MAX_MANIFEST_BYTES, Manifest};
use crate::reader::{MAX_ENTRIES, read_archive_with};
use crate::signing::TrustedKey;
use crate::verify::{
    MAX_SIGNATURE_BYTES, Verified, check_signature, is_kept, mismatch, verify_entries,
};
use crate::{BundleError, MANIFEST_PATH, Phase, SIGNATURE_PATH};

/// The folders that hold nothing but the manifest's files.
pub const GUARDED_FOLDERS: [&str; 3] = ["bin", "modules", "config"];

/// A bundle ready to run.
#[derive(Debug)]
pub struct Unpacked {
    /// The folder it runs from.
    pub dir: PathBuf,
    /// What was verified.
    pub verified: Verified,
    /// Whether the folder was there already (verified again, not rewritten).
    pub reused: bool,
}

/// The versioned folder name of a verified bundle.
pub fn folder_name(verified: &Verified) -> String {
    let digest = verified.manifest_sha256.get(..12).unwrap_or("unknown");
    format!(
        "{}-{}-{digest}",
        file_safe(&verified.manifest.app),
        file_safe(&verified.manifest.version)
    )
}

/// Unpacks the archive at `archive` into a versioned folder under `into`
/// and verifies it against `trusted` keys (see the module docs).
pub fn unpack_archive(
    archive: &Path,
    into: &Path,
    trusted: &[TrustedKey],
    allow_unsigned: bool,
) -> Result<Unpacked, BundleError> {
    let shown = archive.display().to_string();
    let input = File::open(archive).map_err(|e| {
        BundleError::io(
            Phase::Read,
            &shown,
            e,
            "check the bundle's path and that it is readable",
        )
    })?;
    std::fs::create_dir_all(into).map_err(|e| unpack_failed(into, e))?;
    let staging = into.join(format!(
        ".unpacking-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(|e| unpack_failed(&staging, e))?;
    let result = unpack_into(input, &staging, trusted, allow_unsigned).and_then(|verified| {
        let dir = into.join(folder_name(&verified));
        if dir.exists() {
            let again = verify_dir(&dir, trusted, allow_unsigned).map_err(|error| BundleError {
                hint: format!(
                    "{} holds an earlier unpacking of this bundle that was altered since; \
                         remove it and run again",
                    dir.display()
                ),
                ..error
            })?;
            return Ok(Unpacked {
                dir,
                verified: again,
                reused: true,
            });
        }
        set_mode(&staging, 0o755)?;
        if let Err(error) = std::fs::rename(&staging, &dir) {
            // Another run of the same bundle renamed its copy first.
            if dir.is_dir() {
                let again = verify_dir(&dir, trusted, allow_unsigned)?;
                return Ok(Unpacked {
                    dir,
                    verified: again,
                    reused: true,
                });
            }
            return Err(unpack_failed(&dir, error));
        }
        Ok(Unpacked {
            dir,
            verified,
            reused: false,
        })
    });
    if staging.exists() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

/// Writes every entry under `staging`, then verifies the entries.
fn unpack_into(
    input: File,
    staging: &Path,
    trusted: &[TrustedKey],
    allow_unsigned: bool,
) -> Result<Verified, BundleError> {
    let entries = read_archive_with(BufReader::new(input), is_kept, |path| {
        let target = staging.join(path);
        if let Some(parent) = target.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(|e| unpack_failed(parent, e))?;
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode_of(path))
            .open(&target)
            .map_err(|e| unpack_failed(&target, e))?;
        Ok(Some(BufWriter::new(file)))
    })?;
    verify_entries(&entries, trusted, allow_unsigned)
}

/// 0755 for programs and libraries, 0644 for the rest (as bundled).
fn mode_of(path: &str) -> u32 {
    if path.starts_with("bin/") || path.starts_with("modules/") {
        0o755
    } else {
        0o644
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), BundleError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| unpack_failed(path, e))
}

fn unpack_failed(path: &Path, error: std::io::Error) -> BundleError {
    BundleError::io(
        Phase::Unpack,
        path.display().to_string(),
        error,
        "check that the folder the bundle unpacks into is writable and has room \
         (--unpack-dir DIR chooses another)",
    )
}

/// Verifies an unpacked bundle folder in place: the signature over its
/// `manifest.json`, every listed file (a regular file, size and SHA-256),
/// and nothing else inside [`GUARDED_FOLDERS`].
pub fn verify_dir(
    dir: &Path,
    trusted: &[TrustedKey],
    allow_unsigned: bool,
) -> Result<Verified, BundleError> {
    let manifest_bytes = read_small(dir, MANIFEST_PATH, MAX_MANIFEST_BYTES)?.ok_or_else(|| {
        BundleError::new(
            Phase::Manifest,
            dir.join(MANIFEST_PATH).display().to_string(),
            "missing",
            "this is not a bundle folder: unpack a bundle made by `cargo orch bundle` here",
        )
    })?;
    let signature = read_small(dir, SIGNATURE_PATH, MAX_SIGNATURE_BYTES)?;
    let signature = check_signature(
        &manifest_bytes,
        signature.as_deref(),
        trusted,
        allow_unsigned,
    )?;
    let manifest = Manifest::from_bytes(&manifest_bytes)?;
    for listed in &manifest.files {
        let path = dir.join(&listed.path);
        regular_file(&path, &listed.path)?;
        let file = File::open(&path).map_err(|e| files_failed(&listed.path, e))?;
        let (size, sha256) =
            sha256_of(BufReader::new(file)).map_err(|e| files_failed(&listed.path, e))?;
        if size != listed.size || sha256 != listed.sha256 {
            return Err(mismatch(&listed.path, size, &sha256, listed));
        }
    }
    let mut seen = 0usize;
    for folder in GUARDED_FOLDERS {
        refuse_unlisted(dir, Path::new(folder), &manifest, &mut seen)?;
    }
    Ok(Verified {
        manifest,
        manifest_sha256: crate::format::sha256_hex(&manifest_bytes),
        signature,
    })
}

/// Refuses anything under `dir/relative` that is not a folder or a listed
/// regular file (symbolic links included).
fn refuse_unlisted(
    dir: &Path,
    relative: &Path,
    manifest: &Manifest,
    seen: &mut usize,
) -> Result<(), BundleError> {
    let folder = dir.join(relative);
    let listing = match std::fs::read_dir(&folder) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(files_failed(&relative.display().to_string(), e)),
    };
    for entry in listing {
        let entry = entry.map_err(|e| files_failed(&relative.display().to_string(), e))?;
        *seen += 1;
        let inner = relative.join(entry.file_name());
        let shown = inner.to_string_lossy().into_owned();
        if *seen > MAX_ENTRIES {
            return Err(added(&shown, "one entry too many in the bundle's folders"));
        }
        let kind = entry.file_type().map_err(|e| files_failed(&shown, e))?;
        if kind.is_dir() {
            refuse_unlisted(dir, &inner, manifest, seen)?;
        } else if !kind.is_file() {
            return Err(added(&shown, "not a regular file (a link or a device)"));
        } else if manifest.file(&shown).is_none() {
            return Err(added(
                &shown,
                "in the bundle's folder but not listed in the manifest",
            ));
        }
    }
    Ok(())
}

fn added(path: &str, cause: &str) -> BundleError {
    BundleError::new(
        Phase::Files,
        path,
        cause,
        "something was added after unpacking: remove the folder and unpack the bundle again",
    )
}

/// Refuses `path` unless it is a regular file (not a symbolic link).
fn regular_file(path: &Path, shown: &str) -> Result<(), BundleError> {
    let metadata = std::fs::symlink_metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            BundleError::new(
                Phase::Files,
                shown,
                "listed in the manifest but missing from the folder",
                "the folder is incomplete: unpack the bundle again",
            )
        } else {
            files_failed(shown, e)
        }
    })?;
    if !metadata.file_type().is_file() {
        return Err(added(shown, "not a regular file (a link or a device)"));
    }
    Ok(())
}

/// The bytes of `dir/name` when it exists, refusing more than `max` bytes
/// or anything but a regular file.
fn read_small(dir: &Path, name: &str, max: u64) -> Result<Option<Vec<u8>>, BundleError> {
    let path = dir.join(name);
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(files_failed(name, e)),
        Ok(_) => regular_file(&path, name)?,
    }
    let file = File::open(&path).map_err(|e| files_failed(name, e))?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| files_failed(name, e))?;
    if bytes.len() as u64 > max {
        return Err(BundleError::new(
            Phase::Manifest,
            name,
            format!("more than the {max} bytes accepted"),
            "unpack the bundle again",
        ));
    }
    Ok(Some(bytes))
}

fn files_failed(path: &str, error: std::io::Error) -> BundleError {
    BundleError::io(
        Phase::Files,
        path,
        error,
        "check that the bundle's folder is readable",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(files: &[(&str, &[u8])]) -> Vec<u8> {
        crate::verify::tests::bundle(files, files, None)
    }

    const FILES: &[(&str, &[u8])] = &[
        ("bin/cargo-orch", b"host"),
        ("modules/libm.so", b"module"),
        ("config/main.yaml", b"app: {}\n"),
    ];

    fn unpacked_once() -> (tempfile::TempDir, Unpacked) {
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = dir.path().join("app.tar");
        std::fs::write(&archive, bundle(FILES)).expect("write");
        let unpacked = unpack_archive(&archive, dir.path(), &[], true).expect("unpacks");
        (dir, unpacked)
    }

    #[test]
    fn unpacks_into_a_versioned_folder_and_reuses_it() {
        let (dir, first) = unpacked_once();
        let name = first
            .dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name");
        assert!(name.starts_with("a-1-"), "{name}");
        assert!(!first.reused);
        assert_eq!(
            std::fs::read(first.dir.join("modules/libm.so")).expect("read"),
            b"module"
        );
        std::fs::create_dir_all(first.dir.join("state")).expect("state");
        std::fs::write(first.dir.join("state/x"), b"kept").expect("write");
        let again =
            unpack_archive(&dir.path().join("app.tar"), dir.path(), &[], true).expect("again");
        assert!(again.reused);
        assert!(first.dir.join("state/x").is_file(), "state survives");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(".unpacking"))
            .collect();
        assert!(leftovers.is_empty(), "no staging folder is left behind");
    }

    #[test]
    fn an_altered_or_added_file_in_the_folder_is_named() {
        let (_dir, unpacked) = unpacked_once();
        verify_dir(&unpacked.dir, &[], true).expect("verifies");
        std::fs::write(unpacked.dir.join("config/extra.yaml"), b"x").expect("write");
        let error = verify_dir(&unpacked.dir, &[], true).expect_err("added");
        assert_eq!(error.subject, "config/extra.yaml");
        std::fs::remove_file(unpacked.dir.join("config/extra.yaml")).expect("rm");
        std::fs::write(unpacked.dir.join("modules/libm.so"), b"modulE").expect("write");
        let error = verify_dir(&unpacked.dir, &[], true).expect_err("altered");
        assert_eq!(error.subject, "modules/libm.so");
        std::fs::remove_file(unpacked.dir.join("modules/libm.so")).expect("rm");
        std::os::unix::fs::symlink("/etc/passwd", unpacked.dir.join("modules/libm.so"))
            .expect("link");
        let error = verify_dir(&unpacked.dir, &[], true).expect_err("link");
        assert_eq!(error.subject, "modules/libm.so");
        assert!(error.cause.contains("not a regular file"), "{error}");
    }

    #[test]
    fn a_refused_archive_leaves_nothing_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = dir.path().join("app.tar");
        std::fs::write(&archive, bundle(FILES)).expect("write");
        let into = dir.path().join("run");
        let error = unpack_archive(&archive, &into, &[], false).expect_err("unsigned");
        assert_eq!(error.phase, Phase::Signature);
        let left: Vec<_> = std::fs::read_dir(&into)
            .expect("list")
            .filter_map(Result::ok)
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}
