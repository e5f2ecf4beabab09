//! The reproducible archive writer: a POSIX ustar archive of regular files
//! only, sorted by path, every header with the same mtime, uid/gid 0, owner
//! and group `root`, and mode 0755 (executables and libraries) or 0644.
//! The same inputs give the same bytes.

use std::io::{Read, Write};
use std::path::PathBuf;

use crate::{BundleError, Phase};

pub use crate::format::BLOCK;
use crate::format::padding;

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
    let failed = |path: &str, error: std::io::Error| {
        BundleError::io(
            Phase::Write,
            path,
            error,
            "check the disk space and the output path",
        )
    };
    for file in &files {
        let header = header(&file.path, file.size, file.executable, mtime)?;
        out.write_all(&header).map_err(|e| failed(&file.path, e))?;
        let copied = match &file.source {
            Source::Bytes(bytes) => {
                out.write_all(bytes).map_err(|e| failed(&file.path, e))?;
                bytes.len() as u64
            }
            Source::Path(path) => {
                let reader = std::fs::File::open(path).map_err(|e| {
                    BundleError::io(
                        Phase::Write,
                        path.display().to_string(),
                        e,
                        "was it deleted?",
                    )
                })?;
                std::io::copy(&mut reader.take(file.size), out)
                    .map_err(|e| failed(&file.path, e))?
            }
        };
        if copied != file.size {
            return Err(BundleError::new(
                Phase::Write,
                &file.path,
                format!(
                    "{copied} bytes copied, {} expected: it changed while bundling",
                    file.size
                ),
                "bundle again once nothing rebuilds it",
            ));
        }
        let pad = padding(file.size);
        out.write_all(&[0u8; BLOCK][..pad])
            .map_err(|e| failed(&file.path, e))?;
    }
    out.write_all(&[0u8; 2 * BLOCK])
        .map_err(|e| failed("end of archive", e))?;
    out.flush().map_err(|e| failed("end of archive", e))
}

/// One ustar header.
fn header(path: &str, size: u64, executable: bool, mtime: u64) -> Result<[u8; BLOCK], BundleError> {
    crate::format::check_path(path).map_err(|cause| {
        BundleError::new(
            Phase::Write,
            path,
            cause,
            "archive paths are relative and plain",
        )
    })?;
    let mut h = [0u8; BLOCK];
    // A name of up to 100 bytes, or a prefix (up to 155) and a name split at a `/`.
    let (prefix, name) = if path.len() <= 100 {
        ("", path)
    } else {
        path.char_indices()
            .filter(|&(i, c)| c == '/' && i <= 155 && path.len() - i - 1 <= 100)
            .map(|(i, _)| (&path[..i], &path[i + 1..]))
            .next()
            .ok_or_else(|| {
                BundleError::new(
                    Phase::Write,
                    path,
                    "path too long for a ustar header",
                    "shorten it",
                )
            })?
    };
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], if executable { 0o755 } else { 0o644 });
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    if size >= 0o77777777777 {
        return Err(BundleError::new(
            Phase::Write,
            path,
            "larger than 8 GiB",
            "bundle smaller files",
        ));
    }
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime.min(0o77777777777));
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[265..269].copy_from_slice(b"root");
    h[297..301].copy_from_slice(b"root");
    h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    octal(&mut h[148..155], u64::from(sum));
    h[155] = b' ';
    Ok(h)
}

/// Writes `value` as zero-padded octal digits followed by a NUL.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
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
