//! The reproducible archive writer: a POSIX ustar archive of regular files
//! only, sorted by path, every header with the same mtime, uid/gid 0, owner
//! and group `root`, and mode 0755 (executables and libraries) or 0644.
//! The same inputs give the same bytes.

use std::io::{Read, Write};
use std::path::PathBuf;

use crate::{BundleError, Phase};

pub use crate::format::BLOCK;
use crate::format::{Kind, header, padding};

/// Where an archived file's bytes come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file on disk, streamed.
    Path(PathBuf),
    /// Bytes in memory (the manifest, its signature).
    Bytes(Vec<u8>),
}

/// One file to archive.
#[derive(Debug, Clone)]
pub struct ArchiveFile {
    /// Its path in the archive (relative, `/`-separated, see
    /// [`crate::format::check_path`]).
    pub path: String,
    /// 0755 when true, 0644 otherwise.
    pub executable: bool,
    /// Its bytes.
    pub source: Source,
    /// The size it must have (checked while copying: a file that changed
    /// since the manifest was made is refused).
    pub size: u64,
}

/// Writes `files` (sorted here by path) as a ustar archive with every
/// header's mtime set to `mtime`.
pub fn write_archive(
    out: &mut impl Write,
    mut files: Vec<ArchiveFile>,
    mtime: u64,
) -> Result<(), BundleError> {
    files.sort_by(|a, b| a.path.cmp(&b.path));
    for pair in files.windows(2) {
        if pair[0].path == pair[1].path {
            return Err(BundleError::new(
                Phase::Write,
                &pair[0].path,
                "two files have this path in the archive",
                "give each module a distinct library name",
            ));
        }
    }
    for file in &files {
        let mode = if file.executable { 0o755 } else { 0o644 };
        write_file(out, &file.path, mode, &file.source, file.size, mtime)?;
    }
    write_end(out)
}

fn failed(path: &str, error: std::io::Error) -> BundleError {
    BundleError::io(
        Phase::Write,
        path,
        error,
        "check the disk space and the output path",
    )
}

/// Writes one regular file: its header, `size` bytes from `source` (a
/// source of another size is refused: it changed while bundling), padding.
pub(crate) fn write_file(
    out: &mut impl Write,
    path: &str,
    mode: u32,
    source: &Source,
    size: u64,
    mtime: u64,
) -> Result<(), BundleError> {
    let header = header(path, Kind::File, mode, size, mtime)?;
    out.write_all(&header).map_err(|e| failed(path, e))?;
    let copied = match source {
        Source::Bytes(bytes) => {
            out.write_all(bytes).map_err(|e| failed(path, e))?;
            bytes.len() as u64
        }
        Source::Path(from) => {
            let reader = std::fs::File::open(from).map_err(|e| {
                BundleError::io(
                    Phase::Write,
                    from.display().to_string(),
                    e,
                    "was it deleted?",
                )
            })?;
            std::io::copy(&mut reader.take(size), out).map_err(|e| failed(path, e))?
        }
    };
    if copied != size {
        return Err(BundleError::new(
            Phase::Write,
            path,
            format!("{copied} bytes copied, {size} expected: it changed while bundling"),
            "bundle again once nothing rebuilds it",
        ));
    }
    let pad = padding(size);
    out.write_all(&[0u8; BLOCK][..pad])
        .map_err(|e| failed(path, e))
}

/// Writes the end of an archive (two zero blocks) and flushes.
pub(crate) fn write_end(out: &mut impl Write) -> Result<(), BundleError> {
    out.write_all(&[0u8; 2 * BLOCK])
        .map_err(|e| failed("end of archive", e))?;
    out.flush().map_err(|e| failed("end of archive", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, bytes: &[u8]) -> ArchiveFile {
        ArchiveFile {
            path: path.into(),
            executable: path.starts_with("bin/"),
            source: Source::Bytes(bytes.to_vec()),
            size: bytes.len() as u64,
        }
    }

    #[test]
    fn the_same_files_in_any_order_give_the_same_bytes() {
        let a = vec![file("b.txt", b"bee"), file("bin/x", &[7; 600])];
        let b = vec![file("bin/x", &[7; 600]), file("b.txt", b"bee")];
        let (mut one, mut two) = (Vec::new(), Vec::new());
        write_archive(&mut one, a, 0).expect("write");
        write_archive(&mut two, b, 0).expect("write");
        assert_eq!(one, two);
        assert_eq!(one.len() % BLOCK, 0);
        assert_eq!(one.len(), BLOCK + BLOCK + BLOCK + 2 * BLOCK + 2 * BLOCK);
    }

    #[test]
    fn duplicate_and_invalid_paths_are_refused() {
        let mut out = Vec::new();
        assert!(write_archive(&mut out, vec![file("a", b""), file("a", b"")], 0).is_err());
        assert!(write_archive(&mut out, vec![file("../a", b"")], 0).is_err());
    }
}
