//! What the writer, the reader and the manifest share: the tar block size,
//! the rules of an archive path, SHA-256 in hex.

use sha2::{Digest as _, Sha256};

/// The block size of the tar format.
pub const BLOCK: usize = 512;

/// The zero bytes after `size` bytes of data, up to the next block.
pub fn padding(size: u64) -> usize {
    let rest = (size % BLOCK as u64) as usize;
    if rest == 0 { 0 } else { BLOCK - rest }
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
