//! `cargo orch push BUNDLE`: a signed bundle into a NATS JetStream object
//! store, recorded as a release of its application (see
//! orch-bridge's `releases`). The bundle is verified here first, as a node
//! will verify it; the store's digest is compared with this side's.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use orch_bundle::format::sha256_hex;
use orch_bundle::verify::verify_archive;

use crate::cli::PushArgs;
use crate::deploy::short;
use crate::network::Network;
use crate::release::{BundleToPush, ReleaseServer};
use crate::session::UsageError;

/// A bundle larger than this is no bundle `cargo orch bundle` wrote.
const MAX_BUNDLE_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Runs `cargo orch push`.
pub fn run(args: &PushArgs, network: Option<&dyn Network>) -> anyhow::Result<ExitCode> {
    let Some(network) = network else {
        return Err(crate::networked::hand_over(
            "push needs the NATS client",
            None,
            false,
            Duration::from_secs(600),
        ));
    };
    if args.trust.trusted_key.is_empty() && !args.trust.allow_unsigned {
        return Err(UsageError(anyhow::anyhow!(
            "push checks the bundle's signature before it stores it, and no key was given; \
             hint: --trusted-key PUBFILE (the key your nodes trust), or --allow-unsigned for \
             development"
        ))
        .into());
    }
    let path = &args.bundle;
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read the bundle {}", path.display()))?
        .len();
    anyhow::ensure!(
        size <= MAX_BUNDLE_BYTES,
        "{} is {size} bytes, more than a bundle may be ({MAX_BUNDLE_BYTES}); hint: push the \
         archive `cargo orch bundle` wrote",
        path.display()
    );
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the bundle {}", path.display()))?;
    let keys = crate::bundled::trusted_keys(&args.trust)?;
    let verified =
        verify_archive(bytes.as_slice(), &keys, args.trust.allow_unsigned).map_err(|error| {
            anyhow::anyhow!("bundle {} refused, nothing pushed: {error}", path.display())
        })?;
    let manifest = &verified.manifest;
    let presence_bucket = presence_bucket_of(&bytes, manifest.environment.as_deref());
    let bundle = BundleToPush {
        app: manifest.app.clone(),
        version: manifest.version.clone(),
        digest: verified.manifest_sha256.clone(),
        archive_sha256: sha256_hex(&bytes),
        signed_by: verified.signature.as_ref().map(|s| s.key_id.clone()),
        bytes,
        make_current: args.current,
        presence_bucket,
    };
    let releases = network.releases(&ReleaseServer {
        url: args.nats.url.clone(),
        creds: args.nats.creds.clone(),
        name: "push".into(),
    })?;
    let (app, version, digest, signed_by) = (
        bundle.app.clone(),
        bundle.version.clone(),
        bundle.digest.clone(),
        bundle.signed_by.clone(),
    );
    let pushed = releases.push(bundle)?;
    println!(
        "{} {} {} (digest {}, {} bytes, {}) at {}",
        if pushed.stored {
            "pushed"
        } else {
            "already there:"
        },
        app,
        version,
        short(&digest),
        size,
        signed_by
            .as_deref()
            .map_or_else(|| "UNSIGNED".to_owned(), |key| format!("signed by {key}")),
        args.nats.url
    );
    match (pushed.current, pushed.previous_current) {
        (true, Some(previous)) if previous != version => println!(
            "current release of {}: {} (was {previous}); nodes with no desired release move to it",
            app, version
        ),
        (true, _) => println!("current release of {}: {}", app, version),
        (false, Some(previous)) if previous == version => {
            println!("current release of {}: {previous}", app);
        }
        (false, previous) => println!(
            "current release of {} stays {}; make this one current: cargo orch push {} --current",
            app,
            previous.as_deref().unwrap_or("(none)"),
            path.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// The presence bucket the bundle's main.yaml names (its environment's
/// overlay first), for a rollout to find the nodes' records.
fn presence_bucket_of(archive: &[u8], environment: Option<&str>) -> Option<String> {
    let overlay = environment.map(|env| format!("config/{env}/main.yaml"));
    let wanted = |path: &str| path == "config/main.yaml" || Some(path) == overlay.as_deref();
    let entries = orch_bundle::reader::read_archive(archive, wanted).ok()?;
    let text_of = |path: &str| {
        entries
            .iter()
            .find(|e| e.path == path)
            .and_then(|e| e.data.as_deref())
            .map(String::from_utf8_lossy)
    };
    overlay
        .as_deref()
        .and_then(text_of)
        .and_then(|text| orch_config::raw_main::presence_bucket(&text))
        .or_else(|| {
            text_of("config/main.yaml").and_then(|t| orch_config::raw_main::presence_bucket(&t))
        })
}
