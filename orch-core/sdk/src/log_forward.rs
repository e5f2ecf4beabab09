//! Forwards `tracing` events from a module library to the host's subscriber.
//!
//! A `cdylib` has its own copy of tracing's globals, so without this a module's
//! `tracing::info!` would go nowhere. On `create` the library installs, once, a
//! global subscriber that formats each event and passes it to the host's `log`
//! function; the host tags it with the module's name.

// This file implements the C ABI between host and module.
#![allow(unsafe_code)]

use std::fmt::Write as _;
use std::sync::Once;
use std::sync::atomic::{AtomicPtr, Ordering};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber};

use crate::abi::{HostApi, RStr};

static HOST: AtomicPtr<HostApi> = AtomicPtr::new(std::ptr::null_mut());

/// Points the forwarder at `api` and installs it as this library's global
/// subscriber (once; later instances just replace the host table).
pub(crate) fn install(api: &'static HostApi) {
    HOST.store((api as *const HostApi).cast_mut(), Ordering::Release);
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Fails only if the library installed another subscriber itself: keep that.
        let _ = tracing::subscriber::set_global_default(Forwarder);
    });
}

fn host() -> Option<&'static HostApi> {
    let ptr = HOST.load(Ordering::Acquire);
    // SAFETY: only ever set from a `&'static HostApi` in `install`.
    unsafe { ptr.as_ref() }
}

/// Level numbering of the ABI: 1 error .. 5 trace.
fn level_number(level: &Level) -> u32 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

struct Forwarder;

impl Subscriber for Forwarder {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // The host's level can change at run time: ask on every event.
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        host().is_some_and(|api| {
            // SAFETY: the table and its ctx outlive every instance of this library.
            level_number(metadata.level()) <= unsafe { (api.max_log_level)(api.ctx) }
        })
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let Some(api) = host() else { return };
        let mut line = LineVisitor::default();
        event.record(&mut line);
        let text = line.finish();
        let metadata = event.metadata();
        // SAFETY: the table outlives this instance; both strings live for the call.
        unsafe {
            (api.log)(
                api.ctx,
                level_number(metadata.level()),
                RStr::new(metadata.target()),
                RStr::new(&text),
            )
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Formats an event as `message key=value key=value`.
#[derive(Default)]
struct LineVisitor {
    text: String,
    fields: String,
}

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.text.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
        self.flush_fields();
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.text, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
        self.flush_fields();
    }
}

impl LineVisitor {
    /// The formatted line.
    fn finish(mut self) -> String {
        if self.text.is_empty() {
            return self.fields.trim_start().to_owned();
        }
        self.text.push_str(&self.fields);
        self.text
    }

    /// Keeps the message first and the fields after it, whatever order they came in.
    fn flush_fields(&mut self) {
        if !self.text.is_empty() && !self.fields.is_empty() {
            self.text.push_str(&std::mem::take(&mut self.fields));
        }
    }
}
