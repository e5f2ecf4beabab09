//! The environment a child host starts with (an isolated module's, and the
//! throwaway one that reads a library's topic types): the few variables a
//! program needs, not the orchestrator's secrets.

/// The variables a child host keeps from the orchestrator's environment:
/// what a program needs to run, locate files and format text, and the
/// `ORCH_*` variables meant for modules. Secrets the orchestrator was given
/// (`NATS_TOKEN`, `DATABASE_URL`, ...) reach a module only through its
/// `config`, where `${VAR}` expands them (and the logs redact them).
const CHILD_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "TERM",
    "NO_COLOR",
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
    "LD_LIBRARY_PATH",
];

/// Set for every child host: its allocator (mimalloc, as in the orchestrator)
/// commits memory as it uses it instead of its whole first arena (1 GiB) at
/// once, so `limits.memory_max` (`RLIMIT_DATA`, which counts writable
/// mappings whether touched or not) limits what the child uses, and a child
/// under a limit below 1 GiB can start at all.
const ALLOCATOR_ENV: &[(&str, &str)] = &[("MIMALLOC_ARENA_EAGER_COMMIT", "0")];

/// The orchestrator's variables that [`CHILD_ENV`] lets through, with every
/// `LC_*` and `ORCH_*` one, and the child allocator's settings.
pub fn child_environment() -> impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)> {
    std::env::vars_os()
        .filter(|(key, _)| {
            key.to_str().is_some_and(|key| {
                CHILD_ENV.contains(&key) || key.starts_with("LC_") || key.starts_with("ORCH_")
            })
        })
        .chain(
            ALLOCATOR_ENV
                .iter()
                .map(|(key, value)| ((*key).into(), (*value).into())),
        )
}
