//! The Prometheus project's own `promtool` for the tests (`promtool check
//! metrics` judges our exposition as a Prometheus server would), provisioned
//! by the project itself: Debian's `prometheus` package is downloaded once
//! with `apt-get download` (no install, nothing started) into
//! `target/promtool/` and the binary taken out of it with `dpkg-deb -x`.
//! `ORCH_PROMTOOL` names another binary; a `promtool` on `PATH` is used when
//! the download is not possible.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context as _, bail};

/// The `promtool` binary, provisioned on first use (once per machine, under
/// a lock); an error says why there is none (the tests then skip, saying so).
pub fn promtool_binary() -> anyhow::Result<PathBuf> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| provision().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

/// Runs `promtool check metrics` on `exposition`: `Ok` with its output when
/// it found nothing to say, `Err` with it otherwise.
pub fn check_metrics(promtool: &Path, exposition: &str) -> anyhow::Result<String> {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", promtool.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(exposition.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(said)
    } else {
        bail!("promtool check metrics: {}: {said}", output.status)
    }
}

fn provision() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("ORCH_PROMTOOL") {
        return Ok(PathBuf::from(path));
    }
    let dir = crate::target_dir().join("promtool");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let lock = std::fs::File::create(dir.join(".lock")).context("cannot create the lock file")?;
    lock.lock().context("cannot lock target/promtool/.lock")?;
    let binary = dir.join("promtool");
    if runs(&binary) {
        return Ok(binary);
    }
    match download(&dir, &binary) {
        Ok(()) if runs(&binary) => Ok(binary),
        Ok(()) => bail!("the unpacked {} does not run", binary.display()),
        Err(error) => crate::which("promtool").ok_or(error).context(
            "cannot provision promtool: the tests take it from Debian's `prometheus` package \
             with apt-get download; set ORCH_PROMTOOL to a promtool binary instead",
        ),
    }
}

fn runs(binary: &Path) -> bool {
    Command::new(binary)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
}

/// `apt-get download prometheus`, then the binary out of the package,
/// written beside and renamed into place.
fn download(dir: &Path, binary: &Path) -> anyhow::Result<()> {
    let work = tempfile::tempdir_in(dir).context("cannot create a download folder")?;
    let status = Command::new("apt-get")
        .args(["download", "-q", "prometheus"])
        .current_dir(work.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .context("cannot run apt-get")?;
    if !status.success() {
        bail!("apt-get download prometheus failed ({status})");
    }
    let package = std::fs::read_dir(work.path())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("apt-get downloaded no package")?;
    let unpacked = work.path().join("unpacked");
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&package)
        .arg(&unpacked)
        .status()
        .context("cannot run dpkg-deb")?;
    if !status.success() {
        bail!("cannot unpack {}", package.display());
    }
    let partial = dir.join(".promtool.partial");
    std::fs::copy(unpacked.join("usr/bin/promtool"), &partial)
        .context("the package holds no usr/bin/promtool")?;
    std::fs::rename(&partial, binary)?;
    Ok(())
}
