//! The versioned C ABI between the host and a module library.
//!
//! Rust has no stable ABI and a hot-reloaded library may come from another compile
//! than the host, so the two meet only through the `#[repr(C)]` types below:
//! borrowed strings and byte slices as pointer + length, status codes, and
//! callbacks. Nothing allocated on one side is freed on the other: whenever a side
//! hands out bytes of its own (an error message, saved state), it writes them into a
//! [`ByteSink`] that the receiving side owns, and the receiver copies them.
//!
//! The first field of [`ModuleDescriptor`] is always the ABI version, so a host can
//! read it from a library of any version before it touches anything else.

// This file implements the C ABI between host and module.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::marker::PhantomData;

/// The ABI version this SDK speaks. Bumped on any change to the types in this file.
pub const ABI_VERSION: u32 = 5;

/// The version of this SDK crate, recorded in every module built with it.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The symbol every module library exports (see [`crate::export_module!`]).
pub const ENTRY_SYMBOL: &str = "orch_module_v1";

/// The optional symbol of a module with typed topics (see the orch-typed
/// crate): writes a JSON document `{"version": 1, "publishes": {topic:
/// schema}, "subscribes": {pattern: schema}}` to its sink. The host calls it
/// in a throwaway process of its own, never in the orchestrator.
pub const TYPES_SYMBOL: &str = "orch_module_topic_types_v1";

/// The types symbol's type.
pub type TypesFn = unsafe extern "C" fn(out: ByteSink<'_>) -> Status;

/// The entry symbol's type: returns the module's static descriptor.
pub type EntryFn = unsafe extern "C" fn() -> *const ModuleDescriptor;

/// Result of a call across the boundary.
pub type Status = i32;
/// The call succeeded.
pub const STATUS_OK: Status = 0;
/// The callee returned an error; its message was written to the error sink.
pub const STATUS_ERROR: Status = 1;
/// The callee panicked; the panic message was written to the error sink.
pub const STATUS_PANIC: Status = 2;

/// A borrowed UTF-8 string: valid only for the duration of the call it is passed to
/// (or for `'static` when it lives in a descriptor).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RStr<'a> {
    ptr: *const u8,
    len: usize,
    _borrow: PhantomData<&'a str>,
}

impl<'a> RStr<'a> {
    /// Borrows `s` for the boundary.
    pub const fn new(s: &'a str) -> Self {
        Self {
            ptr: s.as_ptr(),
            len: s.len(),
            _borrow: PhantomData,
        }
    }

    /// The string, checked to be UTF-8 (the other side may be any compile).
    ///
    /// # Safety
    /// `ptr`/`len` must describe readable memory for `'a`, as [`RStr::new`] ensures
    /// and as every producer on the other side of the ABI promises.
    pub unsafe fn as_str(&self) -> Result<&'a str, std::str::Utf8Error> {
        // SAFETY: the caller guarantees that ptr/len are a live borrow.
        std::str::from_utf8(unsafe { self.as_bytes() })
    }

    /// The string, not checked: for the strings of an event the host hands a
    /// module on every delivery, where the check would cost more than the
    /// handler's own work. The host builds every `RStr` it passes from a
    /// `&str` ([`RStr::new`]); it checks what a module passes it with
    /// [`RStr::as_str`] (a module is not trusted, its host is). Checked in
    /// debug builds.
    ///
    /// # Safety
    /// As for [`RStr::as_str`], and the bytes must be UTF-8, as they are in
    /// every `RStr` the host passes.
    pub unsafe fn as_str_from_host(&self) -> &'a str {
        // SAFETY: the caller guarantees a live borrow.
        let bytes = unsafe { self.as_bytes() };
        debug_assert!(
            std::str::from_utf8(bytes).is_ok(),
            "the host passed non-UTF-8"
        );
        // SAFETY: the caller guarantees UTF-8 (the host's strings are `&str`).
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    /// The string's raw bytes.
    ///
    /// # Safety
    /// As for [`RStr::as_str`].
    pub unsafe fn as_bytes(&self) -> &'a [u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: non-empty, and the caller guarantees ptr/len are a live borrow.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// A borrowed byte slice, with the same rules as [`RStr`].
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RBytes<'a> {
    ptr: *const u8,
    len: usize,
    _borrow: PhantomData<&'a [u8]>,
}

impl<'a> RBytes<'a> {
    /// Borrows `bytes` for the boundary.
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
            _borrow: PhantomData,
        }
    }

    /// The bytes.
    ///
    /// # Safety
    /// `ptr`/`len` must describe readable memory for `'a`.
    pub unsafe fn as_slice(&self) -> &'a [u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: non-empty, and the caller guarantees ptr/len are a live borrow.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// A place the other side writes bytes into; the owner of `ctx` copies them out.
#[repr(C)]
pub struct ByteSink<'a> {
    ctx: *mut c_void,
    write: unsafe extern "C" fn(ctx: *mut c_void, ptr: *const u8, len: usize),
    _borrow: PhantomData<&'a mut Vec<u8>>,
}

unsafe extern "C" fn append_to_vec(ctx: *mut c_void, ptr: *const u8, len: usize) {
    if ctx.is_null() || (ptr.is_null() && len > 0) {
        return;
    }
    // SAFETY: `ctx` was made from `&mut Vec<u8>` by `ByteSink::to_vec`, which
    // borrows the vector for the sink's lifetime; ptr/len come from the writer,
    // which passes a live slice (see `ByteSink::write`).
    let (buffer, bytes) = unsafe {
        (
            &mut *ctx.cast::<Vec<u8>>(),
            if len == 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts(ptr, len)
            },
        )
    };
    buffer.extend_from_slice(bytes);
}

impl<'a> ByteSink<'a> {
    /// A sink that appends everything written to it to `buffer`.
    pub fn to_vec(buffer: &'a mut Vec<u8>) -> Self {
        Self {
            ctx: (buffer as *mut Vec<u8>).cast(),
            write: append_to_vec,
            _borrow: PhantomData,
        }
    }

    /// Writes `bytes` into the sink (the owner copies them before this returns).
    pub fn write(&self, bytes: &[u8]) {
        // SAFETY: the sink was made by its owner for the duration of this call
        // (ByteSink is only ever passed by value into a callee), and `bytes` is a
        // live slice for the duration of `write`.
        unsafe { (self.write)(self.ctx, bytes.as_ptr(), bytes.len()) }
    }
}

/// The functions the host offers a module. Lives in host memory for as long as the
/// module instance it was handed to.
#[repr(C)]
pub struct HostApi {
    /// The host's [`ABI_VERSION`].
    pub abi_version: u32,
    /// Opaque host context for this module instance; passed back on every call.
    pub ctx: *const c_void,
    /// Publishes `payload` (JSON bytes) on `topic`.
    pub publish: unsafe extern "C" fn(
        ctx: *const c_void,
        topic: RStr<'_>,
        payload: RBytes<'_>,
        err: ByteSink<'_>,
    ) -> Status,
    /// Subscribes the module to a topic or pattern (`*` one token, `>` the rest).
    pub subscribe:
        unsafe extern "C" fn(ctx: *const c_void, topic: RStr<'_>, err: ByteSink<'_>) -> Status,
    /// Removes one subscription of the module.
    pub unsubscribe:
        unsafe extern "C" fn(ctx: *const c_void, topic: RStr<'_>, err: ByteSink<'_>) -> Status,
    /// Schedules a timer that delivers an event on `topic` to the module's own
    /// mailbox after `interval_ms`, repeatedly if `repeat`; writes its id to `id_out`.
    pub schedule_timer: unsafe extern "C" fn(
        ctx: *const c_void,
        topic: RStr<'_>,
        interval_ms: u64,
        repeat: bool,
        id_out: *mut u64,
        err: ByteSink<'_>,
    ) -> Status,
    /// Cancels a timer of the module.
    pub cancel_timer:
        unsafe extern "C" fn(ctx: *const c_void, id: u64, err: ByteSink<'_>) -> Status,
    /// Logs a line on the host, tagged with the module's name.
    /// `level`: 1 error, 2 warn, 3 info, 4 debug, 5 trace.
    pub log:
        unsafe extern "C" fn(ctx: *const c_void, level: u32, target: RStr<'_>, message: RStr<'_>),
    /// The most verbose level the host currently records (same numbering as `log`).
    pub max_log_level: unsafe extern "C" fn(ctx: *const c_void) -> u32,
    /// `timeouts.shutdown` in milliseconds: the module's `shutdown` call, and the
    /// joining of the threads it started with `Context::spawn`, must end within it
    /// (since ABI v2).
    pub shutdown_timeout_ms: u64,
    /// Publishes `payload` on `topic` as a request that the first subscriber
    /// answers with `reply`; its reply, or a timeout after `timeout_ms`, comes to
    /// the module's own mailbox. Writes the request's id to `id_out` (ABI v3).
    pub request: unsafe extern "C" fn(
        ctx: *const c_void,
        topic: RStr<'_>,
        payload: RBytes<'_>,
        timeout_ms: u64,
        id_out: *mut u64,
        err: ByteSink<'_>,
    ) -> Status,
    /// Answers request `request_id` of module `reply_to` with `payload` (ABI v3).
    pub reply: unsafe extern "C" fn(
        ctx: *const c_void,
        reply_to: RStr<'_>,
        request_id: u64,
        payload: RBytes<'_>,
        err: ByteSink<'_>,
    ) -> Status,
    /// Gives the host file descriptor `fd` (a listening socket, say) under
    /// `key`, for the module's next generation to take with `take_fd` after a
    /// reload. The host owns `fd` from this call on, whatever it returns
    /// (ABI v3).
    pub hand_over_fd: unsafe extern "C" fn(
        ctx: *const c_void,
        key: RStr<'_>,
        fd: i32,
        err: ByteSink<'_>,
    ) -> Status,
    /// Takes the descriptor a previous generation handed over under `key`:
    /// writes it to `fd_out` (the caller owns it then), or -1 when there is
    /// none (ABI v3).
    pub take_fd: unsafe extern "C" fn(
        ctx: *const c_void,
        key: RStr<'_>,
        fd_out: *mut i32,
        err: ByteSink<'_>,
    ) -> Status,
    /// Registers (or finds) the module's metric `name` of `kind` (0 counter,
    /// 1 gauge) with `help`; writes its id to `id_out` (ABI v4).
    pub metric_register: unsafe extern "C" fn(
        ctx: *const c_void,
        kind: u32,
        name: RStr<'_>,
        help: RStr<'_>,
        id_out: *mut u64,
        err: ByteSink<'_>,
    ) -> Status,
    /// Adds `value` to metric `id`, or sets it when `set` (gauges); updates
    /// of a stopped generation or an unknown id are dropped (ABI v4).
    pub metric_update: unsafe extern "C" fn(ctx: *const c_void, id: u64, set: bool, value: f64),
}

/// [`Envelope::kind`] of a plain published event.
pub const KIND_PUBLISH: u32 = 0;
/// [`Envelope::kind`] of a request: answer it with [`HostApi::reply`].
pub const KIND_REQUEST: u32 = 1;
/// [`Envelope::kind`] of the answer to the module's own request.
pub const KIND_REPLY: u32 = 2;
/// [`Envelope::kind`] of the host's notice that a request timed out unanswered.
pub const KIND_TIMEOUT: u32 = 3;
/// [`Envelope::kind`] of the host's notice that no module subscribes to a
/// request's topic.
pub const KIND_NO_RESPONDERS: u32 = 4;

/// What the host says of an event besides its topic and payload (since ABI v2).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Envelope<'a> {
    /// The event's id, unique in the publishing process.
    pub id: u64,
    /// When it was published, in milliseconds since the Unix epoch.
    pub published_at_ms: u64,
    /// The publishing module's name; empty for the host.
    pub source: RStr<'a>,
    /// What the event is: one of the `KIND_*` constants (ABI v3).
    pub kind: u32,
    /// For a request, its id; for a reply, timeout or no-responders notice, the
    /// id of the request it answers; 0 otherwise (ABI v3).
    pub request_id: u64,
    /// For a request, the module that waits for the answer; empty otherwise
    /// (ABI v3).
    pub reply_to: RStr<'a>,
    /// How many times the event has been delivered to this application: 1,
    /// or more when the NATS bridge delivers a shared-work job again after a
    /// node failed to acknowledge it (since ABI v5).
    pub delivery_count: u32,
}

/// A module's static description and entry points, returned by [`ENTRY_SYMBOL`].
///
/// Every function catches panics and reports them as [`STATUS_PANIC`]; none unwinds.
#[repr(C)]
pub struct ModuleDescriptor {
    /// Always first: the [`ABI_VERSION`] the module was built with.
    pub abi_version: u32,
    /// `size_of::<ModuleDescriptor>()` as the module saw it: a second sanity check.
    pub descriptor_size: u32,
    /// The SDK version the module was built with.
    pub sdk_version: RStr<'static>,
    /// The module's cargo package name.
    pub package_name: RStr<'static>,
    /// Creates an instance bound to `host` (which outlives it); writes it to `instance_out`.
    pub create: unsafe extern "C" fn(
        host: *const HostApi,
        instance_out: *mut *mut c_void,
        err: ByteSink<'_>,
    ) -> Status,
    /// `Module::initialize` with the module's config (JSON) and, after a reload,
    /// the state its previous generation saved (`has_state`).
    pub initialize: unsafe extern "C" fn(
        instance: *mut c_void,
        config_json: RBytes<'_>,
        state: RBytes<'_>,
        has_state: bool,
        err: ByteSink<'_>,
    ) -> Status,
    /// `Module::start`: from now on the module may publish.
    pub start: unsafe extern "C" fn(instance: *mut c_void, err: ByteSink<'_>) -> Status,
    /// `Module::on_event` with the event's topic and JSON payload.
    pub on_event: unsafe extern "C" fn(
        instance: *mut c_void,
        topic: RStr<'_>,
        payload: RBytes<'_>,
        envelope: Envelope<'_>,
        err: ByteSink<'_>,
    ) -> Status,
    /// `Module::save_state`: writes the state to `state_out` (nothing written = no state).
    pub save_state: unsafe extern "C" fn(
        instance: *mut c_void,
        state_out: ByteSink<'_>,
        err: ByteSink<'_>,
    ) -> Status,
    /// `Module::shutdown`.
    pub shutdown: unsafe extern "C" fn(instance: *mut c_void, err: ByteSink<'_>) -> Status,
    /// Drops the instance. Never fails; a panic in `Drop` is swallowed and logged.
    pub destroy: unsafe extern "C" fn(instance: *mut c_void),
}

// SAFETY: a descriptor holds only function pointers and `'static` string
// borrows, none of which carry thread affinity; it is immutable once built.
unsafe impl Sync for ModuleDescriptor {}

// SAFETY: `HostApi` is immutable after construction; the host guarantees that
// its `ctx` and functions may be used from any thread.
unsafe impl Sync for HostApi {}
// SAFETY: as above.
unsafe impl Send for HostApi {}
