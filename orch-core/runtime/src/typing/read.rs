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
use orch_process::host::{HOST_MODE_ARG, HOST_PROGRAM_ENV, host_program};

/// The child host's argument for describe mode.
pub const DESCRIBE_ARG: &str = "--describe";

/// Whether the library at `path` exports the types symbol, as its dynamic
/// symbol names say. A file that is missing or not a 64-bit ELF library
/// cannot be loaded at all: it types nothing here, and the load that
/// follows names the real cause.
pub fn names_types_symbol(path: &Path) -> bool {
    super::elf::names_dynamic_symbol(path, TYPES_SYMBOL).unwrap_or(false)
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
    let named = names_types_symbol(artifact);
    if !named {
        return Ok(None);
    }
    let program = host_program().map_err(|e| {
        fail(Cause::Host(format!(
            "cannot find the child host program: {e}"
        )))
        .with_hint(format!("set {HOST_PROGRAM_ENV} to the cargo-orch binary"))
    })?;
    let mut command = Command::new(&program);
    command
        .arg(HOST_MODE_ARG)
        .arg(DESCRIBE_ARG)
        .arg(artifact)
        // The environment of an isolated module's child: not the
        // orchestrator's secrets.
        .env_clear()
        .envs(orch_process::child_env::child_environment())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // A group of its own: whatever the library starts dies with it.
    let mut child = orch_process::group::spawn_in_group(&mut command).map_err(|e| {
        fail(Cause::Host(format!(
            "cannot start {} to read the topic types: {e}",
            program.display()
        )))
        .with_hint("check that the cargo-orch binary is still in place")
    })?;
    let pid = child.id();
    // Both pipes are read on threads of their own, each bounded, so a child
    // that writes without end neither blocks nor fills memory.
    let stdout = read_bounded(child.stdout.take(), MAX_TYPES_BYTES + 1);
    let stderr = read_bounded(child.stderr.take(), 4096);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => break Err(None),
            Err(e) => break Err(Some(e)),
        }
    };
    // The group goes in every case: a helper the library started would
    // otherwise keep the pipes open.
    orch_process::group::kill_group(pid);
    let status = match status {
        Ok(status) => status,
        Err(error) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(match error {
                None => fail(Cause::Timeout(timeout)).with_hint(
                    "reading the module's topic types (orch_typed::export_topic_types!) did \
                     not end: check what its payload types do when their schema is made",
                ),
                Some(e) => fail(Cause::Host(format!(
                    "cannot wait for the process reading the topic types: {e}"
                )))
                .with_hint("try again; if it persists, check the system's process limits"),
            });
        }
    };
    let (stdout, stderr) = (collect(stdout), collect(stderr));
    if stdout.len() > MAX_TYPES_BYTES {
        return Err(fail(Cause::Error(format!(
            "its topic types are more than {MAX_TYPES_BYTES} bytes"
        )))
        .with_hint("type fewer or smaller payloads; describe large data by reference"));
    }
    if !status.success() {
        let said = String::from_utf8_lossy(&stderr);
        let first = said.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        return Err(fail(Cause::Error(format!(
            "its topic types could not be read ({status}){}",
            if first.is_empty() {
                String::new()
            } else {
                format!(
                    ": {}",
                    first
                        .chars()
                        .take(300)
                        .flat_map(char::escape_debug)
                        .collect::<String>()
                )
            }
        )))
        .with_hint("check the module's orch_typed::export_topic_types! and its payload types"));
    }
    TopicTypes::parse(&stdout)
        .map(Some)
        .map_err(|e| fail(Cause::Error(e)).with_hint("rebuild the module against this orch-typed"))
}

/// Reads at most `limit` bytes of `pipe` on a thread of its own.
fn read_bounded(
    pipe: Option<impl std::io::Read + Send + 'static>,
    limit: usize,
) -> crossbeam_channel::Receiver<Vec<u8>> {
    let (done, result) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.by_ref().take(limit as u64).read_to_end(&mut bytes);
            // The rest is drained and dropped: a child that writes more must
            // not block on a full pipe (and so look like it hangs).
            let _ = std::io::copy(&mut pipe, &mut std::io::sink());
        }
        let _ = done.send(bytes);
    });
    result
}

/// What a reader got, waiting at most two seconds for it once the child
/// has ended (its group is killed, so the pipe closes).
fn collect(result: crossbeam_channel::Receiver<Vec<u8>>) -> Vec<u8> {
    result
        .recv_timeout(Duration::from_secs(2))
        .unwrap_or_default()
}
