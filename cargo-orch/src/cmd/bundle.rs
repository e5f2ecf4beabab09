//! `cargo orch keygen`, `cargo orch bundle` and `cargo orch check --bundle`:
//! the command-line edge of orch-bundle (which holds the manifest, the
//! archive and the signatures).
//!
//! What a bundle holds, by path in the archive:
//! - `bin/cargo-orch` (this executable) and, when main.yaml has `bridge:`,
//!   `metrics:` or `notify.webhook:`, `bin/orch-networked`;
//! - `modules/<library file>`: each enabled module's cdylib;
//! - `config/main.yaml`, `config/modules.yaml` as written, and with `--env
//!   ENV` the overlay's files beside them as `config/ENV/`;
//! - `manifest.json` and, signed, `manifest.json.minisig`.

use std::fs::OpenOptions;
use std::io::{BufReader, BufWriter, IsTerminal as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};
use orch_bundle::archive::{ArchiveFile, Source, write_archive};
use orch_bundle::format::file_safe;
use orch_bundle::manifest::{FORMAT, FileEntry, GitState, Manifest, PackageEntry, sha256_of};
use orch_bundle::signing::{self, PASSWORD_VAR, Protection};
use orch_bundle::verify::verify_archive;
use orch_cargo::{BuildRequest, Builder};

use crate::cli::{BundleArgs, CheckArgs, EXIT_FAILURE, GlobalArgs, KeygenArgs};
use crate::network::sections_needed;
use crate::session::Session;

/// The password of a secret key, from [`PASSWORD_VAR`] when it is set.
fn password_from_env() -> Option<String> {
    std::env::var(PASSWORD_VAR).ok().filter(|p| !p.is_empty())
}

/// `PATH` with `.pub` appended to its file name.
fn public_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// `cargo orch keygen --out PATH [--no-password]`.
pub fn keygen(args: &KeygenArgs) -> anyhow::Result<ExitCode> {
    let secret_path = &args.out;
    let public_path = public_path(secret_path);
    for path in [secret_path, &public_path] {
        if path.exists() {
            bail!(
                "{} already exists; keygen never overwrites a key: choose another --out or \
                 remove the old pair first",
                path.display()
            );
        }
    }
    let protection = if args.no_password {
        Protection::Unencrypted
    } else if let Some(password) = password_from_env() {
        Protection::Password(password)
    } else if std::io::stdin().is_terminal() {
        Protection::Prompt
    } else {
        bail!(
            "no password for the secret key: set {PASSWORD_VAR}, run from a terminal to type \
             one, or pass --no-password for an unencrypted key (CI)"
        );
    };
    let encrypted = protection != Protection::Unencrypted;
    let files = signing::generate(protection)?;
    write_new(secret_path, files.secret.as_bytes(), 0o600)?;
    if let Err(error) = write_new(&public_path, files.public.as_bytes(), 0o644) {
        let _ = std::fs::remove_file(secret_path);
        return Err(error);
    }
    println!(
        "key {}: secret key {} ({}, mode 0600), public key {}",
        files.key_id,
        secret_path.display(),
        if encrypted {
            "encrypted"
        } else {
            "NOT encrypted"
        },
        public_path.display()
    );
    println!(
        "sign with `cargo orch bundle --sign {}`; operators verify with --trusted-key {}",
        secret_path.display(),
        public_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Creates `path` with `mode`, refusing an existing file.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| {
            format!(
                "cannot create {} (an existing file is never overwritten)",
                path.display()
            )
        })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// One file to bundle: its path in the archive, on disk, and its mode.
struct Planned {
    path: String,
    from: PathBuf,
    executable: bool,
}

/// `cargo orch bundle`.
pub fn bundle(global: &GlobalArgs, args: &BundleArgs) -> anyhow::Result<ExitCode> {
    let session = Session::open(global)?;
    let config = &session.config;
    if let Some(dir) = &args.oci {
        super::oci::preflight(dir, &config.main.app.version)?;
    }
    let workspace = &session.workspace;
    let modules = config.startup_order();
    let mut planned: Vec<Planned> = Vec::new();
    let mut libraries: std::collections::BTreeMap<String, String> = Default::default();

    // The host binary: this executable, and orch-networked when needed.
    let host = std::env::current_exe().context("cannot find this program's own path")?;
    planned.push(Planned {
        path: "bin/cargo-orch".into(),
        from: host,
        executable: true,
    });
    let needed = sections_needed(config);
    if !needed.is_empty() {
        eprintln!(
            "bundle: main.yaml has {}: adding {} (built on first use)",
            needed.join(", "),
            crate::networked::NETWORKED_BIN
        );
        let networked = crate::networked::locate(false, config.main.timeouts.build)?;
        planned.push(Planned {
            path: format!("bin/{}", crate::networked::NETWORKED_BIN),
            from: networked,
            executable: true,
        });
    }

    // The modules' libraries, built as `cargo orch run` builds them.
    let request = BuildRequest {
        packages: orch_config::packages_of(modules.iter().copied()),
        release: args.release,
        timeout: config.main.timeouts.build,
    };
    if request.packages.is_empty() {
        eprintln!("bundle: no module is enabled in modules.yaml; the bundle holds none");
    } else {
        let output = Builder::new(workspace)
            .build(&request)
            .map_err(|error| anyhow::anyhow!("{error}"))
            .context("the modules did not build (phase build); fix the error above")?;
        for package in &request.packages {
            let library = output.artifacts.get(package).with_context(|| {
                format!(
                    "cargo produced no cdylib for package '{package}'; check that its [lib] has \
                     crate-type = [\"cdylib\", \"rlib\"]"
                )
            })?;
            let name = library
                .file_name()
                .and_then(|n| n.to_str())
                .with_context(|| format!("{} has no UTF-8 file name", library.display()))?;
            planned.push(Planned {
                path: format!("modules/{name}"),
                from: library.clone(),
                executable: true,
            });
            libraries.insert(package.clone(), format!("modules/{name}"));
        }
    }

    // The configuration as written: `${VAR}` stays a reference.
    let config_dir = workspace.root.join(&global.config_dir);
    for name in ["main.yaml", "modules.yaml"] {
        let from = config_dir.join(name);
        if from.is_file() {
            planned.push(Planned {
                path: format!("config/{name}"),
                from,
                executable: false,
            });
        }
    }
    if let Some(env) = &global.environment {
        for name in ["main.yaml", "modules.yaml"] {
            let from = config_dir.join(env).join(name);
            if from.is_file() {
                planned.push(Planned {
                    path: format!("config/{env}/{name}"),
                    from,
                    executable: false,
                });
            }
        }
    }
    let left_out: Vec<String> = [workspace.root.join(".env"), config_dir.join(".env")]
        .iter()
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if left_out.is_empty() {
        eprintln!("bundle: secrets: no .env file found; ${{VAR}} references are kept as written");
    } else {
        eprintln!(
            "bundle: secrets: left out {} (never bundled); ${{VAR}} references are kept as \
             written: set them on the target machine",
            left_out.join(", ")
        );
    }

    // The manifest.
    let mut files = Vec::new();
    let mut entries = Vec::new();
    for plan in &planned {
        let reader = std::fs::File::open(&plan.from)
            .with_context(|| format!("cannot read {}", plan.from.display()))?;
        let (size, sha256) = sha256_of(BufReader::new(reader))
            .with_context(|| format!("cannot read {}", plan.from.display()))?;
        files.push(FileEntry {
            path: plan.path.clone(),
            size,
            sha256,
        });
        entries.push(ArchiveFile {
            path: plan.path.clone(),
            executable: plan.executable,
            source: Source::Path(plan.from.clone()),
            size,
        });
    }
    let (rustc, target) = rustc_version()?;
    let manifest = Manifest {
        format: FORMAT,
        app: config.main.app.name.clone(),
        version: config.main.app.version.clone(),
        git: git_state(&workspace.root),
        target,
        rustc,
        abi_version: orch_sdk::abi::ABI_VERSION,
        profile: if args.release { "release" } else { "debug" }.into(),
        environment: global.environment.clone(),
        packages: declared_packages(&session, &libraries)?,
        files,
    };
    let manifest_bytes = manifest.to_bytes();
    let signed_by = match &args.sign {
        Some(key) => {
            let signature = signing::sign(
                key,
                password_from_env(),
                std::io::stdin().is_terminal(),
                &manifest_bytes,
                &manifest.trusted_comment(),
            )?;
            let key_id = signing::signature_key_id(&signature).unwrap_or_default();
            entries.push(ArchiveFile {
                path: orch_bundle::SIGNATURE_PATH.into(),
                executable: false,
                size: signature.len() as u64,
                source: Source::Bytes(signature.into_bytes()),
            });
            Some(key_id)
        }
        None => None,
    };
    entries.push(ArchiveFile {
        path: orch_bundle::MANIFEST_PATH.into(),
        executable: false,
        size: manifest_bytes.len() as u64,
        source: Source::Bytes(manifest_bytes),
    });

    // The archive: written beside its final path, then renamed.
    let out = match &args.out {
        Some(out) => out.clone(),
        None => workspace
            .target_dir
            .join("orch")
            .join("bundle")
            .join(format!(
                "{}-{}.tar",
                file_safe(&manifest.app),
                file_safe(&manifest.version)
            )),
    };
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let partial = out.with_extension("tar.partial");
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let mut writer = BufWriter::new(file);
    let count = entries.len();
    if let Err(error) = write_archive(&mut writer, entries, source_date_epoch()) {
        drop(writer);
        let _ = std::fs::remove_file(&partial);
        return Err(error.into());
    }
    drop(writer);
    std::fs::rename(&partial, &out)
        .with_context(|| format!("cannot rename {} to {}", partial.display(), out.display()))?;
    let mut said = Vec::new();
    if let Some(dir) = &args.oci {
        said = write_oci(dir, &out, &planned, &manifest, signed_by.is_some())?;
    }
    println!(
        "bundle: {} ({} files, {} {} {}, {})",
        out.display(),
        count,
        manifest.app,
        manifest.version,
        manifest.profile,
        match &signed_by {
            Some(key) => format!("signed by key {key}"),
            None => "UNSIGNED: pass --sign KEY".into(),
        }
    );
    for line in said {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Every package modules.yaml names, with its folder relative to the
/// workspace root and its bundled library.
fn declared_packages(
    session: &Session,
    libraries: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<Vec<PackageEntry>> {
    let mut packages: Vec<PackageEntry> = Vec::new();
    for spec in &session.config.modules {
        if packages.iter().any(|p| p.name == spec.package) {
            continue;
        }
        let package = session
            .workspace
            .package(&spec.package)
            .with_context(|| format!("no package '{}' in the workspace", spec.package))?;
        let dir = package
            .manifest_dir
            .strip_prefix(&session.workspace.root)
            .ok()
            .and_then(|d| d.to_str())
            .with_context(|| {
                format!(
                    "package '{}' lives outside the workspace root ({}); bundles hold \
                     workspace members only",
                    spec.package,
                    package.manifest_dir.display()
                )
            })?;
        packages.push(PackageEntry {
            name: spec.package.clone(),
            dir: dir.to_string(),
            library: libraries.get(&spec.package).cloned(),
        });
    }
    Ok(packages)
}

/// `--oci DIR`: the image layout of the archive at `archive`; the lines to
/// print after the bundle's.
fn write_oci(
    dir: &Path,
    archive: &Path,
    planned: &[Planned],
    manifest: &Manifest,
    signed: bool,
) -> anyhow::Result<Vec<String>> {
    let host = planned
        .iter()
        .find(|p| p.path == "bin/cargo-orch")
        .context("the bundle has no bin/cargo-orch")?;
    let request = super::oci::Request {
        archive,
        host: &host.from,
        linked: planned
            .iter()
            .filter(|p| p.path.starts_with("bin/") || p.path.starts_with("modules/"))
            .map(|p| p.from.as_path())
            .collect(),
        manifest,
        signed,
        mtime: source_date_epoch(),
        created: std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.trim().parse().ok()),
    };
    let summary = super::oci::write(dir, &request)
        .with_context(|| format!("cannot write the OCI image layout {}", dir.display()))?;
    if !signed {
        eprintln!(
            "WARNING: the bundle is UNSIGNED, so the OCI image runs it with --allow-unsigned: \
             nothing checks who built it. Sign it (--sign KEY) for anything but development"
        );
    }
    let libraries: Vec<String> = summary
        .libraries
        .iter()
        .map(|l| l.display().to_string())
        .collect();
    Ok(vec![
        format!(
            "oci: {} (tag {}, {}, manifest {}): load it with `skopeo copy oci:{}:{} ...`",
            dir.display(),
            summary.tag,
            summary.platform,
            summary.digest,
            dir.display(),
            summary.tag
        ),
        format!(
            "oci: libraries from this machine: {}",
            if libraries.is_empty() {
                "none (static)".into()
            } else {
                libraries.join(", ")
            }
        ),
        format!("oci: entrypoint: {}", summary.entrypoint.join(" ")),
        if signed {
            format!(
                "oci: mount the trusted public keys (*.pub) at {}; {} must be writable",
                super::oci::KEYS,
                super::oci::UNPACK
            )
        } else {
            format!("oci: {} must be writable", super::oci::UNPACK)
        },
    ])
}

/// The files' mtime in the archive: `SOURCE_DATE_EPOCH`, else 0.
fn source_date_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// `rustc -vV`: its first line and the host triple.
fn rustc_version() -> anyhow::Result<(String, String)> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .arg("-vV")
        .output()
        .context("cannot run `rustc -vV` (is the Rust toolchain on PATH?)")?;
    anyhow::ensure!(output.status.success(), "`rustc -vV` failed");
    let text = String::from_utf8_lossy(&output.stdout);
    let first = text.lines().next().unwrap_or_default().trim().to_string();
    let host = text
        .lines()
        .find_map(|l| l.strip_prefix("host:"))
        .map(|h| h.trim().to_string())
        .context("`rustc -vV` printed no host line")?;
    Ok((first, host))
}

/// The commit and whether the tree is dirty; `None` outside git (or
/// without git).
fn git_state(root: &Path) -> Option<GitState> {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let commit = git(&["rev-parse", "HEAD"])?.trim().to_string();
    let dirty = !git(&["status", "--porcelain"])?.trim().is_empty();
    Some(GitState { commit, dirty })
}

/// `cargo orch check --bundle FILE|DIR [--trusted-key PUBFILE|DIR]...
/// [--allow-unsigned]`.
pub fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let Some(path) = &args.bundle else {
        bail!("--bundle FILE is required");
    };
    let keys = crate::bundled::trusted_keys(&args.trust)?;
    let allow_unsigned = args.trust.allow_unsigned;
    let verified = if path.is_dir() {
        orch_bundle::unpack::verify_dir(path, &keys, allow_unsigned)
    } else {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot open the bundle {}", path.display()))?;
        verify_archive(BufReader::new(file), &keys, allow_unsigned)
    };
    let verified = match verified {
        Ok(verified) => verified,
        Err(error) => {
            eprintln!("error: bundle {} refused: {error}", path.display());
            return Ok(ExitCode::from(EXIT_FAILURE));
        }
    };
    let manifest = &verified.manifest;
    match &verified.signature {
        Some(good) => println!(
            "signature: ok, key {} ({}), trusted comment: {}",
            good.key_id, good.key_file, good.trusted_comment
        ),
        None => eprintln!(
            "WARNING: --allow-unsigned: the signature of {} was NOT checked; never run an \
             unchecked bundle in production",
            path.display()
        ),
    }
    println!(
        "files: ok ({} files match the manifest, none missing, none added)",
        manifest.files.len()
    );
    println!(
        "bundle: ok: {} {} ({}, {}, ABI v{}, {}{})",
        manifest.app,
        manifest.version,
        manifest.target,
        manifest.profile,
        manifest.abi_version,
        manifest.rustc,
        manifest
            .git
            .as_ref()
            .map(|g| format!(
                ", commit {}{}",
                g.commit,
                if g.dirty { " (dirty)" } else { "" }
            ))
            .unwrap_or_default()
    );
    if manifest.abi_version != orch_sdk::abi::ABI_VERSION {
        println!(
            "note: built for module ABI v{}; this cargo-orch speaks v{}",
            manifest.abi_version,
            orch_sdk::abi::ABI_VERSION
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_key_sits_beside_the_secret_one() {
        assert_eq!(
            public_path(Path::new("keys/release")),
            PathBuf::from("keys/release.pub")
        );
    }

    #[test]
    fn keygen_writes_an_owner_only_secret_key_and_never_overwrites() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("k");
        let args = KeygenArgs {
            out: out.clone(),
            no_password: true,
        };
        keygen(&args).expect("keygen");
        let mode = std::fs::metadata(&out)
            .expect("secret")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(public_path(&out).is_file());
        let before = std::fs::read(&out).expect("read");
        assert!(
            keygen(&args).is_err(),
            "an existing key is never overwritten"
        );
        assert_eq!(std::fs::read(&out).expect("read"), before);
    }

    #[test]
    fn file_names_are_made_safe() {
        assert_eq!(file_safe("my app/1"), "my_app_1");
    }
}
