//! Arguments of the bundle verbs and of the signatures a bundle may carry.

use std::path::PathBuf;

use clap::Args;

/// Which signatures a bundle may carry.
#[derive(Debug, Clone, Default, Args)]
pub struct TrustArgs {
    /// A minisign public key (a .pub file), or a folder of them (every
    /// *.pub in it), the bundle's signature may come from; repeat for
    /// several. Never a key the bundle carries.
    #[arg(long, value_name = "PUBFILE|DIR", requires = "bundle")]
    pub trusted_key: Vec<PathBuf>,

    /// Accept an unsigned bundle (or one whose signature no trusted key can
    /// check): development only; its files are still checked against its
    /// manifest.
    #[arg(long, requires = "bundle")]
    pub allow_unsigned: bool,
}

/// `cargo orch keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the secret key; the public key goes to PATH.pub.
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,

    /// Write the secret key unencrypted (for CI), ignoring ORCH_SIGNING_PASSWORD.
    #[arg(long)]
    pub no_password: bool,
}

/// `cargo orch bundle`.
#[derive(Debug, Args)]
pub struct BundleArgs {
    /// Build the modules with the release profile.
    #[arg(long)]
    pub release: bool,

    /// The archive to write (default: target/orch/bundle/APP-VERSION.tar).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Sign the manifest with this minisign secret key (from `cargo orch
    /// keygen`; an encrypted key takes its password from ORCH_SIGNING_PASSWORD
    /// or the terminal).
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,

    /// Also write the bundle as an OCI image layout in this folder: the
    /// host binary, the libraries it links (from this machine) and the
    /// bundle, run with `cargo-orch orch run --bundle` (an existing layout
    /// there is replaced; any other non-empty folder is refused).
    #[arg(long, value_name = "DIR")]
    pub oci: Option<PathBuf>,
}
