//! minisign keys and signatures, in minisign's own file formats: keys made
//! and manifests signed with the `minisign` crate, signatures checked with
//! `minisign-verify`. A key is named by its minisign key id (16 uppercase hex
//! digits, as `minisign` prints it) and the file it came from.

use std::path::Path;

use crate::{BundleError, Phase};

/// A new key pair, as the text of its two files.
#[derive(Debug)]
pub struct KeyFiles {
    /// The secret key file (minisign format; encrypted unless made without
    /// a password).
    pub secret: String,
    /// The public key file (minisign format).
    pub public: String,
    /// The key id.
    pub key_id: String,
}

/// How a new secret key is protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protection {
    /// Not encrypted (for CI: guard the file itself).
    Unencrypted,
    /// Encrypted with this password (scrypt, as minisign does).
    Password(String),
    /// Encrypted with a password asked on the terminal (twice).
    Prompt,
}

/// The name of the environment variable that holds the secret key's
/// password for `cargo orch keygen` and `cargo orch bundle --sign`.
pub const PASSWORD_VAR: &str = "ORCH_SIGNING_PASSWORD";

/// Generates a key pair protected as `protection` says.
pub fn generate(protection: Protection) -> Result<KeyFiles, BundleError> {
    let failed = |e: minisign::PError| {
        BundleError::new(Phase::Keygen, "key pair", e.to_string(), "try again")
    };
    let pair = match protection {
        Protection::Password(password) => {
            minisign::KeyPair::generate_encrypted_keypair(Some(password))
        }
        Protection::Prompt => minisign::KeyPair::generate_encrypted_keypair(None),
        Protection::Unencrypted => minisign::KeyPair::generate_unencrypted_keypair(),
    }
    .map_err(failed)?;
    let public = pair.pk.to_box().map_err(failed)?.into_string();
    let secret = pair.sk.to_box(None).map_err(failed)?.into_string();
    let key_id = key_id(pair.pk.keynum());
    Ok(KeyFiles {
        secret,
        public,
        key_id,
    })
}

/// The minisign key id of a key number (its 8 bytes, little-endian u64 in hex).
pub fn key_id(keynum: &[u8]) -> String {
    keynum.iter().rev().map(|b| format!("{b:02X}")).collect()
}

/// Signs `data` with the secret key file at `path`. An encrypted key is
/// opened with `password`, else (when `may_prompt`) with a password asked on
/// the terminal; an unencrypted one needs none. The signature is minisign's
/// detached `.minisig` text, prehashed (BLAKE2b-512), with `trusted_comment`.
pub fn sign(
    path: &Path,
    password: Option<String>,
    may_prompt: bool,
    data: &[u8],
    trusted_comment: &str,
) -> Result<String, BundleError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        BundleError::io(
            Phase::Key,
            &shown,
            e,
            "make one with `cargo orch keygen --out PATH`",
        )
    })?;
    let boxed = minisign::SecretKeyBox::from_string(&text).map_err(|e| {
        BundleError::new(
            Phase::Key,
            &shown,
            format!("not a minisign secret key: {e}"),
            "pass the secret key file (not the .pub) to --sign",
        )
    })?;
    let cannot_open = |e: minisign::PError| {
        BundleError::new(
            Phase::Key,
            &shown,
            format!("cannot open the secret key: {e}"),
            format!(
                "an encrypted key needs its password in {PASSWORD_VAR} (or a terminal to type it)"
            ),
        )
    };
    let secret = match boxed.into_unencrypted_secret_key() {
        Ok(secret) => secret,
        Err(_) if password.is_some() || may_prompt => minisign::SecretKeyBox::from_string(&text)
            .and_then(|boxed| boxed.into_secret_key(password))
            .map_err(cannot_open)?,
        Err(_) => {
            return Err(BundleError::new(
                Phase::Key,
                &shown,
                "the secret key is encrypted and no password was given",
                format!("set {PASSWORD_VAR}, or run from a terminal to type it"),
            ));
        }
    };
    let signature =
        minisign::sign(None, &secret, data, Some(trusted_comment), None).map_err(|e| {
            BundleError::new(Phase::Sign, &shown, e.to_string(), "check the secret key")
        })?;
    Ok(signature.into_string())
}

/// A public key an operator trusts, with where it came from.
pub struct TrustedKey {
    /// The file it was read from.
    pub file: String,
    /// Its key id.
    pub key_id: String,
    key: minisign_verify::PublicKey,
}

impl std::fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrustedKey({} from {})", self.key_id, self.file)
    }
}

impl TrustedKey {
    /// Reads a minisign public key file (at most 4 KiB).
    pub fn from_file(path: &Path) -> Result<Self, BundleError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| {
            BundleError::io(
                Phase::Key,
                &shown,
                e,
                "pass the .pub file `cargo orch keygen` wrote",
            )
        })?;
        Self::from_text(&shown, &bytes)
    }

    /// The keys at `path`: a public key file, or a folder whose `*.pub`
    /// files are each one (a folder without any is refused: trusting
    /// nothing by mistake would turn every bundle away, or worse, invite
    /// `--allow-unsigned`).
    pub fn from_path(path: &Path) -> Result<Vec<Self>, BundleError> {
        if !path.is_dir() {
            return Ok(vec![Self::from_file(path)?]);
        }
        let shown = path.display().to_string();
        let listing = std::fs::read_dir(path).map_err(|e| {
            BundleError::io(
                Phase::Key,
                &shown,
                e,
                "check that the keys folder is readable",
            )
        })?;
        let mut files: Vec<_> = listing
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|p| p.extension().is_some_and(|e| e == "pub") && p.is_file())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(BundleError::new(
                Phase::Key,
                shown,
                "a keys folder with no *.pub file in it",
                "put the signers' public keys (from `cargo orch keygen`) there as NAME.pub",
            ));
        }
        files.iter().map(|file| Self::from_file(file)).collect()
    }

    /// Parses a minisign public key file's text; `file` names it in errors.
    pub fn from_text(file: &str, bytes: &[u8]) -> Result<Self, BundleError> {
        let refuse = |cause: String| {
            BundleError::new(
                Phase::Key,
                file,
                cause,
                "pass the .pub file `cargo orch keygen` wrote",
            )
        };
        if bytes.len() > 4096 {
            return Err(refuse("larger than a public key file".into()));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| refuse("not UTF-8 text".into()))?;
        let key = minisign_verify::PublicKey::decode(text)
            .or_else(|_| minisign_verify::PublicKey::from_base64(text.trim()))
            .map_err(|e| refuse(format!("not a minisign public key: {e}")))?;
        let boxed = minisign::PublicKeyBox::from_string(text)
            .and_then(|b| b.into_public_key())
            .or_else(|_| minisign::PublicKey::from_base64(text.trim()))
            .map_err(|e| refuse(format!("not a minisign public key: {e}")))?;
        Ok(Self {
            file: file.to_string(),
            key_id: key_id(boxed.keynum()),
            key,
        })
    }
}

/// The key id a minisign signature names, if it parses.
pub fn signature_key_id(signature: &str) -> Option<String> {
    minisign::SignatureBox::from_string(signature)
        .ok()
        .map(|b| key_id(b.keynum()))
}

/// A good signature: which trusted key made it and its trusted comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoodSignature {
    /// The key id.
    pub key_id: String,
    /// The file of the trusted key.
    pub key_file: String,
    /// The signature's trusted comment.
    pub trusted_comment: String,
}

/// Checks `signature` (a `.minisig` text, at most 64 KiB) over `data` against
/// the trusted keys.
pub fn verify(
    data: &[u8],
    signature: &[u8],
    trusted: &[TrustedKey],
) -> Result<GoodSignature, BundleError> {
    let subject = crate::SIGNATURE_PATH;
    let refuse =
        |cause: String, hint: &str| BundleError::new(Phase::Signature, subject, cause, hint);
    let text = std::str::from_utf8(signature)
        .map_err(|_| refuse("not UTF-8 text".into(), "bundle again with --sign"))?;
    let parsed = minisign_verify::Signature::decode(text).map_err(|e| {
        refuse(
            format!("not a minisign signature: {e}"),
            "bundle again with --sign",
        )
    })?;
    let signer = signature_key_id(text).unwrap_or_else(|| "unknown".into());
    let Some(key) = trusted.iter().find(|k| k.key_id == signer) else {
        let keys: Vec<String> = trusted
            .iter()
            .map(|k| format!("{} ({})", k.key_id, k.file))
            .collect();
        return Err(BundleError::new(
            Phase::Signature,
            format!("key {signer}"),
            format!(
                "the manifest is signed by key {signer}, which is not trusted (trusted: {})",
                if keys.is_empty() {
                    "none".to_string()
                } else {
                    keys.join(", ")
                }
            ),
            "pass the signer's public key with --trusted-key, or bundle again signed with a trusted key",
        ));
    };
    key.key.verify(data, &parsed, false).map_err(|e| {
        BundleError::new(
            Phase::Signature,
            format!("key {} ({})", key.key_id, key.file),
            format!(
                "the signature over {} does not verify: {e}",
                crate::MANIFEST_PATH
            ),
            "the manifest or its signature was altered: bundle again",
        )
    })?;
    Ok(GoodSignature {
        key_id: key.key_id.clone(),
        key_file: key.file.clone(),
        trusted_comment: parsed.trusted_comment().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, password: Option<&str>) -> (std::path::PathBuf, TrustedKey) {
        let protection = match password {
            Some(password) => Protection::Password(password.to_string()),
            None => Protection::Unencrypted,
        };
        let files = generate(protection).expect("keygen");
        let secret = dir.join(format!("{}.key", files.key_id));
        std::fs::write(&secret, &files.secret).expect("write");
        let public = TrustedKey::from_text("k.pub", files.public.as_bytes()).expect("public");
        assert_eq!(public.key_id, files.key_id);
        (secret, public)
    }

    #[test]
    fn signs_and_verifies_with_the_trusted_comment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (secret, public) = pair(dir.path(), None);
        let sig = sign(&secret, None, false, b"data", "app:x version:1 commit:c").expect("sign");
        let good = verify(b"data", sig.as_bytes(), std::slice::from_ref(&public)).expect("verify");
        assert_eq!(good.trusted_comment, "app:x version:1 commit:c");
        let error = verify(b"datA", sig.as_bytes(), &[public]).expect_err("altered");
        assert!(error.subject.contains("k.pub"), "{error}");
    }

    #[test]
    fn another_key_is_named_and_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (secret, _) = pair(dir.path(), None);
        let (_, other) = pair(dir.path(), None);
        let sig = sign(&secret, None, false, b"data", "c").expect("sign");
        let signer = signature_key_id(&sig).expect("key id");
        let error = verify(b"data", sig.as_bytes(), &[other]).expect_err("untrusted");
        assert!(error.to_string().contains(&signer), "{error}");
    }

    #[test]
    fn an_encrypted_key_needs_its_password() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (secret, public) = pair(dir.path(), Some("pw"));
        assert!(sign(&secret, None, false, b"d", "c").is_err());
        assert!(sign(&secret, Some("wrong".into()), false, b"d", "c").is_err());
        let sig = sign(&secret, Some("pw".into()), false, b"d", "c").expect("sign");
        verify(b"d", sig.as_bytes(), &[public]).expect("verify");
    }
}
