//! Where running orchestrators can be found: one entry file per process in
//! `target/orch/control/<pid>.json` naming its socket. The socket itself is
//! `target/orch/control/<pid>.sock` when that path fits a Unix socket address
//! (107 bytes), else in a private folder of the user's runtime directory, or
//! where `--control-socket` says.
//!
//! Nothing here removes a file that is not a socket, nor a socket outside the
//! folders cargo-orch owns (the registry folder and the private runtime
//! folder, compared canonicalised), nor changes the mode of a folder it did
//! not create.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The longest path a Unix socket address holds (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// One running orchestrator, as its entry file describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The orchestrator's pid.
    pub pid: u32,
    /// Its control socket.
    pub socket: PathBuf,
    /// `app.name`.
    pub app: String,
    /// The config folder it runs from.
    pub config_dir: PathBuf,
    /// The environment overlay, if any.
    pub environment: Option<String>,
}

/// The folder of entry files under `target_dir`.
pub fn folder(target_dir: &Path) -> PathBuf {
    target_dir.join("orch").join("control")
}

/// Creates `dir` (and its parents) owner-only, or makes it so: for the
/// folders cargo-orch owns alone.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Creates the folders missing on the way to `dir`, owner-only; the mode of
/// one that exists is left as it is (`--control-socket` may name a folder
/// of the user's).
pub fn socket_dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// The private folder for sockets whose path beside the entry files is too
/// long: `$XDG_RUNTIME_DIR/cargo-orch-<uid>` (or under the temp folder).
fn runtime_folder() -> PathBuf {
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    runtime.join(format!("cargo-orch-{}", nix::unistd::getuid()))
}

/// The socket path for process `pid`: `requested` if given (a relative
/// path is taken from the current folder), else beside the entry files,
/// else (too long) under the runtime directory.
pub fn socket_path(target_dir: &Path, pid: u32, requested: Option<&Path>) -> io::Result<PathBuf> {
    if let Some(path) = requested {
        return std::path::absolute(path);
    }
    let beside = folder(target_dir).join(format!("{pid}.sock"));
    if beside.as_os_str().len() <= MAX_SOCKET_PATH {
        return Ok(beside);
    }
    let private = runtime_folder();
    private_dir(&private)?;
    Ok(private.join(format!("{pid}.sock")))
}

/// Whether `path` is a socket (not followed if it is a symbolic link).
pub fn is_socket(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// Whether `socket` lies directly in one of the folders cargo-orch owns
/// under `target_dir` (compared canonicalised: `..` and links resolved).
fn in_owned_folder(target_dir: &Path, socket: &Path) -> bool {
    let (Some(parent), Some(_)) = (socket.parent(), socket.file_name()) else {
        return false;
    };
    let Ok(parent) = parent.canonicalize() else {
        return false;
    };
    [folder(target_dir), runtime_folder()]
        .iter()
        .filter_map(|owned| owned.canonicalize().ok())
        .any(|owned| owned == parent)
}

/// Removes the socket a dead orchestrator left, if it is one of ours: a
/// socket, in a folder cargo-orch owns. Anything else stays.
fn remove_stale_socket(target_dir: &Path, socket: &Path) {
    if is_socket(socket) && in_owned_folder(target_dir, socket) {
        let _ = fs::remove_file(socket);
    }
}

/// Writes `entry` atomically (beside, then renamed over).
pub fn write(target_dir: &Path, entry: &Entry) -> io::Result<PathBuf> {
    let dir = folder(target_dir);
    private_dir(&dir)?;
    let path = dir.join(format!("{}.json", entry.pid));
    let partial = dir.join(format!(".{}.json.partial", entry.pid));
    let text = serde_json::to_string_pretty(entry).map_err(io::Error::other)?;
    fs::write(&partial, text)?;
    fs::rename(&partial, &path)?;
    Ok(path)
}

/// The entries of processes that still run, oldest pid first; entries of
/// processes gone (killed without cleaning up) are removed on the way.
pub fn running(target_dir: &Path) -> Vec<Entry> {
    let Ok(files) = fs::read_dir(folder(target_dir)) else {
        return Vec::new();
    };
    let mut entries: Vec<Entry> = files
        .filter_map(Result::ok)
        .map(|file| file.path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .filter_map(|path| {
            let entry: Entry = serde_json::from_slice(&fs::read(&path).ok()?).ok()?;
            if is_alive(entry.pid) {
                Some(entry)
            } else {
                let _ = fs::remove_file(&path);
                remove_stale_socket(target_dir, &entry.socket);
                None
            }
        })
        .collect();
    entries.sort_by_key(|e| e.pid);
    entries
}

/// Whether process `pid` exists (signal 0 reaches it).
fn is_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(errno) => errno == nix::errno::Errno::EPERM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_of_dead_processes_are_dropped() {
        let target = tempfile::tempdir().expect("temp dir");
        let me = Entry {
            pid: std::process::id(),
            socket: folder(target.path()).join("me.sock"),
            app: "demo".into(),
            config_dir: "config".into(),
            environment: None,
        };
        write(target.path(), &me).expect("written");
        let dead = Entry {
            pid: i32::MAX as u32,
            ..me.clone()
        };
        let dead_file = write(target.path(), &dead).expect("written");
        assert_eq!(running(target.path()), vec![me]);
        assert!(!dead_file.exists());
        let mode = fs::metadata(folder(target.path()))
            .expect("folder")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_long_target_path_puts_the_socket_elsewhere() {
        let long = PathBuf::from("/").join("x".repeat(120));
        let path = socket_path(&long, 7, None).expect("a path");
        assert!(
            path.as_os_str().len() <= MAX_SOCKET_PATH,
            "{}",
            path.display()
        );
        assert!(path.ends_with("7.sock"));
    }

    #[test]
    fn a_dead_entry_removes_only_a_socket_of_its_own_folder() {
        let target = tempfile::tempdir().expect("temp dir");
        let dir = folder(target.path());
        private_dir(&dir).expect("folder");
        let victim = target.path().join("config.yaml");
        fs::write(&victim, "keep me").expect("victim");
        let outside = target.path().join("outside.sock");
        let _outside = std::os::unix::net::UnixListener::bind(&outside).expect("bind");
        let stale = dir.join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
        let not_a_socket = dir.join("notes.txt");
        fs::write(&not_a_socket, "keep me too").expect("file");
        for (pid, socket) in [
            (
                i32::MAX as u32,
                dir.join("..").join("..").join("config.yaml"),
            ),
            (
                i32::MAX as u32 - 1,
                dir.join("..").join("..").join("outside.sock"),
            ),
            (i32::MAX as u32 - 2, stale.clone()),
            (i32::MAX as u32 - 3, not_a_socket.clone()),
        ] {
            let entry = Entry {
                pid,
                socket,
                app: "dead".into(),
                config_dir: "config".into(),
                environment: None,
            };
            write(target.path(), &entry).expect("written");
        }
        assert!(running(target.path()).is_empty());
        assert_eq!(fs::read_to_string(&victim).expect("kept"), "keep me");
        assert!(is_socket(&outside), "a socket outside the folder stays");
        assert!(not_a_socket.exists(), "a file that is not a socket stays");
        assert!(!stale.exists(), "the dead orchestrator's own socket goes");
    }

    #[test]
    fn a_relative_socket_path_is_taken_from_the_current_folder() {
        let path = socket_path(Path::new("/t"), 7, Some(Path::new("orch.sock"))).expect("path");
        assert_eq!(
            path,
            std::env::current_dir().expect("cwd").join("orch.sock")
        );
    }
}
