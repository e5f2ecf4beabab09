//! The `--oci DIR` folder replaced as a whole: the layout is written into a
//! sibling folder and renamed into place, so DIR is never half-written. An
//! existing DIR is replaced only when it is empty or an OCI layout and
//! nothing else.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// A sibling folder removed on drop unless it was moved into place.
struct Staging(Option<PathBuf>);

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// `dir`'s parent folder and a sibling path `.<name>.<what>-<pid>`.
fn sibling(dir: &Path, what: &str) -> anyhow::Result<PathBuf> {
    let name = dir
        .file_name()
        .with_context(|| format!("--oci {}: not a folder name", dir.display()))?;
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok(parent.join(format!(
        ".{}.{what}-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Refuses `dir` unless it is missing, empty, or a replaceable OCI layout;
/// `Ok(true)` when it exists.
pub fn check_target(dir: &Path) -> anyhow::Result<bool> {
    let metadata = match std::fs::symlink_metadata(dir) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", dir.display())),
    };
    if !metadata.is_dir() {
        bail!(
            "--oci {}: it exists and is not a folder\n  hint: choose a new or empty folder",
            dir.display()
        );
    }
    let empty = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .next()
        .is_none();
    if !empty && let Err(why) = orch_bundle::oci::check_replaceable(dir) {
        bail!(
            "--oci {}: the folder is not empty and not an OCI image layout ({why}); \
             refusing to replace it\n  hint: choose a new or empty folder, or remove \
             this one",
            dir.display()
        );
    }
    Ok(true)
}

/// Calls `write` with an empty sibling folder, then puts that folder at
/// `dir` (replacing the old layout or empty folder there).
pub fn replace_dir<T>(
    dir: &Path,
    write: impl FnOnce(&Path) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let exists = check_target(dir)?;
    let staging_path = sibling(dir, "partial")?;
    if let Some(parent) = staging_path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    if staging_path.exists() {
        // Left by an earlier run of this pid: ours to remove.
        std::fs::remove_dir_all(&staging_path)
            .with_context(|| format!("cannot remove {}", staging_path.display()))?;
    }
    std::fs::create_dir(&staging_path)
        .with_context(|| format!("cannot create {}", staging_path.display()))?;
    let mut staging = Staging(Some(staging_path.clone()));
    let value = write(&staging_path)?;
    if exists {
        let old = sibling(dir, "old")?;
        std::fs::rename(dir, &old).with_context(|| {
            format!(
                "cannot move the old {} aside to {}",
                dir.display(),
                old.display()
            )
        })?;
        if let Err(error) = std::fs::rename(&staging_path, dir) {
            let _ = std::fs::rename(&old, dir);
            return Err(error).with_context(|| {
                format!(
                    "cannot rename {} to {}",
                    staging_path.display(),
                    dir.display()
                )
            });
        }
        staging.0 = None;
        std::fs::remove_dir_all(&old)
            .with_context(|| format!("cannot remove the old layout {}", old.display()))?;
    } else {
        std::fs::rename(&staging_path, dir).with_context(|| {
            format!(
                "cannot rename {} to {}",
                staging_path.display(),
                dir.display()
            )
        })?;
        staging.0 = None;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(dir: &Path) -> anyhow::Result<()> {
        std::fs::write(dir.join("oci-layout"), orch_bundle::oci::layout::OCI_LAYOUT)?;
        std::fs::write(dir.join("index.json"), b"{}")?;
        Ok(())
    }

    #[test]
    fn a_layout_or_an_empty_folder_is_replaced_anything_else_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("image");
        replace_dir(&dir, layout).expect("new");
        replace_dir(&dir, layout).expect("a layout is replaced");
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).expect("mkdir");
        replace_dir(&empty, layout).expect("an empty folder is replaced");
        assert!(empty.join("oci-layout").is_file());

        std::fs::write(dir.join("notes.txt"), b"mine").expect("write");
        let error = replace_dir(&dir, layout).expect_err("refused");
        assert!(format!("{error:#}").contains("notes.txt"), "{error:#}");
        assert!(dir.join("notes.txt").is_file(), "nothing was touched");

        // A failed write leaves the old layout and no staging folder.
        std::fs::remove_file(dir.join("notes.txt")).expect("rm");
        let failed = replace_dir(&dir, |_| -> anyhow::Result<()> { bail!("boom") });
        assert!(failed.is_err());
        assert!(dir.join("oci-layout").is_file());
        let names: Vec<String> = std::fs::read_dir(tmp.path())
            .expect("read_dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    }
}
