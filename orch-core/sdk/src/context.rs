//! What a module can ask of its host while a callback runs.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::event::RequestId;
use crate::threads::{StopToken, ThreadBody};
use crate::{Event, EventKind};
use serde::de::DeserializeOwned;

/// Identifies a timer set with [`Context::every`] or [`Context::after`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(pub u64);

/// The host side of a [`Context`]: the real host across the C ABI, or the
/// recording host of [`crate::testing`] in a module's unit tests.
pub trait Host {
    /// Publishes JSON bytes on a topic.
    fn publish(&self, topic: &str, payload: &[u8]) -> crate::Result<()>;
    /// Subscribes to a topic or pattern.
    fn subscribe(&self, topic: &str) -> crate::Result<()>;
    /// Removes a subscription.
    fn unsubscribe(&self, topic: &str) -> crate::Result<()>;
    /// Schedules a timer event to the module's own mailbox.
    fn schedule_timer(
        &self,
        topic: &str,
        interval: Duration,
        repeat: bool,
    ) -> crate::Result<TimerId>;
    /// Cancels a timer.
    fn cancel_timer(&self, id: TimerId) -> crate::Result<()>;
    /// Publishes a request; its answer comes to the module's mailbox.
    fn request(&self, topic: &str, payload: &[u8], timeout: Duration) -> crate::Result<RequestId>;
    /// Answers request `id` of module `reply_to`.
    fn reply(&self, reply_to: &str, id: RequestId, payload: &[u8]) -> crate::Result<()>;
    /// Keeps `fd` for the module's next generation under `key`.
    fn hand_over_fd(&self, key: &str, fd: OwnedFd) -> crate::Result<()>;
    /// Takes what a previous generation handed over under `key`.
    fn take_fd(&self, key: &str) -> crate::Result<Option<OwnedFd>>;
    /// A handle that publishes as the module from any thread.
    fn publisher(&self) -> Publisher;
    /// Starts a module thread the host stops and joins at shutdown.
    fn spawn(&self, name: &str, body: ThreadBody) -> crate::Result<()>;
    /// The module's own metrics.
    fn metrics(&self) -> crate::Metrics;
}

/// Where a [`Publisher`]'s events go: implemented by hosts, not modules.
pub trait PublishSink: Send + Sync {
    /// Publishes JSON bytes on a topic as the module.
    fn publish(&self, topic: &str, payload: &[u8]) -> crate::Result<()>;
    /// Publishes a request as the module (see [`Context::request`]).
    fn request(&self, topic: &str, payload: &[u8], timeout: Duration) -> crate::Result<RequestId>;
    /// Answers request `id` of module `reply_to` as the module.
    fn reply(&self, reply_to: &str, id: RequestId, payload: &[u8]) -> crate::Result<()>;
}

/// Publishes as the module from any thread, its own threads included
/// (`Send + Clone + 'static`; get one with [`Context::publisher`]). Once the
/// module's generation has stopped (reloaded, removed, shut down) every publish
/// returns an error such as `generation 3 of 'sensor' has stopped`: a thread
/// should then end.
#[derive(Clone)]
pub struct Publisher {
    sink: Arc<dyn PublishSink>,
}

impl Publisher {
    /// A publisher over `sink` (for hosts).
    pub fn new(sink: Arc<dyn PublishSink>) -> Self {
        Self { sink }
    }

    /// Publishes `data` serialized as JSON on `topic`.
    pub fn publish<T: Serialize + ?Sized>(&self, topic: &str, data: &T) -> crate::Result<()> {
        let payload = serde_json::to_vec(data)?;
        self.sink.publish(topic, &payload)
    }

    /// Publishes payload bytes that must already be one JSON value.
    pub fn publish_json_bytes(&self, topic: &str, payload: &[u8]) -> crate::Result<()> {
        check_json(topic, payload)?;
        self.sink.publish(topic, payload)
    }

    /// Publishes a request from a thread, as [`Context::request`] does.
    pub fn request<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        data: &T,
        timeout: Duration,
    ) -> crate::Result<RequestId> {
        let payload = serde_json::to_vec(data)?;
        self.sink.request(topic, &payload, timeout)
    }

    /// Answers a request from a thread: `reply_to` and `id` are the request's
    /// [`Event::reply_to`] and [`Event::request_id`], taken in `on_event` and
    /// handed to the thread that does the work (so the handler never waits).
    pub fn reply<T: Serialize + ?Sized>(
        &self,
        reply_to: &str,
        id: RequestId,
        data: &T,
    ) -> crate::Result<()> {
        let payload = serde_json::to_vec(data)?;
        self.sink.reply(reply_to, id, &payload)
    }
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Publisher")
    }
}

/// Refuses a payload that is not one JSON value: every consumer's
/// `event.data()` would fail on it later, far from the cause.
fn check_json(topic: &str, payload: &[u8]) -> crate::Result<()> {
    serde_json::from_slice::<serde::de::IgnoredAny>(payload)
        .map(drop)
        .map_err(|e| format!("the payload published on '{topic}' is not JSON: {e}").into())
}

/// The module's handle on the host during one callback.
pub struct Context<'a> {
    host: &'a dyn Host,
    restored_state: Option<&'a [u8]>,
}

impl<'a> Context<'a> {
    /// A context over `host`; `restored_state` is the previous generation's state.
    pub fn new(host: &'a dyn Host, restored_state: Option<&'a [u8]>) -> Self {
        Self {
            host,
            restored_state,
        }
    }

    /// Publishes `data` serialized as JSON on `topic` (dot-separated tokens).
    pub fn publish<T: Serialize + ?Sized>(&mut self, topic: &str, data: &T) -> crate::Result<()> {
        let payload = serde_json::to_vec(data)?;
        self.host.publish(topic, &payload)
    }

    /// Publishes payload bytes that must already be one JSON value (anything
    /// else is refused with an error naming the topic).
    pub fn publish_json_bytes(&mut self, topic: &str, payload: &[u8]) -> crate::Result<()> {
        check_json(topic, payload)?;
        self.host.publish(topic, payload)
    }

    /// Asks the modules subscribed to `topic` (the first to answer wins) and
    /// returns at once with the request's id; nothing waits. The answer comes
    /// to this module's mailbox later as an event on the same topic whose
    /// [`Event::request_id`] is the returned id: a reply
    /// ([`Event::is_reply`], source the answering module), or the host's notice
    /// that nobody answered within `timeout` ([`Event::is_timeout`]) or that
    /// no module subscribes to the topic ([`EventKind::NoResponders`], at once).
    /// The module's `publishes` contract must list the topic.
    pub fn request<T: Serialize + ?Sized>(
        &mut self,
        topic: &str,
        data: &T,
        timeout: Duration,
    ) -> crate::Result<RequestId> {
        let payload = serde_json::to_vec(data)?;
        self.host.request(topic, &payload, timeout)
    }

    /// Answers `request` (an event of kind [`EventKind::Request`]) with `data`:
    /// the reply goes to the requester's mailbox. Only the first answer to a
    /// request counts; answering one that was answered already or timed out is
    /// an error, as is answering an event that is not a request.
    pub fn reply<T: Serialize + ?Sized>(&mut self, request: &Event, data: &T) -> crate::Result<()> {
        let (Some(reply_to), Some(id)) = (request.reply_to(), request.request_id()) else {
            return Err(format!(
                "the event on '{}' is not a request (its kind is {:?}): only requests \
                 are answered",
                request.topic(),
                request.kind()
            )
            .into());
        };
        debug_assert_eq!(request.kind(), EventKind::Request);
        let payload = serde_json::to_vec(data)?;
        self.host.reply(reply_to, id, &payload)
    }

    /// The module's own counters and gauges, served by the host's `/metrics`
    /// labelled with the module's name (see [`crate::Metrics`]).
    pub fn metrics(&self) -> crate::Metrics {
        self.host.metrics()
    }

    /// A handle that publishes as this module from threads of its own (a
    /// listener, a poller). It works from `start` on, like [`Context::publish`],
    /// and fails once this generation has stopped.
    pub fn publisher(&self) -> Publisher {
        self.host.publisher()
    }

    /// Starts a thread of the module named `name` (unique in the module) that
    /// runs `body` with a [`StopToken`] and a [`Publisher`]. When the module
    /// shuts down (exit, reload, removal) the token is stopped right after its
    /// `shutdown` returns and the thread is joined within `timeouts.shutdown`;
    /// one that does not end by then is named in the log and its code stays
    /// loaded. Start threads in `start` (publishing fails before it).
    pub fn spawn<F>(&mut self, name: &str, body: F) -> crate::Result<()>
    where
        F: FnOnce(StopToken, Publisher) + Send + 'static,
    {
        self.host.spawn(name, Box::new(body))
    }

    /// Subscribes to `topic`; `*` matches one token and `>` all the remaining ones
    /// (`module.*`, `sensor.>`).
    pub fn subscribe(&mut self, topic: &str) -> crate::Result<()> {
        self.host.subscribe(topic)
    }

    /// Removes a subscription made with [`Context::subscribe`].
    pub fn unsubscribe(&mut self, topic: &str) -> crate::Result<()> {
        self.host.unsubscribe(topic)
    }

    /// Delivers an event on `topic` to this module every `interval`; the host owns
    /// the timer and removes it when the module stops.
    pub fn every(&mut self, interval: Duration, topic: &str) -> crate::Result<TimerId> {
        self.host.schedule_timer(topic, interval, true)
    }

    /// Delivers one event on `topic` to this module after `delay`.
    pub fn after(&mut self, delay: Duration, topic: &str) -> crate::Result<TimerId> {
        self.host.schedule_timer(topic, delay, false)
    }

    /// Cancels a timer.
    pub fn cancel_timer(&mut self, id: TimerId) -> crate::Result<()> {
        self.host.cancel_timer(id)
    }

    /// Hands an open file descriptor to this module's next generation, to take
    /// with [`Context::take_fd`] after a hot reload: a listening socket given
    /// over this way never closes, so connections that arrive during the
    /// reload wait in its queue instead of being refused. Call it in
    /// `shutdown`. The host closes what the next generation does not take
    /// once that generation has started (and everything at exit). Modules
    /// that run in a child process (`isolation: process`) cannot hand over:
    /// each generation is a new process, so this is an error there and the
    /// next generation opens its own (bind again).
    pub fn hand_over_fd(&mut self, key: &str, fd: impl Into<OwnedFd>) -> crate::Result<()> {
        self.host.hand_over_fd(key, fd.into())
    }

    /// In `initialize` or `start` after a hot reload: the descriptor the
    /// previous generation handed over under `key`, if any
    /// (`TcpListener::from(fd)` makes it a listener again).
    pub fn take_fd(&mut self, key: &str) -> crate::Result<Option<OwnedFd>> {
        self.host.take_fd(key)
    }

    /// In `initialize` after a reload: the state the previous generation returned
    /// from `save_state`, deserialized; `None` on a first start.
    pub fn restored_state<T: DeserializeOwned>(&self) -> crate::Result<Option<T>> {
        match self.restored_state {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(bytes)
                .map(Some)
                .map_err(|e| format!("restored state does not fit: {e}").into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;
    use crate::testing::ModuleHarness;

    /// Publishes from a thread of its own, started in `start`.
    #[derive(Default)]
    struct Worker {
        thread: Option<std::thread::JoinHandle<crate::Result<()>>>,
    }

    impl Module for Worker {
        fn initialize(&mut self, ctx: &mut Context, _config: &Config) -> Result<()> {
            ctx.subscribe("any.thing")
        }

        fn start(&mut self, ctx: &mut Context) -> Result<()> {
            let publisher = ctx.publisher();
            self.thread = Some(std::thread::spawn(move || {
                publisher.publish("worker.line", &serde_json::json!({"text": "hi"}))
            }));
            Ok(())
        }

        fn on_event(&mut self, ctx: &mut Context, _event: &Event) -> Result<()> {
            ctx.publish_json_bytes("worker.raw", b"{not json")
        }
    }

    #[test]
    fn a_publisher_publishes_as_the_module_from_another_thread() {
        let mut harness = ModuleHarness::new(Worker::default());
        harness.initialize(serde_json::json!({})).unwrap();
        assert!(
            harness.module().thread.is_none(),
            "nothing runs before start"
        );
        harness.start().unwrap();
        let thread = harness.module_mut().thread.take().unwrap();
        thread.join().unwrap().unwrap();
        assert_eq!(
            harness.host().published_on("worker.line"),
            vec![serde_json::json!({"text": "hi"})]
        );
    }

    #[test]
    fn bytes_that_are_not_json_are_refused_with_the_topic() {
        let mut harness = ModuleHarness::new(Worker::default());
        harness.initialize(serde_json::json!({})).unwrap();
        harness.start().unwrap();
        let error = harness.deliver("any.thing", &1).unwrap_err().to_string();
        assert!(error.contains("'worker.raw' is not JSON"), "{error}");
        assert!(harness.host().published_on("worker.raw").is_empty());
    }

    /// Runs a ticker with `ctx.spawn`, and one thread that ignores its token.
    #[derive(Default)]
    struct Spawner;

    impl Module for Spawner {
        fn initialize(&mut self, _ctx: &mut Context, _config: &Config) -> Result<()> {
            Ok(())
        }

        fn start(&mut self, ctx: &mut Context) -> Result<()> {
            ctx.spawn("ticker", |stop, publisher| {
                let mut n = 0u64;
                while !stop.wait(std::time::Duration::from_millis(1)) {
                    n += 1;
                    let _ = publisher.publish("spawner.tick", &n);
                }
                let _ = publisher.publish("spawner.stopped", &n);
            })?;
            ctx.spawn("deaf", |_stop, _publisher| {
                std::thread::sleep(std::time::Duration::from_millis(400));
            })?;
            assert!(ctx.spawn("ticker", |_, _| {}).is_err(), "names are unique");
            Ok(())
        }
    }

    #[test]
    fn spawned_threads_are_stopped_and_a_deaf_one_is_named() {
        let mut harness = ModuleHarness::new(Spawner);
        harness.initialize(serde_json::json!({})).unwrap();
        harness.start().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let stuck = harness.stop_threads(std::time::Duration::from_millis(100));
        assert_eq!(stuck, vec!["deaf".to_owned()]);
        assert_eq!(harness.host().published_on("spawner.stopped").len(), 1);
        assert!(!harness.host().published_on("spawner.tick").is_empty());
    }

    /// Answers `q.ask` requests and asks `other.count` itself on `q.go`.
    #[derive(Default)]
    struct Asker {
        asked: Option<RequestId>,
        answer: Option<(EventKind, serde_json::Value)>,
    }

    impl Module for Asker {
        fn initialize(&mut self, ctx: &mut Context, _config: &Config) -> Result<()> {
            ctx.subscribe("q.ask")?;
            ctx.subscribe("q.go")
        }

        fn on_event(&mut self, ctx: &mut Context, event: &Event) -> Result<()> {
            match event.kind() {
                EventKind::Request => ctx.reply(event, &serde_json::json!({"n": 1})),
                kind if kind.answers_a_request() => {
                    assert_eq!(event.request_id(), self.asked);
                    self.answer = Some((kind, event.json()?));
                    Ok(())
                }
                _ => {
                    let timeout = std::time::Duration::from_millis(50);
                    self.asked = Some(ctx.request("other.count", &(), timeout)?);
                    assert!(ctx.reply(event, &1).is_err(), "not a request");
                    Ok(())
                }
            }
        }
    }

    #[test]
    fn requests_and_replies_through_the_harness() {
        let mut harness = ModuleHarness::new(Asker::default());
        harness.initialize(serde_json::json!({})).unwrap();
        harness.start().unwrap();

        let id = harness
            .deliver_request("q.ask", &(), "client")
            .unwrap()
            .unwrap();
        let replies = harness.host().replies();
        assert_eq!(replies.len(), 1);
        assert_eq!(
            (replies[0].reply_to.as_str(), replies[0].id),
            ("client", id)
        );
        assert_eq!(replies[0].data, serde_json::json!({"n": 1}));
        assert_eq!(harness.deliver_request("other.x", &(), "c").unwrap(), None);

        harness.deliver("q.go", &()).unwrap();
        let asked = harness.host().requests();
        assert_eq!(asked[0].topic, "other.count");
        harness.deliver_reply(asked[0].id, &7, "other").unwrap();
        assert_eq!(
            harness.module().answer,
            Some((EventKind::Reply, serde_json::json!(7)))
        );
        harness.deliver_timeout(asked[0].id).unwrap();
        assert_eq!(
            harness.module().answer,
            Some((EventKind::Timeout, serde_json::json!({"timeout_ms": 50})))
        );
    }
}
