//! The outbox: exported events wait here for the broker. It is a module
//! mailbox like any other (named `bridge`), so it has the same capacity and
//! overflow policies, dead letters and overflow reports. The bridge's
//! runtime takes its events itself ([`OutboxReader`]), woken by the sink
//! when one arrives (no thread in between), and only while a connection is
//! up, so during a disconnect they wait here, bounded, and nothing is handed
//! to the client twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use orch_runtime::bus::{Admission, Bus, BusEvent, Delivered, EventSink, SubscriberId};
use orch_runtime::mailbox::{Mailbox, MailboxSink};
use orch_sdk::EventKind;
use tokio::sync::Notify;

use crate::connection::Link;

/// What the bus delivers to the outbox: the events of this node's modules on
/// the exported topics. Events imported from another node (no loops), the
/// host's namespaces and request/reply traffic stay local.
pub struct ExportSink {
    inner: Arc<MailboxSink>,
    /// Wakes the reader (a permit is kept if it is not waiting).
    arrived: Arc<Notify>,
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
        let delivered = self.inner.deliver(event, admission);
        if delivered == Delivered::Accepted {
            self.arrived.notify_one();
        }
        delivered
    }
}

/// The outbox, registered on the bus.
pub struct Outbox {
    mailbox: Mailbox,
    subscriber: SubscriberId,
    arrived: Arc<Notify>,
    stopping: Arc<AtomicBool>,
}

impl Outbox {
    /// Registers the outbox on `bus` for `patterns`; [`Outbox::reader`]
    /// takes its events while `link` is connected.
    pub fn open(
        bus: &Bus,
        mailbox: Mailbox,
        timers: orch_runtime::timers::TimerService,
        patterns: &[String],
    ) -> Result<Self, crate::BridgeError> {
        let arrived = Arc::new(Notify::new());
        let sink = Arc::new(ExportSink {
            inner: mailbox.sink(),
            arrived: Arc::clone(&arrived),
        });
        let subscriber = bus.register(sink);
        mailbox.report_to(bus, timers, subscriber);
        for pattern in patterns {
            bus.subscribe(subscriber, pattern)
                .map_err(|e| crate::BridgeError::Config(format!("export '{pattern}': {e}")))?;
        }
        Ok(Self {
            mailbox,
            subscriber,
            arrived,
            stopping: Arc::new(AtomicBool::new(false)),
        })
    }

    /// What takes the events out, in the bridge's runtime: one reader per
    /// outbox.
    pub fn reader(&self, link: Arc<Link>) -> OutboxReader {
        OutboxReader {
            mailbox: self.mailbox.clone(),
            arrived: Arc::clone(&self.arrived),
            stopping: Arc::clone(&self.stopping),
            link,
        }
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

    /// Takes the outbox off `bus` and stops its reader (what still waits is
    /// reported, not sent).
    pub fn close(self, bus: &Bus) -> usize {
        bus.remove(self.subscriber);
        self.stopping.store(true, Ordering::Release);
        self.arrived.notify_one();
        self.mailbox.len()
    }
}

/// Events taken from the outbox at once, at most.
const BATCH: usize = 256;

/// How long a reader waits for a wake-up before it looks again anyway
/// (a stop, a lost connection).
const IDLE_CHECK: Duration = Duration::from_millis(200);

/// Takes the outbox's events in order, in batches, only while connected.
pub struct OutboxReader {
    mailbox: Mailbox,
    arrived: Arc<Notify>,
    stopping: Arc<AtomicBool>,
    link: Arc<Link>,
}

impl OutboxReader {
    /// Waits until events wait and a connection is up, and moves up to
    /// [`BATCH`] of them into `batch`, each counted in `in_hand` as it is
    /// taken; `false` once the outbox is closed.
    pub async fn next_batch(&self, batch: &mut Vec<Arc<BusEvent>>, in_hand: &AtomicU64) -> bool {
        loop {
            if self.stopping.load(Ordering::Acquire) {
                return false;
            }
            if !self.link.until_connected(IDLE_CHECK).await {
                if self.link.is_closed() {
                    return false;
                }
                continue;
            }
            while batch.len() < BATCH
                && let Some(event) = self.mailbox.try_next_event()
            {
                in_hand.fetch_add(1, Ordering::AcqRel);
                batch.push(event);
            }
            if !batch.is_empty() {
                return true;
            }
            // An event that arrived since the outbox was found empty left a
            // permit: this returns at once.
            let _ = tokio::time::timeout(IDLE_CHECK, self.arrived.notified()).await;
        }
    }

    /// Whether no event waits in the outbox now.
    pub fn is_empty(&self) -> bool {
        self.mailbox.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use orch_config::{MailboxSettings, Overflow};
    use orch_runtime::timers::TimerService;

    use super::*;

    fn payload_of(event: &BusEvent) -> String {
        String::from_utf8_lossy(event.payload()).into_owned()
    }

    /// The reader takes nothing while the link is down (the events wait in
    /// the outbox), takes them in order once it is up, and ends once the
    /// outbox is closed.
    #[test]
    fn the_reader_takes_events_in_order_only_while_connected() {
        let bus = Bus::new();
        let mailbox = Mailbox::new(
            "bridge".into(),
            MailboxSettings {
                capacity: 100,
                overflow: Overflow::Block,
            },
            Duration::from_secs(1),
        );
        let outbox = Outbox::open(&bus, mailbox, TimerService::new(), &["test.>".into()])
            .expect("the outbox opens");
        let link = Arc::new(Link::default());
        let reader = outbox.reader(Arc::clone(&link));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime");
        for n in 1..=3 {
            bus.publish("test.ping", n.to_string().as_bytes(), Some("m".into()))
                .expect("published");
        }
        let in_hand = AtomicU64::new(0);
        let mut batch = Vec::new();
        let disconnected = runtime.block_on(async {
            tokio::time::timeout(
                Duration::from_millis(300),
                reader.next_batch(&mut batch, &in_hand),
            )
            .await
        });
        assert!(disconnected.is_err(), "nothing is taken while disconnected");
        assert_eq!(outbox.len(), 3, "the events wait in the outbox");
        // Connected from another thread while the reader waits.
        let connect = {
            let link = Arc::clone(&link);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                link.set(true, Some("127.0.0.1:4222".into()));
            })
        };
        let taken = runtime.block_on(reader.next_batch(&mut batch, &in_hand));
        connect.join().expect("no panic");
        assert!(taken);
        let got: Vec<String> = batch.drain(..).map(|e| payload_of(&e)).collect();
        assert_eq!(got, ["1", "2", "3"]);
        assert_eq!(in_hand.load(Ordering::Acquire), 3);
        assert!(reader.is_empty());
        // An event published while the reader waits is taken.
        let publish = {
            let bus = bus.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                bus.publish("test.ping", b"4", Some("m".into()))
            })
        };
        let taken = runtime.block_on(reader.next_batch(&mut batch, &in_hand));
        assert!(publish.join().expect("no panic").is_ok());
        assert!(taken);
        assert_eq!(
            batch.iter().map(|e| payload_of(e)).collect::<Vec<_>>(),
            ["4"]
        );
        batch.clear();
        assert_eq!(outbox.close(&bus), 0);
        let ended = runtime.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(5),
                reader.next_batch(&mut batch, &in_hand),
            )
            .await
        });
        assert_eq!(ended, Ok(false), "a closed outbox ends its reader");
    }
}
