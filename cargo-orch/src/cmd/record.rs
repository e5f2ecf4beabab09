//! `cargo orch record PATTERN --out FILE` and `cargo orch replay FILE`: the
//! events of a running orchestrator into a recording (see
//! [`orch_recording::format`]) through a full tap of the control socket, and a
//! recording back into a running orchestrator, event by event, as `emit`
//! publishes one.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use orch_operate::client;
use orch_operate::protocol::{Request, Response};

use super::control::{Target, find};
use crate::cli::{EXIT_FAILURE, EXIT_USAGE, GlobalArgs, RecordArgs, ReplayArgs, TargetArgs};
use crate::session::UsageError;
use orch_recording::format::{self as recording, Recorded, Writer};

/// The one orchestrator `target` names, or the exit code that says why not.
fn one_target(
    global: &GlobalArgs,
    target: &TargetArgs,
) -> anyhow::Result<Result<Target, ExitCode>> {
    Ok(match find(global, target, false)? {
        Ok(targets) => targets
            .into_iter()
            .next()
            .ok_or_else(|| ExitCode::from(EXIT_FAILURE)),
        Err(code) => Err(code),
    })
}

/// Runs `cargo orch record`.
pub fn record(global: &GlobalArgs, args: &RecordArgs) -> anyhow::Result<ExitCode> {
    let duration = args
        .duration
        .as_deref()
        .map(|text| {
            orch_sdk::duration::parse(text)
                .map_err(|e| UsageError(anyhow::anyhow!("--duration {text:?}: {e}; hint: 30s, 5m")))
        })
        .transpose()?;
    let target = match one_target(global, &args.target)? {
        Ok(target) => target,
        Err(code) => return Ok(code),
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install the signal handlers")?;
    }
    let partial = args.out.with_extension("partial");
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    let started_at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut writer = Writer::new(std::io::BufWriter::new(file), &args.pattern, started_at_ms)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    let request = Request::Tap {
        pattern: args.pattern.clone(),
        count: args.count,
        full: true,
    };
    let began = Instant::now();
    let mut first_at: Option<u64> = None;
    let mut dropped = 0;
    let mut failure: Option<anyhow::Error> = None;
    let mut refused: Option<(String, Option<String>, bool)> = None;
    let followed = client::follow(
        &target.socket,
        &request,
        Duration::from_millis(200),
        |item| {
            if let client::Followed::Line(response) = item {
                match response {
                    Response::Tapped(event) => {
                        dropped = event.dropped;
                        let first = *first_at.get_or_insert(event.at_ms);
                        let payload = serde_json::from_str(&event.payload)
                            .unwrap_or(serde_json::Value::String(event.payload.clone()));
                        let recorded = Recorded {
                            t_ms: event.at_ms.saturating_sub(first),
                            topic: event.topic,
                            source: event.source,
                            origin: event.origin,
                            id: event.id,
                            at_ms: event.at_ms,
                            payload,
                        };
                        if let Err(e) = writer.event(&recorded) {
                            failure = Some(anyhow::Error::new(e));
                            return false;
                        }
                    }
                    Response::Error {
                        message,
                        hint,
                        usage,
                    } => {
                        refused = Some((message, hint, usage));
                        return false;
                    }
                    _ => {}
                }
            }
            let done = args.count.is_some_and(|n| writer.events() >= n)
                || duration.is_some_and(|d| began.elapsed() >= d);
            !(done || stop.load(Ordering::Relaxed))
        },
    );
    if let Some((message, hint, usage)) = refused {
        let _ = std::fs::remove_file(&partial);
        eprintln!(
            "error: {message}{}",
            hint.map(|h| format!("\n  hint: {h}")).unwrap_or_default()
        );
        return Ok(ExitCode::from(if usage {
            EXIT_USAGE
        } else {
            EXIT_FAILURE
        }));
    }
    if let Err(e) = followed {
        // The orchestrator went away: what was recorded is kept.
        eprintln!("record: the orchestrator stopped answering ({e}); keeping what was recorded");
    }
    if let Some(error) = failure {
        let _ = std::fs::remove_file(&partial);
        return Err(error.context(format!("cannot write {}", partial.display())));
    }
    let events = writer.events();
    writer
        .finish(dropped)
        .and_then(|mut out| std::io::Write::flush(&mut out))
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, &args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!(
        "record: {events} event(s) on '{}' written to {}{}",
        args.pattern,
        args.out.display(),
        if dropped > 0 {
            format!(" ({dropped} dropped: the recorder fell behind)")
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `cargo orch replay`.
pub fn replay(global: &GlobalArgs, args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let recording = recording::read(&args.file).map_err(|e| {
        UsageError(anyhow::anyhow!(
            "{e}; hint: give a file `cargo orch record` wrote"
        ))
    })?;
    if let Some(speed) = args.speed
        && !(speed.is_finite() && speed > 0.0)
    {
        return Err(UsageError(anyhow::anyhow!("--speed {speed}: must be above 0")).into());
    }
    let mut target_args = args.target.clone();
    if args.into.is_some() {
        target_args.pid = args.into;
    }
    let target = match one_target(global, &target_args)? {
        Ok(target) => target,
        Err(code) => return Ok(code),
    };
    if recording.trailer.is_none() {
        eprintln!(
            "replay: {} has no end line (the recorder was stopped hard); playing its {} event(s)",
            args.file.display(),
            recording.events.len()
        );
    }
    let speed = args.speed.unwrap_or(1.0);
    let deadline = Duration::from_secs(target_args.timeout.max(1));
    let began = Instant::now();
    for (index, event) in recording.events.iter().enumerate() {
        if !args.as_fast_as_possible {
            let due = Duration::from_secs_f64(event.t_ms as f64 / 1000.0 / speed);
            if let Some(wait) = due.checked_sub(began.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let request = Request::Emit {
            topic: event.topic.clone(),
            payload: event.payload.to_string(),
            source: args.source.clone(),
        };
        match client::send(&target.socket, &request, deadline) {
            Ok(Response::Done { .. }) => {}
            Ok(Response::Error { message, hint, .. }) => {
                eprintln!(
                    "error: event {} of {} ({}) was not taken: {message}{}",
                    index + 1,
                    recording.events.len(),
                    event.topic,
                    hint.map(|h| format!("\n  hint: {h}")).unwrap_or_default()
                );
                return Ok(ExitCode::from(EXIT_FAILURE));
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!(
                    "error: event {} of {}: {e}",
                    index + 1,
                    recording.events.len()
                );
                return Ok(ExitCode::from(EXIT_FAILURE));
            }
        }
    }
    eprintln!(
        "replay: {} event(s) of {} ('{}') published as '{}' in {:.1}s",
        recording.events.len(),
        args.file.display(),
        recording.header.pattern,
        args.source,
        began.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
