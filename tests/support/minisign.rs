//! Debian's `minisign` command for the tests (the reference implementation
//! checks our signatures and makes one we check), provisioned by the project
//! itself as promtool is: the `minisign` and `libsodium23` packages are
//! downloaded once with `apt-get download` (no install) into
//! `target/minisign/` and unpacked with `dpkg-deb -x`; the binary runs with
//! the unpacked libsodium on `LD_LIBRARY_PATH`. `ORCH_MINISIGN` names another
//! binary; a `minisign` on `PATH` is used when the download is not possible.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context as _, bail};

/// How to run minisign: the binary and the folder of its libraries.
#[derive(Debug, Clone)]
pub struct Minisign {
    binary: PathBuf,
    libraries: Option<PathBuf>,
}

impl Minisign {
    /// A command running minisign with `args`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command.args(args).stdin(Stdio::null());
        if let Some(libraries) = &self.libraries {
            command.env("LD_LIBRARY_PATH", libraries);
        }
        command
    }

    fn runs(&self) -> bool {
        self.command(&["-v"])
            .output()
            .is_ok_and(|out| out.status.success())
    }
}

/// minisign, provisioned on first use (once per machine, under a lock); an
/// error says why there is none (the tests then skip, saying so).
pub fn minisign() -> anyhow::Result<Minisign> {
    static TOOL: OnceLock<Result<Minisign, String>> = OnceLock::new();
    TOOL.get_or_init(|| provision().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn provision() -> anyhow::Result<Minisign> {
    if let Some(path) = std::env::var_os("ORCH_MINISIGN") {
        return Ok(Minisign {
            binary: PathBuf::from(path),
            libraries: None,
        });
    }
    let dir = crate::target_dir().join("minisign");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let lock = std::fs::File::create(dir.join(".lock")).context("cannot create the lock file")?;
    lock.lock().context("cannot lock target/minisign/.lock")?;
    let unpacked = dir.join("root");
    let tool = Minisign {
        binary: unpacked.join("usr/bin/minisign"),
        libraries: Some(unpacked.join("usr/lib/x86_64-linux-gnu")),
    };
    if tool.runs() {
        return Ok(tool);
    }
    match download(&dir, &unpacked) {
        Ok(()) if tool.runs() => Ok(tool),
        Ok(()) => bail!("the unpacked {} does not run", tool.binary.display()),
        Err(error) => crate::which("minisign")
            .map(|binary| Minisign {
                binary,
                libraries: None,
            })
            .ok_or(error)
            .context(
                "cannot provision minisign: the tests take it from Debian's `minisign` and \
                 `libsodium23` packages with apt-get download; set ORCH_MINISIGN instead",
            ),
    }
}

/// `apt-get download minisign libsodium23`, each unpacked into `unpacked`.
fn download(dir: &Path, unpacked: &Path) -> anyhow::Result<()> {
    let work = tempfile::tempdir_in(dir).context("cannot create a download folder")?;
    let status = Command::new("apt-get")
        .args(["download", "-q", "minisign", "libsodium23"])
        .current_dir(work.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("cannot run apt-get")?;
    if !status.success() {
        bail!("apt-get download minisign libsodium23 failed ({status})");
    }
    let staged = work.path().join("root");
    for entry in std::fs::read_dir(work.path())?.flatten() {
        let package = entry.path();
        if package.extension().is_none_or(|e| e != "deb") {
            continue;
        }
        let status = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&package)
            .arg(&staged)
            .status()
            .context("cannot run dpkg-deb")?;
        if !status.success() {
            bail!("cannot unpack {}", package.display());
        }
    }
    if unpacked.exists() {
        std::fs::remove_dir_all(unpacked)?;
    }
    std::fs::rename(&staged, unpacked)?;
    Ok(())
}
