//! The manifest: what was built, from what, and every file's size and
//! SHA-256. Serialized as pretty JSON with a fixed key order and the files
//! sorted by path, so the same inputs give the same bytes.

use serde::{Deserialize, Serialize};

pub use crate::format::{sha256_hex, sha256_of};
use crate::{BundleError, Phase};

/// The manifest format this crate writes and reads.
pub const FORMAT: u32 = 1;

/// The largest manifest a reader accepts (bytes); a bigger one is refused
/// before it is read into memory.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// The most files a manifest may list.
pub const MAX_FILES: usize = 10_000;

/// The manifest of one bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// `app.name` of main.yaml.
    pub app: String,
    /// `app.version` of main.yaml.
    pub version: String,
    /// The source tree's git state, absent when it is not a git repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitState>,
    /// The target triple the host binary and modules were built for.
    pub target: String,
    /// `rustc -vV`'s first line (the compiler that built the modules).
    pub rustc: String,
    /// The module ABI version of the SDK the host was built with.
    pub abi_version: u32,
    /// `debug` or `release`.
    pub profile: String,
    /// The environment overlay bundled under `config/<env>/`, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The cargo packages modules.yaml names (every declared module's,
    /// enabled or not), sorted by name: what the target machine checks the
    /// configuration against in place of a workspace.
    pub packages: Vec<PackageEntry>,
    /// Every file of the archive except the manifest and its signature,
    /// sorted by path.
    pub files: Vec<FileEntry>,
}

/// A cargo package of the workspace the bundle was made in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageEntry {
    /// The package's name.
    pub name: String,
    /// The folder of its `Cargo.toml`, relative to the workspace root
    /// (`/`-separated; what a `path:` entry of modules.yaml names).
    pub dir: String,
    /// Its library in the archive (`modules/<file>`); absent when no
    /// enabled module uses the package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
}

/// The git state of the tree a bundle was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitState {
    /// `git rev-parse HEAD`.
    pub commit: String,
    /// Whether `git status --porcelain` listed anything.
    pub dirty: bool,
}

/// One file of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Its path in the archive (relative, `/`-separated).
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

impl Manifest {
    /// The JSON bytes that are archived and signed (files sorted by path).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut sorted = self.clone();
        sorted.files.sort_by(|a, b| a.path.cmp(&b.path));
        sorted.packages.sort_by(|a, b| a.name.cmp(&b.name));
        let mut bytes = serde_json::to_vec_pretty(&sorted).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Parses manifest bytes read from an archive: bounded, every field
    /// known, the files' paths valid and unique.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BundleError> {
        let refuse = |cause: String| {
            BundleError::new(
                Phase::Manifest,
                crate::MANIFEST_PATH,
                cause,
                "rebuild the bundle with `cargo orch bundle`; a manifest is never edited by hand",
            )
        };
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(refuse(format!(
                "{} bytes, more than the {MAX_MANIFEST_BYTES} accepted",
                bytes.len()
            )));
        }
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| refuse(format!("not a valid manifest: {e}")))?;
        if manifest.format != FORMAT {
            return Err(refuse(format!(
                "format {} (this cargo-orch reads format {FORMAT})",
                manifest.format
            )));
        }
        if manifest.files.len() > MAX_FILES {
            return Err(refuse(format!(
                "{} files listed, more than the {MAX_FILES} accepted",
                manifest.files.len()
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for file in &manifest.files {
            crate::format::check_path(&file.path).map_err(|cause| {
                refuse(format!("lists an invalid path {:?}: {cause}", file.path))
            })?;
            if file.path == crate::MANIFEST_PATH || file.path == crate::SIGNATURE_PATH {
                return Err(refuse(format!(
                    "lists itself or its signature ({})",
                    file.path
                )));
            }
            if !seen.insert(file.path.as_str()) {
                return Err(refuse(format!("lists {} twice", file.path)));
            }
            if file.sha256.len() != 64 || !file.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(refuse(format!(
                    "{}: sha256 is not 64 hex digits",
                    file.path
                )));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for package in &manifest.packages {
            if !names.insert(package.name.as_str()) {
                return Err(refuse(format!("lists package {} twice", package.name)));
            }
            if !package.dir.is_empty() {
                crate::format::check_path(&package.dir).map_err(|cause| {
                    refuse(format!(
                        "package {}: invalid folder {:?}: {cause}",
                        package.name, package.dir
                    ))
                })?;
            }
            if let Some(library) = &package.library
                && !(library.starts_with("modules/") && seen.contains(library.as_str()))
            {
                return Err(refuse(format!(
                    "package {}: its library {library:?} is not a listed file under modules/",
                    package.name
                )));
            }
        }
        Ok(manifest)
    }

    /// The file entry listed at `path`.
    pub fn file(&self, path: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.path == path)
    }

    /// The commit the bundle was built from, `-dirty` appended for a dirty
    /// tree, `unknown` outside git.
    pub fn commit(&self) -> String {
        match &self.git {
            Some(git) if git.dirty => format!("{}-dirty", git.commit),
            Some(git) => git.commit.clone(),
            None => "unknown".to_string(),
        }
    }

    /// The trusted comment of the manifest's signature: application,
    /// version and commit (`unknown` outside git; `-dirty` appended).
    pub fn trusted_comment(&self) -> String {
        format!(
            "app:{} version:{} commit:{}",
            self.app,
            self.version,
            self.commit()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format: FORMAT,
            app: "demo".into(),
            version: "1.2.3".into(),
            git: Some(GitState {
                commit: "abc".into(),
                dirty: true,
            }),
            target: "x86_64-unknown-linux-gnu".into(),
            rustc: "rustc 1.89.0".into(),
            abi_version: 4,
            profile: "debug".into(),
            environment: None,
            packages: vec![PackageEntry {
                name: "b".into(),
                dir: "modules-backend/b".into(),
                library: Some("modules/b.so".into()),
            }],
            files: vec![
                FileEntry {
                    path: "modules/b.so".into(),
                    size: 1,
                    sha256: sha256_hex(b"b"),
                },
                FileEntry {
                    path: "bin/cargo-orch".into(),
                    size: 1,
                    sha256: sha256_hex(b"a"),
                },
            ],
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_or_mutated_bytes_never_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
            at in proptest::prelude::any::<usize>(),
            value in proptest::prelude::any::<u8>(),
        ) {
            let _ = Manifest::from_bytes(&bytes);
            let mut valid = sample().to_bytes();
            let at = at % valid.len();
            valid[at] = value;
            if let Ok(manifest) = Manifest::from_bytes(&valid) {
                for file in &manifest.files {
                    proptest::prop_assert!(crate::format::check_path(&file.path).is_ok());
                }
            }
        }
    }

    #[test]
    fn round_trips_with_sorted_files() {
        let bytes = sample().to_bytes();
        let back = Manifest::from_bytes(&bytes).expect("parses");
        assert_eq!(back.files[0].path, "bin/cargo-orch");
        assert_eq!(back.to_bytes(), bytes);
    }

    #[test]
    fn the_trusted_comment_names_app_version_and_commit() {
        assert_eq!(
            sample().trusted_comment(),
            "app:demo version:1.2.3 commit:abc-dirty"
        );
    }

    #[test]
    fn refuses_unknown_fields_bad_paths_and_duplicates() {
        let mut m = sample();
        m.files[0].path = "../etc/passwd".into();
        assert!(Manifest::from_bytes(&m.to_bytes()).is_err());
        let mut m = sample();
        m.files[1].path = "modules/b.so".into();
        assert!(Manifest::from_bytes(&m.to_bytes()).is_err());
        let text = String::from_utf8(sample().to_bytes()).expect("utf-8");
        let extra = text.replacen("\"format\"", "\"evil\": 1, \"format\"", 1);
        assert!(Manifest::from_bytes(extra.as_bytes()).is_err());
        let mut m = sample();
        m.packages[0].library = Some("bin/cargo-orch".into());
        assert!(
            Manifest::from_bytes(&m.to_bytes()).is_err(),
            "library outside modules/"
        );
        let big = vec![b' '; (MAX_MANIFEST_BYTES + 1) as usize];
        let error = Manifest::from_bytes(&big).expect_err("too big");
        assert!(error.to_string().contains("more than"), "{error}");
    }
}
