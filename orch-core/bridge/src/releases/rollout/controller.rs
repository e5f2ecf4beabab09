//! The controller: holds the application's lock, moves batch by batch,
//! writes every step to `<app>.rollout` before acting on the next, and
//! carries out operators' requests. A controller started again on a
//! running rollout resumes from its recorded step (the current batch keeps
//! its deadline and its baselines).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, kv};
use orch_runtime::status::{NodeHealth, NodeRecord};

use super::gate::{Verdict, judge};
use super::lock::Lock;
use super::nats;
use super::nodes::{desire, finish, records, revert};
use super::{Baseline, Phase, Request, RolloutOptions, RolloutState, plan};
use crate::releases::ReleaseError;
use crate::releases::record::{self, Pointer};
use crate::releases::store::Buckets;

/// How often the controller looks.
const TICK: Duration = Duration::from_millis(250);

/// What an operator asked for.
#[derive(Debug, Clone)]
pub struct Start {
    /// `app.name`.
    pub app: String,
    /// The version to roll out (`None`: act on the running rollout).
    pub version: Option<String>,
    /// How a new rollout moves.
    pub options: RolloutOptions,
    /// The presence bucket (default: the release record's).
    pub presence_bucket: Option<String>,
    /// Pause, resume or abort the running rollout.
    pub request: Option<Request>,
    /// Who this controller is (`host:pid`).
    pub holder: String,
}

/// How a `drive` call ended.
#[derive(Debug, Clone)]
pub enum Driven {
    /// This controller ran the rollout to its end.
    Finished(RolloutState),
    /// The request was written; the controller holding the lock acts on it.
    Requested(RolloutState, String),
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The rollout of `app` as the bucket holds it, with its revision.
pub async fn read(
    buckets: &Buckets,
    app: &str,
) -> Result<Option<(RolloutState, u64)>, ReleaseError> {
    let key = record::rollout_key(app);
    let entry = buckets
        .releases
        .entry(key.as_str())
        .await
        .map_err(|e| nats(&format!("cannot read {key}"), e))?;
    match entry {
        Some(entry) if entry.operation == kv::Operation::Put => {
            let state = record::parse::<RolloutState>(&key, &entry.value).map_err(|e| {
                ReleaseError::new(e, "start a new rollout: cargo orch rollout APP VERSION")
            })?;
            Ok(Some((state, entry.revision)))
        }
        _ => Ok(None),
    }
}

/// Writes `state` if the bucket still holds `revision`; the new revision.
async fn save(
    buckets: &Buckets,
    state: &RolloutState,
    revision: Option<u64>,
) -> Result<Option<u64>, ReleaseError> {
    let key = record::rollout_key(&state.app);
    let bytes = serde_json::to_vec(state).unwrap_or_default();
    if bytes.len() > record::MAX_VALUE_BYTES {
        return Err(ReleaseError::new(
            format!(
                "the rollout's state is {} bytes, more than a value may be ({})",
                bytes.len(),
                record::MAX_VALUE_BYTES
            ),
            "roll out to fewer nodes at once (a bigger --max-unavailable makes fewer batches)",
        ));
    }
    let written = match revision {
        Some(revision) => buckets
            .releases
            .update(&key, bytes.into(), revision)
            .await
            .ok(),
        None => buckets.releases.create(&key, bytes.into()).await.ok(),
    };
    Ok(written)
}

/// Runs what `start` asks; `report` hears every step.
pub async fn drive(
    context: &jetstream::Context,
    buckets: &Buckets,
    start: Start,
    report: &(dyn Fn(&str) + Sync),
) -> Result<Driven, ReleaseError> {
    let app = start.app.clone();
    let existing = read(buckets, &app).await?;
    let live = existing.as_ref().filter(|(s, _)| !s.phase.is_final());
    if let Some(request) = start.request {
        let Some((mut state, revision)) = live.cloned() else {
            return Err(ReleaseError::new(
                format!("no rollout of {app} is running"),
                "start one: cargo orch rollout APP VERSION",
            ));
        };
        state.request = Some(request);
        if save(buckets, &state, Some(revision)).await?.is_none() {
            return Err(ReleaseError::new(
                "the rollout changed while the request was written",
                "ask again",
            ));
        }
        let lock = match Lock::take(context, &record::rollout_lock_key(&app), &start.holder).await {
            Err(held) if held.transient => return Err(held),
            Err(held) => return Ok(Driven::Requested(state, held.message)),
            Ok(lock) => lock,
        };
        if request == Request::Pause {
            // No controller runs: pausing is only writing it down.
            let (mut state, revision) = read(buckets, &app).await?.ok_or_else(|| {
                ReleaseError::new("the rollout's state vanished", "start it again")
            })?;
            state.request = None;
            if state.phase == Phase::Running {
                state.phase = Phase::Paused;
            }
            let saved = save(buckets, &state, Some(revision)).await;
            lock.release().await;
            saved?;
            return Ok(Driven::Requested(
                state,
                "no controller runs; `--resume` starts one".into(),
            ));
        }
        return run(buckets, lock, &app, &start.holder, report).await;
    }
    let Some(version) = start.version.clone() else {
        return Err(ReleaseError::new(
            "no version given",
            "cargo orch rollout APP VERSION, or --status, --pause, --resume, --abort",
        ));
    };
    let lock = Lock::take(context, &record::rollout_lock_key(&app), &start.holder).await?;
    match live {
        Some((state, _)) if state.to.version == version => {
            report(&format!("resuming: {}", state.summary()));
        }
        Some((state, _)) => {
            lock.release().await;
            return Err(ReleaseError::new(
                format!("a rollout of {app} to {} is under way", state.to.version),
                "wait for it, or stop it: cargo orch rollout APP --abort",
            ));
        }
        None => {
            if let Err(e) = begin(buckets, &start, &version, existing.map(|(_, r)| r), report).await
            {
                lock.release().await;
                return Err(e);
            }
        }
    }
    run(buckets, lock, &app, &start.holder, report).await
}

/// Writes a new rollout's state.
async fn begin(
    buckets: &Buckets,
    start: &Start,
    version: &str,
    revision: Option<u64>,
    report: &(dyn Fn(&str) + Sync),
) -> Result<(), ReleaseError> {
    let app = &start.app;
    let to = buckets.record(app, version).await?.ok_or_else(|| {
        ReleaseError::new(
            format!("{app} {version} was never pushed"),
            "push it first: cargo orch push BUNDLE",
        )
    })?;
    let current_key = record::current_key(app);
    let from: Pointer = match buckets.releases.get(current_key.as_str()).await {
        Ok(Some(bytes)) => record::parse(&current_key, &bytes)
            .map_err(|e| ReleaseError::new(e, "push the current release again with --current"))?,
        Ok(None) => {
            return Err(ReleaseError::new(
                format!("{app} has no current release"),
                "push one with --current",
            ));
        }
        Err(e) => return Err(nats(&format!("cannot read {current_key}"), e)),
    };
    if from.digest == to.digest {
        return Err(ReleaseError::new(
            format!("{app} {version} is the current release already"),
            "nothing to roll out",
        ));
    }
    let presence_bucket = start
        .presence_bucket
        .clone()
        .or_else(|| to.presence_bucket.clone())
        .ok_or_else(|| {
            ReleaseError::new(
                format!("{app} {version} names no presence bucket (main.yaml has no bridge.nats.presence written out)"),
                "give --presence-bucket NAME",
            )
        })?;
    let records = records(buckets, &presence_bucket).await?;
    // The nodes that run the current release (a node on another bundle,
    // say one run with --bundle, is not this rollout's to move).
    let of_app: Vec<&NodeRecord> = records.values().filter(|r| &r.app == app).collect();
    let mut nodes: Vec<String> = of_app
        .iter()
        .filter(|r| r.bundle_digest.as_deref() == Some(from.digest.as_str()))
        .map(|r| r.node.clone())
        .collect();
    nodes.sort();
    let others: Vec<String> = of_app
        .iter()
        .filter(|r| !nodes.contains(&r.node))
        .map(|r| r.node.clone())
        .collect();
    if !others.is_empty() {
        report(&format!(
            "left out (not on the current release {}): {}",
            from.version,
            others.join(", ")
        ));
    }
    if nodes.is_empty() {
        return Err(ReleaseError::new(
            format!(
                "no node of {app} in the presence bucket {presence_bucket} runs the current \
                 release {}",
                from.version
            ),
            "start the nodes first (cargo-orch orch run --from-nats ...)",
        ));
    }
    let state = RolloutState {
        app: app.clone(),
        to: Pointer {
            version: to.version.clone(),
            digest: to.digest.clone(),
        },
        from,
        batches: plan(&nodes, &start.options),
        options: start.options.clone(),
        presence_bucket,
        step: 0,
        phase: Phase::Running,
        reason: None,
        changed: Vec::new(),
        reverted: Vec::new(),
        batch_started_ms: None,
        baselines: BTreeMap::new(),
        finishing: false,
        request: None,
        controller: start.holder.clone(),
    };
    if save(buckets, &state, revision).await?.is_none() {
        return Err(ReleaseError::new(
            "another rollout began at the same moment",
            "see it: cargo orch rollout APP --status",
        ));
    }
    report(&format!(
        "rollout of {app} {} -> {}: {} nodes in {} batches: {}",
        state.from.version,
        state.to.version,
        nodes.len(),
        state.batches.len(),
        state
            .batches
            .iter()
            .map(|b| b.join(","))
            .collect::<Vec<_>>()
            .join(" | ")
    ));
    Ok(())
}

/// The controller's loop, holding `lock`, until the rollout ends; the lock
/// is given back however it ends (unless it was lost).
async fn run(
    buckets: &Buckets,
    mut lock: Lock,
    app: &str,
    holder: &str,
    report: &(dyn Fn(&str) + Sync),
) -> Result<Driven, ReleaseError> {
    let outcome = steps(buckets, &mut lock, app, holder, report).await;
    if !lock.is_lost() {
        lock.release().await;
    }
    outcome
}

/// Writes the controller's step; a write that lost a race (an operator's
/// request came in) is not an error, the next look reads the state again,
/// but [`MAX_CONFLICTS`] in a row are.
async fn step_saved(
    buckets: &Buckets,
    state: &RolloutState,
    revision: u64,
    conflicts: &mut u32,
) -> Result<(), ReleaseError> {
    if save(buckets, state, Some(revision)).await?.is_some() {
        *conflicts = 0;
        return Ok(());
    }
    *conflicts += 1;
    if *conflicts > MAX_CONFLICTS {
        return Err(nats(
            "cannot write the rollout's state",
            format!("{MAX_CONFLICTS} writes in a row refused"),
        ));
    }
    tokio::time::sleep(TICK).await;
    Ok(())
}

/// Writes of the state refused in a row before the controller gives up.
const MAX_CONFLICTS: u32 = 40;

async fn steps(
    buckets: &Buckets,
    lock: &mut Lock,
    app: &str,
    holder: &str,
    report: &(dyn Fn(&str) + Sync),
) -> Result<Driven, ReleaseError> {
    let mut conflicts = 0;
    let started = Instant::now();
    // The step whose desired keys this controller wrote.
    let mut desired_for: Option<usize> = None;
    let mut since: BTreeMap<String, Option<Instant>> = BTreeMap::new();
    let mut last_said = String::new();
    loop {
        lock.keep().await?;
        let Some((mut state, revision)) = read(buckets, app).await? else {
            return Err(ReleaseError::new(
                "the rollout's state vanished",
                "start it again",
            ));
        };
        state.controller = holder.to_owned();
        if let Some(request) = state.request.take() {
            match request {
                Request::Pause if state.phase == Phase::Running => {
                    state.phase = Phase::Paused;
                    report("paused: no new batch starts until --resume");
                }
                Request::Resume if state.phase == Phase::Paused => {
                    state.phase = Phase::Running;
                    report("resumed");
                }
                Request::Abort if state.finishing => {
                    report(
                        "too late to abort: every batch was healthy and the release is being made current",
                    );
                }
                Request::Abort => {
                    let back = revert(buckets, lock, &state, report).await?;
                    state.phase = Phase::Aborted;
                    state.reason = Some(format!(
                        "aborted by an operator; {} of {} changed nodes returned to {}",
                        back.len(),
                        state.changed.len(),
                        state.from.version
                    ));
                    state.reverted = back;
                }
                _ => {}
            }
            step_saved(buckets, &state, revision, &mut conflicts).await?;
            continue;
        }
        if state.phase.is_final() {
            return Ok(Driven::Finished(state));
        }
        // Paused: the batch under way finishes its gate; no new one starts.
        if state.phase == Phase::Paused && state.batch_started_ms.is_none() {
            tokio::time::sleep(TICK).await;
            continue;
        }
        // Each step is written down before it is acted on, so an operator's
        // request (or a restarted controller) always sees what was done.
        if state.step >= state.batches.len() {
            if !state.finishing {
                state.finishing = true;
                step_saved(buckets, &state, revision, &mut conflicts).await?;
                continue;
            }
            let left = finish(buckets, &state).await?;
            state.phase = Phase::Succeeded;
            state.reason = (!left.is_empty()).then(|| {
                format!(
                    "the desired keys of {} could not be removed: delete them by hand",
                    left.join(", ")
                )
            });
            report(&format!(
                "succeeded: every node runs {}; it is the current release",
                state.to.version
            ));
            step_saved(buckets, &state, revision, &mut conflicts).await?;
            continue;
        }
        let batch = state.batches[state.step].clone();
        let Some(batch_started) = state.batch_started_ms else {
            let records = records(buckets, &state.presence_bucket).await?;
            state.baselines = batch
                .iter()
                .filter_map(|n| {
                    let record = records.get(n)?;
                    Some((
                        n.clone(),
                        Baseline {
                            incarnation: record.incarnation.clone(),
                            health: record.health,
                        },
                    ))
                })
                .collect();
            for node in &batch {
                if !state.changed.contains(node) {
                    state.changed.push(node.clone());
                }
                since.insert(node.clone(), None);
            }
            state.batch_started_ms = Some(now_ms());
            report(&format!(
                "batch {} of {}: {} -> {}",
                state.step + 1,
                state.batches.len(),
                batch.join(", "),
                state.to.version
            ));
            step_saved(buckets, &state, revision, &mut conflicts).await?;
            continue;
        };
        // The batch is written down: its desired keys now (again, for a
        // controller started again: the same values).
        if desired_for != Some(state.step) {
            for node in &batch {
                desire(buckets, app, node, &state.to).await?;
            }
            desired_for = Some(state.step);
        }
        let records = records(buckets, &state.presence_bucket).await?;
        let now = Instant::now();
        let mut waiting = Vec::new();
        let mut unhealthy = None;
        let mut first_seen = false;
        for node in &batch {
            if let (None, Some(record)) = (state.baselines.get(node), records.get(node)) {
                // Not seen when the batch began: counted from now.
                state.baselines.insert(
                    node.clone(),
                    Baseline {
                        incarnation: record.incarnation.clone(),
                        health: record.health,
                    },
                );
                first_seen = true;
            }
            let baseline = match (state.baselines.get(node), records.get(node)) {
                (Some(baseline), Some(record)) => baseline.for_run(&record.incarnation),
                _ => NodeHealth::default(),
            };
            let seen = since.entry(node.clone()).or_default();
            match judge(
                records.get(node),
                &state.to.digest,
                baseline,
                seen,
                state.options.min_healthy,
                now,
            ) {
                Verdict::Healthy => {}
                Verdict::Waiting(why) => waiting.push(format!("{node}: {why}")),
                Verdict::Unhealthy(why) => {
                    unhealthy = Some(format!("{node}: {why} since it took {}", state.to.version));
                    break;
                }
            }
        }
        let elapsed = Duration::from_millis(now_ms().saturating_sub(batch_started));
        // A controller started again gives the batch at least --min-healthy.
        let overdue = elapsed >= state.options.healthy_deadline
            && started.elapsed() >= state.options.min_healthy;
        let halt = match (unhealthy, waiting.is_empty()) {
            (Some(why), _) => Some(why),
            (None, true) => {
                report(&format!(
                    "batch {} healthy: {}",
                    state.step + 1,
                    batch.join(", ")
                ));
                state.step += 1;
                state.batch_started_ms = None;
                state.baselines.clear();
                step_saved(buckets, &state, revision, &mut conflicts).await?;
                continue;
            }
            (None, false) if overdue => Some(format!(
                "not healthy within --healthy-deadline ({}s): {}",
                state.options.healthy_deadline.as_secs(),
                waiting.join("; ")
            )),
            (None, false) if first_seen => {
                // A node's baseline is written down before it is judged by it.
                step_saved(buckets, &state, revision, &mut conflicts).await?;
                continue;
            }
            (None, false) => None,
        };
        if let Some(why) = halt {
            let mut reason = format!("batch {} of {}: {why}", state.step + 1, state.batches.len());
            if state.options.auto_revert {
                let back = revert(buckets, lock, &state, report).await?;
                reason.push_str(&format!(
                    "; reverted {} to {}",
                    if back.is_empty() {
                        "none".to_owned()
                    } else {
                        back.join(", ")
                    },
                    state.from.version
                ));
                state.reverted = back;
            }
            state.phase = Phase::Failed;
            state.reason = Some(reason.clone());
            report(&format!("failed: {reason}"));
            step_saved(buckets, &state, revision, &mut conflicts).await?;
            continue;
        }
        let said = waiting.join("; ");
        if said != last_said {
            report(&format!("waiting: {said}"));
            last_said = said;
        }
        tokio::time::sleep(TICK).await;
    }
}
