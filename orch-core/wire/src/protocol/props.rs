//! Property tests of the frame codec: whatever bytes a child sends, decoding
//! returns a frame or an error (no panic, no buffer beyond `MAX_FRAME`), and
//! every valid frame survives encode → decode unchanged.

use std::io::{self, Read};

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::metric::{MAX_METRICS_PER_MODULE, MetricKind, MetricSample};

/// Reads from `bytes`, remembering the largest buffer it was asked to fill
/// (the frame reader allocates the body it reads into).
struct Probe<'a> {
    bytes: &'a [u8],
    largest: usize,
}

impl Read for Probe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.largest = self.largest.max(buf.len());
        self.bytes.read(buf)
    }
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,24}", "[a-z]{1,8}(\\.[a-z0-9_-]{1,8}){0,3}"]
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..64)
}

fn event_kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        Just(EventKind::Publish),
        Just(EventKind::Request),
        Just(EventKind::Reply),
        Just(EventKind::Timeout),
        Just(EventKind::NoResponders),
    ]
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::Ok),
        Just(Status::Error),
        Just(Status::Panic),
        Just(Status::Host),
    ]
}

fn sample() -> impl Strategy<Value = MetricSample> {
    (any::<bool>(), text(), text(), any::<f64>()).prop_map(|(counter, name, help, value)| {
        MetricSample {
            kind: if counter {
                MetricKind::Counter
            } else {
                MetricKind::Gauge
            },
            name,
            help,
            value,
        }
    })
}

fn event() -> impl Strategy<Value = EventFrame> {
    (
        (text(), bytes(), any::<u64>(), text()),
        (any::<u64>(), event_kind(), any::<u64>(), text()),
        prop_oneof![Just(1u32), 1u32..=u32::MAX],
    )
        .prop_map(
            |(
                (topic, payload, id, source),
                (published_at_ms, kind, request_id, reply_to),
                delivery_count,
            )| {
                EventFrame {
                    topic,
                    payload,
                    id,
                    source,
                    published_at_ms,
                    delivery_count,
                    kind,
                    request_id,
                    reply_to,
                }
            },
        )
}

/// Any valid frame of any kind.
fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (bytes(), proptest::option::of(bytes()))
            .prop_map(|(config, state)| Frame::Initialize { config, state }),
        Just(Frame::Start),
        event().prop_map(Frame::Event),
        Just(Frame::SaveState),
        Just(Frame::Shutdown),
        Just(Frame::Exit),
        any::<u64>().prop_map(Frame::Ping),
        (any::<u64>(), status(), bytes()).prop_map(|(seq, status, data)| Frame::Reply {
            seq,
            status,
            data
        }),
        (any::<u64>(), 1..=u32::MAX, any::<u64>()).prop_map(|(first, count, nanos)| {
            Frame::Handled {
                first,
                count,
                nanos,
            }
        }),
        (text(), bytes()).prop_map(|(topic, payload)| Frame::Publish { topic, payload }),
        text().prop_map(Frame::Subscribe),
        text().prop_map(Frame::Unsubscribe),
        (any::<u8>(), text()).prop_map(|(level, message)| Frame::Log { level, message }),
        (any::<u64>(), any::<u64>()).prop_map(|(n, busy_ms)| Frame::Pong { n, busy_ms }),
        (any::<u64>(), text(), bytes(), any::<u64>()).prop_map(
            |(id, topic, payload, timeout_ms)| Frame::Request {
                id,
                topic,
                payload,
                timeout_ms
            }
        ),
        (text(), any::<u64>(), bytes()).prop_map(|(reply_to, id, payload)| Frame::Answer {
            reply_to,
            id,
            payload
        }),
        vec(sample(), 0..=MAX_METRICS_PER_MODULE).prop_map(Frame::Metrics),
        (text(), text()).prop_map(|(topic, message)| Frame::TimerFailed { topic, message }),
    ]
}

/// `frame` encoded, decoded and encoded again (bytes: NaN-proof).
fn reencoded(frame: &Frame) -> Vec<u8> {
    let bytes = frame.encode();
    Frame::decode(&bytes[4..])
        .expect("a decoded frame is valid")
        .encode()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Any body decodes to a frame or an error; a frame it decodes to is a
    /// valid one (it encodes and decodes again to itself).
    #[test]
    fn any_body_decodes_to_a_frame_or_an_error(body in vec(any::<u8>(), 0..256)) {
        if let Ok(frame) = Frame::decode(&body) {
            prop_assert_eq!(reencoded(&frame), frame.encode());
        }
    }

    /// Bodies that start with a real kind byte reach deeper into the fields.
    #[test]
    fn any_fields_after_a_real_kind_decode_or_are_refused(
        kind in prop_oneof![1u8..=7, 20u8..=30],
        fields in vec(any::<u8>(), 0..128),
    ) {
        let mut body = vec![kind];
        body.extend_from_slice(&fields);
        let decoded = Frame::decode(&body);
        if let Ok(frame) = &decoded {
            prop_assert_eq!(reencoded(frame), frame.encode());
        }
        // The borrowed decoder agrees with the owned one on events.
        match (EventRef::decode(&body), &decoded) {
            (Ok(Some(event)), Ok(Frame::Event(owned))) => prop_assert_eq!(event.to_frame(), owned.clone()),
            (Ok(None), _) => prop_assert!(kind != 3),
            (Err(_), Err(_)) => {}
            (borrowed, owned) => prop_assert!(false, "{:?} vs {:?}", borrowed, owned),
        }
    }

    /// Any stream reads as frames, a clean end or an error, and the reader
    /// never asks for a buffer beyond `MAX_FRAME` whatever length it claims.
    #[test]
    fn any_stream_reads_without_a_buffer_past_the_limit(
        len in prop_oneof![any::<u32>(), 0u32..300],
        rest in vec(any::<u8>(), 0..300),
    ) {
        let mut stream = len.to_le_bytes().to_vec();
        stream.extend_from_slice(&rest);
        let mut probe = Probe { bytes: &stream, largest: 0 };
        for _ in 0..8 {
            match Frame::read_from(&mut probe) {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        prop_assert!(probe.largest <= MAX_FRAME, "asked for {} bytes", probe.largest);
        if len as usize > MAX_FRAME || len == 0 {
            let refused = Frame::read_from(&mut &stream[..]);
            prop_assert!(matches!(refused, Err(ProtocolError::BadLength(_))), "{:?}", refused);
        }
    }

    /// Every valid frame round-trips: decode(encode(f)) encodes to the same
    /// bytes, is of the same kind, and equals `f` (NaN aside).
    #[test]
    fn every_valid_frame_round_trips(frame in frame()) {
        let bytes = frame.encode();
        let read = Frame::read_from(&mut &bytes[..]).expect("valid").expect("a frame");
        prop_assert_eq!(read.encode(), bytes);
        prop_assert_eq!(read.kind_name(), frame.kind_name());
        let has_nan = matches!(&frame, Frame::Metrics(s) if s.iter().any(|s| s.value.is_nan()));
        if !has_nan {
            prop_assert_eq!(read, frame);
        }
    }

    /// A borrowed event encodes to the bytes of its owned frame, and reads
    /// back as it.
    #[test]
    fn a_borrowed_event_encodes_as_its_frame(event in event()) {
        let mut borrowed = Vec::new();
        EventRef::from(&event).encode_into(&mut borrowed);
        let owned = Frame::Event(EventRef::from(&event).to_frame());
        prop_assert_eq!(&borrowed, &owned.encode());
        prop_assert_eq!(EventRef::decode(&borrowed[4..]).ok().flatten(), Some(EventRef::from(&event)));
        let read = Frame::read_from(&mut &borrowed[..]).expect("valid").expect("a frame");
        prop_assert_eq!(read, Frame::Event(event));
    }
}
