//! Loading a module library: copy the artifact to a unique file per generation (the
//! dynamic loader caches by path), `dlopen` it, check the ABI before anything else,
//! create the instance, and wrap it in a safe [`ModuleInstance`].

// This file implements the C ABI between host and module.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use libloading::Library;
use orch_sdk::abi::{
    ABI_VERSION, ByteSink, ENTRY_SYMBOL, EntryFn, Envelope, ModuleDescriptor, RBytes, RStr,
    SDK_VERSION, STATUS_OK, STATUS_PANIC, Status,
};

use crate::bus::Delivery;
use crate::error::{Cause, ModuleFailure, Phase};
use crate::host_api::{HostTable, ModuleHostCtx};
use crate::module_threads;

/// Makes the per-generation copies of module libraries, in a folder of this
/// process that is removed when the loader is dropped.
pub struct Loader {
    copies_dir: PathBuf,
    /// Held while this process uses the folder: how another host (of another
    /// pid namespace, with the same pid perhaps) tells it is not stale.
    _in_use: Option<fs::File>,
}

/// The file a live host holds locked in its copies folder.
const IN_USE: &str = ".in-use";

impl Loader {
    /// A loader keeping its copies under `<target_dir>/orch/loaded/<pid>-<n>/`,
    /// a folder of its own even for two hosts with the same pid (containers
    /// sharing a workspace), locked while it runs; folders whose host is gone
    /// are removed.
    pub fn new(target_dir: &Path) -> std::io::Result<Self> {
        let parent = target_dir.join("orch").join("loaded");
        fs::create_dir_all(&parent)?;
        remove_stale_copies(&parent);
        let (copies_dir, in_use) = new_locked_dir(&parent)?;
        Ok(Self {
            copies_dir,
            _in_use: Some(in_use),
        })
    }

    /// A loader keeping its copies in `copies_dir` (created; removed on drop).
    pub fn in_dir(copies_dir: PathBuf) -> std::io::Result<Self> {
        fs::create_dir_all(&copies_dir)?;
        Ok(Self {
            copies_dir,
            _in_use: None,
        })
    }

    /// The folder of this loader's copies.
    pub fn copies_dir(&self) -> &Path {
        &self.copies_dir
    }

    /// Loads generation `generation` of module `name` from `artifact`, checks its
    /// ABI and creates its instance bound to `ctx`.
    pub fn load(
        &self,
        name: &str,
        artifact: &Path,
        generation: u32,
        ctx: Arc<ModuleHostCtx>,
    ) -> Result<ModuleInstance, ModuleFailure> {
        let copy = self.copy_artifact(name, artifact, generation)?;
        // This (the generation's own) thread runs its module code from here on:
        // whatever thread the module starts inherits the tag.
        let thread_tag = module_threads::tag(ctx.id.0, generation);
        module_threads::name_current_thread(&thread_tag);
        let library = open_library(name, &copy)?;
        let descriptor = check_descriptor(name, &library, &copy)?;
        let host = HostTable::new(&ctx, generation);
        let mut instance: *mut c_void = std::ptr::null_mut();
        let mut message = Vec::new();
        // SAFETY: the ABI version and descriptor size were checked, so `create`
        // has the signature we call it with; the host table outlives the instance
        // (ModuleInstance drops it after `destroy`).
        let status = unsafe {
            (descriptor.create)(host.as_ptr(), &mut instance, ByteSink::to_vec(&mut message))
        };
        if status != STATUS_OK || instance.is_null() {
            let _ = fs::remove_file(&copy);
            return Err(ModuleFailure::new(
                name,
                Phase::Create,
                cause(status, &message),
            ));
        }
        Ok(ModuleInstance {
            instance,
            descriptor,
            generation,
            library: Some(LoadedLibrary {
                library: Some(library),
                _host: host,
                copy,
                thread_tag,
            }),
        })
    }

    /// Copies `artifact` to this generation's unique file and returns its path.
    pub fn copy_artifact(
        &self,
        name: &str,
        artifact: &Path,
        generation: u32,
    ) -> Result<PathBuf, ModuleFailure> {
        let file_name = format!(
            "{}-g{generation}{}",
            sanitize(name),
            std::env::consts::DLL_SUFFIX
        );
        let copy = self.copies_dir.join(&file_name);
        // Written under a temporary name and renamed into place: a copy is
        // never seen half-written, and never written over a mapped file (each
        // attempt has a generation number of its own).
        let partial = self.copies_dir.join(format!(".{file_name}.partial"));
        fs::copy(artifact, &partial)
            .and_then(|_| fs::rename(&partial, &copy))
            .map_err(|e| {
                let _ = fs::remove_file(&partial);
                ModuleFailure::new(
                    name,
                    Phase::Load,
                    Cause::Host(format!(
                        "cannot copy {} to {}: {e}",
                        artifact.display(),
                        copy.display()
                    )),
                )
                .with_hint("check that the build produced the library and that target/ is writable")
            })?;
        Ok(copy)
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.copies_dir);
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A new folder `<pid>-<n>` under `parent`, never one that exists, with its
/// in-use file locked.
fn new_locked_dir(parent: &Path) -> std::io::Result<(PathBuf, fs::File)> {
    let pid = std::process::id();
    for n in 0u32.. {
        let dir = parent.join(format!("{pid}-{n}"));
        match fs::create_dir(&dir) {
            Ok(()) => {
                let in_use = fs::File::create(dir.join(IN_USE))?;
                in_use.try_lock().map_err(std::io::Error::other)?;
                return Ok((dir, in_use));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free copies folder"))
}

/// How long a new copies folder is left alone whatever its lock says: its
/// host creates the in-use file and locks it a moment later, and a folder
/// judged stale in between would be removed under it.
const SETUP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether `in_use` was written less than [`SETUP_GRACE`] ago (or its age
/// cannot be read: then it is left alone too).
fn is_young(in_use: &fs::File) -> bool {
    in_use
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|at| at.elapsed().ok())
        .is_none_or(|age| age < SETUP_GRACE)
}

/// Removes copy folders whose host is gone: their in-use file is older
/// than [`SETUP_GRACE`] and can be locked (its host held the lock until it
/// ended). Folders of the older `<pid>` layout go when no such process runs.
fn remove_stale_copies(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let stale = match fs::File::open(path.join(IN_USE)) {
            Ok(in_use) => !is_young(&in_use) && in_use.try_lock().is_ok(),
            Err(_) => entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new("/proc").join(pid.to_string()).exists()),
        };
        if stale {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

fn open_library(name: &str, path: &Path) -> Result<Library, ModuleFailure> {
    // SAFETY: loading runs the library's initializers. Module libraries are
    // built by cargo from the user's own workspace, which is the trust model of
    // a plugin host; nothing else in the library is called before the ABI check.
    unsafe { Library::new(path) }.map_err(|e| {
        ModuleFailure::new(
            name,
            Phase::Load,
            Cause::Host(format!("dlopen failed: {e}")),
        )
        .with_hint("the file is not a loadable library for this platform; rebuild the module")
    })
}

fn check_descriptor(
    name: &str,
    library: &Library,
    path: &Path,
) -> Result<&'static ModuleDescriptor, ModuleFailure> {
    // SAFETY: the symbol is only read as a function pointer of the documented
    // entry type; a library built with the SDK exports exactly that.
    let entry = unsafe { library.get::<EntryFn>(ENTRY_SYMBOL.as_bytes()) }.map_err(|_| {
        ModuleFailure::new(
            name,
            Phase::AbiCheck,
            Cause::Host(format!(
                "{} has no symbol `{ENTRY_SYMBOL}`: it is not a cargo-orch module",
                path.display()
            )),
        )
        .with_hint("add `orch_sdk::export_module!(YourModule);` to the module's src/lib.rs")
    })?;
    // SAFETY: calling the entry point takes no arguments and only returns a
    // pointer to static data (SDK-generated, or checked below before use).
    let descriptor = unsafe { entry() };
    if descriptor.is_null() {
        return Err(ModuleFailure::new(
            name,
            Phase::AbiCheck,
            Cause::Host(format!("`{ENTRY_SYMBOL}` returned a null descriptor")),
        ));
    }
    // SAFETY: every ABI version starts the descriptor with a u32 version, so
    // reading that field alone is valid whatever version the module speaks.
    let abi_version = unsafe { descriptor.cast::<u32>().read() };
    if abi_version != ABI_VERSION {
        return Err(ModuleFailure::new(
            name,
            Phase::AbiCheck,
            Cause::Host(format!(
                "ABI version mismatch: the module was built for ABI v{abi_version}, \
                 this host speaks ABI v{ABI_VERSION} (orch-sdk {SDK_VERSION})"
            )),
        )
        .with_hint(format!(
            "rebuild the module against orch-sdk {SDK_VERSION}, or run it with a cargo-orch \
             that speaks ABI v{abi_version}"
        )));
    }
    // SAFETY: the version matches, so the pointer is a `ModuleDescriptor` of our
    // layout in the library's static data, alive as long as the library is loaded
    // (ModuleInstance keeps the library until the instance is destroyed).
    let descriptor: &'static ModuleDescriptor = unsafe { &*descriptor };
    if descriptor.descriptor_size as usize != size_of::<ModuleDescriptor>() {
        return Err(ModuleFailure::new(
            name,
            Phase::AbiCheck,
            Cause::Host(format!(
                "descriptor size mismatch ({} bytes, host expects {}) under ABI v{ABI_VERSION}",
                descriptor.descriptor_size,
                size_of::<ModuleDescriptor>()
            )),
        )
        .with_hint("the module was built with an incompatible orch-sdk; rebuild it"));
    }
    Ok(descriptor)
}

fn cause(status: Status, message: &[u8]) -> Cause {
    let text = String::from_utf8_lossy(message).into_owned();
    if status == STATUS_PANIC {
        Cause::Panic(text)
    } else {
        Cause::Error(text)
    }
}

/// A created module instance in a loaded library. Dropping it destroys the
/// instance and then unloads the library (see [`ModuleInstance::retire`] for the
/// way that lets the dynamic loader really unmap it).
pub struct ModuleInstance {
    instance: *mut c_void,
    descriptor: &'static ModuleDescriptor,
    generation: u32,
    library: Option<LoadedLibrary>,
}

// SAFETY: the instance is used by one thread at a time (its actor, or the
// supervisor after the actor has stopped); the SDK requires `Module: Send`.
unsafe impl Send for ModuleInstance {}

/// A loaded library whose instance is destroyed: dropping it unloads the library
/// (unless threads it started still run), releases the copy of the generation.
/// The host table it was given is never freed (see [`HostTable`]).
pub struct LoadedLibrary {
    library: Option<Library>,
    _host: HostTable,
    copy: PathBuf,
    /// The OS thread name of the generation's threads (see `module_threads`).
    thread_tag: String,
}

/// What unloading a library did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unloaded {
    /// The dynamic loader unmapped it.
    Unmapped,
    /// Closed, but the dynamic loader keeps it mapped (thread-local
    /// destructors of a thread that still runs pin it).
    StillMapped,
    /// Threads the module started still run its code: it stays loaded for the
    /// rest of the process, never closed under them.
    KeptForThreads(usize),
}

impl LoadedLibrary {
    /// The file the library was loaded from.
    pub fn path(&self) -> &Path {
        &self.copy
    }

    /// Unloads the library unless threads the module started still run, and
    /// says what happened.
    pub fn unload(mut self) -> Unloaded {
        let outcome = self.close();
        if outcome == Unloaded::Unmapped && is_mapped(&self.copy) {
            return Unloaded::StillMapped;
        }
        outcome
    }

    /// Closes the library, or keeps it loaded for good when threads named as
    /// its generation still run; removes the copy either way (a mapping lives on
    /// without its file).
    fn close(&mut self) -> Unloaded {
        let Some(library) = self.library.take() else {
            return Unloaded::Unmapped;
        };
        let running = module_threads::left_running(&self.thread_tag);
        let outcome = if running > 0 {
            // Never closed: a thread still runs code of this library.
            std::mem::forget(library);
            Unloaded::KeptForThreads(running)
        } else {
            drop(library);
            Unloaded::Unmapped
        };
        let _ = fs::remove_file(&self.copy);
        outcome
    }
}

impl Drop for LoadedLibrary {
    fn drop(&mut self) {
        if let Unloaded::KeptForThreads(count) = self.close() {
            tracing::warn!(
                "a module library left {count} thread(s) running: it stays loaded ({})",
                self.copy.display()
            );
        }
    }
}

/// Whether a file is mapped into this process (Linux: /proc/self/maps).
pub fn is_mapped(path: &Path) -> bool {
    let Ok(maps) = fs::read_to_string("/proc/self/maps") else {
        return false;
    };
    let needle = path.to_string_lossy();
    maps.lines()
        .any(|line| line.ends_with(&*needle) || line.contains(&format!("{needle} (deleted)")))
}

impl ModuleInstance {
    /// The generation number (1 for the first load).
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The package name and SDK version the module declares.
    pub fn declared(&self) -> (String, String) {
        // SAFETY: descriptor strings are `'static` data of the loaded library.
        unsafe {
            (
                lossy(self.descriptor.package_name),
                lossy(self.descriptor.sdk_version),
            )
        }
    }

    fn call(
        &mut self,
        f: impl FnOnce(&ModuleDescriptor, *mut c_void, ByteSink<'_>) -> Status,
    ) -> Result<(), Cause> {
        let mut message = Vec::new();
        let status = f(
            self.descriptor,
            self.instance,
            ByteSink::to_vec(&mut message),
        );
        if status == STATUS_OK {
            Ok(())
        } else {
            Err(cause(status, &message))
        }
    }

    /// `Module::initialize` with its config (a JSON object) and saved state.
    pub fn initialize(&mut self, config_json: &[u8], state: Option<&[u8]>) -> Result<(), Cause> {
        // SAFETY: live instance of this descriptor, borrows valid for the call.
        self.call(|d, i, err| unsafe {
            (d.initialize)(
                i,
                RBytes::new(config_json),
                RBytes::new(state.unwrap_or_default()),
                state.is_some(),
                err,
            )
        })
    }

    /// `Module::start`.
    pub fn start(&mut self) -> Result<(), Cause> {
        // SAFETY: live instance of this descriptor.
        self.call(|d, i, err| unsafe { (d.start)(i, err) })
    }

    /// `Module::on_event`.
    pub fn on_event(&mut self, event: Delivery<'_>) -> Result<(), Cause> {
        let envelope = Envelope {
            id: event.id,
            published_at_ms: event.published_at_ms,
            source: RStr::new(event.source),
            kind: event.exchange.kind.code(),
            request_id: event.exchange.request_id,
            reply_to: RStr::new(event.exchange.reply_to),
            delivery_count: event.delivery_count,
        };
        // SAFETY: live instance of this descriptor, borrows valid for the call.
        self.call(|d, i, err| unsafe {
            (d.on_event)(
                i,
                RStr::new(event.topic),
                RBytes::new(event.payload),
                envelope,
                err,
            )
        })
    }

    /// `Module::save_state`: `None` when the module keeps no state.
    pub fn save_state(&mut self) -> Result<Option<Vec<u8>>, Cause> {
        let mut state = Vec::new();
        let sink = ByteSink::to_vec(&mut state);
        // SAFETY: live instance of this descriptor; the sink borrows `state`.
        self.call(|d, i, err| unsafe { (d.save_state)(i, sink, err) })?;
        Ok((!state.is_empty()).then_some(state))
    }

    /// `Module::shutdown`.
    pub fn shutdown(&mut self) -> Result<(), Cause> {
        // SAFETY: live instance of this descriptor.
        self.call(|d, i, err| unsafe { (d.shutdown)(i, err) })
    }
}

/// A descriptor string, lossily decoded.
///
/// # Safety
/// `s` must point into the static data of a loaded library.
unsafe fn lossy(s: RStr<'static>) -> String {
    // SAFETY: forwarded contract.
    String::from_utf8_lossy(unsafe { s.as_bytes() }).into_owned()
}

impl ModuleInstance {
    /// Destroys the instance on a short-lived thread of its own and returns the
    /// library, to be unloaded once no thread that ran module code is left
    /// (thread-local destructors of the module would otherwise pin it).
    /// `None` if `destroy` did not return within `timeout` (the library then
    /// stays loaded, as its code may still run).
    pub fn retire(self, timeout: Duration) -> Option<LoadedLibrary> {
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let tag = self
            .library
            .as_ref()
            .map(|library| library.thread_tag.clone());
        let spawned = std::thread::Builder::new()
            .name("orch-retire".into())
            .spawn(move || {
                // `destroy` runs module code: a thread it starts is the generation's.
                if let Some(tag) = &tag {
                    module_threads::name_current_thread(tag);
                }
                let mut instance = self;
                instance.destroy();
                let _ = done_tx.send(instance.library.take());
            });
        let thread = spawned.ok()?;
        let library = done.recv_timeout(timeout).ok()?;
        let _ = thread.join();
        library
    }

    fn destroy(&mut self) {
        if self.instance.is_null() {
            return;
        }
        // SAFETY: `instance` came from this descriptor's `create` and is destroyed
        // exactly once (the pointer is nulled right after); nothing uses it later.
        unsafe { (self.descriptor.destroy)(self.instance) };
        self.instance = std::ptr::null_mut();
    }
}

impl Drop for ModuleInstance {
    fn drop(&mut self) {
        self.destroy();
        // The library goes last: its code ran `destroy` above.
        drop(self.library.take());
    }
}

#[cfg(test)]
mod tests;
