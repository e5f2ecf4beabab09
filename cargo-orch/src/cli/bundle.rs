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

/// `cargo orch rollout`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("operator").args(["status", "pause", "resume", "abort"]))]
pub struct RolloutArgs {
    /// The application (its app.name).
    #[arg(value_name = "APP")]
    pub app: String,

    /// The version to roll out (pushed with `cargo orch push`).
    #[arg(
        value_name = "VERSION",
        required_unless_present = "operator",
        conflicts_with = "operator"
    )]
    pub to_version: Option<String>,

    #[command(flatten)]
    pub nats: NatsArgs,

    /// Nodes that take the new release first, gated before any other.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub canary: usize,

    /// At most this many nodes change at once (every batch's size).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_unavailable: u32,

    /// A node counts as healthy once it has run the new release, ready and
    /// with no module.crashed, module.reload_failed or module.circuit_open,
    /// this long (`10s`, `2m`).
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub min_healthy: String,

    /// A batch not healthy this long after it began halts the rollout.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub healthy_deadline: String,

    /// On a halt, return the nodes the rollout changed to the release that
    /// was current.
    #[arg(long)]
    pub auto_revert: bool,

    /// The presence bucket of the nodes (default: the one the release's
    /// main.yaml names).
    #[arg(long, value_name = "NAME")]
    pub presence_bucket: Option<String>,

    /// Show the rollout: versions, phase, batches, changed nodes, reason.
    #[arg(long)]
    pub status: bool,

    /// With --status: as JSON.
    #[arg(long, requires = "status")]
    pub json: bool,

    /// Start no new batch (the one under way finishes its gate).
    #[arg(long)]
    pub pause: bool,

    /// Go on after --pause.
    #[arg(long)]
    pub resume: bool,

    /// Stop the rollout and return the nodes it changed to the release
    /// that was current.
    #[arg(long)]
    pub abort: bool,
}
