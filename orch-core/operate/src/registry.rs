//! Where running orchestrators can be found: one entry file per process in
//! `target/orch/control/<pid>.json` naming its socket. The socket itself is
//! `target/orch/control/<pid>.sock` when that path fits a Unix socket address
//! (107 bytes), else in a private folder of the user's runtime directory.

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
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

/// Creates `dir` (and its parents) owner-only, or makes it so.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// The socket path for process `pid`: `requested` if given, else beside
/// the entry files, else (too long) under the runtime directory.
pub fn socket_path(target_dir: &Path, pid: u32, requested: Option<&Path>) -> io::Result<PathBuf> {
    if let Some(path) = requested {
        return Ok(path.to_path_buf());
    }
    let beside = folder(target_dir).join(format!("{pid}.sock"));
    if beside.as_os_str().len() <= MAX_SOCKET_PATH {
        return Ok(beside);
    }
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let private = runtime.join(format!("cargo-orch-{}", nix::unistd::getuid()));
    private_dir(&private)?;
    Ok(private.join(format!("{pid}.sock")))
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
                if entry.socket.starts_with(folder(target_dir)) {
                    let _ = fs::remove_file(&entry.socket);
                }
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
}
