//! The image's one layer: an uncompressed ustar archive of a root
//! filesystem, written as reproducibly as the bundle (sorted, one mtime,
//! owner root), with folders: each file's missing parent folders are added
//! with mode 0755. Written only; the bundle's strict reader never sees it.

use std::collections::BTreeMap;
use std::io::Write;

use crate::archive::{Source, write_end, write_file};
use crate::format::{Kind, header};
use crate::{BundleError, Phase};

/// What one entry of the layer is.
#[derive(Debug, Clone)]
pub enum Content {
    /// A folder.
    Dir,
    /// A regular file of `size` bytes (checked while copying).
    File {
        /// Its bytes.
        source: Source,
        /// The size it must have.
        size: u64,
    },
}

/// One entry of the layer.
#[derive(Debug, Clone)]
pub struct LayerEntry {
    /// Its path in the root filesystem, without the leading `/`.
    pub path: String,
    /// Its permission bits (e.g. 0o755, 0o1777).
    pub mode: u32,
    /// A folder or a file.
    pub content: Content,
}

impl LayerEntry {
    /// A folder.
    pub fn dir(path: impl Into<String>, mode: u32) -> Self {
        Self {
            path: path.into(),
            mode,
            content: Content::Dir,
        }
    }

    /// A file from memory.
    pub fn bytes(path: impl Into<String>, mode: u32, bytes: Vec<u8>) -> Self {
        Self {
            path: path.into(),
            mode,
            content: Content::File {
                size: bytes.len() as u64,
                source: Source::Bytes(bytes),
            },
        }
    }
}

fn conflict(path: &str, cause: &str) -> BundleError {
    BundleError::new(
        Phase::Oci,
        path,
        cause,
        "each path of the root filesystem is given once, a folder or a file",
    )
}

/// Writes `entries` as a layer: parent folders added, sorted by path, every
/// header's mtime `mtime`. A path given twice is refused, except a folder
/// given twice with the same mode.
pub fn write_layer(
    out: &mut impl Write,
    entries: Vec<LayerEntry>,
    mtime: u64,
) -> Result<(), BundleError> {
    let mut tree: BTreeMap<String, LayerEntry> = BTreeMap::new();
    for entry in entries {
        let path = entry.path.trim_start_matches('/').to_string();
        match (tree.get(&path), &entry.content) {
            (None, _) => {}
            (Some(old), Content::Dir) if matches!(old.content, Content::Dir) => {
                if old.mode != entry.mode {
                    return Err(conflict(&path, "a folder given twice with two modes"));
                }
            }
            (Some(_), _) => return Err(conflict(&path, "two entries have this path")),
        }
        tree.insert(path.clone(), LayerEntry { path, ..entry });
    }
    let parents: Vec<String> = tree
        .keys()
        .flat_map(|path| {
            path.match_indices('/')
                .map(|(at, _)| path[..at].to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    for parent in parents {
        match tree.get(&parent) {
            Some(LayerEntry {
                content: Content::File { .. },
                ..
            }) => return Err(conflict(&parent, "a file is also the parent of another")),
            Some(_) => {}
            None => {
                tree.insert(parent.clone(), LayerEntry::dir(parent, 0o755));
            }
        }
    }
    let failed = |path: &str, error: std::io::Error| {
        BundleError::io(
            Phase::Oci,
            path,
            error,
            "check the disk space and the output path",
        )
    };
    for entry in tree.values() {
        match &entry.content {
            Content::Dir => {
                let block = header(&entry.path, Kind::Dir, entry.mode, 0, mtime)?;
                out.write_all(&block).map_err(|e| failed(&entry.path, e))?;
            }
            Content::File { source, size } => {
                write_file(out, &entry.path, entry.mode, source, *size, mtime)?;
            }
        }
    }
    write_end(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (path, type flag, mode) of each header.
    fn headers(bytes: &[u8]) -> Vec<(String, u8, String)> {
        let mut found = Vec::new();
        let mut at = 0;
        while at + 512 <= bytes.len() && bytes[at..at + 512].iter().any(|&b| b != 0) {
            let h = &bytes[at..at + 512];
            let end = h[..100].iter().position(|&b| b == 0).unwrap_or(100);
            let name = String::from_utf8_lossy(&h[..end]).into_owned();
            let mode = String::from_utf8_lossy(&h[100..107]).into_owned();
            let size = usize::from_str_radix(std::str::from_utf8(&h[124..135]).expect("size"), 8)
                .expect("octal");
            found.push((name, h[156], mode));
            at += 512 + size.div_ceil(512) * 512;
        }
        found
    }

    #[test]
    fn parents_are_added_sorted_and_modes_kept() {
        let mut out = Vec::new();
        let entries = vec![
            LayerEntry::bytes("/app/bin/x", 0o755, b"x".to_vec()),
            LayerEntry::dir("tmp", 0o1777),
            LayerEntry::dir("etc/orch/keys", 0o755),
            LayerEntry::dir("tmp", 0o1777),
        ];
        write_layer(&mut out, entries, 0).expect("write");
        let found = headers(&out);
        let names: Vec<&str> = found.iter().map(|h| h.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "app/",
                "app/bin/",
                "app/bin/x",
                "etc/",
                "etc/orch/",
                "etc/orch/keys/",
                "tmp/"
            ]
        );
        assert_eq!(found[2].1, b'0');
        assert_eq!(found[6], ("tmp/".into(), b'5', "0001777".into()));
    }

    #[test]
    fn conflicting_paths_are_refused() {
        let mut out = Vec::new();
        let twice = vec![
            LayerEntry::bytes("a", 0o644, vec![]),
            LayerEntry::bytes("a", 0o644, vec![]),
        ];
        assert!(write_layer(&mut out, twice, 0).is_err());
        let parent = vec![
            LayerEntry::bytes("a", 0o644, vec![]),
            LayerEntry::bytes("a/b", 0o644, vec![]),
        ];
        assert!(write_layer(&mut out, parent, 0).is_err());
        let modes = vec![LayerEntry::dir("d", 0o755), LayerEntry::dir("d", 0o700)];
        assert!(write_layer(&mut out, modes, 0).is_err());
    }
}
