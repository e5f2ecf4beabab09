//! Host-owned timers: `ctx.every(interval, topic)` delivers a timer event to the
//! module's own mailbox. One thread serves every timer; the host removes a module's
//! timers when it stops, so a module never needs a thread of its own to tick.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::bus::{Admission, BusEvent, EventSink, SubscriberId};

/// Identifies one timer.
pub type TimerId = u64;

/// The owner of the host's own timers ([`TimerService::call_after`]): no
/// module has it (subscriber ids start at 1).
pub const HOST_OWNER: SubscriberId = SubscriberId(0);

/// What a timer does when it fires.
enum Action {
    /// Delivers a tick on `topic` to a module's mailbox.
    Tick {
        topic: Arc<str>,
        interval: Duration,
        repeat: bool,
        sink: Arc<dyn EventSink>,
        ticks: u64,
        /// The last tick delivered: while anyone but the timer holds it (it
        /// waits in the mailbox, or its handler runs) no new tick is sent.
        last: Option<Arc<BusEvent>>,
    },
    /// Runs a host callback once (a request's timeout). It must not block.
    Call(Box<dyn FnOnce() + Send>),
}

struct Timer {
    owner: SubscriberId,
    deadline: Instant,
    action: Action,
}

/// What the timer thread runs once it has let go of the lock.
enum Due {
    Deliver(Arc<dyn EventSink>, Arc<BusEvent>),
    Call(Box<dyn FnOnce() + Send>),
}

#[derive(Default)]
struct State {
    /// Every live timer's next deadline, earliest first: exactly one entry per
    /// timer, removed as soon as the timer is cancelled (no stale entries
    /// accumulate, however many timers come and go).
    queue: BTreeSet<(Instant, TimerId)>,
    timers: HashMap<TimerId, Timer>,
    next_id: TimerId,
    stopped: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The timer service. Cheap to clone; [`TimerService::stop`] ends its thread.
#[derive(Clone)]
pub struct TimerService {
    shared: Arc<Shared>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Default for TimerService {
    fn default() -> Self {
        Self::new()
    }
}

impl TimerService {
    /// Starts the timer thread.
    pub fn new() -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("orch-timers".into())
            .spawn(move || run(&worker))
            .ok();
        Self {
            shared,
            thread: Arc::new(Mutex::new(thread)),
        }
    }

    /// Schedules `topic` for `owner` after `interval`, repeating if `repeat`.
    pub fn schedule(
        &self,
        owner: SubscriberId,
        sink: Arc<dyn EventSink>,
        topic: &str,
        interval: Duration,
        repeat: bool,
    ) -> Result<TimerId, String> {
        orch_sdk::topic::validate_topic(topic)?;
        if interval.is_zero() {
            return Err("a timer interval must be greater than zero".into());
        }
        let action = Action::Tick {
            topic: topic.into(),
            interval,
            repeat,
            sink,
            ticks: 0,
            last: None,
        };
        self.insert(owner, interval, action)
    }

    /// Runs `callback` once on the timer thread after `delay`, unless the
    /// returned timer is cancelled first (with owner [`HOST_OWNER`]). The
    /// callback must not block: every timer waits for it.
    pub fn call_after(
        &self,
        delay: Duration,
        callback: Box<dyn FnOnce() + Send>,
    ) -> Result<TimerId, String> {
        self.insert(HOST_OWNER, delay, Action::Call(callback))
    }

    fn insert(
        &self,
        owner: SubscriberId,
        delay: Duration,
        action: Action,
    ) -> Result<TimerId, String> {
        let mut state = self.shared.lock();
        if state.stopped {
            return Err("the host is shutting down; no new timers".into());
        }
        state.next_id += 1;
        let id = state.next_id;
        let deadline = Instant::now() + delay;
        state.timers.insert(
            id,
            Timer {
                owner,
                deadline,
                action,
            },
        );
        state.queue.insert((deadline, id));
        drop(state);
        self.shared.wake.notify_one();
        Ok(id)
    }

    /// Cancels one timer of `owner`. Returns whether it existed.
    pub fn cancel(&self, owner: SubscriberId, id: TimerId) -> bool {
        let mut state = self.shared.lock();
        let owned = state.timers.get(&id).is_some_and(|t| t.owner == owner);
        if owned && let Some(timer) = state.timers.remove(&id) {
            state.queue.remove(&(timer.deadline, id));
        }
        owned
    }

    /// Cancels every timer of `owner`. Returns how many there were.
    pub fn cancel_owner(&self, owner: SubscriberId) -> usize {
        let mut state = self.shared.lock();
        let before = state.timers.len();
        let State { queue, timers, .. } = &mut *state;
        timers.retain(|id, t| {
            let keep = t.owner != owner;
            if !keep {
                queue.remove(&(t.deadline, *id));
            }
            keep
        });
        before - state.timers.len()
    }

    /// How many timers `owner` has.
    pub fn count_of(&self, owner: SubscriberId) -> usize {
        let state = self.shared.lock();
        state.timers.values().filter(|t| t.owner == owner).count()
    }

    /// Cancels every timer and ends the thread.
    pub fn stop(&self) {
        {
            let mut state = self.shared.lock();
            state.stopped = true;
            state.timers.clear();
            state.queue.clear();
        }
        self.shared.wake.notify_all();
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

/// The timer thread: sleeps until the earliest deadline, then delivers what is due.
fn run(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        if state.stopped {
            return;
        }
        let now = Instant::now();
        let mut due: Vec<Due> = Vec::new();
        while let Some(&(deadline, id)) = state.queue.first() {
            if deadline > now {
                break;
            }
            state.queue.pop_first();
            let Some(timer) = state.timers.remove(&id) else {
                continue; // cannot happen: a cancel removes both
            };
            match timer.action {
                Action::Call(callback) => due.push(Due::Call(callback)),
                Action::Tick {
                    topic,
                    interval,
                    repeat,
                    sink,
                    mut ticks,
                    mut last,
                } => {
                    // Coalesce: at most one tick of a timer waits or runs.
                    let pending = last.as_ref().is_some_and(|e| Arc::strong_count(e) > 1);
                    if !pending {
                        ticks += 1;
                        let payload = serde_json::json!({ "timer": id, "tick": ticks });
                        let event = Arc::new(BusEvent::new(
                            &topic,
                            &serde_json::to_vec(&payload).unwrap_or_default(),
                            None,
                        ));
                        due.push(Due::Deliver(Arc::clone(&sink), Arc::clone(&event)));
                        last = Some(event);
                    }
                    if repeat {
                        // Keep the cadence; after a stall, skip the missed ticks.
                        let mut next = deadline + interval;
                        if next <= now {
                            next = now + interval;
                        }
                        let action = Action::Tick {
                            topic,
                            interval,
                            repeat,
                            sink,
                            ticks,
                            last,
                        };
                        state.timers.insert(
                            id,
                            Timer {
                                owner: timer.owner,
                                deadline: next,
                                action,
                            },
                        );
                        state.queue.insert((next, id));
                    }
                }
            }
        }
        if !due.is_empty() {
            drop(state);
            for work in due {
                match work {
                    Due::Deliver(sink, event) => {
                        // Never waits: every timer waits for this thread.
                        sink.deliver(&event, Admission::NoWait);
                    }
                    Due::Call(callback) => {
                        // A panicking callback is a host bug; it must not end
                        // the thread every timer depends on.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(callback));
                    }
                }
            }
            state = shared.lock();
            continue;
        }
        state = match state.queue.first() {
            Some((deadline, _)) => {
                let wait = deadline.saturating_duration_since(Instant::now());
                shared
                    .wake
                    .wait_timeout(state, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => shared.wake.wait(state).unwrap_or_else(|e| e.into_inner()),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::unbounded;

    fn sink() -> (
        Arc<dyn EventSink>,
        crossbeam_channel::Receiver<Arc<BusEvent>>,
    ) {
        let (tx, rx) = unbounded::<Arc<BusEvent>>();
        (Arc::new(tx), rx)
    }

    #[test]
    fn repeating_timer_ticks_in_order_until_cancelled() {
        let timers = TimerService::new();
        let (tx, rx) = sink();
        let owner = SubscriberId(1);
        let id = timers
            .schedule(owner, tx, "producer.tick", Duration::from_millis(5), true)
            .unwrap();
        let ticks: Vec<u64> = (0..3)
            .map(|_| {
                let event = rx.recv_timeout(Duration::from_secs(5)).unwrap();
                assert_eq!(event.topic(), "producer.tick");
                let payload: serde_json::Value = serde_json::from_slice(event.payload()).unwrap();
                payload["tick"].as_u64().unwrap()
            })
            .collect();
        assert_eq!(ticks, vec![1, 2, 3]);
        assert!(timers.cancel(owner, id));
        while rx.recv_timeout(Duration::from_millis(50)).is_ok() {}
        assert!(rx.recv_timeout(Duration::from_millis(30)).is_err());
        timers.stop();
    }

    #[test]
    fn one_shot_fires_once_and_owner_cleanup_removes_the_rest() {
        let timers = TimerService::new();
        let (tx, rx) = sink();
        let owner = SubscriberId(7);
        timers
            .schedule(
                owner,
                Arc::clone(&tx),
                "once",
                Duration::from_millis(1),
                false,
            )
            .unwrap();
        timers
            .schedule(owner, tx, "later", Duration::from_secs(3600), true)
            .unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap().topic(),
            "once"
        );
        assert_eq!(timers.count_of(owner), 1);
        assert!(!timers.cancel(SubscriberId(8), 2), "not the owner");
        assert_eq!(timers.cancel_owner(owner), 1);
        assert_eq!(timers.count_of(owner), 0);
        timers.stop();
        assert!(
            timers
                .schedule(owner, sink().0, "x", Duration::from_secs(1), true)
                .is_err()
        );
    }

    #[test]
    fn a_cancelled_timer_leaves_the_queue_at_once() {
        let timers = TimerService::new();
        let (sink, _events) = sink();
        let owner = SubscriberId(1);
        for _ in 0..1_000 {
            let id = timers
                .schedule(
                    owner,
                    sink.clone(),
                    "t.long",
                    Duration::from_secs(3600),
                    true,
                )
                .unwrap();
            assert!(timers.cancel(owner, id));
        }
        for _ in 0..10 {
            timers
                .schedule(
                    owner,
                    sink.clone(),
                    "t.long",
                    Duration::from_secs(3600),
                    false,
                )
                .unwrap();
        }
        assert_eq!(timers.shared.lock().queue.len(), 10);
        assert_eq!(timers.cancel_owner(owner), 10);
        assert!(timers.shared.lock().queue.is_empty());
        timers.stop();
    }

    #[test]
    fn ticks_coalesce_while_the_last_one_is_not_handled() {
        let timers = TimerService::new();
        let (tx, rx) = sink();
        let owner = SubscriberId(1);
        timers
            .schedule(owner, tx, "t.fast", Duration::from_millis(1), true)
            .unwrap();
        let first = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        // Nobody handles it for a while: 50 intervals pass, no tick piles up.
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            rx.try_recv().is_err(),
            "no second tick while the first waits"
        );
        drop(first);
        let second = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let payload: serde_json::Value = serde_json::from_slice(second.payload()).unwrap();
        assert_eq!(payload["tick"], 2, "skipped ticks are not counted");
        timers.stop();
    }

    #[test]
    fn a_host_callback_runs_once_unless_cancelled_first() {
        let timers = TimerService::new();
        let (tx, rx) = crossbeam_channel::bounded::<&str>(4);
        let fired = tx.clone();
        timers
            .call_after(
                Duration::from_millis(1),
                Box::new(move || {
                    let _ = fired.send("fired");
                }),
            )
            .unwrap();
        let cancelled = timers
            .call_after(
                Duration::from_millis(30),
                Box::new(move || {
                    let _ = tx.send("cancelled one fired");
                }),
            )
            .unwrap();
        assert!(timers.cancel(HOST_OWNER, cancelled));
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok("fired"));
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        assert_eq!(timers.count_of(HOST_OWNER), 0);
        timers.stop();
    }

    #[test]
    fn rejects_zero_interval_and_bad_topic() {
        let timers = TimerService::new();
        let (tx, _rx) = sink();
        assert!(
            timers
                .schedule(SubscriberId(1), Arc::clone(&tx), "t", Duration::ZERO, true)
                .is_err()
        );
        assert!(
            timers
                .schedule(SubscriberId(1), tx, "t.*", Duration::from_secs(1), true)
                .is_err()
        );
        timers.stop();
    }
}
