//! `cargo orch rollout APP VERSION`: the controller of a rollout across the
//! nodes run from NATS (orch-bridge's `releases::rollout`), and `--status`,
//! `--pause`, `--resume`, `--abort`.

use std::process::ExitCode;
use std::time::Duration;

use crate::cli::{EXIT_FAILURE, RolloutArgs};
use crate::network::Network;
use crate::release::{OperatorRequest, ReleaseServer, RolloutReport, RolloutRequest};
use crate::session::UsageError;

/// Runs `cargo orch rollout`.
pub fn run(args: &RolloutArgs, network: Option<&dyn Network>) -> anyhow::Result<ExitCode> {
    let Some(network) = network else {
        return Err(crate::networked::hand_over(
            "rollout needs the NATS client",
            None,
            false,
            Duration::from_secs(600),
        ));
    };
    let duration = |flag: &str, text: &str| {
        orch_sdk::duration::parse(text)
            .map_err(|e| UsageError(anyhow::anyhow!("{flag} {text:?}: {e}; hint: write 10s, 2m")))
    };
    let min_healthy = duration("--min-healthy", &args.min_healthy)?;
    let healthy_deadline = duration("--healthy-deadline", &args.healthy_deadline)?;
    if healthy_deadline <= min_healthy {
        return Err(UsageError(anyhow::anyhow!(
            "--healthy-deadline ({}) must be longer than --min-healthy ({}): no node could be \
             healthy in time",
            args.healthy_deadline,
            args.min_healthy
        ))
        .into());
    }
    let holder = format!("{}:{}", host_name(), std::process::id());
    let releases = network.releases(&ReleaseServer {
        url: args.nats.url.clone(),
        creds: args.nats.creds.clone(),
        name: "rollout".into(),
    })?;
    if args.status {
        let Some(report) = releases.rollout_state(&args.app)? else {
            println!("{} never had a rollout", args.app);
            return Ok(ExitCode::SUCCESS);
        };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report.state)?);
        } else {
            print_status(&report);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let operator = if args.pause {
        Some(OperatorRequest::Pause)
    } else if args.resume {
        Some(OperatorRequest::Resume)
    } else if args.abort {
        Some(OperatorRequest::Abort)
    } else {
        None
    };
    let request = RolloutRequest {
        app: args.app.clone(),
        version: args.to_version.clone(),
        canary: args.canary,
        max_unavailable: usize::try_from(args.max_unavailable).unwrap_or(1),
        min_healthy,
        healthy_deadline,
        auto_revert: args.auto_revert,
        presence_bucket: args.presence_bucket.clone(),
        operator,
        holder,
    };
    let report = releases.rollout(&request, &|line| println!("rollout: {line}"))?;
    if let Some(holder) = &report.handed_to {
        println!(
            "{}; the running controller carries it out ({holder})",
            report.summary
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", report.summary);
    Ok(if report.phase == "succeeded" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    })
}

/// The state, for people.
fn print_status(report: &RolloutReport) {
    println!("{}", report.summary);
    let state = &report.state;
    let step = state["step"].as_u64().unwrap_or(0);
    if let Some(batches) = state["batches"].as_array() {
        for (index, batch) in batches.iter().enumerate() {
            let nodes: Vec<&str> = batch
                .as_array()
                .map(|b| b.iter().filter_map(|n| n.as_str()).collect())
                .unwrap_or_default();
            let mark = match (index as u64).cmp(&step) {
                std::cmp::Ordering::Less => "done",
                std::cmp::Ordering::Equal if report.phase == "running" => "under way",
                _ => "",
            };
            println!("  batch {}: {} {mark}", index + 1, nodes.join(", "));
        }
    }
    let list = |key: &str| {
        state[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    println!("  changed: {}", list("changed"));
    if !list("reverted").is_empty() {
        println!("  reverted: {}", list("reverted"));
    }
    if let Some(controller) = state["controller"].as_str() {
        println!("  controller: {controller}");
    }
}

/// This host's name, for the controller's id.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into())
}
