//! The outbox: exported events wait here for the broker. It is a module
//! mailbox like any other (named `bridge`), so it has the same capacity and
//! overflow policies, dead letters and overflow reports; a pump thread hands
//! its events to the bridge's runtime only while a connection is up, so
//! during a disconnect they wait here, bounded, and nothing is handed to the
//! client twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};
use orch_runtime::bus::{Admission, Bus, BusEvent, Delivered, EventSink, SubscriberId};
use orch_runtime::mailbox::{Mailbox, MailboxSink, Next, Work};
use orch_sdk::EventKind;

use crate::connection::Link;

/// What the bus delivers to the outbox: the events of this node's modules on
/// the exported topics. Events imported from another node (no loops), the
/// host's namespaces and request/reply traffic stay local.
pub struct ExportSink {
    inner: Arc<MailboxSink>,
}

impl EventSink for ExportSink {
    fn deliver(&self, event: &Arc<BusEvent>, admission: Admission) -> Delivered {
        let local_publish = event.origin.is_none()
            && event.kind == EventKind::Publish
            && orch_sdk::topic::validate_module_topic(event.topic()).is_ok();
        if !local_publish {
            // Not for the outbox, and not taken: a request on an exported
            // topic must not count the outbox as a module that may answer.
            return Delivered::Dropped;
        }
        self.inner.deliver(event, admission)
    }
}

/// The outbox and its pump.
pub struct Outbox {
    mailbox: Mailbox,
    subscriber: SubscriberId,
    stop: Sender<Work>,
    stopping: Arc<AtomicBool>,
    pump: Option<JoinHandle<()>>,
}

impl Outbox {
    /// Registers the outbox on `bus` for `patterns`; its events go to
    /// `forward` while `link` is connected.
    pub fn open(
        bus: &Bus,
        mailbox: Mailbox,
        timers: orch_runtime::timers::TimerService,
        patterns: &[String],
        link: Arc<Link>,
        forward: tokio::sync::mpsc::Sender<Vec<Arc<BusEvent>>>,
        stats: Arc<crate::export::ExportStats>,
    ) -> Result<Self, crate::BridgeError> {
        let sink = Arc::new(ExportSink {
            inner: mailbox.sink(),
        });
        let subscriber = bus.register(sink);
        mailbox.report_to(bus, timers, subscriber);
        for pattern in patterns {
            bus.subscribe(subscriber, pattern)
                .map_err(|e| crate::BridgeError::Config(format!("export '{pattern}': {e}")))?;
        }
        let (stop, control) = bounded(1);
        let stopping = Arc::new(AtomicBool::new(false));
        let pump = {
            let mailbox = mailbox.clone();
            let stopping = Arc::clone(&stopping);
            std::thread::Builder::new()
                .name("orch-bridge-outbox".into())
                .spawn(move || pump(&mailbox, &control, &link, &forward, &stopping, &stats))
                .map_err(|e| crate::BridgeError::Runtime(format!("cannot start the outbox: {e}")))?
        };
        Ok(Self {
            mailbox,
            subscriber,
            stop,
            stopping,
            pump: Some(pump),
        })
    }

    /// Its mailbox (for reading its depth from other threads).
    pub fn mailbox(&self) -> Mailbox {
        self.mailbox.clone()
    }

    /// Its subscriber id on the bus.
    pub fn subscriber(&self) -> SubscriberId {
        self.subscriber
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.mailbox.len()
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.mailbox.is_empty()
    }

    /// Takes the outbox off `bus` and stops its pump (what still waits is
    /// reported, not sent).
    pub fn close(mut self, bus: &Bus) -> usize {
        bus.remove(self.subscriber);
        self.stopping.store(true, Ordering::Release);
        let _ = self.stop.try_send(Work::Stop);
        self.mailbox.wake();
        if let Some(pump) = self.pump.take() {
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            while !pump.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if pump.is_finished() {
                let _ = pump.join();
            }
        }
        self.mailbox.len()
    }
}

/// Events handed to the runtime at once, at most.
const BATCH: usize = 256;

/// Hands the outbox's events to the runtime, in order, only while connected:
/// each wake-up takes what waits, up to [`BATCH`].
fn pump(
    mailbox: &Mailbox,
    control: &Receiver<Work>,
    link: &Link,
    forward: &tokio::sync::mpsc::Sender<Vec<Arc<BusEvent>>>,
    stopping: &AtomicBool,
    stats: &crate::export::ExportStats,
) {
    while !stopping.load(Ordering::Acquire) {
        if !link.wait_connected(Duration::from_millis(200)) {
            continue;
        }
        match mailbox.next(control) {
            Next::Work(Work::Event(event)) => {
                let mut batch = Vec::with_capacity(BATCH);
                batch.push(event);
                while batch.len() < BATCH
                    && let Some(more) = mailbox.try_next_event()
                {
                    batch.push(more);
                }
                let taken = batch.len() as u64;
                stats.in_hand.fetch_add(taken, Ordering::AcqRel);
                if forward.blocking_send(batch).is_err() {
                    stats.in_hand.fetch_sub(taken, Ordering::AcqRel);
                    return;
                }
            }
            Next::Work(Work::Call(never)) => match never {},
            Next::Work(Work::Stop) | Next::Control => return,
        }
    }
}
