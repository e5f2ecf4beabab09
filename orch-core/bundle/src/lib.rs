//! The signed bundle of a cargo-orch application: one plain tar archive with
//! the host binary, each module's library, the configuration as the user
//! wrote it and a manifest (`manifest.json`) listing every other file with
//! its size and SHA-256, signed with minisign (`manifest.json.minisig`).
//!
//! - [`format`](mod@format): the tar block, archive path rules, SHA-256 in hex.
//! - [`manifest`]: what the manifest says, its JSON form, its bounds.
//! - [`archive`]: the reproducible tar writer (ustar, regular files only).
//! - [`reader`]: the tar reader for hostile bytes (no links, no devices, no
//!   `..`, bounded memory).
//! - [`verify`]: a bundle checked against its manifest and trusted keys.
//! - [`signing`]: minisign keys, signatures and key ids.
//! - [`unpack`]: a bundle unpacked into a versioned folder and verified, or
//!   a folder verified in place.
//! - [`oci`]: the bundle as an OCI image layout (layer, config, manifest,
//!   index), for container runtimes.
//!
//! Nothing here runs cargo, loads a module or touches the network.

pub mod archive;
mod error;
pub mod format;
pub mod manifest;
pub mod oci;
pub mod reader;
pub mod signing;
pub mod unpack;
pub mod verify;

pub use error::{BundleError, Phase};

/// The manifest's path in the archive.
pub const MANIFEST_PATH: &str = "manifest.json";
/// The manifest's detached minisign signature, beside it in the archive.
pub const SIGNATURE_PATH: &str = "manifest.json.minisig";
