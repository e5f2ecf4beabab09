//! `cargo orch keygen`, `bundle` and `check --bundle` end to end: the real
//! binary bundles the shipped modules of this repository (into a temporary
//! folder), and `check --bundle` refuses what was tampered with, naming the
//! file or the key. Debian's `minisign` checks our signature and makes one we
//! check (skipped, saying so, where it cannot be provisioned).

use std::path::Path;
use std::process::{Command, Output};

use orch_bundle::archive::{ArchiveFile, Source, write_archive};

use orch_e2e::workspace_root;

pub(crate) use orch_e2e::releases::{orch, said};

pub(crate) fn run(mut command: Command) -> Output {
    command.output().expect("run cargo-orch")
}

pub(crate) fn succeeds(command: Command) -> String {
    orch_e2e::releases::succeeds(command).unwrap_or_else(|e| panic!("{e:#}"))
}

pub(crate) fn refused(command: Command, names: &str) -> String {
    let output = run(command);
    let text = said(&output);
    assert!(!output.status.success(), "expected a refusal:\n{text}");
    assert!(
        text.contains(names),
        "the refusal does not name {names}:\n{text}"
    );
    assert!(text.contains("hint:"), "the refusal says no fix:\n{text}");
    text
}

pub(crate) fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temporary path")
}

/// `keygen --no-password`: the key id it prints.
pub(crate) fn keygen(out: &Path) -> String {
    let text = succeeds(orch(&["keygen", "--out", path(out), "--no-password"]));
    text.split_whitespace()
        .nth(1)
        .map(|id| id.trim_end_matches(':').to_string())
        .expect("keygen prints the key id")
}

pub(crate) fn bundle(out: &Path, sign: Option<&Path>) -> String {
    let mut args = vec!["bundle", "--out", path(out)];
    if let Some(key) = sign {
        args.extend(["--sign", path(key)]);
    }
    succeeds(orch(&args))
}

fn check(bundle: &Path, keys: &[&Path]) -> Command {
    let mut args = vec!["check", "--bundle", path(bundle)];
    for key in keys {
        args.extend(["--trusted-key", path(key)]);
    }
    orch(&args)
}

/// Each entry of a ustar archive: (path, data offset, size).
pub(crate) fn entries(bytes: &[u8]) -> Vec<(String, usize, usize)> {
    let mut found = Vec::new();
    let mut at = 0;
    while at + 512 <= bytes.len() && bytes[at..at + 512].iter().any(|&b| b != 0) {
        let header = &bytes[at..at + 512];
        let name_end = header[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let name = String::from_utf8_lossy(&header[..name_end]).into_owned();
        let size_text = String::from_utf8_lossy(&header[124..135]).into_owned();
        let size = usize::from_str_radix(size_text.trim(), 8).expect("octal size");
        found.push((name, at + 512, size));
        at += 512 + size.div_ceil(512) * 512;
    }
    found
}

/// `bytes` with `extra` files appended before the end-of-archive blocks.
pub(crate) fn with_files_added(bytes: &[u8], extra: &[(&str, &[u8])]) -> Vec<u8> {
    let (_, at, size) = entries(bytes).last().cloned().expect("entries");
    let end = at + size.div_ceil(512) * 512;
    let mut added = Vec::new();
    let files = extra
        .iter()
        .map(|(path, data)| ArchiveFile {
            path: path.to_string(),
            executable: false,
            size: data.len() as u64,
            source: Source::Bytes(data.to_vec()),
        })
        .collect();
    write_archive(&mut added, files, 0).expect("write");
    let mut out = bytes[..end].to_vec();
    out.extend_from_slice(&added);
    out
}

pub(crate) fn file_in(bytes: &[u8], name: &str) -> Vec<u8> {
    let (_, at, size) = entries(bytes)
        .into_iter()
        .find(|e| e.0 == name)
        .unwrap_or_else(|| panic!("{name} is in the bundle"));
    bytes[at..at + size].to_vec()
}

#[test]
fn two_bundles_of_the_shipped_modules_are_byte_identical() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (one, two) = (dir.path().join("one.tar"), dir.path().join("two.tar"));
    let text = bundle(&one, None);
    assert!(
        text.contains("secrets:") && text.contains("UNSIGNED"),
        "{text}"
    );
    bundle(&two, None);
    let (a, b) = (
        std::fs::read(&one).expect("one"),
        std::fs::read(&two).expect("two"),
    );
    assert!(a == b, "two bundles of the same tree differ");
    let names: Vec<String> = entries(&a).into_iter().map(|e| e.0).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "entries are sorted");
    for expected in [
        "bin/cargo-orch",
        "config/main.yaml",
        "config/modules.yaml",
        "manifest.json",
        "modules/libmod_dummy_producer.so",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing: {names:?}"
        );
    }
    assert!(!names.iter().any(|n| n.ends_with(".env")), "{names:?}");
    // The configuration is the file as written, byte for byte.
    let written = std::fs::read(workspace_root().join("config/main.yaml")).expect("main.yaml");
    assert_eq!(file_in(&a, "config/main.yaml"), written);
    let manifest: serde_json::Value =
        serde_json::from_slice(&file_in(&a, "manifest.json")).expect("manifest JSON");
    assert_eq!(manifest["abi_version"], 5);
    assert!(
        manifest["rustc"]
            .as_str()
            .is_some_and(|r| r.starts_with("rustc "))
    );
    assert!(
        manifest["target"]
            .as_str()
            .is_some_and(|t| t.contains("linux"))
    );
    // Unsigned bundles verify only with --allow-unsigned, loudly.
    refused(check(&one, &[]), "manifest.json.minisig");
    let mut allowed = check(&one, &[]);
    allowed.arg("--allow-unsigned");
    assert!(succeeds(allowed).contains("WARNING"));
}

#[test]
fn a_signed_bundle_verifies_and_tampered_ones_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("release.key");
    let other = dir.path().join("other.key");
    let key_pub = dir.path().join("release.key.pub");
    let key_id = keygen(&key);
    let other_id = keygen(&other);
    let signed = dir.path().join("signed.tar");
    let text = bundle(&signed, Some(&key));
    assert!(text.contains(&key_id), "{text}");
    let text = succeeds(check(&signed, &[&key_pub]));
    assert!(
        text.contains("signature: ok") && text.contains(&key_id),
        "{text}"
    );
    assert!(
        text.contains("app:cargo-orch-demo"),
        "the trusted comment names the app: {text}"
    );

    let bytes = std::fs::read(&signed).expect("bundle");
    let library = "modules/libmod_dummy_consumer.so";
    let (_, at, size) = entries(&bytes)
        .into_iter()
        .find(|e| e.0 == library)
        .expect("the consumer's library");
    let mut flipped = bytes.clone();
    flipped[at + size / 2] ^= 0x01;
    let flipped_path = dir.path().join("flipped.tar");
    std::fs::write(&flipped_path, flipped).expect("write");
    refused(check(&flipped_path, &[&key_pub]), library);

    let added_path = dir.path().join("added.tar");
    std::fs::write(
        &added_path,
        with_files_added(&bytes, &[("modules/libevil.so", b"evil")]),
    )
    .expect("write");
    refused(check(&added_path, &[&key_pub]), "modules/libevil.so");

    let by_other = dir.path().join("other.tar");
    bundle(&by_other, Some(&other));
    let text = refused(check(&by_other, &[&key_pub]), &other_id);
    assert!(text.contains("not trusted"), "{text}");

    let unsigned = dir.path().join("unsigned.tar");
    bundle(&unsigned, None);
    let text = refused(check(&unsigned, &[&key_pub]), "manifest.json.minisig");
    assert!(text.contains("unsigned"), "{text}");

    // keygen never overwrites a key.
    let again = run(orch(&["keygen", "--out", path(&key), "--no-password"]));
    assert!(!again.status.success() && said(&again).contains("already exists"));
}

#[test]
fn debian_minisign_verifies_our_signature_and_we_verify_its() {
    let minisign = match orch_e2e::minisign::minisign() {
        Ok(minisign) => minisign,
        Err(error) => {
            eprintln!("SKIPPED: Debian's minisign is not available here: {error}");
            return;
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("ours.key");
    keygen(&key);
    let signed = dir.path().join("signed.tar");
    bundle(&signed, Some(&key));
    let bytes = std::fs::read(&signed).expect("bundle");
    let manifest = dir.path().join("manifest.json");
    std::fs::write(&manifest, file_in(&bytes, "manifest.json")).expect("write");
    std::fs::write(
        dir.path().join("manifest.json.minisig"),
        file_in(&bytes, "manifest.json.minisig"),
    )
    .expect("write");
    let output = minisign
        .command(&[
            "-V",
            "-p",
            &format!("{}.pub", path(&key)),
            "-m",
            path(&manifest),
        ])
        .output()
        .expect("run minisign");
    let text = said(&output);
    assert!(
        output.status.success(),
        "minisign -V refused our signature:\n{text}"
    );
    assert!(text.contains("app:cargo-orch-demo"), "{text}");

    // Theirs: a key pair and a signature made by minisign over our manifest,
    // put into an unsigned bundle of ours.
    let unsigned = dir.path().join("unsigned.tar");
    bundle(&unsigned, None);
    let bytes = std::fs::read(&unsigned).expect("bundle");
    std::fs::write(&manifest, file_in(&bytes, "manifest.json")).expect("write");
    let (their_key, their_pub) = (dir.path().join("their.key"), dir.path().join("their.pub"));
    let output = minisign
        .command(&["-G", "-W", "-p", path(&their_pub), "-s", path(&their_key)])
        .output()
        .expect("run minisign -G");
    assert!(output.status.success(), "minisign -G:\n{}", said(&output));
    let output = minisign
        .command(&[
            "-S",
            "-s",
            path(&their_key),
            "-m",
            path(&manifest),
            "-t",
            "made by minisign",
        ])
        .output()
        .expect("run minisign -S");
    assert!(output.status.success(), "minisign -S:\n{}", said(&output));
    let signature =
        std::fs::read(dir.path().join("manifest.json.minisig")).expect("minisign's signature");
    let theirs = dir.path().join("theirs.tar");
    std::fs::write(
        &theirs,
        with_files_added(&bytes, &[("manifest.json.minisig", &signature)]),
    )
    .expect("write");
    let text = succeeds(check(&theirs, &[&their_pub]));
    assert!(text.contains("made by minisign"), "{text}");
}

/// `--env prod` keeps the overlay beside the base files, and its `metrics:`
/// section brings `orch-networked` in, as `cargo orch run` would hand over.
#[test]
fn an_environment_bundle_keeps_its_overlay_and_the_networked_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("prod.tar");
    let text = succeeds(orch(&["bundle", "--env", "prod", "--out", path(&out)]));
    assert!(text.contains("orch-networked"), "{text}");
    let bytes = std::fs::read(&out).expect("bundle");
    let names: Vec<String> = entries(&bytes).into_iter().map(|e| e.0).collect();
    for expected in [
        "bin/cargo-orch",
        "bin/orch-networked",
        "config/main.yaml",
        "config/prod/main.yaml",
        "config/prod/modules.yaml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing: {names:?}"
        );
    }
    let written = std::fs::read(workspace_root().join("config/prod/main.yaml")).expect("overlay");
    assert_eq!(file_in(&bytes, "config/prod/main.yaml"), written);
    let manifest: serde_json::Value =
        serde_json::from_slice(&file_in(&bytes, "manifest.json")).expect("manifest JSON");
    assert_eq!(manifest["environment"], "prod");
    let mut allowed = check(&out, &[]);
    allowed.arg("--allow-unsigned");
    succeeds(allowed);
}
