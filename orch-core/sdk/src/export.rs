//! The boundary glue behind [`crate::export_module!`]: turns a safe [`Module`] into
//! the C ABI of [`crate::abi`]. Every entry point catches panics; none unwinds.
//!
//! Not for direct use: the macro is the public interface.

// This file implements the C ABI between host and module.
#![allow(unsafe_code)]

use std::any::Any;
use std::cell::RefCell;
use std::ffi::c_void;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Once};
use std::time::Duration;

use crate::abi::{
    ABI_VERSION, ByteSink, Envelope, HostApi, ModuleDescriptor, RBytes, RStr, SDK_VERSION,
    STATUS_ERROR, STATUS_OK, STATUS_PANIC, Status,
};
use crate::context::{Host, PublishSink, Publisher, TimerId};
use crate::threads::{ModuleThreads, ThreadBody};
use crate::{Config, Context, Event, EventKind, Exchange, Module, RequestId};

/// Exports `$ty` (which implements [`Module`](crate::Module) and `Default`) as a
/// cargo-orch module: one per library.
#[macro_export]
macro_rules! export_module {
    ($ty:ty) => {
        /// The cargo-orch entry point: returns this module's descriptor.
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub extern "C" fn orch_module_v1() -> *const $crate::abi::ModuleDescriptor {
            static DESCRIPTOR: $crate::abi::ModuleDescriptor =
                $crate::export::descriptor::<$ty>(env!("CARGO_PKG_NAME"));
            &DESCRIPTOR
        }
    };
}

/// The descriptor of module type `T` in package `package_name`.
pub const fn descriptor<T: Module + Default>(package_name: &'static str) -> ModuleDescriptor {
    ModuleDescriptor {
        abi_version: ABI_VERSION,
        descriptor_size: size_of::<ModuleDescriptor>() as u32,
        sdk_version: RStr::new(SDK_VERSION),
        package_name: RStr::new(package_name),
        create: create::<T>,
        initialize: initialize::<T>,
        start: start::<T>,
        on_event: on_event::<T>,
        save_state: save_state::<T>,
        shutdown: shutdown::<T>,
        destroy: destroy::<T>,
    }
}

/// One module instance as the host holds it (behind an opaque pointer).
struct Instance<T> {
    module: T,
    host: FfiHost,
}

/// The real host, reached through the [`HostApi`] table it handed to `create`,
/// and the threads the module started through it.
struct FfiHost {
    api: &'static HostApi,
    threads: RefCell<ModuleThreads>,
}

impl FfiHost {
    fn new(api: &'static HostApi) -> Self {
        Self {
            api,
            threads: RefCell::default(),
        }
    }

    fn call(&self, f: impl FnOnce(ByteSink<'_>) -> Status) -> crate::Result<()> {
        call(f)
    }

    /// Stops and joins the module's threads within three quarters of the
    /// host's shutdown timeout (the rest is the host's margin).
    fn stop_threads(&self) {
        let within = Duration::from_millis(self.api.shutdown_timeout_ms.saturating_mul(3) / 4);
        self.threads.borrow_mut().stop_all(within);
    }
}

/// Runs one host call, turning its status and message into a `Result`.
fn call(f: impl FnOnce(ByteSink<'_>) -> Status) -> crate::Result<()> {
    let mut message = Vec::new();
    match f(ByteSink::to_vec(&mut message)) {
        STATUS_OK => Ok(()),
        _ => Err(String::from_utf8_lossy(&message).into_owned().into()),
    }
}

/// Publishes through `api` (the host checks the generation).
fn publish_via(api: &HostApi, topic: &str, payload: &[u8]) -> crate::Result<()> {
    // SAFETY: the host never frees its tables, and the borrowed topic and
    // payload live for the call.
    call(|err| unsafe { (api.publish)(api.ctx, RStr::new(topic), RBytes::new(payload), err) })
}

/// Publishes a request through `api`; returns its id.
fn request_via(
    api: &HostApi,
    topic: &str,
    payload: &[u8],
    timeout: Duration,
) -> crate::Result<RequestId> {
    let millis = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    let mut id = 0u64;
    // SAFETY: as in `publish_via`; `id` is a live local the host writes once.
    call(|err| unsafe {
        (api.request)(
            api.ctx,
            RStr::new(topic),
            RBytes::new(payload),
            millis,
            &mut id,
            err,
        )
    })?;
    Ok(RequestId(id))
}

/// Answers a request through `api`.
fn reply_via(api: &HostApi, reply_to: &str, id: RequestId, payload: &[u8]) -> crate::Result<()> {
    // SAFETY: as in `publish_via`.
    call(|err| unsafe {
        (api.reply)(
            api.ctx,
            RStr::new(reply_to),
            id.0,
            RBytes::new(payload),
            err,
        )
    })
}

impl Host for FfiHost {
    fn publish(&self, topic: &str, payload: &[u8]) -> crate::Result<()> {
        publish_via(self.api, topic, payload)
    }

    fn request(&self, topic: &str, payload: &[u8], timeout: Duration) -> crate::Result<RequestId> {
        request_via(self.api, topic, payload, timeout)
    }

    fn reply(&self, reply_to: &str, id: RequestId, payload: &[u8]) -> crate::Result<()> {
        reply_via(self.api, reply_to, id, payload)
    }

    fn subscribe(&self, topic: &str) -> crate::Result<()> {
        // SAFETY: as in `publish`.
        self.call(|err| unsafe { (self.api.subscribe)(self.api.ctx, RStr::new(topic), err) })
    }

    fn unsubscribe(&self, topic: &str) -> crate::Result<()> {
        // SAFETY: as in `publish`.
        self.call(|err| unsafe { (self.api.unsubscribe)(self.api.ctx, RStr::new(topic), err) })
    }

    fn schedule_timer(
        &self,
        topic: &str,
        interval: Duration,
        repeat: bool,
    ) -> crate::Result<TimerId> {
        let millis = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        let mut id = 0u64;
        // SAFETY: as in `publish`; `id` is a live local the host writes once.
        self.call(|err| unsafe {
            (self.api.schedule_timer)(self.api.ctx, RStr::new(topic), millis, repeat, &mut id, err)
        })?;
        Ok(TimerId(id))
    }

    fn cancel_timer(&self, id: TimerId) -> crate::Result<()> {
        // SAFETY: as in `publish`.
        self.call(|err| unsafe { (self.api.cancel_timer)(self.api.ctx, id.0, err) })
    }

    fn hand_over_fd(&self, key: &str, fd: OwnedFd) -> crate::Result<()> {
        let raw = fd.into_raw_fd();
        // SAFETY: as in `publish`; the host owns `raw` from this call on.
        self.call(|err| unsafe { (self.api.hand_over_fd)(self.api.ctx, RStr::new(key), raw, err) })
    }

    fn take_fd(&self, key: &str) -> crate::Result<Option<OwnedFd>> {
        let mut raw: i32 = -1;
        // SAFETY: as in `publish`; `raw` is a live local the host writes once.
        self.call(|err| unsafe {
            (self.api.take_fd)(self.api.ctx, RStr::new(key), &mut raw, err)
        })?;
        if raw < 0 {
            return Ok(None);
        }
        // SAFETY: the host gave up the descriptor it held for this module and
        // now hands its ownership to this caller (ABI contract of `take_fd`).
        Ok(Some(unsafe { OwnedFd::from_raw_fd(raw) }))
    }

    fn publisher(&self) -> Publisher {
        Publisher::new(Arc::new(FfiPublisher { api: self.api }))
    }

    fn spawn(&self, name: &str, body: ThreadBody) -> crate::Result<()> {
        let publisher = self.publisher();
        self.threads.borrow_mut().spawn(name, publisher, body)
    }

    fn metrics(&self) -> crate::Metrics {
        crate::Metrics::new(Arc::new(FfiMetrics { api: self.api }))
    }
}

/// The module's metrics through the host's table, from any thread (the host
/// never frees it and drops a stopped generation's updates).
struct FfiMetrics {
    api: &'static HostApi,
}

impl crate::MetricSink for FfiMetrics {
    fn register(&self, kind: crate::MetricKind, name: &str, help: &str) -> crate::Result<u64> {
        let api = self.api;
        let mut id = 0u64;
        // SAFETY: the host never frees its tables; the borrowed strings live
        // for the call and `id` is a live local the host writes once.
        call(|err| unsafe {
            (api.metric_register)(
                api.ctx,
                kind.code(),
                RStr::new(name),
                RStr::new(help),
                &mut id,
                err,
            )
        })?;
        Ok(id)
    }

    fn update(&self, id: u64, set: bool, value: f64) {
        // SAFETY: the host never frees its tables; the call takes plain values.
        unsafe { (self.api.metric_update)(self.api.ctx, id, set, value) }
    }
}

/// A [`Publisher`]'s way to the real host: the same table, from any thread
/// (the host never frees it, and answers a stopped generation with an error).
struct FfiPublisher {
    api: &'static HostApi,
}

impl PublishSink for FfiPublisher {
    fn publish(&self, topic: &str, payload: &[u8]) -> crate::Result<()> {
        publish_via(self.api, topic, payload)
    }

    fn request(&self, topic: &str, payload: &[u8], timeout: Duration) -> crate::Result<RequestId> {
        request_via(self.api, topic, payload, timeout)
    }

    fn reply(&self, reply_to: &str, id: RequestId, payload: &[u8]) -> crate::Result<()> {
        reply_via(self.api, reply_to, id, payload)
    }
}

thread_local! {
    /// Message and location of the last panic caught by `guard` on this thread.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    /// How many `guard` calls are active on this thread.
    static GUARDS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Installs (once per library) a panic hook that, inside a boundary call, records
/// the message and location instead of printing: the host reports it with the
/// module's name and phase. Panics elsewhere (a thread the module spawned) go to
/// the previous hook as usual.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if GUARDS.with(|g| g.get()) == 0 {
                previous(info);
                return;
            }
            let location = info
                .location()
                .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_default();
            let text = format!("{}{location}", payload_text(info.payload()));
            LAST_PANIC.with(|last| *last.borrow_mut() = Some(text));
        }));
    });
}

fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Runs `f`, turning an error into [`STATUS_ERROR`] and a panic into
/// [`STATUS_PANIC`], with the message written to `err`.
fn guard(err: &ByteSink<'_>, f: impl FnOnce() -> crate::Result<()>) -> Status {
    GUARDS.with(|g| g.set(g.get() + 1));
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    GUARDS.with(|g| g.set(g.get().saturating_sub(1)));
    match outcome {
        Ok(Ok(())) => STATUS_OK,
        Ok(Err(error)) => {
            err.write(error_chain(&*error).as_bytes());
            STATUS_ERROR
        }
        Err(payload) => {
            let text = LAST_PANIC
                .with(|last| last.borrow_mut().take())
                .unwrap_or_else(|| payload_text(&*payload));
            err.write(format!("panicked: {text}").as_bytes());
            STATUS_PANIC
        }
    }
}

/// `error: cause: cause` for an error and its sources.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Runs `f` on the instance behind `instance`.
///
/// # Safety
/// `instance` must come from `create::<T>` and not be destroyed, and the host must
/// not call into the same instance from two threads at once (it runs each module on
/// one actor thread).
unsafe fn with_instance<T: Module>(
    instance: *mut c_void,
    err: ByteSink<'_>,
    f: impl FnOnce(&mut T, &FfiHost) -> crate::Result<()>,
) -> Status {
    if instance.is_null() {
        err.write(b"the host passed a null module instance");
        return STATUS_ERROR;
    }
    // SAFETY: per this function's contract the pointer is a live, exclusively used
    // `Instance<T>` made by `create::<T>`.
    let instance = unsafe { &mut *instance.cast::<Instance<T>>() };
    guard(&err, || f(&mut instance.module, &instance.host))
}

unsafe extern "C" fn create<T: Module + Default>(
    host: *const HostApi,
    instance_out: *mut *mut c_void,
    err: ByteSink<'_>,
) -> Status {
    guard(&err, || {
        if host.is_null() || instance_out.is_null() {
            return Err("the host passed a null pointer to create".into());
        }
        // SAFETY: non-null, and the host guarantees the table outlives every
        // instance created with it (it is freed only after `destroy`).
        let api: &'static HostApi = unsafe { &*host };
        if api.abi_version != ABI_VERSION {
            return Err(format!(
                "host speaks ABI v{}, this module was built for ABI v{ABI_VERSION} \
                 (orch-sdk {SDK_VERSION}); rebuild the module against the host's orch-sdk",
                api.abi_version
            )
            .into());
        }
        install_panic_hook();
        crate::log_forward::install(api);
        let instance = Box::new(Instance {
            module: T::default(),
            host: FfiHost::new(api),
        });
        // SAFETY: `instance_out` is non-null and points to writable storage of the host.
        unsafe { instance_out.write(Box::into_raw(instance).cast()) };
        Ok(())
    })
}

unsafe extern "C" fn initialize<T: Module>(
    instance: *mut c_void,
    config_json: RBytes<'_>,
    state: RBytes<'_>,
    has_state: bool,
    err: ByteSink<'_>,
) -> Status {
    // SAFETY: the host passes a live instance and borrowed slices valid for the call.
    unsafe {
        let config_bytes = config_json.as_slice();
        let state_bytes = has_state.then(|| state.as_slice());
        with_instance::<T>(instance, err, |module, host| {
            let config = Config::from_json(config_bytes)?;
            module.initialize(&mut Context::new(host, state_bytes), &config)
        })
    }
}

unsafe extern "C" fn start<T: Module>(instance: *mut c_void, err: ByteSink<'_>) -> Status {
    // SAFETY: the host passes a live instance.
    unsafe {
        with_instance::<T>(instance, err, |module, host| {
            module.start(&mut Context::new(host, None))
        })
    }
}

unsafe extern "C" fn on_event<T: Module>(
    instance: *mut c_void,
    topic: RStr<'_>,
    payload: RBytes<'_>,
    envelope: Envelope<'_>,
    err: ByteSink<'_>,
) -> Status {
    // SAFETY: the host passes a live instance and borrows valid for the call,
    // its strings built from `&str` (UTF-8: see `RStr::as_str_from_host`).
    unsafe {
        let topic = topic.as_str_from_host();
        let payload = payload.as_slice();
        let source = match envelope.source.as_str_from_host() {
            "" => crate::event::HOST_SOURCE,
            source => source,
        };
        let reply_to = envelope.reply_to.as_str_from_host();
        with_instance::<T>(instance, err, |module, host| {
            let kind = EventKind::from_code(envelope.kind).ok_or_else(|| {
                format!(
                    "event on '{topic}' has kind {} that orch-sdk {SDK_VERSION} does not know",
                    envelope.kind
                )
            })?;
            let event = Event::with_envelope(
                topic,
                payload,
                envelope.id,
                source,
                envelope.published_at_ms,
            )
            .with_exchange(Exchange {
                kind,
                request_id: envelope.request_id,
                reply_to,
            })
            .with_delivery_count(envelope.delivery_count);
            module.on_event(&mut Context::new(host, None), &event)
        })
    }
}

unsafe extern "C" fn save_state<T: Module>(
    instance: *mut c_void,
    state_out: ByteSink<'_>,
    err: ByteSink<'_>,
) -> Status {
    // SAFETY: the host passes a live instance.
    unsafe {
        with_instance::<T>(instance, err, |module, host| {
            if let Some(state) = module.save_state(&mut Context::new(host, None))? {
                state_out.write(&serde_json::to_vec(&state)?);
            }
            Ok(())
        })
    }
}

unsafe extern "C" fn shutdown<T: Module>(instance: *mut c_void, err: ByteSink<'_>) -> Status {
    // SAFETY: the host passes a live instance.
    unsafe {
        with_instance::<T>(instance, err, |module, host| {
            let outcome = module.shutdown(&mut Context::new(host, None));
            // Then the module's own threads: stopped, joined within the timeout.
            host.stop_threads();
            outcome
        })
    }
}

unsafe extern "C" fn destroy<T: Module>(instance: *mut c_void) {
    if instance.is_null() {
        return;
    }
    // SAFETY: `instance` came from `Box::into_raw` in `create::<T>` and the host
    // calls `destroy` exactly once, after which it never uses the pointer again.
    let boxed = unsafe { Box::from_raw(instance.cast::<Instance<T>>()) };
    let mut message = Vec::new();
    let status = guard(&ByteSink::to_vec(&mut message), move || {
        // Threads of an instance that never shut down (a failed start) end too.
        boxed.host.stop_threads();
        drop(boxed);
        Ok(())
    });
    if status != STATUS_OK {
        tracing::error!(
            "module {}",
            String::from_utf8_lossy(&message).replacen(
                "panicked",
                "panicked while being dropped",
                1
            )
        );
    }
}

#[cfg(test)]
mod tests;
