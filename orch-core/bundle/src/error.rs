//! The one error type: which phase, which file or key, what went wrong and
//! how to fix it.

use std::fmt;

/// The step of bundling or verifying that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Generating or writing a key pair.
    Keygen,
    /// Reading a key file.
    Key,
    /// Signing the manifest.
    Sign,
    /// Writing the archive.
    Write,
    /// Reading the archive's structure (headers, paths, sizes).
    Read,
    /// Parsing the manifest.
    Manifest,
    /// Checking the signature over the manifest.
    Signature,
    /// Checking the files against the manifest.
    Files,
    /// Writing the bundle's files into the folder it runs from.
    Unpack,
    /// Writing the OCI image layout.
    Oci,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Keygen => "keygen",
            Phase::Key => "key",
            Phase::Sign => "sign",
            Phase::Write => "write",
            Phase::Read => "read",
            Phase::Manifest => "manifest",
            Phase::Signature => "signature",
            Phase::Files => "files",
            Phase::Unpack => "unpack",
            Phase::Oci => "oci",
        })
    }
}

/// A refusal or failure: the phase, the file or key it concerns, the cause
/// and a hint saying how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{phase}: {subject}: {cause}\n  hint: {hint}")]
pub struct BundleError {
    /// Where it happened.
    pub phase: Phase,
    /// The file (its path in the archive or on disk) or key it concerns.
    pub subject: String,
    /// What went wrong.
    pub cause: String,
    /// How to fix it.
    pub hint: String,
    /// The underlying I/O error, when there is one.
    #[source]
    pub source: Option<std::io::Error>,
}

impl BundleError {
    /// A refusal without an underlying I/O error.
    pub fn new(
        phase: Phase,
        subject: impl Into<String>,
        cause: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            phase,
            subject: subject.into(),
            cause: cause.into(),
            hint: hint.into(),
            source: None,
        }
    }

    /// An I/O failure on `subject`.
    pub fn io(phase: Phase, subject: impl Into<String>, error: std::io::Error, hint: &str) -> Self {
        Self {
            phase,
            subject: subject.into(),
            cause: error.to_string(),
            hint: hint.to_string(),
            source: Some(error),
        }
    }
}
