//! Paths of folders that may not exist yet: normalized without touching the
//! file system where they do not exist, so they compare with the workspace root.

use std::path::{Component, Path, PathBuf};

/// `path` without `.` and with `..` applied, lexically.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                // `..` of the root is the root.
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(component),
            },
            other => out.push(other),
        }
    }
    out
}

/// `path` (absolute, normalized) with its longest existing ancestor replaced
/// by its canonical form (symbolic links resolved), the rest kept.
pub(crate) fn canonical_prefix(path: &Path) -> PathBuf {
    let mut existing = path;
    let mut rest = Vec::new();
    loop {
        if let Ok(canonical) = existing.canonicalize() {
            let mut out = canonical;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// `path` relative to `root`, `/`-separated; `None` when it is not under it
/// or is the root itself.
pub(crate) fn relative_to(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).ok()?;
    let parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_lexically() {
        assert_eq!(
            normalize(Path::new("/w/./a/../modules-backend/x/")),
            PathBuf::from("/w/modules-backend/x")
        );
        assert_eq!(normalize(Path::new("/w/../../x")), PathBuf::from("/x"));
    }

    #[test]
    fn resolves_the_existing_part_only() {
        let dir = tempfile::tempdir().unwrap();
        let canonical = dir.path().canonicalize().unwrap();
        assert_eq!(
            canonical_prefix(&dir.path().join("new/deeper")),
            canonical.join("new/deeper")
        );
    }

    #[test]
    fn relative_paths_stay_inside_the_root() {
        let root = Path::new("/w");
        assert_eq!(
            relative_to(root, Path::new("/w/extra/mod-x")).as_deref(),
            Some("extra/mod-x")
        );
        assert_eq!(relative_to(root, Path::new("/w")), None);
        assert_eq!(relative_to(root, Path::new("/elsewhere/x")), None);
        assert_eq!(relative_to(root, Path::new("/wx/y")), None);
    }
}
