//! Whether a module's built library is up to date, by modification times:
//! the library in the target folder against every source file cargo recorded
//! for it in its dep-info file (`lib<name>.d` beside it: the crate's own
//! sources and those of its path dependencies, such as orch-sdk), the
//! package's `Cargo.toml` and the workspace's. Cargo itself decides freshness
//! of path packages by the same times, so a file that is only touched counts as
//! changed here too. Not seen: registry dependency updates (Cargo.lock) and
//! changed compiler flags.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The state of a module's library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    /// No library in the target folder.
    NotBuilt,
    /// Built, and no input is newer.
    UpToDate,
    /// Built, but this input changed (or disappeared) since.
    Stale(PathBuf),
}

impl Freshness {
    /// `up-to-date`, `stale` or `not-built`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Freshness::NotBuilt => "not-built",
            Freshness::UpToDate => "up-to-date",
            Freshness::Stale(_) => "stale",
        }
    }
}

/// The library file cargo writes for `lib_name` into `profile_dir`
/// (`target/debug`): `libmod_x.so` on Linux.
pub fn artifact_path(profile_dir: &Path, lib_name: &str) -> PathBuf {
    profile_dir.join(format!(
        "{}{lib_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

/// Compares `artifact` with its inputs; `package_dir` and `workspace_manifest`
/// always count, the dep-info file adds every source cargo compiled (without
/// it, the package's `src/` and `build.rs` stand in).
pub fn freshness(artifact: &Path, package_dir: &Path, workspace_manifest: &Path) -> Freshness {
    let Some(built) = modified(artifact) else {
        return Freshness::NotBuilt;
    };
    let mut inputs = vec![
        package_dir.join("Cargo.toml"),
        workspace_manifest.to_path_buf(),
    ];
    match std::fs::read_to_string(artifact.with_extension("d")) {
        Ok(dep_info) => inputs.extend(dep_info_sources(&dep_info)),
        Err(_) => {
            inputs.push(package_dir.join("build.rs"));
            collect_files(&package_dir.join("src"), &mut inputs);
        }
    }
    for input in inputs {
        match modified(&input) {
            Some(time) if time > built => return Freshness::Stale(input),
            Some(_) => {}
            // build.rs is optional; anything else that vanished was an input.
            None if input.ends_with("build.rs") => {}
            None => return Freshness::Stale(input),
        }
    }
    Freshness::UpToDate
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The prerequisites of every rule of a Makefile-style dep-info file
/// (`target: a.rs b\ c.rs`), unescaped.
fn dep_info_sources(text: &str) -> Vec<PathBuf> {
    let mut sources = Vec::new();
    for line in text.lines() {
        let Some((_, deps)) = split_rule(line) else {
            continue;
        };
        let mut current = String::new();
        let mut chars = deps.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&' ') => {
                    current.push(' ');
                    chars.next();
                }
                ' ' => {
                    if !current.is_empty() {
                        sources.push(PathBuf::from(std::mem::take(&mut current)));
                    }
                }
                other => current.push(other),
            }
        }
        if !current.is_empty() {
            sources.push(PathBuf::from(current));
        }
    }
    sources.sort();
    sources.dedup();
    sources
}

/// `target: deps` at the first `:` that is followed by a space or the end
/// (not an escaped one, nor a Windows drive's).
fn split_rule(line: &str) -> Option<(&str, &str)> {
    let bytes = line.as_bytes();
    (0..bytes.len())
        .find(|&i| {
            bytes[i] == b':'
                && (i == 0 || bytes[i - 1] != b'\\')
                && bytes.get(i + 1).is_none_or(|b| *b == b' ')
        })
        .map(|i| (&line[..i], &line[i + 1..]))
}

fn collect_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, found);
        } else {
            found.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, File};
    use std::time::Duration;

    fn set_mtime(path: &Path, time: SystemTime) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(time)
            .unwrap();
    }

    #[test]
    fn parses_dep_info_with_escaped_spaces() {
        let text = "/t/debug/libm.so: /w/m/src/lib.rs /w/my\\ dir/x.rs\n\
                    /t/debug/libm.rlib: /w/m/src/lib.rs\n\n";
        assert_eq!(
            dep_info_sources(text),
            vec![
                PathBuf::from("/w/m/src/lib.rs"),
                PathBuf::from("/w/my dir/x.rs")
            ]
        );
    }

    #[test]
    fn compares_the_library_with_every_input() {
        let dir = tempfile::tempdir().unwrap();
        let package = dir.path().join("mod-x");
        fs::create_dir_all(package.join("src")).unwrap();
        let manifest = package.join("Cargo.toml");
        let lib_rs = package.join("src/lib.rs");
        let workspace = dir.path().join("Cargo.toml");
        for file in [&manifest, &lib_rs, &workspace] {
            fs::write(file, "").unwrap();
        }
        let artifact = artifact_path(&dir.path().join("target"), "mod_x");
        assert_eq!(
            freshness(&artifact, &package, &workspace),
            Freshness::NotBuilt
        );

        fs::create_dir_all(dir.path().join("target")).unwrap();
        fs::write(&artifact, "").unwrap();
        fs::write(
            artifact.with_extension("d"),
            format!("{}: {}\n", artifact.display(), lib_rs.display()),
        )
        .unwrap();
        let now = SystemTime::now();
        let earlier = now - Duration::from_secs(60);
        for file in [&manifest, &lib_rs, &workspace] {
            set_mtime(file, earlier);
        }
        set_mtime(&artifact, now);
        assert_eq!(
            freshness(&artifact, &package, &workspace),
            Freshness::UpToDate
        );

        set_mtime(&lib_rs, now + Duration::from_secs(1));
        assert_eq!(
            freshness(&artifact, &package, &workspace),
            Freshness::Stale(lib_rs.clone())
        );
        fs::remove_file(&lib_rs).unwrap();
        assert_eq!(
            freshness(&artifact, &package, &workspace),
            Freshness::Stale(lib_rs)
        );
    }
}
