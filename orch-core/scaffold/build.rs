//! Embeds the templates of `cargo orch new` and `cargo orch init` into the
//! library: writes `$OUT_DIR/templates.rs`, a table with one `include_str!` per
//! file of `templates/<template>/` (the repository's top-level folder), so an installed `cargo orch` needs no
//! files beside it. Cargo reruns this script when anything under `templates/`
//! changes (a file added, edited or removed).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs, io};

fn main() {
    if let Err(error) = generate() {
        // A build script has no better channel than a panic: cargo prints it.
        panic!("embedding the templates failed: {error}");
    }
}

fn generate() -> io::Result<()> {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    // A packaged crate carries its own copy (see Cargo.toml); in the repository
    // the templates are at the top level, two folders up.
    let packaged = manifest_dir.join("templates");
    let templates = if packaged.is_dir() {
        packaged
    } else {
        manifest_dir.join("..").join("..").join("templates")
    };
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default()).join("templates.rs");
    println!("cargo::rerun-if-changed={}", templates.display());

    let mut files = Vec::new();
    if templates.is_dir() {
        let mut folders: Vec<PathBuf> = fs::read_dir(&templates)?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.is_dir())
            .collect();
        folders.sort();
        for folder in folders {
            let mut found = Vec::new();
            collect(&folder, &mut found)?;
            found.sort();
            let template = file_name(&folder);
            for path in found {
                let relative = path
                    .strip_prefix(&folder)
                    .map_err(io::Error::other)?
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                files.push((template.clone(), relative, path.canonicalize()?));
            }
        }
    } else {
        println!(
            "cargo::warning=no templates folder at {}: `cargo orch new` will have no templates",
            templates.display()
        );
    }

    let mut code = String::from(
        "/// Every file of every template folder: (template, relative path, contents).\n\
         pub(crate) static EMBEDDED: &[(&str, &str, &str)] = &[\n",
    );
    for (template, relative, path) in files {
        let _ = writeln!(
            code,
            "    ({template:?}, {relative:?}, include_str!({:?})),",
            path.display().to_string()
        );
    }
    code.push_str("];\n");
    fs::write(out, code)
}

/// Every file under `dir`, recursively.
fn collect(dir: &Path, found: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, found)?;
        } else {
            found.push(path);
        }
    }
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
