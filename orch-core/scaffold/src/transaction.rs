//! All-or-nothing file changes: a [`FileTransaction`] records every folder and
//! file it creates and the original bytes of every file it edits; unless it is
//! committed, it undoes them all, newest first: created files and folders are
//! removed (folders only when empty, so nothing it did not create is ever
//! deleted) and edited files get their original contents back.
//!
//! An edit (and its undo) never leaves a file half-written: the new contents go
//! to a temporary file beside it, which then replaces the file in one rename
//! (tempfile's `persist`), with the file's permissions. A crash or a kill at
//! any moment leaves either the old file or the new one.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// One recorded change.
#[derive(Debug)]
enum Change {
    CreatedDir(PathBuf),
    CreatedFile(PathBuf),
    Edited { path: PathBuf, original: Vec<u8> },
}

/// Records file changes so they can all be undone.
#[derive(Debug, Default)]
pub struct FileTransaction {
    changes: Vec<Change>,
    done: bool,
}

impl FileTransaction {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates `dir` and its missing parents, recording each folder it creates.
    pub fn create_dir_all(&mut self, dir: &Path) -> io::Result<()> {
        let mut missing = Vec::new();
        let mut current = Some(dir);
        while let Some(path) = current {
            if path.as_os_str().is_empty() || path.exists() {
                break;
            }
            missing.push(path.to_path_buf());
            current = path.parent();
        }
        for path in missing.into_iter().rev() {
            match fs::create_dir(&path) {
                Ok(()) => self.changes.push(Change::CreatedDir(path)),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
                Err(error) => return Err(error),
            }
        }
        if dir.is_dir() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a folder", dir.display()),
            ))
        }
    }

    /// Creates the new file `path` (and its missing folders) with `contents`;
    /// fails if it exists.
    pub fn create_file(&mut self, path: &Path, contents: &[u8]) -> io::Result<()> {
        if let Some(parent) = path.parent() {
            self.create_dir_all(parent)?;
        }
        let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
        self.changes.push(Change::CreatedFile(path.to_path_buf()));
        file.write_all(contents)?;
        file.sync_all()
    }

    /// Replaces the contents of the existing file `path` atomically, keeping
    /// its original bytes to restore.
    pub fn edit_file(&mut self, path: &Path, contents: &[u8]) -> io::Result<()> {
        let original = fs::read(path)?;
        // Recorded only once the new contents are in place: a failed write left
        // the file as it was.
        replace_atomically(path, contents)?;
        self.changes.push(Change::Edited {
            path: path.to_path_buf(),
            original,
        });
        Ok(())
    }

    /// The files created so far, in creation order.
    pub fn created_files(&self) -> Vec<&Path> {
        self.changes
            .iter()
            .filter_map(|change| match change {
                Change::CreatedFile(path) => Some(path.as_path()),
                _ => None,
            })
            .collect()
    }

    /// The files edited so far, in edit order.
    pub fn edited_files(&self) -> Vec<&Path> {
        self.changes
            .iter()
            .filter_map(|change| match change {
                Change::Edited { path, .. } => Some(path.as_path()),
                _ => None,
            })
            .collect()
    }

    /// Keeps every change.
    pub fn commit(mut self) {
        self.done = true;
    }

    /// Undoes every change, newest first. Returns what could not be undone
    /// (empty when everything is as it was).
    pub fn rollback(mut self) -> Vec<String> {
        self.undo()
    }

    fn undo(&mut self) -> Vec<String> {
        self.done = true;
        let mut leftovers = Vec::new();
        while let Some(change) = self.changes.pop() {
            let outcome = match &change {
                Change::CreatedFile(path) => fs::remove_file(path).map_err(|e| (path, e)),
                Change::CreatedDir(path) => fs::remove_dir(path).map_err(|e| (path, e)),
                Change::Edited { path, original } => restore(path, original).map_err(|e| (path, e)),
            };
            if let Err((path, error)) = outcome {
                let what = match change {
                    Change::CreatedFile(_) => "remove the created file",
                    Change::CreatedDir(_) => "remove the created folder",
                    Change::Edited { .. } => "restore the original contents of",
                };
                leftovers.push(format!("could not {what} {}: {error}", path.display()));
            }
        }
        leftovers
    }
}

impl Drop for FileTransaction {
    /// Undoes everything unless committed or rolled back (an early return or a
    /// panic never leaves half-written files).
    fn drop(&mut self) {
        if !self.done {
            for leftover in self.undo() {
                tracing::warn!("{leftover}");
            }
        }
    }
}

fn restore(path: &Path, original: &[u8]) -> io::Result<()> {
    replace_atomically(path, original)
}

/// Writes `contents` to a temporary file beside `path` (the file a symlink
/// points to, when it is one), with `path`'s permissions, and renames it over
/// `path`: readers see the old file or the new one, never a part.
fn replace_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let target = fs::canonicalize(path)?;
    let dir = target.parent().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no parent folder", target.display()),
        )
    })?;
    let mut temporary = tempfile::Builder::new()
        .prefix(".orch-edit-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    temporary.write_all(contents)?;
    temporary
        .as_file()
        .set_permissions(fs::metadata(&target)?.permissions())?;
    temporary.as_file().sync_all()?;
    temporary.persist(&target).map_err(|error| error.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_replaces_the_file_whole_and_keeps_its_permissions_and_symlink() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.yaml");
        fs::write(&real, "old\n").unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("modules.yaml");
        std::os::unix::fs::symlink(&real, &link).unwrap();

        let mut tx = FileTransaction::new();
        tx.edit_file(&link, b"new\n").unwrap();
        assert_eq!(fs::read_to_string(&real).unwrap(), "new\n");
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let mode = fs::metadata(&real).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        assert!(tx.rollback().is_empty());
        assert_eq!(fs::read_to_string(&real).unwrap(), "old\n");
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left.len(), 2, "no temporary file is left: {left:?}");
    }

    #[test]
    fn rollback_removes_created_files_and_folders_and_restores_edits() {
        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join("existing.txt");
        fs::write(&existing, "original\n").unwrap();

        let mut tx = FileTransaction::new();
        tx.create_file(&dir.path().join("a/b/c.txt"), b"new")
            .unwrap();
        tx.create_file(&dir.path().join("a/d.txt"), b"new").unwrap();
        tx.edit_file(&existing, b"changed\n").unwrap();
        tx.edit_file(&existing, b"changed twice\n").unwrap();
        assert_eq!(fs::read_to_string(&existing).unwrap(), "changed twice\n");
        assert_eq!(tx.created_files().len(), 2);

        assert_eq!(tx.rollback(), Vec::<String>::new());
        assert_eq!(fs::read_to_string(&existing).unwrap(), "original\n");
        assert!(!dir.path().join("a").exists());
    }

    #[test]
    fn a_failing_step_then_drop_undoes_the_earlier_ones() {
        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join("Cargo.toml");
        fs::write(&existing, "[workspace]\n").unwrap();
        let a_folder = dir.path().join("modules.yaml");
        fs::create_dir(&a_folder).unwrap();
        {
            let mut tx = FileTransaction::new();
            tx.create_file(&dir.path().join("mod-x/src/lib.rs"), b"//")
                .unwrap();
            tx.edit_file(&existing, b"[workspace]\nmembers = []\n")
                .unwrap();
            // The last step fails: a folder cannot be edited as a file.
            assert!(tx.edit_file(&a_folder, b"modules: []\n").is_err());
        }
        assert_eq!(fs::read_to_string(&existing).unwrap(), "[workspace]\n");
        assert!(!dir.path().join("mod-x").exists());
        assert!(a_folder.is_dir());
    }

    #[test]
    fn commit_keeps_everything_and_existing_folders_are_never_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut tx = FileTransaction::new();
        tx.create_file(&dir.path().join("kept.txt"), b"x").unwrap();
        tx.commit();
        assert!(dir.path().join("kept.txt").exists());

        let mut tx = FileTransaction::new();
        tx.create_dir_all(dir.path()).unwrap();
        tx.create_file(&dir.path().join("gone.txt"), b"x").unwrap();
        assert!(tx.create_file(&dir.path().join("kept.txt"), b"y").is_err());
        assert!(tx.rollback().is_empty());
        assert!(dir.path().is_dir());
        assert_eq!(
            fs::read_to_string(dir.path().join("kept.txt")).unwrap(),
            "x"
        );
        assert!(!dir.path().join("gone.txt").exists());
    }

    #[test]
    fn a_folder_someone_else_filled_is_reported_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut tx = FileTransaction::new();
        tx.create_file(&dir.path().join("new/file.txt"), b"x")
            .unwrap();
        fs::write(dir.path().join("new/theirs.txt"), "keep me").unwrap();
        let leftovers = tx.rollback();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
        assert!(
            leftovers[0].contains("remove the created folder"),
            "{leftovers:?}"
        );
        assert!(dir.path().join("new/theirs.txt").exists());
    }
}
