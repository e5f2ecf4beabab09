//! `cargo orch top`: a live view of a running orchestrator's modules (see
//! [`crate::top`]), full-screen on a terminal (`q` leaves, `s` changes the
//! sort, the window may be resized), plain text every second otherwise.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use orch_operate::client;
use orch_operate::protocol::{Request, Response, StatusReport};

use super::control::find;
use crate::cli::{EXIT_FAILURE, GlobalArgs, TopArgs};
use crate::top::rows::{self, SortBy};
use crate::top::terminal::Screen;

/// How often the view is refreshed.
const EVERY: Duration = Duration::from_secs(1);

/// Runs `cargo orch top`.
pub fn run(global: &GlobalArgs, args: &TopArgs) -> anyhow::Result<ExitCode> {
    let target = match find(global, &args.target, false)? {
        Ok(targets) => match targets.into_iter().next() {
            Some(target) => target,
            None => return Ok(ExitCode::from(EXIT_FAILURE)),
        },
        Err(code) => return Ok(code),
    };
    let deadline = Duration::from_secs(args.target.timeout.clamp(1, 10));
    let report = || -> anyhow::Result<StatusReport> {
        match client::send(&target.socket, &Request::Status, deadline)? {
            Response::Status(report) => Ok(*report),
            other => anyhow::bail!("the orchestrator answered {other:?} to status"),
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let resized = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install the signal handlers")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGWINCH, Arc::clone(&resized))
        .context("cannot install the signal handlers")?;
    let interactive = orch_process::console::stdout_is_terminal() && !args.once;
    let screen = if interactive {
        Some(Screen::take().context("cannot take the terminal")?)
    } else {
        None
    };
    let mut sort = SortBy::default();
    let mut before = report()?;
    let mut taken = Instant::now();
    let mut shown: Vec<String> = Vec::new();
    loop {
        // Wait out the second, redrawing on a resize, acting on keys.
        let until = taken + EVERY;
        while Instant::now() < until {
            if stop.load(Ordering::Relaxed) {
                return Ok(ExitCode::SUCCESS);
            }
            match &screen {
                Some(screen) => {
                    match screen.key(Duration::from_millis(100)) {
                        Some(b'q' | b'Q') => return Ok(ExitCode::SUCCESS),
                        Some(b's' | b'S') => {
                            sort = sort.next();
                            resized.store(true, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                    if resized.swap(false, Ordering::Relaxed) && !shown.is_empty() {
                        screen.draw(&fit(&shown, screen.size()))?;
                    }
                }
                None => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        let now = match report() {
            Ok(now) => now,
            Err(e) => {
                drop(screen);
                eprintln!("top: the orchestrator stopped answering: {e:#}");
                return Ok(ExitCode::from(EXIT_FAILURE));
            }
        };
        let elapsed = taken.elapsed();
        taken = Instant::now();
        let mut table = rows::rows(&before.modules, &now.modules, elapsed);
        rows::sort(&mut table, sort);
        let header = format!(
            "{} {} (pid {}): {} modules, {}, up {:.0}s; sorted by {} (s: sort, q: quit)",
            now.app,
            now.version,
            now.pid,
            now.modules.len(),
            if now.ready { "ready" } else { "not ready" },
            now.uptime_secs,
            sort.name()
        );
        match &screen {
            Some(screen) => {
                let (width, _) = screen.size();
                shown = std::iter::once(header)
                    .chain(rows::table(&table, width))
                    .collect();
                screen.draw(&fit(&shown, screen.size()))?;
            }
            None => {
                let width = std::env::var("COLUMNS")
                    .ok()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(160);
                println!("{header}");
                for line in rows::table(&table, width) {
                    println!("{line}");
                }
                if args.once {
                    return Ok(ExitCode::SUCCESS);
                }
                println!();
            }
        }
        before = now;
    }
}

/// `lines` cut to the screen: `(columns, rows)`.
fn fit(lines: &[String], (width, height): (usize, usize)) -> Vec<String> {
    lines
        .iter()
        .take(height.saturating_sub(1).max(1))
        .map(|line| line.chars().take(width).collect())
        .collect()
}
