//! A module library's topic types, read without running its code in the
//! orchestrator: the library is searched for the types symbol's name (most
//! modules have none: nothing more is done), and when it has one a
//! throwaway child host (`__module-host --describe LIB`) loads it, calls
//! the symbol and prints the document. The child is killed at the deadline;
//! its output is bounded.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use orch_sdk::abi::TYPES_SYMBOL;

use super::{MAX_TYPES_BYTES, TopicTypes};
use crate::error::{Cause, ModuleFailure, Phase};
use orch_process::host::{HOST_MODE_ARG, host_program};

/// The child host's argument for describe mode.
pub const DESCRIBE_ARG: &str = "--describe";

/// Whether the library at `path` may export the types symbol: its dynamic
/// symbol names say so, or cannot be read (then the child finds out).
pub fn names_types_symbol(path: &Path) -> std::io::Result<bool> {
    std::fs::metadata(path)?;
    Ok(super::elf::names_dynamic_symbol(path, TYPES_SYMBOL).unwrap_or(true))
}

/// Module `name`'s topic types from its library at `artifact`, read by a
/// child host within `timeout`; `None` for a module that types nothing.
/// A failure names the module and the phase `types`.
pub fn read(
    name: &str,
    artifact: &Path,
    timeout: Duration,
) -> Result<Option<TopicTypes>, ModuleFailure> {
    let fail = |cause: Cause| ModuleFailure::new(name, Phase::Types, cause);
    let named = names_types_symbol(artifact).map_err(|e| {
        fail(Cause::Host(format!(
            "cannot read {}: {e}",
            artifact.display()
        )))
    })?;
    if !named {
        return Ok(None);
    }
    let program = host_program().map_err(|e| {
        fail(Cause::Host(format!(
            "cannot find the child host program: {e}"
        )))
    })?;
    let mut child = Command::new(&program)
        .arg(HOST_MODE_ARG)
        .arg(DESCRIBE_ARG)
        .arg(artifact)
        // The environment of an isolated module's child: not the
        // orchestrator's secrets.
        .env_clear()
        .envs(orch_process::child_env::child_environment())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            fail(Cause::Host(format!(
                "cannot start {} to read the topic types: {e}",
                program.display()
            )))
        })?;
    // Both pipes are read on threads of their own, each bounded, so a child
    // that writes without end neither blocks nor fills memory.
    let bounded = |pipe: Option<Box<dyn std::io::Read + Send>>, limit: usize| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(pipe) = pipe {
                let _ = pipe.take(limit as u64 + 1).read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = bounded(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        MAX_TYPES_BYTES,
    );
    let stderr = bounded(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        64 * 1024,
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(Cause::Timeout(timeout)).with_hint(
                    "reading the module's topic types (orch_typed::export_topic_types!) did not \
                     end: check what its payload types do when their schema is made",
                ));
            }
        }
    };
    let (stdout, stderr) = (
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    );
    if !status.success() {
        let said = String::from_utf8_lossy(&stderr);
        return Err(fail(Cause::Error(format!(
            "its topic types could not be read ({status}): {}",
            said.trim()
        )))
        .with_hint("check the module's orch_typed::export_topic_types! and its payload types"));
    }
    TopicTypes::parse(&stdout)
        .map(Some)
        .map_err(|e| fail(Cause::Error(e)).with_hint("rebuild the module against this orch-typed"))
}
