//! Where a module outside this repository gets `orch-sdk` from, and how
//! `cargo orch` is reached there: decided at run time from the folder this tool
//! was compiled in (`CARGO_MANIFEST_DIR` of orch-scaffold), which may be gone for an
//! installed binary.

use std::path::{Path, PathBuf};

/// orch-scaffold's folder (`orch-core/scaffold`) when this tool was compiled.
const BUILT_FROM: &str = env!("CARGO_MANIFEST_DIR");

/// The orch-sdk version this tool was built with (modules must match its ABI).
pub const SDK_VERSION: &str = orch_sdk::abi::SDK_VERSION;

/// The SDK's folder, if the repository this tool was built from still has it.
pub fn sdk_dir() -> Option<PathBuf> {
    let dir = Path::new(BUILT_FROM).join("..").join("sdk");
    let dir = dir.canonicalize().unwrap_or(dir);
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
    manifest.contains("name = \"orch-sdk\"").then_some(dir)
}

/// The `orch-sdk` dependency as TOML: `{ path = "<repo>/orch-core/sdk" }` while
/// the repository exists, else the version (`"0.1.0"`).
pub fn sdk_dependency() -> String {
    match sdk_dir() {
        Some(dir) => format!(
            "{{ path = {} }}",
            toml_edit::Value::from(dir.display().to_string())
        ),
        None => format!("\"{SDK_VERSION}\""),
    }
}

/// The repository's workspace `Cargo.toml`, if it still exists and builds
/// `cargo-orch`.
pub fn repository_manifest() -> Option<PathBuf> {
    // BUILT_FROM is `<repo>/orch-core/scaffold`.
    let root = Path::new(BUILT_FROM).parent()?.parent()?;
    root.join("cargo-orch")
        .join("Cargo.toml")
        .is_file()
        .then(|| root.join("Cargo.toml"))
}

/// An installed `cargo-orch` executable, found as cargo finds subcommands:
/// in `$CARGO_HOME/bin` (default `~/.cargo/bin`), then on `PATH`.
pub fn installed_cargo_orch() -> Option<PathBuf> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")));
    let path_dirs = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    cargo_home
        .map(|home| home.join("bin"))
        .into_iter()
        .chain(path_dirs)
        .map(|dir| dir.join("cargo-orch"))
        .find(|candidate| candidate.is_file())
}

/// The `[alias]` section of a new workspace's `.cargo/config.toml`: none when
/// `cargo-orch` is installed (cargo runs it for `cargo orch`, and an alias would
/// shadow it); an alias that builds and runs this repository's `cargo-orch`
/// when the repository exists; otherwise how to install it.
pub fn orch_alias() -> String {
    if let Some(installed) = installed_cargo_orch() {
        return format!(
            "# cargo-orch is installed ({}): no alias needed.",
            installed.display()
        );
    }
    match repository_manifest() {
        Some(manifest) => format!(
            "# cargo-orch is not installed: this alias builds and runs it from its repository.\n\
             # Remove it once cargo-orch is installed.\n\
             [alias]\n\
             orch = [\"run\", \"--quiet\", \"--manifest-path\", {}, \"--package\", \"cargo-orch\", \"--bin\", \"cargo-orch\", \"--\", \"orch\"]",
            toml_edit::Value::from(manifest.display().to_string())
        ),
        None => {
            "# Install cargo-orch to run `cargo orch` here: cargo install cargo-orch".to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_this_repository_the_sdk_is_used_by_path() {
        let dir = sdk_dir().expect("built inside the repository");
        assert!(dir.ends_with("orch-core/sdk"));
        let dependency = sdk_dependency();
        assert!(dependency.starts_with("{ path = \""), "{dependency}");
        assert!(
            dependency.parse::<toml_edit::Value>().is_ok(),
            "{dependency}"
        );
        assert!(repository_manifest().is_some());
    }

    #[test]
    fn the_alias_section_is_valid_toml() {
        let alias = orch_alias();
        let doc: toml_edit::DocumentMut = alias.parse().expect("valid TOML");
        if installed_cargo_orch().is_none() {
            let orch = doc["alias"]["orch"].as_array().expect("an array alias");
            assert!(orch.iter().any(|v| v.as_str() == Some("--manifest-path")));
        }
    }
}
