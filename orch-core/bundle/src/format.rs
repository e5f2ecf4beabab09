//! What the writers, the reader and the manifest share: the tar block size,
//! the ustar header, the rules of an archive path, SHA-256 in hex.

use sha2::{Digest as _, Sha256};

use crate::{BundleError, Phase};

/// The block size of the tar format.
pub const BLOCK: usize = 512;

/// The zero bytes after `size` bytes of data, up to the next block.
pub fn padding(size: u64) -> usize {
    let rest = (size % BLOCK as u64) as usize;
    if rest == 0 { 0 } else { BLOCK - rest }
}

/// What a ustar header describes. The bundle holds regular files only; an
/// OCI layer ([`crate::oci`]) also has folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file (type `0`).
    File,
    /// A folder (type `5`; its name ends with `/`).
    Dir,
}

/// One ustar header: uid and gid 0, owner and group `root`, `mode`, `size`
/// and `mtime`. `path` is checked with [`check_path`]; a folder's name gets
/// its trailing `/` here.
pub fn header(
    path: &str,
    kind: Kind,
    mode: u32,
    size: u64,
    mtime: u64,
) -> Result<[u8; BLOCK], BundleError> {
    check_path(path).map_err(|cause| {
        BundleError::new(
            Phase::Write,
            path,
            cause,
            "archive paths are relative and plain",
        )
    })?;
    let owned;
    let path = match kind {
        Kind::File => path,
        Kind::Dir => {
            owned = format!("{path}/");
            owned.as_str()
        }
    };
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
    octal(&mut h[100..108], u64::from(mode & 0o7777));
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
    h[156] = match kind {
        Kind::File => b'0',
        Kind::Dir => b'5',
    };
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

/// Checks an archive path: relative, `/`-separated, at most 255 bytes, no
/// empty, `.` or `..` component, no NUL, backslash or control character.
pub fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    if path.len() > 255 {
        return Err("path longer than 255 bytes".into());
    }
    if path.starts_with('/') {
        return Err("absolute path".into());
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return Err("control character or backslash in the path".into());
    }
    for component in path.split('/') {
        match component {
            "" => return Err("empty path component (`//` or a trailing `/`)".into()),
            "." | ".." => return Err(format!("`{component}` component (path traversal)")),
            _ => {}
        }
    }
    Ok(())
}

/// The lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Streams a reader through SHA-256: (size, hex digest).
pub fn sha256_of(mut reader: impl std::io::Read) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex(&hasher.finalize())))
}

/// `name` with anything but ASCII letters, digits, `.`, `-` and `_` as `_`
/// (for file and folder names made from an application's name).
pub fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
