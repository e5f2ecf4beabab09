//! The OCI image layout on disk (image-spec v1.0): `oci-layout`,
//! `index.json` and `blobs/sha256/<hex>`, written into an empty folder (the
//! caller moves it into place), and the test that an existing folder is
//! such a layout and nothing else, so replacing it loses nothing.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::image::{CONFIG_MEDIA_TYPE, Descriptor, Image, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use super::layer::{LayerEntry, write_layer};
use crate::format::hex;
use crate::{BundleError, Phase};

/// The content of the `oci-layout` file.
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// What [`write_layout`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// The image manifest's descriptor.
    pub manifest: Descriptor,
    /// The layer's descriptor.
    pub layer: Descriptor,
}

/// A writer that hashes and counts what goes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn io_error(path: &Path, error: std::io::Error) -> BundleError {
    BundleError::io(
        Phase::Oci,
        path.display().to_string(),
        error,
        "check the disk space and that the output folder is writable",
    )
}

fn write_blob(blobs: &Path, bytes: &[u8]) -> Result<(), BundleError> {
    let path = blobs.join(crate::format::sha256_hex(bytes));
    std::fs::write(&path, bytes).map_err(|e| io_error(&path, e))
}

/// Writes the image with one layer of `entries` (mtime `mtime`) into `dir`,
/// an existing empty folder.
pub fn write_layout(
    dir: &Path,
    image: &Image,
    entries: Vec<LayerEntry>,
    mtime: u64,
) -> Result<Written, BundleError> {
    super::image::check_ref_name(&image.ref_name)?;
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| io_error(&blobs, e))?;

    // The layer, hashed while it is written, then named by its digest.
    let partial = blobs.join("layer.partial");
    let file = File::create(&partial).map_err(|e| io_error(&partial, e))?;
    let mut out = Hashing {
        inner: BufWriter::new(file),
        hasher: Sha256::new(),
        size: 0,
    };
    write_layer(&mut out, entries, mtime)?;
    let layer = Descriptor::new(
        LAYER_MEDIA_TYPE,
        hex(&out.hasher.finalize_reset()),
        out.size,
    );
    out.inner
        .into_inner()
        .map_err(|e| io_error(&partial, e.into_error()))?
        .sync_all()
        .map_err(|e| io_error(&partial, e))?;
    let layer_path = blobs.join(layer.digest.trim_start_matches("sha256:"));
    std::fs::rename(&partial, &layer_path).map_err(|e| io_error(&layer_path, e))?;

    // Uncompressed: the layer's digest is its diff id.
    let config = image.config_json(&layer.digest);
    write_blob(&blobs, &config)?;
    let config = Descriptor::of(CONFIG_MEDIA_TYPE, &config);
    let manifest = image.manifest_json(&config, &layer);
    write_blob(&blobs, &manifest)?;
    let manifest = Descriptor::of(MANIFEST_MEDIA_TYPE, &manifest);
    let index = dir.join("index.json");
    std::fs::write(&index, image.index_json(&manifest)).map_err(|e| io_error(&index, e))?;
    let marker = dir.join("oci-layout");
    std::fs::write(&marker, OCI_LAYOUT).map_err(|e| io_error(&marker, e))?;
    Ok(Written { manifest, layer })
}

/// Whether `dir` is an OCI image layout and holds nothing else: `oci-layout`
/// (with an `imageLayoutVersion`), `index.json`, and under `blobs/` only
/// algorithm folders of files named in hex. `Err` says what else it holds.
pub fn check_replaceable(dir: &Path) -> Result<(), String> {
    let list = |dir: &Path| -> Result<Vec<(String, std::fs::FileType)>, String> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let kind = entry
                .file_type()
                .map_err(|e| format!("{}: {e}", entry.path().display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            found.push((name, kind));
        }
        Ok(found)
    };
    let mut names = list(dir)?;
    names.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, kind) in names {
        match name.as_str() {
            "oci-layout" | "index.json" if kind.is_file() => {}
            "blobs" if kind.is_dir() => {}
            _ => return Err(format!("it holds `{name}`")),
        }
    }
    let marker = std::fs::read(dir.join("oci-layout"))
        .map_err(|_| "it has no oci-layout file".to_string())?;
    let version = serde_json::from_slice::<serde_json::Value>(&marker)
        .ok()
        .and_then(|v| v.get("imageLayoutVersion").cloned());
    if version.is_none() {
        return Err("its oci-layout file has no imageLayoutVersion".into());
    }
    let blobs = dir.join("blobs");
    if !blobs.is_dir() {
        return Ok(());
    }
    for (algorithm, kind) in list(&blobs)? {
        if !kind.is_dir() {
            return Err(format!("blobs/{algorithm} is not a folder"));
        }
        for (name, kind) in list(&blobs.join(&algorithm))? {
            let digest_like = !name.is_empty() && name.bytes().all(|b| b.is_ascii_hexdigit());
            if !kind.is_file() || !digest_like {
                return Err(format!("it holds blobs/{algorithm}/{name}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::image::Platform;
    use std::collections::BTreeMap;

    fn image() -> Image {
        Image {
            platform: Platform::of_target("x86_64-unknown-linux-gnu").expect("platform"),
            entrypoint: vec!["/app/bin/x".into(), "run".into()],
            env: vec!["PATH=/app/bin".into()],
            working_dir: "/var/lib/orch".into(),
            stop_signal: Some("SIGINT".into()),
            created: None,
            ref_name: "1.2.3".into(),
            annotations: BTreeMap::from([(
                "org.opencontainers.image.version".to_string(),
                "1.2.3".to_string(),
            )]),
            created_by: "test".into(),
        }
    }

    fn entries(on_disk: &Path) -> Vec<LayerEntry> {
        vec![
            LayerEntry::bytes("app/bundle.tar", 0o644, vec![1; 1000]),
            LayerEntry {
                path: "app/bin/x".into(),
                mode: 0o755,
                content: super::super::layer::Content::File {
                    source: crate::archive::Source::Path(on_disk.to_path_buf()),
                    size: 5,
                },
            },
            LayerEntry::dir("tmp", 0o1777),
        ]
    }

    /// Every file under `dir`: (relative path, bytes), sorted.
    fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut found = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(at) = stack.pop() {
            for entry in std::fs::read_dir(&at).expect("read_dir").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let name = path
                        .strip_prefix(dir)
                        .expect("prefix")
                        .display()
                        .to_string();
                    found.push((name, std::fs::read(&path).expect("read")));
                }
            }
        }
        found.sort();
        found
    }

    #[test]
    fn two_layouts_of_the_same_image_are_byte_identical_and_consistent() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let binary = tmp.path().join("x");
        std::fs::write(&binary, b"hello").expect("write");
        let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
        for dir in [&one, &two] {
            std::fs::create_dir(dir).expect("mkdir");
            write_layout(dir, &image(), entries(&binary), 7).expect("layout");
        }
        let (a, b) = (files(&one), files(&two));
        assert_eq!(a, b);
        let names: Vec<&str> = a.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(names.len(), 5, "{names:?}");
        assert!(names.contains(&"oci-layout") && names.contains(&"index.json"));
        // Every blob is named by its digest; the index points at the manifest.
        for (name, bytes) in &a {
            if let Some(hex) = name.strip_prefix("blobs/sha256/") {
                assert_eq!(crate::format::sha256_hex(bytes), hex);
            }
        }
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(one.join("index.json")).expect("index"))
                .expect("JSON");
        let manifest = &index["manifests"][0];
        assert_eq!(
            manifest["annotations"][super::super::image::REF_NAME],
            "1.2.3"
        );
        assert_eq!(manifest["platform"]["architecture"], "amd64");
        let digest = manifest["digest"].as_str().expect("digest");
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(one.join("blobs/sha256").join(&digest[7..])).expect("manifest"),
        )
        .expect("JSON");
        let config_digest = manifest["config"]["digest"].as_str().expect("config");
        let config: serde_json::Value = serde_json::from_slice(
            &std::fs::read(one.join("blobs/sha256").join(&config_digest[7..])).expect("config"),
        )
        .expect("JSON");
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            manifest["layers"][0]["digest"]
        );
        assert_eq!(config["config"]["Entrypoint"][1], "run");
        assert!(config.get("created").is_none());
        assert_eq!(check_replaceable(&one), Ok(()));
    }

    #[test]
    fn only_a_pure_layout_is_replaceable() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        assert!(check_replaceable(dir).is_err(), "empty: no oci-layout");
        std::fs::write(dir.join("oci-layout"), OCI_LAYOUT).expect("write");
        std::fs::write(dir.join("index.json"), b"{}").expect("write");
        std::fs::create_dir_all(dir.join("blobs/sha256")).expect("mkdir");
        std::fs::write(dir.join("blobs/sha256/abc123"), b"").expect("write");
        assert_eq!(check_replaceable(dir), Ok(()));
        std::fs::write(dir.join("blobs/sha256/notes.txt"), b"").expect("write");
        assert!(check_replaceable(dir).is_err());
        std::fs::remove_file(dir.join("blobs/sha256/notes.txt")).expect("rm");
        std::fs::write(dir.join("README"), b"").expect("write");
        let why = check_replaceable(dir).expect_err("README");
        assert!(why.contains("README"), "{why}");
    }
}
