//! The child host's describe mode: the library's topic types document, read
//! in this (throwaway) process by calling the module's types symbol.

// This file calls into a module library through the C ABI.
#![allow(unsafe_code)]

use std::path::Path;

use orch_sdk::abi::{ByteSink, STATUS_OK, TYPES_SYMBOL, TypesFn};

/// The types document of the library at `path`, read in this process (the
/// child host's describe mode); `None` when it has no types symbol.
pub fn in_this_process(path: &Path) -> Result<Option<Vec<u8>>, String> {
    // SAFETY: loading a library runs its initializers; describe mode runs in
    // a throwaway process made for this, never in the orchestrator.
    let library = unsafe { libloading::Library::new(path) }
        .map_err(|e| format!("cannot load {}: {e}", path.display()))?;
    // SAFETY: the symbol, when present, has the type the SDK declares for it
    // (orch_typed::export_topic_types! defines it with exactly `TypesFn`).
    let Ok(types) = (unsafe { library.get::<TypesFn>(TYPES_SYMBOL.as_bytes()) }) else {
        return Ok(None);
    };
    let mut document = Vec::new();
    // SAFETY: the sink borrows `document` for the call only; the function
    // writes into it and returns.
    let status = unsafe { types(ByteSink::to_vec(&mut document)) };
    if status != STATUS_OK {
        return Err("the module's topic types panicked while they were made".to_owned());
    }
    // The library stays loaded until this process exits: nothing it may
    // still run is unmapped.
    std::mem::forget(library);
    Ok(Some(document))
}
