//! The loader against real and hand-made libraries.

use super::*;

#[test]
fn two_loaders_of_one_process_get_folders_of_their_own_and_a_live_one_is_not_stale() {
    let target = tempfile::tempdir().unwrap();
    let first = Loader::new(target.path()).unwrap();
    let second = Loader::new(target.path()).unwrap();
    assert_ne!(first.copies_dir(), second.copies_dir());
    assert!(
        first.copies_dir().is_dir(),
        "not removed as stale by the second"
    );
    let first_dir = first.copies_dir().to_path_buf();
    // A folder whose host is gone (its lock is free, set up a minute ago)
    // goes with the next loader.
    let gone = target.path().join("orch/loaded/999999999-0");
    fs::create_dir_all(&gone).unwrap();
    let in_use = fs::File::create(gone.join(IN_USE)).unwrap();
    let a_minute_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    in_use.set_modified(a_minute_ago).unwrap();
    drop(in_use);
    drop(second);
    let third = Loader::new(target.path()).unwrap();
    assert!(!gone.exists(), "a stale folder is removed");
    assert!(first_dir.is_dir(), "a live one stays");
    drop((first, third));
}

/// The delivery count the probe module last saw, through the SDK's glue.
static SEEN_DELIVERY_COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A module that notes each event's delivery count.
#[derive(Default)]
struct DeliveryProbe;

impl orch_sdk::Module for DeliveryProbe {
    fn initialize(
        &mut self,
        _: &mut orch_sdk::Context,
        _: &orch_sdk::Config,
    ) -> orch_sdk::Result<()> {
        Ok(())
    }

    fn on_event(
        &mut self,
        _: &mut orch_sdk::Context,
        event: &orch_sdk::Event,
    ) -> orch_sdk::Result<()> {
        SEEN_DELIVERY_COUNT.store(event.delivery_count(), std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn a_module_sees_how_many_times_the_host_delivered_an_event() {
    // The SDK's `create` installs its log forwarder as the process's
    // global subscriber unless one is set: in this test binary the host's
    // own logs would go round through it. Nothing is set otherwise here.
    let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::new());
    static DESCRIPTOR: ModuleDescriptor =
        orch_sdk::export::descriptor::<DeliveryProbe>("delivery-probe");
    let bus = crate::bus::Bus::new();
    let (mailbox, _received) = crossbeam_channel::unbounded();
    let sink: Arc<dyn crate::bus::EventSink> = Arc::new(mailbox);
    let id = bus.register(Arc::clone(&sink));
    let ctx = Arc::new(ModuleHostCtx::new(
        "probe".into(),
        id,
        crate::host_api::HostServices::new(bus, crate::timers::TimerService::new()),
        sink,
    ));
    let host = HostTable::new(&ctx, 1);
    let mut instance: *mut c_void = std::ptr::null_mut();
    let mut message = Vec::new();
    // SAFETY: as `Loader::load` does, with the descriptor of a module of
    // this binary (same ABI) and a host table that is never freed.
    let status = unsafe {
        (DESCRIPTOR.create)(host.as_ptr(), &mut instance, ByteSink::to_vec(&mut message))
    };
    assert_eq!(status, STATUS_OK, "{}", String::from_utf8_lossy(&message));
    let mut module = ModuleInstance {
        instance,
        descriptor: &DESCRIPTOR,
        generation: 1,
        library: None,
    };
    module.initialize(b"{}", None).unwrap();

    let again = crate::bus::BusEvent::new("jobs.resize", b"{}", None).delivered_times(3);
    module.on_event(again.delivery()).unwrap();
    assert_eq!(
        SEEN_DELIVERY_COUNT.load(std::sync::atomic::Ordering::SeqCst),
        3
    );
    let first = crate::bus::BusEvent::new("jobs.resize", b"{}", None);
    module.on_event(first.delivery()).unwrap();
    assert_eq!(
        SEEN_DELIVERY_COUNT.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[test]
fn a_folder_being_set_up_is_never_taken_for_stale() {
    let target = tempfile::tempdir().unwrap();
    let parent = target.path().join("orch").join("loaded");
    // Another host between creating its in-use file and locking it.
    let setting_up = parent.join("4194303-0");
    std::fs::create_dir_all(&setting_up).unwrap();
    std::fs::write(setting_up.join(IN_USE), b"").unwrap();
    let _loader = Loader::new(target.path()).unwrap();
    assert!(
        setting_up.join(IN_USE).exists(),
        "removed while being set up"
    );
}
