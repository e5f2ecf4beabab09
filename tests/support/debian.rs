//! Debian command-line tools for the tests, provisioned by the project as
//! minisign is (see [`crate::minisign`]): the tool's package and the
//! library packages it depends on that are not installed here are fetched
//! with `apt-get download` (no install) into `target/<tool>/` and unpacked
//! with `dpkg-deb -x`, once per machine under a lock; the binary runs with
//! the unpacked libraries on `LD_LIBRARY_PATH`. `ORCH_<TOOL>` (e.g.
//! `ORCH_SKOPEO`) names another binary. When the download is impossible, a
//! tool on `PATH` is used, and as a last resort, as root with `CI=true`,
//! `apt-get install -y`. Otherwise the error says why (tests then skip).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use anyhow::{Context as _, bail};

/// How to run a provisioned tool: its binary and library folders.
#[derive(Debug, Clone)]
pub struct Tool {
    binary: PathBuf,
    libraries: Vec<PathBuf>,
}

impl Tool {
    /// A command running the tool with `args`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command.args(args).stdin(Stdio::null());
        if !self.libraries.is_empty() {
            command.env(
                "LD_LIBRARY_PATH",
                std::env::join_paths(&self.libraries).unwrap_or_default(),
            );
        }
        command
    }

    fn runs(&self, version: &[&str]) -> bool {
        self.binary.is_file()
            && self
                .command(version)
                .output()
                .is_ok_and(|out| out.status.success())
    }
}

/// The Debian tool `name` (binary `/usr/bin/<name>` of package `name`),
/// provisioned on first use; `version` is an argument list that succeeds
/// when it runs (`["--version"]`).
pub fn tool(name: &'static str, version: &'static [&'static str]) -> anyhow::Result<Tool> {
    static TOOLS: OnceLock<Mutex<HashMap<&'static str, Result<Tool, String>>>> = OnceLock::new();
    let mut tools = TOOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    tools
        .entry(name)
        .or_insert_with(|| provision(name, version).map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn provision(name: &str, version: &[&str]) -> anyhow::Result<Tool> {
    if let Some(path) = std::env::var_os(format!("ORCH_{}", name.to_uppercase())) {
        return Ok(Tool {
            binary: PathBuf::from(path),
            libraries: Vec::new(),
        });
    }
    let dir = crate::target_dir().join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let lock = std::fs::File::create(dir.join(".lock")).context("cannot create the lock file")?;
    lock.lock()
        .with_context(|| format!("cannot lock {}/.lock", dir.display()))?;
    let unpacked = dir.join("root");
    let unpacked_tool = || Tool {
        binary: unpacked.join("usr/bin").join(name),
        libraries: library_dirs(&unpacked),
    };
    if unpacked_tool().runs(version) {
        return Ok(unpacked_tool());
    }
    let downloaded = download(name, &dir, &unpacked);
    if downloaded.is_ok() && unpacked_tool().runs(version) {
        return Ok(unpacked_tool());
    }
    let on_path = |name: &str| {
        crate::which(name).map(|binary| Tool {
            binary,
            libraries: Vec::new(),
        })
    };
    if let Some(tool) = on_path(name).filter(|t| t.runs(version)) {
        return Ok(tool);
    }
    let why = match downloaded {
        Ok(()) => format!(
            "the unpacked {} does not run",
            unpacked_tool().binary.display()
        ),
        Err(error) => format!("{error:#}"),
    };
    if is_root() && std::env::var("CI").is_ok_and(|v| v == "true") {
        let status = Command::new("apt-get")
            .args(["install", "-y", "-q", name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .context("cannot run apt-get install")?;
        if let Some(tool) = on_path(name).filter(|t| status.success() && t.runs(version)) {
            return Ok(tool);
        }
    }
    bail!(
        "cannot provision {name} ({why}): the tests take it from Debian's `{name}` package with \
         apt-get download; install it, or set ORCH_{} to its binary",
        name.to_uppercase()
    )
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// The folders of shared libraries under an unpacked root (`usr/lib/<triplet>`,
/// `lib/<triplet>`).
fn library_dirs(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for lib in ["usr/lib", "lib"] {
        let Ok(entries) = std::fs::read_dir(root.join(lib)) else {
            continue;
        };
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir() && p.to_string_lossy().contains("-linux-"))
            .collect();
        dirs.sort();
        found.extend(dirs);
    }
    found
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
}

/// `package` and, recursively, the library packages (`lib*`) it depends on
/// that are not installed here.
fn packages_to_fetch(package: &str) -> BTreeSet<String> {
    let mut wanted = BTreeSet::from([package.to_string()]);
    let mut queue = vec![package.to_string()];
    while let Some(next) = queue.pop() {
        let Ok(output) = Command::new("apt-cache")
            .args(["depends", "--no-recommends", "--no-suggests", &next])
            .stderr(Stdio::null())
            .output()
        else {
            continue;
        };
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Some(dependency) = line
                .trim()
                .trim_start_matches('|')
                .strip_prefix("Depends:")
                .map(str::trim)
            else {
                continue;
            };
            let dependency = dependency.split(':').next().unwrap_or_default();
            if dependency.starts_with("lib")
                && wanted.len() < 32
                && !wanted.contains(dependency)
                && !installed(dependency)
            {
                wanted.insert(dependency.to_string());
                queue.push(dependency.to_string());
            }
        }
    }
    wanted
}

/// `apt-get download` of `name` and its missing libraries, each unpacked
/// into `unpacked`.
fn download(name: &str, dir: &Path, unpacked: &Path) -> anyhow::Result<()> {
    let packages = packages_to_fetch(name);
    let work = tempfile::tempdir_in(dir).context("cannot create a download folder")?;
    let status = Command::new("apt-get")
        .args(["download", "-q"])
        .args(&packages)
        .current_dir(work.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("cannot run apt-get")?;
    if !status.success() {
        bail!(
            "apt-get download {} failed ({status})",
            packages.into_iter().collect::<Vec<_>>().join(" ")
        );
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
