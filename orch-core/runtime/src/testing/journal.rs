//! Every call of the fake generations and every host event seen on the bus,
//! in the order they happened (as watchexec's recording `TestChild` does for
//! processes).

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::bus::{Admission, Bus, BusEvent, Delivered, EventSink};

/// One call a fake generation got, recorded as it began.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// Opened from `artifact`.
    Open { artifact: PathBuf },
    /// `initialize` with the state handed over (the count the fake keeps).
    Initialize { state: Option<u64> },
    /// A publish it tried, and the host's refusal if any.
    Publish {
        topic: String,
        refused: Option<String>,
    },
    /// `start`.
    Start,
    /// `on_event`.
    Event { topic: String, payload: String },
    /// `settle`: told to take what its child sent (or its death).
    Settle,
    /// `save_state`, with the count it hands over.
    SaveState { handled: u64 },
    /// `shutdown`, with the count it had then.
    Shutdown { handled: u64 },
    /// `retire`: destroyed for good.
    Retire,
}

/// A line of the journal.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A call of generation `generation` of `module`.
    Call {
        module: String,
        generation: u32,
        call: Call,
    },
    /// A host event (`app.*`, `module.*`) the journal's observer got.
    Bus {
        topic: String,
        payload: serde_json::Value,
    },
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (module, generation, call) = match self {
            Entry::Bus { topic, payload } => {
                return match payload.get("name").and_then(|n| n.as_str()) {
                    Some(name) => write!(f, "bus {topic} {name}"),
                    None => write!(f, "bus {topic}"),
                };
            }
            Entry::Call {
                module,
                generation,
                call,
            } => (module, generation, call),
        };
        write!(f, "{module}#{generation} ")?;
        match call {
            Call::Open { artifact } => write!(f, "open {}", artifact.display()),
            Call::Initialize { state: None } => f.write_str("initialize"),
            Call::Initialize { state: Some(n) } => write!(f, "initialize state={n}"),
            Call::Publish {
                topic,
                refused: None,
            } => write!(f, "publish {topic}"),
            Call::Publish {
                topic,
                refused: Some(_),
            } => write!(f, "publish {topic} refused"),
            Call::Start => f.write_str("start"),
            Call::Event { topic, payload } => write!(f, "event {topic} {payload}"),
            Call::Settle => f.write_str("settle"),
            Call::SaveState { handled } => write!(f, "save_state {handled}"),
            Call::Shutdown { handled } => write!(f, "shutdown {handled}"),
            Call::Retire => f.write_str("retire"),
        }
    }
}

/// The shared record. Cheap to clone.
#[derive(Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<Entry>>>);

impl Journal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `call` of generation `generation` of `module`.
    pub fn record(&self, module: &str, generation: u32, call: Call) {
        self.lock().push(Entry::Call {
            module: module.to_owned(),
            generation,
            call,
        });
    }

    /// Records, from now on, the host events on `bus` (`app.*`, `module.*`).
    pub fn observe(&self, bus: &Bus) {
        let id = bus.register(Arc::new(Observer(self.clone())));
        for pattern in ["app.*", "module.*"] {
            bus.subscribe(id, pattern).expect("a valid pattern");
        }
    }

    /// Everything so far.
    pub fn entries(&self) -> Vec<Entry> {
        self.lock().clone()
    }

    /// The entries `keep` selects, as text (`a#1 start`, `bus app.started`).
    pub fn lines(&self, keep: impl Fn(&Entry) -> bool) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|e| keep(e))
            .map(ToString::to_string)
            .collect()
    }

    /// Everything as text, one entry a line (for assertion messages).
    pub fn dump(&self) -> String {
        self.lines(|_| true).join("\n")
    }

    /// The lifecycle calls of `module`, as text: no events, settles or
    /// publishes.
    pub fn lifecycle(&self, module: &str) -> Vec<String> {
        self.lines(|e| {
            matches!(e, Entry::Call { module: m, call, .. } if m == module
                && !matches!(call, Call::Event { .. } | Call::Settle | Call::Publish { .. }))
        })
    }

    /// The calls `module`'s generations got, by generation, in order.
    pub fn calls(&self, module: &str) -> Vec<(u32, Call)> {
        self.lock()
            .iter()
            .filter_map(|e| match e {
                Entry::Call {
                    module: m,
                    generation,
                    call,
                } if m == module => Some((*generation, call.clone())),
                _ => None,
            })
            .collect()
    }

    /// The payloads of the events `module` handled, by generation, in order.
    pub fn handled(&self, module: &str) -> Vec<(u32, String)> {
        self.lock()
            .iter()
            .filter_map(|e| match e {
                Entry::Call {
                    module: m,
                    generation,
                    call: Call::Event { payload, .. },
                } if m == module => Some((*generation, payload.clone())),
                _ => None,
            })
            .collect()
    }

    /// The payloads of the host events seen on `topic`.
    pub fn bus(&self, topic: &str) -> Vec<serde_json::Value> {
        self.lock()
            .iter()
            .filter_map(|e| match e {
                Entry::Bus { topic: t, payload } if t == topic => Some(payload.clone()),
                _ => None,
            })
            .collect()
    }

    /// Waits (polling) until `done` holds, at most `limit`; panics with the
    /// journal, naming `what`, if it does not.
    pub fn wait_until(&self, what: &str, limit: Duration, done: impl Fn(&Journal) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            if done(self) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not within {limit:?}: {what}\njournal:\n{}",
                self.dump()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Records what it gets into the journal, in the publisher's thread.
struct Observer(Journal);

impl EventSink for Observer {
    fn deliver(&self, event: &Arc<BusEvent>, _admission: Admission) -> Delivered {
        let payload = serde_json::from_slice(event.payload()).unwrap_or_default();
        self.0.lock().push(Entry::Bus {
            topic: event.topic().to_owned(),
            payload,
        });
        Delivered::Accepted
    }
}
