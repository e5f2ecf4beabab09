//! The function table handed to each generation of a module: the
//! `extern "C"` functions a module calls, each bound to its generation's
//! context, which the host never frees. Every function here catches panics:
//! a host bug never unwinds into a module.

// This file implements the C ABI between host and module.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use orch_sdk::abi::{
    ABI_VERSION, ByteSink, HostApi, RBytes, RStr, STATUS_ERROR, STATUS_OK, STATUS_PANIC, Status,
};
use tracing::level_filters::LevelFilter;

use super::{ModuleHostCtx, log_as};
use crate::log_limit;
use crate::status::MetricKind;

/// What a host function receives as its context: the module and the
/// generation that the calling instance belongs to.
///
/// Never freed (see [`HostTable`]): code of a retired generation (a thread the
/// module left running) may still call through it. It holds the module's
/// context weakly, so a module that is gone is told so instead of being kept
/// alive by its old generations.
pub(super) struct GenerationCtx {
    pub(super) module: Weak<ModuleHostCtx>,
    pub(super) name: Arc<str>,
    pub(super) generation: u32,
}

impl GenerationCtx {
    /// The module's context while this generation is the one the host serves.
    pub(super) fn active(&self) -> Result<Arc<ModuleHostCtx>, String> {
        self.module
            .upgrade()
            .filter(|module| module.active_generation() == self.generation)
            .ok_or_else(|| {
                format!(
                    "generation {} of '{}' has stopped",
                    self.generation, self.name
                )
            })
    }
}

/// The function table handed to one module instance (one generation).
///
/// The table and its context are leaked on purpose, once per generation
/// (`size_of::<HostApi>() + size_of::<GenerationCtx>()`, under 160 bytes, plus
/// the name's reference count): module code may hold `&'static HostApi` in
/// its statics and call it from threads of its own long after its generation
/// was retired, so freeing them would be a use-after-free in the host. A call
/// of a retired generation gets an error (`generation N of 'name' has
/// stopped`), a log line is still served.
#[derive(Clone, Copy)]
pub struct HostTable {
    api: &'static HostApi,
}

impl HostTable {
    /// A table whose functions act for generation `generation` of `ctx`'s module.
    pub fn new(module: &Arc<ModuleHostCtx>, generation: u32) -> Self {
        let ctx: &'static GenerationCtx = Box::leak(Box::new(GenerationCtx {
            module: Arc::downgrade(module),
            name: Arc::clone(&module.name),
            generation,
        }));
        let api = Box::leak(Box::new(HostApi {
            abi_version: ABI_VERSION,
            ctx: (ctx as *const GenerationCtx).cast(),
            publish: host_publish,
            subscribe: host_subscribe,
            unsubscribe: host_unsubscribe,
            schedule_timer: host_schedule_timer,
            cancel_timer: host_cancel_timer,
            log: host_log,
            max_log_level: host_max_log_level,
            shutdown_timeout_ms: module.shutdown_timeout_ms.load(Ordering::Acquire),
            request: host_request,
            reply: host_reply,
            hand_over_fd: host_hand_over_fd,
            take_fd: host_take_fd,
            metric_register: host_metric_register,
            metric_update: host_metric_update,
        }));
        Self { api }
    }

    /// The table's address, valid for the rest of the process.
    pub fn as_ptr(&self) -> *const HostApi {
        self.api
    }
}

/// Runs a host function body with the module's context, catching panics and
/// writing any error message into `err`.
///
/// # Safety
/// `ctx` must be the context pointer of a [`HostTable`] (never freed).
unsafe fn with_ctx(
    ctx: *const c_void,
    err: ByteSink<'_>,
    body: impl FnOnce(&ModuleHostCtx, u32) -> Result<(), String>,
) -> Status {
    if ctx.is_null() {
        err.write(b"null host context");
        return STATUS_ERROR;
    }
    // SAFETY: per this function's contract `ctx` is the context pointer of a
    // HostTable, and those are never freed.
    let ctx = unsafe { &*ctx.cast::<GenerationCtx>() };
    let module = match ctx.active() {
        Ok(module) => module,
        Err(message) => {
            err.write(message.as_bytes());
            return STATUS_ERROR;
        }
    };
    match catch_unwind(AssertUnwindSafe(|| body(&module, ctx.generation))) {
        Ok(Ok(())) => STATUS_OK,
        Ok(Err(message)) => {
            err.write(message.as_bytes());
            STATUS_ERROR
        }
        Err(_) => {
            err.write(b"the host panicked while serving this call (a host bug)");
            STATUS_PANIC
        }
    }
}

/// Reads a borrowed string from a module, refusing invalid UTF-8.
///
/// # Safety
/// `s` must be a live borrow for the duration of the current call.
unsafe fn text<'a>(s: RStr<'a>, what: &str) -> Result<&'a str, String> {
    // SAFETY: forwarded contract.
    unsafe { s.as_str() }.map_err(|e| format!("{what} is not valid UTF-8: {e}"))
}

unsafe extern "C" fn host_publish(
    ctx: *const c_void,
    topic: RStr<'_>,
    payload: RBytes<'_>,
    err: ByteSink<'_>,
) -> Status {
    // SAFETY: the module passes the ctx it was given and borrows valid for the call.
    unsafe {
        with_ctx(ctx, err, |ctx, generation| {
            ctx.publish(generation, text(topic, "topic")?, payload.as_slice())
        })
    }
}

unsafe extern "C" fn host_request(
    ctx: *const c_void,
    topic: RStr<'_>,
    payload: RBytes<'_>,
    timeout_ms: u64,
    id_out: *mut u64,
    err: ByteSink<'_>,
) -> Status {
    // SAFETY: as in host_publish; `id_out` is checked for null before writing.
    unsafe {
        with_ctx(ctx, err, |ctx, generation| {
            if id_out.is_null() {
                return Err("null request id pointer".into());
            }
            let id = ctx.request(
                generation,
                text(topic, "topic")?,
                payload.as_slice(),
                Duration::from_millis(timeout_ms),
            )?;
            id_out.write(id);
            Ok(())
        })
    }
}

unsafe extern "C" fn host_reply(
    ctx: *const c_void,
    reply_to: RStr<'_>,
    request_id: u64,
    payload: RBytes<'_>,
    err: ByteSink<'_>,
) -> Status {
    // SAFETY: as in host_publish.
    unsafe {
        with_ctx(ctx, err, |ctx, generation| {
            ctx.reply(
                generation,
                text(reply_to, "reply_to")?,
                request_id,
                payload.as_slice(),
            )
        })
    }
}

unsafe extern "C" fn host_hand_over_fd(
    ctx: *const c_void,
    key: RStr<'_>,
    fd: i32,
    err: ByteSink<'_>,
) -> Status {
    if fd < 0 {
        err.write(b"not a file descriptor (negative)");
        return STATUS_ERROR;
    }
    // SAFETY: per the ABI the module gives up `fd`, an open descriptor it
    // owned, with this call: the host owns it now and closes it on any error.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: as in host_publish.
    unsafe { with_ctx(ctx, err, |ctx, _| ctx.hand_over_fd(text(key, "key")?, fd)) }
}

unsafe extern "C" fn host_take_fd(
    ctx: *const c_void,
    key: RStr<'_>,
    fd_out: *mut i32,
    err: ByteSink<'_>,
) -> Status {
    // SAFETY: as in host_publish; `fd_out` is checked for null before writing.
    unsafe {
        with_ctx(ctx, err, |ctx, _| {
            if fd_out.is_null() {
                return Err("null descriptor pointer".into());
            }
            let fd = ctx.take_fd(text(key, "key")?);
            fd_out.write(fd.map_or(-1, IntoRawFd::into_raw_fd));
            Ok(())
        })
    }
}

unsafe extern "C" fn host_metric_register(
    ctx: *const c_void,
    kind: u32,
    name: RStr<'_>,
    help: RStr<'_>,
    id_out: *mut u64,
    err: ByteSink<'_>,
) -> Status {
    // SAFETY: as in host_publish; `id_out` is checked for null before writing.
    unsafe {
        with_ctx(ctx, err, |ctx, _| {
            if id_out.is_null() {
                return Err("null id pointer".into());
            }
            let kind = MetricKind::from_code(kind)
                .ok_or_else(|| format!("unknown metric kind {kind} (0 counter, 1 gauge)"))?;
            let id = ctx.register_metric(kind, text(name, "name")?, text(help, "help")?)?;
            id_out.write(id);
            Ok(())
        })
    }
}

unsafe extern "C" fn host_metric_update(ctx: *const c_void, id: u64, set: bool, value: f64) {
    if ctx.is_null() {
        return;
    }
    // SAFETY: the context pointer of a HostTable, never freed (see with_ctx).
    let generation = unsafe { &*ctx.cast::<GenerationCtx>() };
    // A stopped generation's updates are dropped; a panic never crosses the ABI.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if let Ok(module) = generation.active() {
            module.update_metric(id, set, value);
        }
    }));
}

unsafe extern "C" fn host_subscribe(
    ctx: *const c_void,
    topic: RStr<'_>,
    err: ByteSink<'_>,
) -> Status {
    // SAFETY: as in host_publish.
    unsafe { with_ctx(ctx, err, |ctx, _| ctx.subscribe(text(topic, "topic")?)) }
}

unsafe extern "C" fn host_unsubscribe(
    ctx: *const c_void,
    topic: RStr<'_>,
    err: ByteSink<'_>,
) -> Status {
    // SAFETY: as in host_publish.
    unsafe {
        with_ctx(ctx, err, |ctx, _| {
            ctx.unsubscribe(text(topic, "topic")?);
            Ok(())
        })
    }
}

unsafe extern "C" fn host_schedule_timer(
    ctx: *const c_void,
    topic: RStr<'_>,
    interval_ms: u64,
    repeat: bool,
    id_out: *mut u64,
    err: ByteSink<'_>,
) -> Status {
    // SAFETY: as in host_publish; `id_out` is checked for null before writing.
    unsafe {
        with_ctx(ctx, err, |ctx, _| {
            if id_out.is_null() {
                return Err("null timer id pointer".into());
            }
            let id = ctx.schedule(
                text(topic, "timer topic")?,
                Duration::from_millis(interval_ms),
                repeat,
            )?;
            id_out.write(id);
            Ok(())
        })
    }
}

unsafe extern "C" fn host_cancel_timer(ctx: *const c_void, id: u64, err: ByteSink<'_>) -> Status {
    // SAFETY: as in host_publish.
    unsafe { with_ctx(ctx, err, |ctx, _| ctx.cancel(id)) }
}

unsafe extern "C" fn host_log(
    ctx: *const c_void,
    level: u32,
    _target: RStr<'_>,
    message: RStr<'_>,
) {
    if ctx.is_null() {
        return;
    }
    // SAFETY: the module passes the ctx of its HostTable (never freed) and a
    // message borrowed for the call. Logging is served for any generation (a
    // retiring generation may still log from its drop, a thread it left
    // running from anywhere); panics are contained.
    let _ = catch_unwind(AssertUnwindSafe(|| unsafe {
        let ctx = &*ctx.cast::<GenerationCtx>();
        let text = String::from_utf8_lossy(message.as_bytes());
        match ctx.module.upgrade() {
            Some(module) => module.log(level, &text),
            // The module is gone (a thread it left running): still tagged.
            None => log_as(
                &ctx.name,
                level,
                &log_limit::escape_and_cap(&text, log_limit::MAX_LINE),
            ),
        }
    }));
}

unsafe extern "C" fn host_max_log_level(_ctx: *const c_void) -> u32 {
    match LevelFilter::current() {
        LevelFilter::OFF => 0,
        LevelFilter::ERROR => 1,
        LevelFilter::WARN => 2,
        LevelFilter::INFO => 3,
        LevelFilter::DEBUG => 4,
        _ => 5,
    }
}
