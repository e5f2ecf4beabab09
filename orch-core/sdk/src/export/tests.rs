use super::*;
use crate::Result;
use crate::abi::ENTRY_SYMBOL;

#[test]
fn macro_symbol_matches_the_abi_constant() {
    // The macro spells the symbol literally (no_mangle needs an identifier).
    let source = include_str!("../export.rs");
    assert!(source.contains(&format!("fn {ENTRY_SYMBOL}()")));
}

#[derive(Default)]
struct Touchy {
    events: u32,
}

impl Module for Touchy {
    fn initialize(&mut self, _: &mut Context, config: &Config) -> Result<()> {
        if config.get::<bool>("panic")?.unwrap_or(false) {
            panic!("boom in initialize");
        }
        Ok(())
    }
    fn on_event(&mut self, _: &mut Context, event: &Event) -> Result<()> {
        self.events += 1;
        match event.topic() {
            "fail" => Err("handler said no".into()),
            "panic" => panic!("boom in on_event"),
            _ => Ok(()),
        }
    }
    fn save_state(&mut self, _: &mut Context) -> Result<Option<serde_json::Value>> {
        Ok(Some(serde_json::json!(self.events)))
    }
}

unsafe extern "C" fn refuse(
    _: *const c_void,
    _: RStr<'_>,
    _: RBytes<'_>,
    err: ByteSink<'_>,
) -> Status {
    err.write(b"refused");
    STATUS_ERROR
}
unsafe extern "C" fn refuse_topic(_: *const c_void, _: RStr<'_>, err: ByteSink<'_>) -> Status {
    err.write(b"refused");
    STATUS_ERROR
}
unsafe extern "C" fn refuse_timer(
    _: *const c_void,
    _: RStr<'_>,
    _: u64,
    _: bool,
    _: *mut u64,
    err: ByteSink<'_>,
) -> Status {
    err.write(b"refused");
    STATUS_ERROR
}
unsafe extern "C" fn refuse_cancel(_: *const c_void, _: u64, err: ByteSink<'_>) -> Status {
    err.write(b"refused");
    STATUS_ERROR
}
unsafe extern "C" fn refuse_request(
    _: *const c_void,
    _: RStr<'_>,
    _: RBytes<'_>,
    _: u64,
    _: *mut u64,
    err: ByteSink<'_>,
) -> Status {
    err.write(b"refused");
    STATUS_ERROR
}
unsafe extern "C" fn refuse_reply(
    _: *const c_void,
    _: RStr<'_>,
    _: u64,
    _: RBytes<'_>,
    err: ByteSink<'_>,
) -> Status {
    err.write(b"refused");
    STATUS_ERROR
}
unsafe extern "C" fn refuse_hand_over(
    _: *const c_void,
    _: RStr<'_>,
    _: i32,
    err: ByteSink<'_>,
) -> Status {
    err.write(b"refused");
    STATUS_ERROR
}
unsafe extern "C" fn refuse_take(
    _: *const c_void,
    _: RStr<'_>,
    _: *mut i32,
    err: ByteSink<'_>,
) -> Status {
    err.write(b"refused");
    STATUS_ERROR
}
unsafe extern "C" fn refuse_metric(
    _: *const c_void,
    _: u32,
    _: RStr<'_>,
    _: RStr<'_>,
    _: *mut u64,
    err: ByteSink<'_>,
) -> Status {
    err.write(b"refused");
    STATUS_ERROR
}
unsafe extern "C" fn ignore_metric(_: *const c_void, _: u64, _: bool, _: f64) {}
unsafe extern "C" fn ignore_log(_: *const c_void, _: u32, _: RStr<'_>, _: RStr<'_>) {}
unsafe extern "C" fn no_logs(_: *const c_void) -> u32 {
    0
}

static HOST: HostApi = HostApi {
    abi_version: ABI_VERSION,
    ctx: std::ptr::null(),
    publish: refuse,
    subscribe: refuse_topic,
    unsubscribe: refuse_topic,
    schedule_timer: refuse_timer,
    cancel_timer: refuse_cancel,
    log: ignore_log,
    max_log_level: no_logs,
    shutdown_timeout_ms: 1_000,
    request: refuse_request,
    reply: refuse_reply,
    hand_over_fd: refuse_hand_over,
    take_fd: refuse_take,
    metric_register: refuse_metric,
    metric_update: ignore_metric,
};

fn text(buffer: &[u8]) -> String {
    String::from_utf8_lossy(buffer).into_owned()
}

#[test]
fn every_entry_point_turns_errors_and_panics_into_statuses() {
    let descriptor = descriptor::<Touchy>("touchy");
    assert_eq!(descriptor.abi_version, ABI_VERSION);
    let mut instance = std::ptr::null_mut();
    let mut err = Vec::new();
    // SAFETY: the test drives the ABI exactly as the host does: a static host
    // table, the instance from create, borrowed slices valid for each call.
    unsafe {
        let status = (descriptor.create)(&HOST, &mut instance, ByteSink::to_vec(&mut err));
        assert_eq!(status, STATUS_OK, "{}", text(&err));

        let config = br#"{"panic": true}"#;
        let status = (descriptor.initialize)(
            instance,
            RBytes::new(config),
            RBytes::new(&[]),
            false,
            ByteSink::to_vec(&mut err),
        );
        assert_eq!(status, STATUS_PANIC);
        let message = text(&err);
        assert!(message.contains("boom in initialize"), "{message}");
        assert!(message.contains("tests.rs:"), "panic location: {message}");

        for (topic, expected, needle) in [
            ("fail", STATUS_ERROR, "handler said no"),
            ("panic", STATUS_PANIC, "boom in on_event"),
            ("fine", STATUS_OK, ""),
        ] {
            err.clear();
            let status = (descriptor.on_event)(
                instance,
                RStr::new(topic),
                RBytes::new(b"{}"),
                Envelope {
                    id: 1,
                    published_at_ms: 0,
                    source: RStr::new(""),
                    kind: crate::abi::KIND_PUBLISH,
                    request_id: 0,
                    reply_to: RStr::new(""),
                    delivery_count: 1,
                },
                ByteSink::to_vec(&mut err),
            );
            assert_eq!(status, expected, "{topic}: {}", text(&err));
            assert!(text(&err).contains(needle));
        }

        let mut state = Vec::new();
        let status = (descriptor.save_state)(
            instance,
            ByteSink::to_vec(&mut state),
            ByteSink::to_vec(&mut err),
        );
        assert_eq!(status, STATUS_OK);
        assert_eq!(state, b"3", "the instance survived its panics");
        (descriptor.destroy)(instance);
    }
}

#[test]
fn create_refuses_a_host_of_another_abi_version() {
    static OLD_HOST: HostApi = HostApi {
        abi_version: ABI_VERSION + 1,
        ..HOST
    };
    let descriptor = descriptor::<Touchy>("touchy");
    let mut instance = std::ptr::null_mut();
    let mut err = Vec::new();
    // SAFETY: as above.
    let status =
        unsafe { (descriptor.create)(&OLD_HOST, &mut instance, ByteSink::to_vec(&mut err)) };
    assert_eq!(status, STATUS_ERROR);
    assert!(instance.is_null());
    assert!(text(&err).contains(&format!("host speaks ABI v{}", ABI_VERSION + 1)));
}

/// Keeps the delivery count of the last event it handled as its state.
#[derive(Default)]
struct Redelivered {
    last_count: u32,
}

impl Module for Redelivered {
    fn initialize(&mut self, _: &mut Context, _: &Config) -> Result<()> {
        Ok(())
    }
    fn on_event(&mut self, _: &mut Context, event: &Event) -> Result<()> {
        self.last_count = event.delivery_count();
        Ok(())
    }
    fn save_state(&mut self, _: &mut Context) -> Result<Option<serde_json::Value>> {
        Ok(Some(serde_json::json!(self.last_count)))
    }
}

#[test]
fn the_envelope_delivery_count_reaches_the_handler_and_zero_counts_as_one() {
    let descriptor = descriptor::<Redelivered>("redelivered");
    let mut instance = std::ptr::null_mut();
    let mut err = Vec::new();
    // SAFETY: as in the test above.
    unsafe {
        let status = (descriptor.create)(&HOST, &mut instance, ByteSink::to_vec(&mut err));
        assert_eq!(status, STATUS_OK, "{}", text(&err));
        for (sent, seen) in [(3, b"3"), (0, b"1")] {
            let status = (descriptor.on_event)(
                instance,
                RStr::new("jobs.resize"),
                RBytes::new(b"{}"),
                Envelope {
                    id: 1,
                    published_at_ms: 0,
                    source: RStr::new("web"),
                    kind: crate::abi::KIND_PUBLISH,
                    request_id: 0,
                    reply_to: RStr::new(""),
                    delivery_count: sent,
                },
                ByteSink::to_vec(&mut err),
            );
            assert_eq!(status, STATUS_OK, "{}", text(&err));
            let mut state = Vec::new();
            let status = (descriptor.save_state)(
                instance,
                ByteSink::to_vec(&mut state),
                ByteSink::to_vec(&mut err),
            );
            assert_eq!(status, STATUS_OK);
            assert_eq!(state, seen, "delivered {sent} times");
        }
        (descriptor.destroy)(instance);
    }
}
