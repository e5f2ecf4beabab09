//! The shared libraries a binary or module links, resolved on this (the
//! build) machine, and the dynamic loader its `PT_INTERP` names.
//!
//! The loader path is read from the ELF program headers (exact, and a few
//! dozen lines); the libraries come from `ldd`, which asks the loader
//! itself, so the search is the real one (`ld.so.cache`, `RUNPATH`,
//! `$ORIGIN`, hwcaps subfolders) rather than a reimplementation of it.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

const PT_INTERP: u32 = 3;

/// The path `PT_INTERP` names in the ELF file at `path`; `None` for a file
/// without one (a static binary, a shared library).
pub fn interpreter(path: &Path) -> anyhow::Result<Option<String>> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let not_elf = || {
        anyhow::anyhow!(
            "{} is not an ELF file of a supported form\n  hint: OCI images are built from \
             Linux ELF binaries; bundle on Linux",
            path.display()
        )
    };
    let mut ident = [0u8; 64];
    file.read_exact_at(&mut ident, 0).map_err(|_| not_elf())?;
    if ident[..4] != *b"\x7fELF" {
        return Err(not_elf());
    }
    let (wide, little) = match (ident[4], ident[5]) {
        (1, 1) => (false, true),
        (1, 2) => (false, false),
        (2, 1) => (true, true),
        (2, 2) => (true, false),
        _ => return Err(not_elf()),
    };
    let int = |bytes: &[u8]| -> u64 {
        let mut value = 0u64;
        for (i, &b) in bytes.iter().enumerate() {
            let shift = if little { i } else { bytes.len() - 1 - i };
            value |= u64::from(b) << (8 * shift);
        }
        value
    };
    let (phoff, phentsize, phnum) = if wide {
        (
            int(&ident[0x20..0x28]),
            int(&ident[0x36..0x38]),
            int(&ident[0x38..0x3a]),
        )
    } else {
        (
            int(&ident[0x1c..0x20]),
            int(&ident[0x2a..0x2c]),
            int(&ident[0x2c..0x2e]),
        )
    };
    let min_entry = if wide { 0x38 } else { 0x20 };
    if phentsize < min_entry {
        return if phnum == 0 { Ok(None) } else { Err(not_elf()) };
    }
    if phentsize * phnum > 1 << 20 {
        return Err(not_elf());
    }
    let mut table = vec![0u8; (phentsize * phnum) as usize];
    file.read_exact_at(&mut table, phoff)
        .map_err(|_| not_elf())?;
    for entry in table.chunks_exact(phentsize as usize) {
        if int(&entry[..4]) != u64::from(PT_INTERP) {
            continue;
        }
        let (offset, size) = if wide {
            (int(&entry[0x08..0x10]), int(&entry[0x20..0x28]))
        } else {
            (int(&entry[0x04..0x08]), int(&entry[0x10..0x14]))
        };
        if size == 0 || size > 4096 {
            return Err(not_elf());
        }
        let mut name = vec![0u8; size as usize];
        file.read_exact_at(&mut name, offset)
            .map_err(|_| not_elf())?;
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        let name = String::from_utf8(name[..end].to_vec()).map_err(|_| not_elf())?;
        if !name.starts_with('/') {
            bail!(
                "{} names a relative dynamic loader {name:?}\n  hint: link it with an \
                 absolute interpreter path (the default)",
                path.display()
            );
        }
        return Ok(Some(name));
    }
    Ok(None)
}

/// The absolute paths of the libraries `ldd` resolves for `path` (the
/// loader's line included, under the name `PT_INTERP` gives it).
pub fn linked(path: &Path) -> anyhow::Result<BTreeSet<PathBuf>> {
    let output = Command::new("ldd")
        .arg(path)
        .stdin(Stdio::null())
        .env("LC_ALL", "C")
        .output()
        .context(
            "cannot run `ldd` to find the shared libraries of the image\n  hint: install \
             glibc's ldd (Debian: libc-bin) or bundle without --oci",
        )?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        // A static binary has nothing to collect.
        if format!("{stdout}{stderr}").contains("not a dynamic executable") {
            return Ok(BTreeSet::new());
        }
        bail!(
            "`ldd {}` failed: {}\n  hint: the OCI image is built from binaries of this \
             machine's architecture",
            path.display(),
            stderr.trim()
        );
    }
    parse_ldd(&stdout).map_err(|missing| {
        anyhow::anyhow!(
            "{} links {missing}, which is not found on this machine\n  hint: install the \
             library (or set LD_LIBRARY_PATH) so that `ldd {}` resolves it",
            path.display(),
            path.display()
        )
    })
}

/// The paths of `ldd`'s output; `Err(name)` for a library not found.
fn parse_ldd(text: &str) -> Result<BTreeSet<PathBuf>, String> {
    let mut found = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if line.contains("statically linked") {
            continue;
        }
        let (name, rest) = match line.split_once("=>") {
            Some((name, rest)) => (name.trim(), rest.trim()),
            None => ("", line),
        };
        if rest.starts_with("not found") {
            return Err(name.to_string());
        }
        // `PATH (0xADDRESS)`; the vDSO has no path.
        let path = rest.split(" (").next().unwrap_or_default().trim();
        if path.starts_with('/') {
            found.insert(PathBuf::from(path));
        }
    }
    Ok(found)
}

/// The folders the loader at `interpreter` searches without a cache (its
/// `--help` lists them as "system search path"); empty when it cannot say.
pub fn system_dirs(interpreter: &str) -> BTreeSet<PathBuf> {
    let Ok(output) = Command::new(interpreter)
        .arg("--help")
        .stdin(Stdio::null())
        .env("LC_ALL", "C")
        .output()
    else {
        return BTreeSet::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.trim().strip_suffix("(system search path)"))
        .map(|dir| PathBuf::from(dir.trim()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_the_resolved_paths_and_names_a_missing_library() {
        let text = "\tlinux-vdso.so.1 (0x00007ffc)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f1)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f3)\n";
        let found: Vec<PathBuf> = parse_ldd(text).expect("parsed").into_iter().collect();
        assert_eq!(
            found,
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        assert_eq!(
            parse_ldd("\tlibfoo.so.1 => not found\n"),
            Err("libfoo.so.1".into())
        );
        assert!(
            parse_ldd("\tstatically linked\n")
                .expect("static")
                .is_empty()
        );
    }

    #[test]
    fn this_test_binary_names_its_loader() {
        let exe = std::env::current_exe().expect("current_exe");
        let loader = interpreter(&exe)
            .expect("ELF")
            .expect("a dynamic executable");
        assert!(loader.starts_with('/') && loader.contains("ld"), "{loader}");
        assert!(interpreter(Path::new("Cargo.toml")).is_err());
    }
}
