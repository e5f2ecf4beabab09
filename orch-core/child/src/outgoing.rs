//! The child's link to the orchestrator: every frame it sends, from any
//! thread (replies, publishes, requests, answers through the shared ring
//! when there is one; heartbeat answers, logs and metrics on the control
//! pipe), and the requests its module still has to answer.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use orch_runtime::host_api::Uplink;
use orch_runtime::status::ModuleCounters;
use orch_wire::protocol::Frame;
use orch_wire::shm::Producer;

use crate::unanswered::UnansweredRequests;
use crate::up_ring::UpRing;

/// The frames the child sends, from any thread, and the requests its module
/// still has to answer.
#[derive(Clone)]
pub(crate) struct Outgoing {
    out: Arc<Mutex<BufWriter<File>>>,
    answers: Arc<Mutex<UnansweredRequests>>,
    /// When the module's thread began its current call (ms since `epoch`,
    /// 0 when idle): what a `Pong` reports.
    busy_since_ms: Arc<AtomicU64>,
    epoch: Instant,
    /// Replies sent so far (each carries its number).
    replies: Arc<AtomicU64>,
    /// The module's own metrics, handed to the parent with a `Pong`.
    pub(crate) counters: Arc<ModuleCounters>,
    /// When they were last handed over (ms since `epoch`).
    metrics_sent_ms: Arc<AtomicU64>,
    /// The ring to the orchestrator (shared-memory transport): every frame
    /// but heartbeats, logs and metrics goes there.
    up: Option<Arc<Mutex<UpRing>>>,
    /// The orchestrator's pipe ended.
    pub(crate) parent_gone: Arc<AtomicBool>,
}

/// The module's metrics go to the parent at most this often (with the next
/// `Pong`), however short the heartbeat.
const METRICS_EVERY_MS: u64 = 100;

impl Outgoing {
    /// A link writing control frames to `out` and, with shared memory, the
    /// rest to `up`.
    /// `window`: the events the orchestrator keeps in flight at most.
    pub(crate) fn new(out: File, up: Option<Producer>, window: u32) -> Self {
        Self {
            up: up.map(|ring| Arc::new(Mutex::new(UpRing::new(ring, window)))),
            parent_gone: Arc::default(),
            out: Arc::new(Mutex::new(BufWriter::new(out))),
            answers: Arc::default(),
            busy_since_ms: Arc::default(),
            epoch: Instant::now(),
            replies: Arc::default(),
            counters: Arc::default(),
            metrics_sent_ms: Arc::default(),
        }
    }

    /// The number of the next reply: 1 for the first (the load's).
    pub(crate) fn next_reply(&self) -> u64 {
        self.replies.fetch_add(1, Ordering::AcqRel) + 1
    }

    fn now_ms(&self) -> u64 {
        self.ms_at(Instant::now())
    }

    /// `at` in milliseconds since this link began (at least 1).
    fn ms_at(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Notes that the module's thread begins a call, at `at` (a time its
    /// caller read anyway: no clock read of its own).
    pub(crate) fn busy_from(&self, at: Instant) {
        self.busy_since_ms.store(self.ms_at(at), Ordering::Release);
    }

    /// Notes that the module's thread ended its call.
    pub(crate) fn idle(&self) {
        self.busy_since_ms.store(0, Ordering::Release);
    }

    /// Answers ping `n` from the reader thread: the module's thread may be
    /// busy for good reason (a slow handler), and says for how long. The
    /// module's metrics that changed go first (at most every
    /// [`METRICS_EVERY_MS`]).
    pub(crate) fn pong(&self, n: u64) -> bool {
        let since = self.busy_since_ms.load(Ordering::Acquire);
        let busy_ms = if since == 0 {
            0
        } else {
            self.now_ms().saturating_sub(since)
        };
        let now = self.now_ms();
        let last = self.metrics_sent_ms.load(Ordering::Acquire);
        if now.saturating_sub(last) >= METRICS_EVERY_MS {
            self.metrics_sent_ms.store(now, Ordering::Release);
            let changes = self.counters.custom().take_changes();
            if !changes.is_empty() && !self.send(&Frame::Metrics(changes)) {
                return false;
            }
        }
        self.send(&Frame::Pong { n, busy_ms })
    }

    /// Sends `frame` where its kind goes; `false` once the orchestrator is gone.
    pub(crate) fn send(&self, frame: &Frame) -> bool {
        if let Some(up) = self.up.as_ref()
            && !frame.is_control()
        {
            let gone = || self.parent_gone.load(Ordering::Acquire);
            return up
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .send(frame, &gone);
        }
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        frame.write_to(&mut *out).is_ok()
    }

    /// Answers an event handled without error in `nanos`: through the
    /// ring, held in a run of such answers (see [`UpRing`]); through the
    /// pipe, a `Reply` carrying the time.
    pub(crate) fn handled(&self, nanos: u64) -> bool {
        let seq = self.next_reply();
        if let Some(up) = self.up.as_ref() {
            let gone = || self.parent_gone.load(Ordering::Acquire);
            return up
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .handled(seq, nanos, &gone);
        }
        self.send(&Frame::Reply {
            seq,
            status: orch_wire::protocol::Status::Ok,
            data: nanos.to_le_bytes().to_vec(),
        })
    }

    /// Wakes the orchestrator for the replies it was not woken for yet
    /// (before this child sleeps).
    pub(crate) fn signal_replies(&self) {
        self.signal_replies_if(|_| true);
    }

    /// As [`Self::signal_replies`], but only for replies that waited long
    /// enough by `now` (before a handler, which may take long).
    pub(crate) fn signal_stale_replies(&self, now: Instant) {
        self.signal_replies_if(|up| up.stale_at(now));
    }

    /// Wakes the orchestrator for the replies not woken for yet, if `due`.
    fn signal_replies_if(&self, due: impl FnOnce(&UpRing) -> bool) {
        if let Some(up) = self.up.as_ref() {
            let gone = || self.parent_gone.load(Ordering::Acquire);
            up.lock()
                .unwrap_or_else(|e| e.into_inner())
                .signal_if(due, &gone);
        }
    }

    /// The requests its module still has to answer.
    pub(crate) fn answers(&self) -> MutexGuard<'_, UnansweredRequests> {
        self.answers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the orchestrator for the last replies and flushes the pipe.
    pub(crate) fn flush(&self) {
        self.signal_replies();
        let _ = self.out.lock().unwrap_or_else(|e| e.into_inner()).flush();
    }
}

impl Uplink for Outgoing {
    fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), String> {
        self.send(&Frame::Publish {
            topic: topic.into(),
            payload: payload.to_vec(),
        })
        .then_some(())
        .ok_or_else(gone)
    }

    fn subscribe(&self, pattern: &str) -> Result<(), String> {
        self.send(&Frame::Subscribe(pattern.into()))
            .then_some(())
            .ok_or_else(gone)
    }

    fn unsubscribe(&self, pattern: &str) {
        self.send(&Frame::Unsubscribe(pattern.into()));
    }

    fn request(
        &self,
        id: u64,
        topic: &str,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<(), String> {
        self.send(&Frame::Request {
            id,
            topic: topic.into(),
            payload: payload.to_vec(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        })
        .then_some(())
        .ok_or_else(gone)
    }

    fn reply(&self, reply_to: &str, id: u64, payload: &[u8]) -> Result<(), String> {
        if !self.answers().take(reply_to, id) {
            return Err(format!(
                "request {id} of '{reply_to}' was already answered or has timed out \
                 (only the first answer to a request counts)"
            ));
        }
        self.send(&Frame::Answer {
            reply_to: reply_to.into(),
            id,
            payload: payload.to_vec(),
        })
        .then_some(())
        .ok_or_else(gone)
    }
}

/// Why a frame to the orchestrator could not be sent.
fn gone() -> String {
    "the orchestrator is gone".into()
}
