use super::*;

fn all() -> Vec<Frame> {
    vec![
        Frame::Initialize {
            config: b"{\"a\":1}".to_vec(),
            state: Some(b"42".to_vec()),
        },
        Frame::Initialize {
            config: b"{}".to_vec(),
            state: None,
        },
        Frame::Start,
        Frame::Event(EventFrame {
            topic: "test.ping".into(),
            payload: br#"{"seq":1}"#.to_vec(),
            id: 42,
            source: "mod-dummy-producer".into(),
            published_at_ms: 1_700_000_000_123,
            delivery_count: 1,
            kind: EventKind::Publish,
            request_id: 0,
            reply_to: String::new(),
        }),
        Frame::Event(EventFrame {
            topic: "io.stats".into(),
            payload: b"{}".to_vec(),
            id: 43,
            source: "client".into(),
            published_at_ms: 1,
            delivery_count: 3,
            kind: EventKind::Request,
            request_id: 9 << 40 | 1,
            reply_to: "client".into(),
        }),
        Frame::SaveState,
        Frame::Shutdown,
        Frame::Exit,
        Frame::Ping(7),
        Frame::Reply {
            seq: 3,
            status: Status::Panic,
            data: b"boom".to_vec(),
        },
        Frame::Handled {
            first: 4,
            count: 256,
            nanos: 1_500_000,
        },
        Frame::Publish {
            topic: "a.b".into(),
            payload: vec![],
        },
        Frame::Subscribe("a.>".into()),
        Frame::Unsubscribe("a.*".into()),
        Frame::Log {
            level: 3,
            message: "hello".into(),
        },
        Frame::Pong { n: 7, busy_ms: 120 },
        Frame::Metrics(vec![
            crate::metric::MetricSample {
                kind: crate::metric::MetricKind::Counter,
                name: "pings".into(),
                help: "Pings seen".into(),
                value: 3.0,
            },
            crate::metric::MetricSample {
                kind: crate::metric::MetricKind::Gauge,
                name: "depth".into(),
                help: String::new(),
                value: -1.5,
            },
        ]),
        Frame::TimerFailed {
            topic: "t.x".into(),
            message: "no".into(),
        },
        Frame::Request {
            id: 3,
            topic: "io.stats".into(),
            payload: b"null".to_vec(),
            timeout_ms: 250,
        },
        Frame::Answer {
            reply_to: "client".into(),
            id: 3,
            payload: b"{\"lines\":2}".to_vec(),
        },
    ]
}

#[test]
fn every_frame_round_trips_through_a_stream() {
    let mut stream = Vec::new();
    for frame in all() {
        frame.write_to(&mut stream).expect("write");
    }
    let mut reader = stream.as_slice();
    for frame in all() {
        assert_eq!(Frame::read_from(&mut reader).expect("read"), Some(frame));
    }
    assert_eq!(Frame::read_from(&mut reader).expect("eof"), None);
}

#[test]
fn event_bytes_are_carried_unchanged() {
    let payload = "{\"message\":\"héllo\",\"seq\":18446744073709551615}".as_bytes();
    let frame = Frame::Event(EventFrame {
        topic: "test.ping".into(),
        payload: payload.to_vec(),
        id: 1,
        source: String::new(),
        published_at_ms: 0,
        delivery_count: 1,
        kind: EventKind::Publish,
        request_id: 0,
        reply_to: String::new(),
    });
    let bytes = frame.encode();
    assert!(bytes.windows(payload.len()).any(|w| w == payload));
}

#[test]
fn the_delivery_count_round_trips_and_is_never_zero() {
    let event = |delivery_count| {
        Frame::Event(EventFrame {
            topic: "jobs.resize".into(),
            payload: b"{}".to_vec(),
            id: 5,
            source: "web".into(),
            published_at_ms: 9,
            delivery_count,
            kind: EventKind::Publish,
            request_id: 0,
            reply_to: String::new(),
        })
    };
    for count in [1, 3, u32::MAX] {
        let bytes = event(count).encode();
        let Ok(Frame::Event(back)) = Frame::decode(&bytes[4..]) else {
            panic!("delivered {count} times: not an event frame");
        };
        assert_eq!(back.delivery_count, count);
    }
    // The count is the frame's last field: 0 there is refused.
    let mut zero = event(1).encode();
    let at = zero.len() - 4;
    zero[at..].copy_from_slice(&0u32.to_le_bytes());
    assert!(matches!(
        Frame::decode(&zero[4..]),
        Err(ProtocolError::Malformed(_))
    ));
}

#[test]
fn a_truncated_frame_is_an_error_not_an_end() {
    let bytes = Frame::Publish {
        topic: "a.b".into(),
        payload: b"12345".to_vec(),
    }
    .encode();
    for cut in 1..bytes.len() {
        let mut reader = &bytes[..cut];
        let result = Frame::read_from(&mut reader);
        assert!(
            matches!(result, Err(ProtocolError::Truncated)),
            "cut at {cut}: {result:?}"
        );
    }
}

#[test]
fn oversized_and_empty_lengths_are_refused_before_allocating() {
    let mut huge = ((MAX_FRAME + 1) as u32).to_le_bytes().to_vec();
    huge.push(EVENT);
    assert!(matches!(
        Frame::read_from(&mut huge.as_slice()),
        Err(ProtocolError::BadLength(_))
    ));
    let zero = 0u32.to_le_bytes();
    assert!(matches!(
        Frame::read_from(&mut zero.as_slice()),
        Err(ProtocolError::BadLength(0))
    ));
}

#[test]
fn malformed_bodies_are_named() {
    assert!(matches!(
        Frame::decode(&[99]),
        Err(ProtocolError::UnknownKind(99))
    ));
    // A field whose length runs past the frame.
    assert!(matches!(
        Frame::decode(&[SUBSCRIBE, 10, 0, 0, 0, b'a']),
        Err(ProtocolError::Malformed(_))
    ));
    assert!(matches!(
        Frame::decode(&[START, 0]),
        Err(ProtocolError::Malformed("trailing bytes"))
    ));
    assert!(matches!(
        Frame::decode(&[SUBSCRIBE, 2, 0, 0, 0, 0xff, 0xfe]),
        Err(ProtocolError::Malformed("invalid UTF-8"))
    ));
    let mut none_handled = vec![HANDLED];
    none_handled.extend_from_slice(&1u64.to_le_bytes());
    none_handled.extend_from_slice(&0u32.to_le_bytes());
    none_handled.extend_from_slice(&0u64.to_le_bytes());
    assert!(matches!(
        Frame::decode(&none_handled),
        Err(ProtocolError::Malformed("no events handled"))
    ));
}

#[test]
fn a_metrics_frame_with_more_samples_than_a_module_may_have_is_refused() {
    let mut body = vec![METRICS];
    body.extend_from_slice(&(u32::MAX).to_le_bytes());
    assert!(matches!(
        Frame::decode(&body),
        Err(ProtocolError::Malformed(
            "more metrics than a module may have"
        ))
    ));
    let mut body = vec![METRICS];
    body.extend_from_slice(&1u32.to_le_bytes());
    body.extend_from_slice(&7u32.to_le_bytes());
    assert!(matches!(
        Frame::decode(&body),
        Err(ProtocolError::Malformed("metric kind"))
    ));
}

#[test]
fn one_reused_buffer_writes_and_reads_every_frame_as_a_fresh_one_would() {
    let mut written = Vec::new();
    let mut stream = Vec::new();
    let mut frames = all();
    frames.push(Frame::Publish {
        topic: "big.one".into(),
        payload: vec![b'x'; 200_000],
    });
    frames.extend(all());
    for frame in &frames {
        frame.encode_into(&mut written);
        assert_eq!(written, frame.encode(), "{}", frame.kind_name());
        stream.extend_from_slice(&written);
        keep_small(&mut written);
        assert!(
            written.capacity() <= 64 * 1024,
            "a large frame's room is let go"
        );
    }
    let mut body = Vec::new();
    let mut reader = stream.as_slice();
    for frame in &frames {
        let back = Frame::read_with(&mut reader, &mut body).unwrap().unwrap();
        assert_eq!(&back, frame);
    }
    assert!(Frame::read_with(&mut reader, &mut body).unwrap().is_none());
}
