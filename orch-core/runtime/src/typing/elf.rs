//! Whether a shared library exports a symbol, read from its ELF dynamic
//! string table (`.dynstr`, found through `.dynsym`'s link) without loading
//! it: a few reads of the headers and one table of names, fast even in a
//! debug build. Anything that is not a readable 64-bit little-endian ELF
//! file gives `None`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// `SHT_DYNSYM`.
const DYNSYM: u32 = 11;
/// A string table larger than this is not read (a library's is far smaller).
const MAX_STRINGS: u64 = 64 * 1024 * 1024;
/// Section headers read at most.
const MAX_SECTIONS: u64 = 65_535;

/// `Some(true)` when the library at `path` names `symbol` in its dynamic
/// string table, `Some(false)` when it does not, `None` when it cannot tell.
pub fn names_dynamic_symbol(path: &Path, symbol: &str) -> Option<bool> {
    let mut file = File::open(path).ok()?;
    let mut header = [0u8; 64];
    file.read_exact(&mut header).ok()?;
    // ELF magic, 64-bit, little-endian.
    if header[..4] != *b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return None;
    }
    let sections_at = u64_at(&header, 0x28)?;
    let entry_size = u64::from(u16_at(&header, 0x3A)?);
    let count = u64::from(u16_at(&header, 0x3C)?);
    if entry_size < 64 || count == 0 || count > MAX_SECTIONS {
        return None;
    }
    let mut table = vec![0u8; usize::try_from(entry_size * count).ok()?];
    file.seek(SeekFrom::Start(sections_at)).ok()?;
    file.read_exact(&mut table).ok()?;
    let section = |index: u64| -> Option<&[u8]> {
        let start = usize::try_from(index * entry_size).ok()?;
        table.get(start..start + 64)
    };
    let dynsym = (0..count).find_map(|i| {
        let header = section(i)?;
        (u32_at(header, 4)? == DYNSYM).then_some(header)
    });
    let Some(dynsym) = dynsym else {
        // No dynamic symbols at all: nothing is exported.
        return Some(false);
    };
    let strings = section(u64::from(u32_at(dynsym, 0x28)?))?;
    let (offset, size) = (u64_at(strings, 0x18)?, u64_at(strings, 0x20)?);
    if size > MAX_STRINGS {
        return None;
    }
    let mut names = vec![0u8; usize::try_from(size).ok()?];
    file.seek(SeekFrom::Start(offset)).ok()?;
    file.read_exact(&mut names).ok()?;
    Some(
        names
            .split(|&b| b == 0)
            .any(|name| name == symbol.as_bytes()),
    )
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_binary_names_its_own_dynamic_symbols_and_not_others() {
        // A test binary is a PIE with dynamic symbols (libc's, at least).
        let me = std::env::current_exe().expect("the test binary");
        assert_eq!(names_dynamic_symbol(&me, "malloc"), Some(true));
        assert_eq!(
            names_dynamic_symbol(&me, "orch_module_topic_types_v1"),
            Some(false)
        );
    }

    #[test]
    fn what_is_not_an_elf_file_cannot_tell() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lib.so");
        std::fs::write(
            &path,
            b"not an ELF file at all, but long enough to read a header from it; yes",
        )
        .expect("write");
        assert_eq!(names_dynamic_symbol(&path, "x"), None);
        let truncated = dir.path().join("short.so");
        std::fs::write(&truncated, b"\x7fELF\x02\x01").expect("write");
        assert_eq!(names_dynamic_symbol(&truncated, "x"), None);
    }
}
