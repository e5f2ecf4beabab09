//! The rules for a child's frames, through `dispatch` with a real context,
//! a real bus and a real process standing in for the child.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, unbounded};
use orch_config::ModuleLimits;
use orch_wire::protocol::{EventFrame, Frame, Status};

use super::reader::dispatch;
use super::rules::{Admit, PONGS_PER_SECOND, Quotas, TIMER_FAILURES_PER_SECOND, timer_failure};
use super::{Incoming, ReaderSetup, Shared, metrics};
use crate::bus::{Bus, BusEvent, EventSink};
use crate::host_api::{HostServices, ModuleHostCtx};
use crate::timers::TimerService;

struct World {
    r: ReaderSetup,
    shared: Arc<Shared>,
    replies: crossbeam_channel::Sender<Incoming>,
    /// What the reader handed the actor.
    incoming: Receiver<Incoming>,
    mailbox: Receiver<Arc<BusEvent>>,
    timers: TimerService,
}

impl Drop for World {
    fn drop(&mut self) {
        self.shared.kill("the test ended".into());
        self.shared.wait_exit(Duration::from_secs(5));
        self.timers.stop();
    }
}

/// Module `liar` (isolated, generation 1, started) with `limits`, and a
/// `sleep` process as its child.
fn world(limits: ModuleLimits) -> World {
    let bus = Bus::new();
    let timers = TimerService::new();
    let (tx, mailbox) = unbounded();
    let sink: Arc<dyn EventSink> = Arc::new(tx);
    let id = bus.register(Arc::clone(&sink));
    let ctx = ModuleHostCtx::new(
        "liar".into(),
        id,
        HostServices::new(bus.clone(), timers.clone()),
        sink,
    );
    ctx.set_limits(limits);
    ctx.set_may_publish(true);
    let child = Command::new("sleep").arg("30").spawn().expect("sleep");
    let shared = Arc::new(Shared::new(child));
    shared
        .started
        .store(true, std::sync::atomic::Ordering::Release);
    let r = ReaderSetup {
        name: "liar".into(),
        ctx: Arc::new(ctx),
        bus,
        generation: 1,
        child_ended: Arc::new(|| {}),
        metric_frames: metrics::FrameLimit::default(),
    };
    let (replies, incoming) = unbounded();
    World {
        r,
        shared,
        replies,
        incoming,
        mailbox,
        timers,
    }
}

impl World {
    fn dispatch(&self, quotas: &mut Quotas, frame: Frame) -> bool {
        dispatch(&self.r, &self.shared, &self.replies, quotas, frame).is_continue()
    }
}

fn parent_only() -> Vec<Frame> {
    let event = EventFrame {
        topic: "a.b".into(),
        payload: b"{}".to_vec(),
        id: 1,
        source: String::new(),
        published_at_ms: 0,
        delivery_count: 1,
        kind: orch_sdk::EventKind::Publish,
        request_id: 0,
        reply_to: String::new(),
    };
    vec![
        Frame::Initialize {
            config: b"{}".to_vec(),
            state: None,
        },
        Frame::Start,
        Frame::Event(event),
        Frame::SaveState,
        Frame::Shutdown,
        Frame::Exit,
        Frame::Ping(3),
    ]
}

#[test]
fn a_frame_only_the_orchestrator_sends_kills_the_child_that_sends_it() {
    for frame in parent_only() {
        let w = world(ModuleLimits::default());
        let mut quotas = Quotas::of(&w.r);
        let kind = frame.kind_name();
        assert!(!w.dispatch(&mut quotas, frame), "{kind}: reading stops");
        let why = w.shared.killed_for().expect("killed");
        assert_eq!(
            why,
            format!("it sent a {kind} frame, which only the orchestrator sends")
        );
        assert!(
            w.shared.wait_exit(Duration::from_secs(5)).is_some(),
            "{kind}: dead"
        );
    }
}

#[test]
fn a_retiring_generation_may_only_reply_log_and_answer_its_heartbeat() {
    let w = world(ModuleLimits::default());
    w.r.ctx.set_active_generation(2);
    let mut quotas = Quotas::of(&w.r);
    let may = [
        Frame::Reply {
            seq: 1,
            status: Status::Ok,
            data: Vec::new(),
        },
        Frame::Log {
            level: 3,
            message: "bye".into(),
        },
        Frame::Pong { n: 1, busy_ms: 0 },
    ];
    for frame in may {
        assert_eq!(quotas.admit(&w.r, &frame, false), Admit::Take, "{frame:?}");
    }
    let may_not = [
        Frame::Publish {
            topic: "liar.out".into(),
            payload: b"1".to_vec(),
        },
        Frame::Request {
            id: 1,
            topic: "svc.ask".into(),
            payload: b"1".to_vec(),
            timeout_ms: 100,
        },
        Frame::Answer {
            reply_to: "x".into(),
            id: 1,
            payload: b"1".to_vec(),
        },
        Frame::Subscribe("a.b".into()),
        Frame::Unsubscribe("a.b".into()),
        Frame::TimerFailed {
            topic: "liar.tick".into(),
            message: "no".into(),
        },
        Frame::Metrics(Vec::new()),
    ];
    for frame in may_not {
        assert_eq!(quotas.admit(&w.r, &frame, false), Admit::Drop, "{frame:?}");
        assert!(w.dispatch(&mut quotas, frame));
    }
    assert!(
        w.mailbox.try_recv().is_err(),
        "no refusal notice to the next one"
    );
    assert!(w.shared.killed_for().is_none());
}

#[test]
fn each_kind_is_held_to_its_rate() {
    let limits = ModuleLimits {
        publish_rate: 5,
        subscribe_rate: 2,
        ..ModuleLimits::default()
    };
    let w = world(limits);
    let mut quotas = Quotas::of(&w.r);
    let count = |quotas: &mut Quotas, frame: &Frame, n: usize| {
        (0..n)
            .filter(|_| quotas.admit(&w.r, frame, true) == Admit::Take)
            .count()
    };
    let publish = Frame::Publish {
        topic: "liar.out".into(),
        payload: b"1".to_vec(),
    };
    let request = Frame::Request {
        id: 1,
        topic: "svc.ask".into(),
        payload: b"1".to_vec(),
        timeout_ms: 100,
    };
    let answer = Frame::Answer {
        reply_to: "x".into(),
        id: 1,
        payload: b"1".to_vec(),
    };
    // Publishes and requests share limits.publish_rate; answers have their own.
    assert_eq!(count(&mut quotas, &publish, 3), 3);
    assert_eq!(count(&mut quotas, &request, 5), 2);
    assert_eq!(count(&mut quotas, &answer, 9), 5);
    let subscribe = Frame::Subscribe("a.b".into());
    let unsubscribe = Frame::Unsubscribe("a.b".into());
    assert_eq!(count(&mut quotas, &subscribe, 1), 1);
    assert_eq!(count(&mut quotas, &unsubscribe, 5), 1);
    let failed = Frame::TimerFailed {
        topic: "liar.tick".into(),
        message: "no".into(),
    };
    assert_eq!(
        count(&mut quotas, &failed, 50),
        TIMER_FAILURES_PER_SECOND as usize
    );
    let pong = Frame::Pong { n: 1, busy_ms: 0 };
    assert_eq!(count(&mut quotas, &pong, 500), PONGS_PER_SECOND as usize);
    let log = Frame::Log {
        level: 3,
        message: "paced by ctx.log".into(),
    };
    assert_eq!(count(&mut quotas, &log, 50), 50);
}

#[test]
fn a_request_over_the_rate_is_answered_at_once_with_why() {
    let limits = ModuleLimits {
        publish_rate: 1,
        ..ModuleLimits::default()
    };
    let w = world(limits);
    let (tx, responder) = unbounded();
    let responder_id = w.r.bus.register(Arc::new(tx));
    w.r.bus.subscribe(responder_id, "svc.ask").unwrap();
    let mut quotas = Quotas::of(&w.r);
    for id in 1..=2 {
        let request = Frame::Request {
            id,
            topic: "svc.ask".into(),
            payload: b"{}".to_vec(),
            timeout_ms: 60_000,
        };
        assert!(w.dispatch(&mut quotas, request));
    }
    assert_eq!(responder.try_recv().expect("the first").request_id, 1);
    assert!(responder.try_recv().is_err(), "the second was refused");
    let notice = w.mailbox.try_recv().expect("a notice for the second");
    assert_eq!(
        (notice.kind, notice.request_id),
        (orch_sdk::EventKind::Timeout, 2)
    );
    let payload: serde_json::Value = serde_json::from_slice(notice.payload()).unwrap();
    let refused = payload["refused"].as_str().unwrap();
    assert!(
        refused.contains("more publishes and requests than its `limits.publish_rate: 1`"),
        "{refused}"
    );
}

#[test]
fn a_flood_of_timer_failures_reaches_module_error_at_its_rate_escaped_and_cut() {
    let w = world(ModuleLimits::default());
    let (tx, errors) = unbounded();
    let observer = w.r.bus.register(Arc::new(tx));
    w.r.bus.subscribe(observer, "module.error").unwrap();
    let mut quotas = Quotas::of(&w.r);
    let message = format!(
        "boom\n2026-01-01 ERROR forged\x1b[31m{}",
        "x".repeat(10_000)
    );
    for _ in 0..200 {
        let frame = Frame::TimerFailed {
            topic: "liar.tick".into(),
            message: message.clone(),
        };
        assert!(w.dispatch(&mut quotas, frame));
    }
    let reported: Vec<_> = errors.try_iter().collect();
    assert_eq!(reported.len(), TIMER_FAILURES_PER_SECOND as usize);
    let error: serde_json::Value = serde_json::from_slice(reported[0].payload()).unwrap();
    let text = error["error"].as_str().unwrap();
    assert!(
        text.starts_with("boom\\n2026-01-01 ERROR forged\\u{1b}[31mxxx"),
        "{text:.80}"
    );
    assert!(!text.contains('\n') && !text.contains('\x1b'));
    assert!(
        text.len() < super::rules::MAX_FAILURE_MESSAGE + 100,
        "{}",
        text.len()
    );
    assert_eq!(error["topic"], "liar.tick");
    assert!(w.shared.killed_for().is_none());
}

#[test]
fn a_timer_failure_on_no_topic_a_timer_can_have_is_a_protocol_error() {
    assert!(timer_failure("liar.tick", "ok").is_ok());
    let why = timer_failure("bad topic\x1b[2J\n", "x").unwrap_err();
    assert!(
        why.starts_with("it reported a failed timer on 'bad topic\\u{1b}[2J\\n'"),
        "{why}"
    );
    let w = world(ModuleLimits::default());
    let mut quotas = Quotas::of(&w.r);
    let frame = Frame::TimerFailed {
        topic: "a..b".into(),
        message: "x".into(),
    };
    assert!(!w.dispatch(&mut quotas, frame));
    let killed = w.shared.killed_for().expect("killed");
    assert!(killed.contains("which no timer can have"), "{killed}");
}

#[test]
fn a_reply_out_of_turn_is_a_protocol_error() {
    let w = world(ModuleLimits::default());
    let mut quotas = Quotas::of(&w.r);
    let reply = Frame::Reply {
        seq: 5,
        status: Status::Ok,
        data: Vec::new(),
    };
    assert!(!w.dispatch(&mut quotas, reply));
    let killed = w.shared.killed_for().expect("killed");
    assert!(
        killed.contains("unsolicited or out-of-order reply (#5, expected #1"),
        "{killed}"
    );
}

fn handled(first: u64, count: u32) -> Frame {
    Frame::Handled {
        first,
        count,
        nanos: 30,
    }
}

/// Five requests sent, the first answered.
fn five_sent_one_answered() -> World {
    let w = world(ModuleLimits::default());
    w.shared
        .requests_sent
        .store(5, std::sync::atomic::Ordering::SeqCst);
    w.shared
        .replies_seen
        .store(1, std::sync::atomic::Ordering::SeqCst);
    w
}

#[test]
fn a_run_of_handled_events_counts_as_the_replies_it_stands_for() {
    let w = five_sent_one_answered();
    let mut quotas = Quotas::of(&w.r);
    assert!(w.dispatch(&mut quotas, handled(2, 3)));
    assert!(matches!(
        w.incoming.try_recv(),
        Ok(Incoming::Handled(3, 30))
    ));
    let seen = w
        .shared
        .replies_seen
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(seen, 4);
    assert!(w.shared.killed_for().is_none());
}

#[test]
fn a_run_past_the_requests_sent_is_a_protocol_error() {
    let w = five_sent_one_answered();
    let mut quotas = Quotas::of(&w.r);
    assert!(!w.dispatch(&mut quotas, handled(2, 5)));
    let killed = w.shared.killed_for().expect("killed");
    assert!(
        killed.contains("acknowledged events it was not sent or out of order (5 from #2, expected #2, 5 requests sent)"),
        "{killed}"
    );
    assert!(w.incoming.try_recv().is_err(), "nothing reaches the actor");
}

#[test]
fn a_run_that_skips_a_reply_is_a_protocol_error() {
    let w = five_sent_one_answered();
    let mut quotas = Quotas::of(&w.r);
    assert!(!w.dispatch(&mut quotas, handled(3, 1)));
    let killed = w.shared.killed_for().expect("killed");
    assert!(killed.contains("(1 from #3, expected #2"), "{killed}");
}

#[test]
fn a_run_whose_end_overflows_is_a_protocol_error() {
    let w = five_sent_one_answered();
    w.shared
        .replies_seen
        .store(u64::MAX - 1, std::sync::atomic::Ordering::SeqCst);
    let mut quotas = Quotas::of(&w.r);
    assert!(!w.dispatch(&mut quotas, handled(u64::MAX, 2)));
    assert!(w.shared.killed_for().is_some());
}
