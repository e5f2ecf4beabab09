//! A bundle checked without running anything: the signature over the
//! manifest against the operator's trusted keys (never a key the bundle
//! carries), then every file against the manifest: size and SHA-256, none
//! missing, none unlisted.

use std::io::Read;

use crate::manifest::{FileEntry, Manifest};
use crate::reader::{Entry, read_archive};
use crate::signing::{GoodSignature, TrustedKey, verify as verify_signature};
use crate::{BundleError, MANIFEST_PATH, Phase, SIGNATURE_PATH};

/// The largest signature file accepted.
pub const MAX_SIGNATURE_BYTES: u64 = 64 * 1024;

/// What a verified bundle holds.
#[derive(Debug)]
pub struct Verified {
    /// Its manifest.
    pub manifest: Manifest,
    /// The SHA-256 of the manifest's bytes: the digest of the whole bundle
    /// (the manifest lists every other file's).
    pub manifest_sha256: String,
    /// The good signature, or `None` for an unsigned bundle accepted with
    /// `allow_unsigned`.
    pub signature: Option<GoodSignature>,
}

/// Verifies the archive in `input` against `trusted` keys. An unsigned
/// bundle (or a signed one when no key is trusted) is refused unless
/// `allow_unsigned`.
pub fn verify_archive(
    input: impl Read,
    trusted: &[TrustedKey],
    allow_unsigned: bool,
) -> Result<Verified, BundleError> {
    let entries = read_archive(input, is_kept)?;
    verify_entries(&entries, trusted, allow_unsigned)
}

/// Whether the reader keeps an entry's bytes: the manifest and its signature.
pub fn is_kept(path: &str) -> bool {
    path == MANIFEST_PATH || path == SIGNATURE_PATH
}

/// Verifies the entries an archive reader returned (with the manifest and
/// signature kept, see [`is_kept`]) against `trusted` keys.
pub fn verify_entries(
    entries: &[Entry],
    trusted: &[TrustedKey],
    allow_unsigned: bool,
) -> Result<Verified, BundleError> {
    let kept = |path: &str| {
        entries
            .iter()
            .find(|e| e.path == path)
            .and_then(|e| e.data.clone())
    };
    let manifest_bytes = kept(MANIFEST_PATH).ok_or_else(|| {
        BundleError::new(
            Phase::Manifest,
            MANIFEST_PATH,
            "missing from the archive",
            "this is not a bundle made by `cargo orch bundle`",
        )
    })?;
    let signature = check_signature(
        &manifest_bytes,
        kept(SIGNATURE_PATH).as_deref(),
        trusted,
        allow_unsigned,
    )?;
    let manifest = Manifest::from_bytes(&manifest_bytes)?;
    check_files(&manifest, entries)?;
    Ok(Verified {
        manifest,
        manifest_sha256: crate::format::sha256_hex(&manifest_bytes),
        signature,
    })
}

/// Checks the signature (`None`: the bundle has none) over the manifest's
/// bytes against `trusted` keys. An unsigned bundle, or a signed one when no
/// key is trusted, is refused unless `allow_unsigned`.
pub fn check_signature(
    manifest_bytes: &[u8],
    signature: Option<&[u8]>,
    trusted: &[TrustedKey],
    allow_unsigned: bool,
) -> Result<Option<GoodSignature>, BundleError> {
    if signature.is_some_and(|s| s.len() as u64 > MAX_SIGNATURE_BYTES) {
        return Err(BundleError::new(
            Phase::Signature,
            SIGNATURE_PATH,
            format!("larger than {MAX_SIGNATURE_BYTES} bytes"),
            "bundle again with --sign",
        ));
    }
    match (signature, trusted.is_empty(), allow_unsigned) {
        (Some(sig), false, _) => Ok(Some(verify_signature(manifest_bytes, sig, trusted)?)),
        (_, _, true) => Ok(None),
        (None, _, false) => Err(BundleError::new(
            Phase::Signature,
            SIGNATURE_PATH,
            "missing: the bundle is unsigned",
            "bundle with --sign KEY (make one with `cargo orch keygen`), or pass \
             --allow-unsigned for development",
        )),
        (Some(_), true, false) => Err(BundleError::new(
            Phase::Signature,
            SIGNATURE_PATH,
            "no trusted key was given to check it with",
            "pass the signer's public key with --trusted-key PUBFILE",
        )),
    }
}

/// Checks the archive's `entries` against the manifest: every file listed,
/// none added, sizes and SHA-256 equal.
pub fn check_files(manifest: &Manifest, entries: &[Entry]) -> Result<(), BundleError> {
    for entry in entries {
        if entry.path == MANIFEST_PATH || entry.path == SIGNATURE_PATH {
            continue;
        }
        let Some(listed) = manifest.file(&entry.path) else {
            return Err(BundleError::new(
                Phase::Files,
                &entry.path,
                "in the archive but not listed in the manifest",
                "a file was added after bundling: bundle again from the sources",
            ));
        };
        if listed.size != entry.size || listed.sha256 != entry.sha256 {
            return Err(mismatch(&entry.path, entry.size, &entry.sha256, listed));
        }
    }
    for listed in &manifest.files {
        if !entries.iter().any(|e| e.path == listed.path) {
            return Err(BundleError::new(
                Phase::Files,
                &listed.path,
                "listed in the manifest but missing from the archive",
                "the archive is incomplete: copy it again or bundle again",
            ));
        }
    }
    Ok(())
}

/// A file whose size or digest differs from its manifest entry.
pub(crate) fn mismatch(path: &str, size: u64, sha256: &str, listed: &FileEntry) -> BundleError {
    BundleError::new(
        Phase::Files,
        path,
        format!(
            "does not match the manifest: {size} bytes, sha256 {sha256} (listed: {} bytes, \
             sha256 {})",
            listed.size, listed.sha256
        ),
        "the file was altered after bundling: bundle again from the sources",
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::archive::{ArchiveFile, Source, write_archive};
    use crate::manifest::{FORMAT, FileEntry, sha256_hex};
    use proptest::prelude::*;

    /// An archive of `files` whose manifest lists `listed`, with
    /// `signature` as its .minisig when given.
    pub(crate) fn bundle(
        files: &[(&str, &[u8])],
        listed: &[(&str, &[u8])],
        signature: Option<&str>,
    ) -> Vec<u8> {
        let manifest = Manifest {
            format: FORMAT,
            app: "a".into(),
            version: "1".into(),
            git: None,
            target: "t".into(),
            rustc: "r".into(),
            abi_version: 4,
            profile: "debug".into(),
            environment: None,
            packages: Vec::new(),
            files: listed
                .iter()
                .map(|(path, bytes)| FileEntry {
                    path: path.to_string(),
                    size: bytes.len() as u64,
                    sha256: sha256_hex(bytes),
                })
                .collect(),
        };
        let mut all: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|(p, b)| (p.to_string(), b.to_vec()))
            .collect();
        all.push((MANIFEST_PATH.into(), manifest.to_bytes()));
        if let Some(sig) = signature {
            all.push((SIGNATURE_PATH.into(), sig.as_bytes().to_vec()));
        }
        let mut out = Vec::new();
        let files = all
            .into_iter()
            .map(|(path, bytes)| ArchiveFile {
                path,
                executable: false,
                size: bytes.len() as u64,
                source: Source::Bytes(bytes),
            })
            .collect();
        write_archive(&mut out, files, 0).expect("write");
        out
    }

    #[test]
    fn an_unsigned_bundle_needs_allow_unsigned() {
        let files: &[(&str, &[u8])] = &[("bin/x", b"x")];
        let bytes = bundle(files, files, None);
        let error = verify_archive(&bytes[..], &[], false).expect_err("unsigned");
        assert!(error.to_string().contains("unsigned"), "{error}");
        let ok = verify_archive(&bytes[..], &[], true).expect("allowed");
        assert!(ok.signature.is_none());
    }

    #[test]
    fn altered_added_and_missing_files_are_named() {
        let listed: &[(&str, &[u8])] = &[("bin/x", b"x"), ("lib/y.so", b"y")];
        let altered = bundle(&[("bin/x", b"x"), ("lib/y.so", b"Y")], listed, None);
        let error = verify_archive(&altered[..], &[], true).expect_err("altered");
        assert!(
            error.subject == "lib/y.so" && error.phase == Phase::Files,
            "{error}"
        );
        let added = bundle(
            &[("bin/x", b"x"), ("lib/y.so", b"y"), ("evil", b"")],
            listed,
            None,
        );
        let error = verify_archive(&added[..], &[], true).expect_err("added");
        assert_eq!(error.subject, "evil");
        let missing = bundle(&[("bin/x", b"x")], listed, None);
        let error = verify_archive(&missing[..], &[], true).expect_err("missing");
        assert_eq!(error.subject, "lib/y.so");
    }

    proptest! {
        #[test]
        fn hostile_bytes_around_a_valid_bundle_never_panic(
            at in any::<usize>(),
            value in any::<u8>(),
            cut in any::<usize>(),
        ) {
            let files: &[(&str, &[u8])] = &[("bin/x", &[9; 700])];
            let mut bytes = bundle(files, files, Some("untrusted comment: x\nnot base64\n"));
            let at = at % bytes.len();
            bytes[at] = value;
            let cut = cut % (bytes.len() + 1);
            let _ = verify_archive(&bytes[..cut], &[], true);
            let _ = verify_archive(&bytes[..], &[], false);
        }
    }
}
