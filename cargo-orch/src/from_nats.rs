//! `cargo orch run --from-nats URL --app NAME`: the release this node
//! should run (its desired one, else the application's current one) is
//! downloaded from the server's object store, verified as `run --bundle`
//! verifies a bundle, and run; from then on the node follows its release,
//! deploying each new one through the reload transaction as `cargo orch
//! deploy` does (see [`crate::deploy`]), and refusing (the running bundle
//! goes on) what does not verify.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use orch_operate::protocol::Response;
use orch_runtime::status::RefusedRelease;
use orch_runtime::supervisor::Supervisor;

use crate::cli::{GlobalArgs, RunArgs};
use crate::deploy::Deployer;
use crate::hot_reload::HotReload;
use crate::network::Network;
use crate::release::{FetchedRelease, FollowEvent, FollowSetup, ReleaseServer, Releases};
use crate::session::{Session, UsageError};

/// A node run from NATS, before it follows its release.
pub struct FromNats {
    releases: Box<dyn Releases>,
    /// `--app`.
    pub app: String,
    /// This node's id.
    pub node: String,
    dir: PathBuf,
    /// What was fetched at start.
    pub started_with: FetchedRelease,
}

/// The node's release, downloaded, verified and opened as a session.
pub fn open(
    global: &GlobalArgs,
    args: &RunArgs,
    url: &str,
    network: &dyn Network,
) -> anyhow::Result<(Session, FromNats)> {
    let app = args
        .app
        .clone()
        .context("--from-nats needs --app NAME (the application's app.name)")?;
    let node = node_name(args.node.as_deref())?;
    let dir = match &args.unpack_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().context("cannot read the current folder")?,
    };
    let releases = network.releases(&ReleaseServer {
        url: url.to_owned(),
        creds: args.creds.clone(),
        name: node.clone(),
    })?;
    let fetched = releases.fetch(&app, &node, &dir)?.with_context(|| {
        format!(
            "{url} holds no release of '{app}'; hint: push one: cargo orch push BUNDLE \
                 --nats {url} --trusted-key KEY.pub"
        )
    })?;
    let session = Session::open_bundle(global, &fetched.path, Some(&dir), &args.trust)?;
    let Some(bundle) = &session.bundle else {
        anyhow::bail!("the release of '{app}' opened as no bundle");
    };
    anyhow::ensure!(
        bundle.manifest.app == app,
        "the {} release of '{app}' ({}) is a bundle of '{}'; hint: push a bundle of '{app}'",
        fetched.source,
        fetched.version,
        bundle.manifest.app
    );
    anyhow::ensure!(
        bundle.digest == fetched.digest,
        "the {} release of '{app}' names digest {} but its archive's manifest is {}; \
         hint: push the bundle again",
        fetched.source,
        fetched.digest,
        bundle.digest
    );
    if let Some(bridge) = &session.config.main.bridge
        && let Some(configured) = &bridge.nats.node
        && configured != &node
    {
        return Err(UsageError(anyhow::anyhow!(
            "this node is '{node}' for its releases but the bundle's bridge.nats.node is \
             '{configured}'; hint: give both the same id (--node or ORCH_NODE; main.yaml may say \
             node: ${{ORCH_NODE}})"
        ))
        .into());
    }
    Ok((
        session,
        FromNats {
            releases,
            app,
            node,
            dir,
            started_with: fetched,
        },
    ))
}

impl FromNats {
    /// Follows the node's release from now on: new ones come on `deliver`.
    pub fn follow(
        self,
        running: Arc<Mutex<String>>,
        deliver: crossbeam_channel::Sender<FollowEvent>,
    ) -> anyhow::Result<Box<dyn Send>> {
        self.releases.follow(FollowSetup {
            app: self.app,
            node: self.node,
            dir: self.dir,
            running,
            deliver,
        })
    }
}

/// Acts on what the follower says: a fetched release is verified with the
/// node's own keys and applied through the reload transaction, or refused
/// with the running bundle going on; a refusal is kept on the status board
/// (the presence record shows it to a rollout) until another release runs.
/// A verified release this host cannot take (another host binary, ABI or
/// main.yaml) is one to restart into: the new bundle's program is returned,
/// for the caller to stop cleanly and start it in this process's place.
pub fn deploy(
    event: FollowEvent,
    deployer: Option<&mut Deployer>,
    supervisor: &mut Supervisor,
    reloader: &mut HotReload,
    running: &Mutex<String>,
) -> Option<PathBuf> {
    let fetched = match event {
        FollowEvent::Fetched(fetched) => fetched,
        FollowEvent::Refused {
            version,
            digest,
            reason,
        } => {
            refused(supervisor, &version, &digest, &reason);
            return None;
        }
        FollowEvent::Settled => {
            supervisor.status().set_refused_release(None);
            return None;
        }
    };
    let deployer = deployer?;
    tracing::info!(
        "[RELEASE] deploying {} (the {} release, digest {})",
        fetched.version,
        fetched.source,
        crate::deploy::short(&fetched.digest)
    );
    let next = match deployer.open_verified(&fetched.path, Some(&fetched.digest)) {
        Ok(next) => next,
        Err(response) => {
            refused_by(supervisor, &fetched, response);
            return None;
        }
    };
    if let Some(why) = deployer.restart_needed(&next) {
        let program = next.dir.join("bin").join("cargo-orch");
        if !program.is_file() {
            refused(
                supervisor,
                &fetched.version,
                &fetched.digest,
                &format!("{why}, and the bundle carries no bin/cargo-orch to restart into"),
            );
            return None;
        }
        tracing::warn!(
            "[RELEASE] {} needs a new host ({why}): this node stops cleanly and starts {} in \
             its place",
            fetched.version,
            program.display()
        );
        return Some(program);
    }
    match deployer.deploy_verified(supervisor, reloader, next) {
        Response::Error { message, hint, .. } => refused_by(
            supervisor,
            &fetched,
            Response::Error {
                message,
                hint,
                usage: false,
            },
        ),
        _ => {
            supervisor.status().set_refused_release(None);
            if let Ok(mut digest) = running.lock() {
                deployer.current_digest().clone_into(&mut digest);
            }
            tracing::info!(
                "[RELEASE] now running {} (digest {})",
                fetched.version,
                crate::deploy::short(deployer.current_digest())
            );
        }
    }
    None
}

/// Logs and records a release refused by the node's checks.
fn refused_by(supervisor: &Supervisor, fetched: &FetchedRelease, response: Response) {
    if let Response::Error { message, hint, .. } = response {
        tracing::error!(
            "[RELEASE] {} refused, the running bundle goes on: {message}{}",
            fetched.version,
            hint.map(|h| format!("; hint: {h}")).unwrap_or_default()
        );
        refused(supervisor, &fetched.version, &fetched.digest, &message);
    }
}

/// Keeps the refusal on the status board (the presence record shows it).
fn refused(supervisor: &Supervisor, version: &str, digest: &str, reason: &str) {
    supervisor
        .status()
        .set_refused_release(Some(RefusedRelease::new(version, digest, reason)));
}

/// Replaces this process with `program` (a verified bundle's host) running
/// the same command line: a node run from NATS restarting into a release
/// its host could not take. Returns only when that cannot be done.
pub fn restart_into(program: &std::path::Path) -> anyhow::Error {
    use std::os::unix::process::CommandExt as _;
    tracing::info!("[RELEASE] starting {}", program.display());
    orch_process::console::finish(std::time::Duration::from_millis(200));
    let error = std::process::Command::new(program)
        .args(std::env::args_os().skip(1))
        .exec();
    anyhow::Error::new(error).context(format!("cannot start {}", program.display()))
}

/// `--node`, else `$ORCH_NODE`, else the host name: letters, digits, `-`
/// and `_`, at most 64.
fn node_name(given: Option<&str>) -> anyhow::Result<String> {
    let from_env = std::env::var("ORCH_NODE").ok().filter(|n| !n.is_empty());
    let name = match given.map(str::to_owned).or(from_env) {
        Some(name) => name,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap_or_default()
            .trim()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect(),
    };
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(UsageError(anyhow::anyhow!(
            "node id {name:?}: letters, digits, '-' and '_' only, 1 to 64 of them; hint: --node \
             NAME or ORCH_NODE=NAME"
        ))
        .into());
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_id_is_a_name_token() {
        assert_eq!(node_name(Some("node-1")).expect("valid"), "node-1");
        assert!(node_name(Some("a.b")).is_err());
        assert!(node_name(Some(&"n".repeat(65))).is_err());
        assert!(node_name(Some("")).is_err() || std::env::var("ORCH_NODE").is_ok());
    }
}
