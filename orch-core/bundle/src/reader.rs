//! The archive reader, written for hostile bytes: it accepts the ustar
//! archives [`crate::archive`] writes and refuses anything else by name.
//! Regular files only (links, devices, folders and pax/GNU extensions are
//! refused), relative plain paths only (no `..`, no `.`, no absolute path,
//! no empty component), each path once, checksums checked, every file's
//! bytes streamed through SHA-256; only the few entries the caller asks to
//! keep (the manifest, its signature) are held in memory, up to
//! [`MAX_KEPT_BYTES`] each. Nothing is allocated from a size a header claims.

use std::io::Read;

use sha2::{Digest as _, Sha256};

pub use crate::format::check_path;
use crate::format::{BLOCK, hex, padding};
use crate::{BundleError, Phase};

/// The largest entry kept in memory (the manifest's bound).
pub const MAX_KEPT_BYTES: u64 = crate::manifest::MAX_MANIFEST_BYTES;

/// The most entries an archive may hold.
pub const MAX_ENTRIES: usize = crate::manifest::MAX_FILES + 2;

/// One regular file read from an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its path in the archive.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
    /// Its bytes, when the caller asked to keep them.
    pub data: Option<Vec<u8>>,
}

fn refuse(subject: &str, cause: impl Into<String>) -> BundleError {
    BundleError::new(
        Phase::Read,
        subject,
        cause,
        "this is not an archive written by `cargo orch bundle`, or it was altered: \
         bundle again from the sources",
    )
}

/// Reads every entry of the archive in `input`, keeping the bytes of those
/// for which `keep(path)` is true (at most [`MAX_KEPT_BYTES`] each).
pub fn read_archive(
    input: impl Read,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<Entry>, BundleError> {
    read_archive_with(input, keep, |_| Ok(None::<std::io::Sink>))
}

/// As [`read_archive`], and every entry's bytes are also written to the
/// writer `open(path)` returns for it (none when it returns `None`). The
/// path has been checked ([`check_path`]) before `open` sees it.
pub fn read_archive_with<W: std::io::Write>(
    mut input: impl Read,
    keep: impl Fn(&str) -> bool,
    mut open: impl FnMut(&str) -> Result<Option<W>, BundleError>,
) -> Result<Vec<Entry>, BundleError> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut block = [0u8; BLOCK];
    loop {
        let where_ = entries
            .last()
            .map(|e| format!("after {}", e.path))
            .unwrap_or_else(|| "first header".into());
        if !read_block(&mut input, &mut block).map_err(|e| read_failed(&where_, e))? {
            return Err(refuse(
                &where_,
                "archive ends without its end-of-archive blocks",
            ));
        }
        if block.iter().all(|&b| b == 0) {
            return end_of_archive(&mut input, entries);
        }
        let (path, size) = parse_header(&block).map_err(|cause| refuse(&where_, cause))?;
        if !seen.insert(path.clone()) {
            return Err(refuse(&path, "appears twice in the archive"));
        }
        if entries.len() >= MAX_ENTRIES {
            return Err(refuse(&path, format!("more than {MAX_ENTRIES} entries")));
        }
        let kept = keep(&path);
        if kept && size > MAX_KEPT_BYTES {
            return Err(refuse(
                &path,
                format!("{size} bytes, more than the {MAX_KEPT_BYTES} accepted for it"),
            ));
        }
        let mut hasher = Sha256::new();
        let mut data = kept.then(Vec::new);
        let mut sink = open(&path)?;
        let mut left = size;
        let mut buf = [0u8; 16 * 1024];
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            let n = input
                .read(&mut buf[..want])
                .map_err(|e| read_failed(&path, e))?;
            if n == 0 {
                return Err(refuse(
                    &path,
                    format!("the archive ends {left} bytes before this file does"),
                ));
            }
            hasher.update(&buf[..n]);
            if let Some(data) = data.as_mut() {
                data.extend_from_slice(&buf[..n]);
            }
            if let Some(sink) = sink.as_mut() {
                sink.write_all(&buf[..n])
                    .map_err(|e| write_failed(&path, e))?;
            }
            left -= n as u64;
        }
        if let Some(sink) = sink.as_mut() {
            sink.flush().map_err(|e| write_failed(&path, e))?;
        }
        let pad = padding(size);
        if pad > 0
            && !read_exact_or_eof(&mut input, &mut block[..pad])
                .map_err(|e| read_failed(&path, e))?
        {
            return Err(refuse(&path, "the archive ends inside this file's padding"));
        }
        entries.push(Entry {
            path,
            size,
            sha256: hex(&hasher.finalize()),
            data,
        });
    }
}

fn write_failed(subject: &str, error: std::io::Error) -> BundleError {
    BundleError::io(
        Phase::Unpack,
        subject,
        error,
        "check that the folder the bundle unpacks into is writable and has room",
    )
}

fn read_failed(subject: &str, error: std::io::Error) -> BundleError {
    BundleError::io(
        Phase::Read,
        subject,
        error,
        "check that the file is readable",
    )
}

/// After the first zero block: a second one, then only zeros (tar pads to
/// its record size) up to 1 MiB.
fn end_of_archive(input: &mut impl Read, entries: Vec<Entry>) -> Result<Vec<Entry>, BundleError> {
    let mut rest = Vec::new();
    input
        .take(1024 * 1024 + 1)
        .read_to_end(&mut rest)
        .map_err(|e| read_failed("end of archive", e))?;
    if rest.len() > 1024 * 1024 || rest.iter().any(|&b| b != 0) {
        return Err(refuse(
            "end of archive",
            "data after the end-of-archive marker",
        ));
    }
    Ok(entries)
}

/// Fills `block`; false at a clean end of input before any byte.
fn read_block(input: &mut impl Read, block: &mut [u8; BLOCK]) -> std::io::Result<bool> {
    read_exact_or_eof(input, block)
}

fn read_exact_or_eof(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The path and size of a regular file's header, or why it is refused.
fn parse_header(h: &[u8; BLOCK]) -> Result<(String, u64), String> {
    let stored = parse_octal(&h[148..156]).ok_or("checksum field is not octal")?;
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    if stored != sum {
        return Err("header checksum mismatch".into());
    }
    if &h[257..263] != b"ustar\0" {
        return Err("not a POSIX ustar header".into());
    }
    let name = field_str(&h[..100])?;
    let prefix = field_str(&h[345..500])?;
    let path = if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    };
    let kind = match h[156] {
        b'0' | 0 => None,
        b'1' => Some("a hard link"),
        b'2' => Some("a symbolic link"),
        b'3' => Some("a character device"),
        b'4' => Some("a block device"),
        b'5' => Some("a folder"),
        b'6' => Some("a FIFO"),
        b'x' | b'g' => Some("a pax extended header"),
        b'L' | b'K' => Some("a GNU long-name header"),
        _ => Some("an entry of an unknown type"),
    };
    let shown = if path.is_empty() {
        "<empty path>"
    } else {
        path.as_str()
    };
    if let Some(kind) = kind {
        return Err(format!("{shown}: {kind}; only regular files are accepted"));
    }
    check_path(&path).map_err(|cause| format!("{shown:?}: {cause}"))?;
    let size = parse_octal(&h[124..136]).ok_or_else(|| format!("{path}: size is not octal"))?;
    Ok((path, size))
}

/// A NUL-terminated (or full) UTF-8 field.
fn field_str(field: &[u8]) -> Result<&str, String> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    std::str::from_utf8(&field[..end]).map_err(|_| "a path that is not UTF-8".to_string())
}

/// An octal field: optional leading spaces, digits, then NUL or spaces.
fn parse_octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c| c == ' ' || c == '\0');
    if text.is_empty() || text.len() > 11 || !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u64::from_str_radix(text, 8).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{ArchiveFile, Source, write_archive};
    use proptest::prelude::*;

    fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let files = files
            .iter()
            .map(|(path, bytes)| ArchiveFile {
                path: path.to_string(),
                executable: false,
                source: Source::Bytes(bytes.to_vec()),
                size: bytes.len() as u64,
            })
            .collect();
        write_archive(&mut out, files, 0).expect("write");
        out
    }

    /// Rewrites one header field and fixes the checksum.
    fn patch(bytes: &mut [u8], at: usize, value: &[u8]) {
        bytes[at..at + value.len()].copy_from_slice(value);
        let h = &mut bytes[..BLOCK];
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        let text = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(text.as_bytes());
    }

    #[test]
    fn long_paths_use_the_prefix_and_read_back() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(90));
        let out = archive(&[(long.as_str(), b"x")]);
        let entries = read_archive(&out[..], |_| false).expect("read");
        assert_eq!(entries[0].path, long);
    }

    #[test]
    fn reads_back_what_the_writer_wrote() {
        let bytes = archive(&[("a.txt", b"alpha"), ("manifest.json", b"{}")]);
        let entries = read_archive(&bytes[..], |p| p == "manifest.json").expect("read");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].sha256, crate::manifest::sha256_hex(b"alpha"));
        assert_eq!(entries[0].data, None);
        assert_eq!(entries[1].data.as_deref(), Some(&b"{}"[..]));
    }

    #[test]
    fn refuses_links_devices_and_traversal() {
        for (kind, word) in [
            (b'1', "hard link"),
            (b'2', "symbolic link"),
            (b'3', "device"),
            (b'5', "folder"),
        ] {
            let mut bytes = archive(&[("a", b"x")]);
            patch(&mut bytes, 156, &[kind]);
            let error = read_archive(&bytes[..], |_| false).expect_err("refused");
            assert!(error.to_string().contains(word), "{error}");
        }
        for path in [
            &b"../etc/passwd\0"[..],
            b"/etc/passwd\0",
            b"a/./b\0",
            b"a//b\0",
        ] {
            let mut bytes = archive(&[("a", b"x")]);
            bytes[..100].fill(0);
            patch(&mut bytes, 0, path);
            let error = read_archive(&bytes[..], |_| false).expect_err("refused");
            assert_eq!(error.phase, Phase::Read, "{error}");
        }
    }

    #[test]
    fn refuses_a_kept_entry_over_the_bound_before_reading_it() {
        let mut bytes = archive(&[("manifest.json", b"x")]);
        patch(&mut bytes, 124, b"77777777777\0");
        let error = read_archive(&bytes[..], |_| true).expect_err("refused");
        assert!(error.to_string().contains("more than"), "{error}");
    }

    #[test]
    fn refuses_truncation_duplicates_and_trailing_data() {
        let bytes = archive(&[("a", &[1; 700])]);
        assert!(read_archive(&bytes[..600], |_| false).is_err());
        assert!(read_archive(&bytes[..BLOCK * 3], |_| false).is_err());
        let mut trailing = bytes.clone();
        trailing.push(1);
        assert!(read_archive(&trailing[..], |_| false).is_err());
        let one = archive(&[("a", b"x")]);
        let mut twice = one[..2 * BLOCK].to_vec();
        twice.extend_from_slice(&one);
        let error = read_archive(&twice[..], |_| false).expect_err("refused");
        assert!(error.to_string().contains("twice"), "{error}");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = read_archive(&bytes[..], |_| true);
        }

        #[test]
        fn a_mutated_archive_never_panics_and_never_yields_a_bad_path(
            at in 0usize..(6 * BLOCK),
            value in any::<u8>(),
            fix_checksum in any::<bool>(),
        ) {
            let mut bytes = archive(&[("bin/host", &[3; 600]), ("manifest.json", b"{}")]);
            let at = at % bytes.len();
            bytes[at] = value;
            if fix_checksum && at < BLOCK {
                patch(&mut bytes, at, &[value]);
            }
            if let Ok(entries) = read_archive(&bytes[..], |_| true) {
                for entry in entries {
                    prop_assert!(check_path(&entry.path).is_ok());
                    prop_assert!(entry.data.map(|d| d.len() as u64) == Some(entry.size));
                }
            }
        }

        #[test]
        fn any_header_size_allocates_nothing_up_front(size in any::<u64>()) {
            let mut bytes = archive(&[("a", b"x")]);
            let text = format!("{:011o}\0", size % 0o77777777777);
            patch(&mut bytes, 124, text.as_bytes());
            let _ = read_archive(&bytes[..], |_| true);
        }
    }
}
