//! `cargo orch bundle --oci DIR` end to end: the shipped modules bundled
//! (signed) as an OCI image layout, read back by hand, by Debian's `skopeo
//! inspect`, and unpacked by Debian's `umoci`, whose root filesystem runs
//! the host binary with nothing but the image's own libraries (in a user,
//! mount and pid namespace, chrooted). The tools are provisioned as
//! minisign is (tests/support/debian.rs); a test that cannot get one skips,
//! saying so.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use orch_e2e::debian::{Tool, tool};
use orch_e2e::{OrchProcess, target_dir};
use serde_json::Value;

use crate::bundle::{keygen, orch, path, refused, said, succeeds};

/// A signed bundle of the shipped modules and its OCI layout, made once per
/// test process (in target/, replaced by the next run).
struct Fixture {
    archive: PathBuf,
    image: PathBuf,
    public_key: PathBuf,
    key_id: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = target_dir().join("e2e-oci");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("remove the last run's fixture");
        }
        std::fs::create_dir_all(&dir).expect("mkdir");
        let key = dir.join("release.key");
        let key_id = keygen(&key);
        let (archive, image) = (dir.join("app.tar"), dir.join("image"));
        let text = succeeds(orch(&[
            "bundle",
            "--out",
            path(&archive),
            "--sign",
            path(&key),
            "--oci",
            path(&image),
        ]));
        assert!(
            text.contains("oci: ") && !text.contains("UNSIGNED"),
            "{text}"
        );
        Fixture {
            archive,
            image,
            public_key: dir.join("release.key.pub"),
            key_id,
        }
    })
}

/// The entrypoint of a signed bundle's image.
const ENTRYPOINT: [&str; 9] = [
    "/app/bin/cargo-orch",
    "orch",
    "run",
    "--bundle",
    "/app/bundle.tar",
    "--trusted-key",
    "/etc/orch/keys",
    "--unpack-dir",
    "/var/lib/orch",
];

/// This machine's architecture in OCI's names.
fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{path:?}: {e}")))
        .unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

fn blob(image: &Path, digest: &Value) -> PathBuf {
    let digest = digest.as_str().expect("a digest");
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    image.join("blobs/sha256").join(hex)
}

fn tool_or_skip(name: &'static str) -> Option<Tool> {
    match tool(name, &["--version"]) {
        Ok(tool) => Some(tool),
        Err(error) => {
            eprintln!("SKIPPED: Debian's {name} is not available here: {error}");
            None
        }
    }
}

/// `umoci unpack --rootless` of the fixture's image into `into`; its rootfs.
fn unpack(umoci: &Tool, image: &Path, into: &Path) -> PathBuf {
    let tag = json(&image.join("index.json"))["manifests"][0]["annotations"]
        ["org.opencontainers.image.ref.name"]
        .as_str()
        .expect("a tag")
        .to_string();
    let reference = format!("{}:{tag}", path(image));
    let output = umoci
        .command(&["unpack", "--rootless", "--image", &reference, path(into)])
        .output()
        .expect("run umoci");
    assert!(output.status.success(), "umoci unpack:\n{}", said(&output));
    into.join("rootfs")
}

/// `args` run inside `rootfs` as a container runtime would: user, mount and
/// pid namespaces, /proc mounted, /dev bound, chrooted, a clean environment.
fn in_rootfs(rootfs: &Path, args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new("unshare");
    command
        .args(["-r", "-m", "-p", "-f", "--kill-child"])
        .arg(format!("--mount-proc={}", rootfs.join("proc").display()))
        .args([
            "sh",
            "-c",
            r#"mount --rbind /dev "$0/dev" && exec chroot "$0" "$@""#,
        ])
        .arg(rootfs)
        .args(args)
        .env_clear()
        .env("PATH", "/app/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .env("NO_COLOR", "1");
    command
}

fn namespaces_work() -> bool {
    std::process::Command::new("unshare")
        .args(["-r", "-m", "-p", "-f", "--mount-proc", "true"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_layout_is_an_oci_image_of_the_bundle() {
    let fixture = fixture();
    let image = &fixture.image;
    assert_eq!(
        std::fs::read_to_string(image.join("oci-layout")).expect("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let index = json(&image.join("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 1);
    let descriptor = &manifests[0];
    assert_eq!(
        descriptor["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        descriptor["annotations"]["org.opencontainers.image.ref.name"],
        "0.1.0"
    );
    assert_eq!(descriptor["platform"]["os"], "linux");
    // Every blob is named by its SHA-256.
    for entry in std::fs::read_dir(image.join("blobs/sha256")).expect("blobs") {
        let entry = entry.expect("entry");
        let bytes = std::fs::read(entry.path()).expect("blob");
        assert_eq!(
            orch_bundle::format::sha256_hex(&bytes),
            entry.file_name().to_string_lossy(),
            "a blob's name is not its digest"
        );
    }
    let manifest = json(&blob(image, &descriptor["digest"]));
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.version"],
        "0.1.0"
    );
    assert!(
        manifest["annotations"]["org.opencontainers.image.revision"]
            .as_str()
            .is_some_and(|c| c.len() == 40),
        "{manifest}"
    );
    let config = json(&blob(image, &manifest["config"]["digest"]));
    assert_eq!(config["architecture"], oci_arch());
    assert_eq!(config["os"], "linux");
    assert_eq!(config["rootfs"]["diff_ids"][0], layers[0]["digest"]);
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(ENTRYPOINT)
    );
    assert_eq!(config["config"]["WorkingDir"], "/var/lib/orch");
    assert!(
        config["config"]["Env"][0]
            .as_str()
            .is_some_and(|p| p.starts_with("PATH=/app/bin:")),
        "{config}"
    );
    assert!(config.get("created").is_none(), "no SOURCE_DATE_EPOCH");
}

#[test]
fn skopeo_inspects_the_layout() {
    let Some(skopeo) = tool_or_skip("skopeo") else {
        return;
    };
    let fixture = fixture();
    let reference = format!("oci:{}", path(&fixture.image));
    let output = skopeo
        .command(&["inspect", &reference])
        .output()
        .expect("run skopeo");
    assert!(
        output.status.success(),
        "skopeo inspect:\n{}",
        said(&output)
    );
    let inspected: Value = serde_json::from_slice(&output.stdout).expect("skopeo's JSON");
    assert_eq!(inspected["Architecture"], oci_arch(), "{inspected}");
    assert_eq!(inspected["Os"], "linux", "{inspected}");
    assert_eq!(inspected["Layers"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        inspected["Labels"]["org.opencontainers.image.title"],
        "cargo-orch-demo"
    );
    let output = skopeo
        .command(&["inspect", "--config", &format!("{reference}:0.1.0")])
        .output()
        .expect("run skopeo");
    assert!(
        output.status.success(),
        "skopeo inspect --config:\n{}",
        said(&output)
    );
    let config: Value = serde_json::from_slice(&output.stdout).expect("skopeo's JSON");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(ENTRYPOINT)
    );
}

#[test]
fn umoci_unpacks_a_root_filesystem_that_runs_the_host_binary() {
    let Some(umoci) = tool_or_skip("umoci") else {
        return;
    };
    let fixture = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let rootfs = unpack(&umoci, &fixture.image, &dir.path().join("unpacked"));
    let host = rootfs.join("app/bin/cargo-orch");
    assert!(host.is_file(), "no /app/bin/cargo-orch");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&host).expect("host").permissions().mode();
    assert_eq!(mode & 0o111, 0o111, "the host binary is executable");
    assert!(
        std::fs::read(rootfs.join("app/bundle.tar")).expect("/app/bundle.tar")
            == std::fs::read(&fixture.archive).expect("the archive"),
        "/app/bundle.tar differs from the archive"
    );
    // The loader and libc as regular files, not links.
    let loader = std::fs::read_dir(rootfs.join(if cfg!(target_arch = "x86_64") {
        "lib64"
    } else {
        "lib"
    }))
    .expect("a loader folder")
    .flatten()
    .find(|e| e.file_name().to_string_lossy().starts_with("ld-linux"))
    .expect("the dynamic loader");
    assert!(loader.file_type().expect("type").is_file());
    let libc = std::process::Command::new("ldd")
        .arg(&host)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .expect("ldd");
    let libc = libc
        .lines()
        .find_map(|l| l.split("=> ").nth(1).filter(|_| l.contains("libc.so")))
        .and_then(|rest| rest.split(' ').next())
        .expect("the host links libc");
    let libc = rootfs.join(libc.trim_start_matches('/'));
    assert!(
        std::fs::symlink_metadata(&libc).is_ok_and(|m| m.file_type().is_file()),
        "{} is not a regular file",
        libc.display()
    );
    for dir in ["etc/orch/keys", "var/lib/orch", "tmp", "proc"] {
        assert!(rootfs.join(dir).is_dir(), "/{dir} missing");
    }

    if !namespaces_work() {
        eprintln!("SKIPPED: running the root filesystem: user namespaces are not available");
        return;
    }
    std::fs::copy(
        &fixture.public_key,
        rootfs.join("etc/orch/keys/release.pub"),
    )
    .expect("mount the key");
    let output = in_rootfs(
        &rootfs,
        &[
            "/app/bin/cargo-orch",
            "orch",
            "check",
            "--bundle",
            "/app/bundle.tar",
            "--trusted-key",
            "/etc/orch/keys/release.pub",
        ],
    )
    .output()
    .expect("run unshare");
    let text = said(&output);
    assert!(
        output.status.success(),
        "the host binary did not run in the unpacked root filesystem:\n{text}"
    );
    assert!(
        text.contains("signature: ok") && text.contains(&fixture.key_id),
        "{text}"
    );
}

#[test]
fn two_oci_layouts_of_the_same_tree_are_byte_identical() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut layouts = Vec::new();
    for name in ["one", "two"] {
        let image = dir.path().join(name);
        let archive = dir.path().join(format!("{name}.tar"));
        let text = succeeds(orch(&[
            "bundle",
            "--out",
            path(&archive),
            "--oci",
            path(&image),
        ]));
        assert!(
            text.contains("WARNING") && text.contains("--allow-unsigned"),
            "an unsigned image is announced loudly:\n{text}"
        );
        layouts.push(files(&image));
    }
    assert!(!layouts[0].is_empty());
    assert!(
        layouts[0] == layouts[1],
        "two layouts of the same tree differ"
    );
    // Bundling again over a layout replaces it.
    succeeds(orch(&[
        "bundle",
        "--out",
        path(&dir.path().join("one.tar")),
        "--oci",
        path(&dir.path().join("one")),
    ]));
    assert!(files(&dir.path().join("one")) == layouts[0]);
}

#[test]
fn a_folder_that_is_not_a_layout_is_refused_before_building() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = dir.path().join("image");
    std::fs::create_dir(&image).expect("mkdir");
    std::fs::write(image.join("notes.txt"), b"mine").expect("write");
    let archive = dir.path().join("app.tar");
    let text = refused(
        orch(&["bundle", "--out", path(&archive), "--oci", path(&image)]),
        "notes.txt",
    );
    assert!(text.contains("not an OCI image layout"), "{text}");
    assert!(!archive.exists(), "nothing was bundled");
    assert_eq!(
        std::fs::read(image.join("notes.txt")).expect("kept"),
        b"mine"
    );
}

/// The entrypoint itself: the unpacked image runs the bundle until SIGINT.
#[test]
fn the_unpacked_image_runs_the_bundle_until_sigint() {
    let Some(umoci) = tool_or_skip("umoci") else {
        return;
    };
    if !namespaces_work() {
        eprintln!("SKIPPED: user namespaces are not available");
        return;
    }
    let fixture = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let rootfs = unpack(&umoci, &fixture.image, &dir.path().join("unpacked"));
    std::fs::copy(
        &fixture.public_key,
        rootfs.join("etc/orch/keys/release.pub"),
    )
    .expect("mount the key");
    let mut command = in_rootfs(&rootfs, &ENTRYPOINT);
    // The whole group gets SIGINT, as from a terminal: unshare waits,
    // cargo-orch (pid 1 of its namespace) stops.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut orch = OrchProcess::spawn(command).expect("spawn unshare");
    orch.wait_for("Received test.ping", Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}"));
    let group = Pid::from_raw(i32::try_from(orch.pid()).expect("pid"));
    killpg(group, Signal::SIGINT).expect("SIGINT");
    let status = orch
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "exit {status}:\n{}", orch.output());
}

/// Every file under `dir`: (relative path, bytes), sorted.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path
                    .strip_prefix(dir)
                    .expect("prefix")
                    .display()
                    .to_string();
                found.push((name, std::fs::read(&path).expect("read")));
            }
        }
    }
    found.sort();
    found
}
