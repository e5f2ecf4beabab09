//! Python packages the tests read our output with (a real Prometheus text
//! parser, a real JUnit reader), provisioned by the tests themselves: `pip
//! install --target` into `target/py/<package>-<version>/` once per machine,
//! under a lock, then run with `PYTHONPATH` pointing there.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use anyhow::{Context as _, bail};

/// The folder holding `package==version`, installed on first use.
pub fn python_package(package: &str, version: &str) -> anyhow::Result<PathBuf> {
    let root = crate::target_dir().join("py");
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let lock = std::fs::File::create(root.join(".lock")).context("cannot create the lock file")?;
    lock.lock().context("cannot lock target/py/.lock")?;
    let dir = root.join(format!("{package}-{version}"));
    let module = package.replace('-', "_");
    if imports(&dir, &module) {
        return Ok(dir);
    }
    let partial = root.join(format!(".{package}-{version}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--disable-pip-version-check",
        ])
        .args(["--quiet", "--target"])
        .arg(&partial)
        .arg(format!("{package}=={version}"))
        .stdin(Stdio::null())
        .status()
        .context("cannot run python3 -m pip")?;
    if !status.success() {
        bail!("pip could not install {package}=={version} ({status})");
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&partial, &dir)?;
    if !imports(&dir, &module) {
        bail!("{package} installed into {} does not import", dir.display());
    }
    Ok(dir)
}

fn imports(dir: &std::path::Path, module: &str) -> bool {
    dir.is_dir()
        && Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .env("PYTHONPATH", dir)
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|out| out.status.success())
}

/// Runs `script` with `packages` importable, `stdin` as its input.
pub fn run_python(script: &str, packages: &[PathBuf], stdin: &[u8]) -> anyhow::Result<Output> {
    use std::io::Write as _;
    let path = std::env::join_paths(packages).context("a package path holds a ':'")?;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .env("PYTHONPATH", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run python3")?;
    child
        .stdin
        .take()
        .context("no stdin")?
        .write_all(stdin)
        .context("cannot write to python3")?;
    child.wait_with_output().context("python3 did not finish")
}

/// Every sample of a Prometheus text scrape as the Prometheus project's own
/// Python parser (`prometheus_client`) reads it: `name{label="value",...}`
/// (labels sorted) to value. Panics, with the scrape, if the parser refuses it.
pub fn parse_prometheus(body: &str) -> std::collections::HashMap<String, f64> {
    let parser = python_package("prometheus_client", "0.21.1").expect("prometheus_client");
    let script = "import sys, json\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        out = {}\n\
        for family in text_string_to_metric_families(sys.stdin.read()):\n\
        \x20   for s in family.samples:\n\
        \x20       labels = ','.join(f'{k}=\"{v}\"' for k, v in sorted(s.labels.items()))\n\
        \x20       out[s.name + ('{' + labels + '}' if labels else '')] = s.value\n\
        print(json.dumps(out))\n";
    let output = run_python(script, &[parser], body.as_bytes()).expect("python3 runs");
    assert!(
        output.status.success(),
        "the Prometheus parser refused the scrape: {}\n{body}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the parser's JSON")
}
