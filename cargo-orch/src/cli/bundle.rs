//! Arguments of the bundle verbs and of the signatures a bundle may carry.

use std::path::PathBuf;

use clap::Args;

/// Which signatures a bundle may carry (with `--bundle`, `--from-nats` or
/// a pushed BUNDLE: the group `bundle_source`).
#[derive(Debug, Clone, Default, Args)]
pub struct TrustArgs {
    /// A minisign public key (a .pub file), or a folder of them (every
    /// *.pub in it), the bundle's signature may come from; repeat for
    /// several. Never a key the bundle carries.
    #[arg(long, value_name = "PUBFILE|DIR", requires = "bundle_source")]
    pub trusted_key: Vec<PathBuf>,

    /// Accept an unsigned bundle (or one whose signature no trusted key can
    /// check): development only; its files are still checked against its
    /// manifest.
    #[arg(long, requires = "bundle_source")]
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

/// The NATS server that holds the releases.
#[derive(Debug, Clone, Args)]
pub struct NatsArgs {
    /// The server: nats://host:port (`user:password@` or `token@` may be in
    /// it).
    #[arg(long = "nats", value_name = "URL", env = "ORCH_NATS_URL")]
    pub url: String,

    /// A NATS user's credentials file (JWT and nkey seed, from `nsc`).
    #[arg(long, value_name = "FILE")]
    pub creds: Option<PathBuf>,
}

/// `cargo orch push`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("bundle_source").args(["bundle"]))]
pub struct PushArgs {
    /// The bundle archive (from `cargo orch bundle`).
    #[arg(value_name = "BUNDLE")]
    pub bundle: PathBuf,

    #[command(flatten)]
    pub nats: NatsArgs,

    /// Make it the current release: every node that follows the releases
    /// and has no desired release of its own moves to it (the first push of
    /// an application always does).
    #[arg(long)]
    pub current: bool,

    #[command(flatten)]
    pub trust: TrustArgs,
}
