//! The frames between the orchestrator and a child module host: a `u32`
//! little-endian length, a kind byte, then the kind's fields (byte strings as a
//! `u32` length + bytes). Events carry exactly the bytes the bus carries: the
//! topic and the JSON payload, untouched.

use std::io::{self, Read, Write};

use orch_sdk::EventKind;

use crate::metric::MetricSample;

/// The largest frame accepted (64 MiB): a corrupt length never allocates more.
pub const MAX_FRAME: usize = 64 << 20;

/// How a request ended, as the child reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It succeeded.
    Ok = 0,
    /// The module returned an error.
    Error = 1,
    /// The module panicked (caught at the boundary).
    Panic = 2,
    /// The child host failed around the module (load, ABI, ...).
    Host = 3,
}

/// An event as it travels to a child: the bus's own bytes and its envelope
/// (`orch-runtime` converts it from and to the bus's `Delivery`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFrame {
    /// The topic.
    pub topic: String,
    /// The JSON payload.
    pub payload: Vec<u8>,
    /// The event's id in the orchestrator.
    pub id: u64,
    /// The publishing module; empty for the host.
    pub source: String,
    /// When it was published, in milliseconds since the Unix epoch.
    pub published_at_ms: u64,
    /// How many times it has been delivered to the application: 1, or more
    /// for a job the NATS bridge delivers again (never 0).
    pub delivery_count: u32,
    /// Its part in a request/reply exchange.
    pub kind: EventKind,
    /// The request it is or answers (0 for a plain event).
    pub request_id: u64,
    /// For a request: the module that waits for the answer.
    pub reply_to: String,
}

/// One message either way.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// Parent → child: `Module::initialize(config, state)`.
    Initialize {
        /// The module's config, JSON.
        config: Vec<u8>,
        /// The saved state, if any.
        state: Option<Vec<u8>>,
    },
    /// Parent → child: `Module::start`.
    Start,
    /// Parent → child: deliver an event to `on_event`.
    Event(EventFrame),
    /// Parent → child: `Module::save_state`.
    SaveState,
    /// Parent → child: `Module::shutdown`.
    Shutdown,
    /// Parent → child: destroy the instance and exit.
    Exit,
    /// Parent → child: answer at once with a `Pong` (the child's reader
    /// thread does, whatever the module's thread is doing).
    Ping(u64),
    /// Child → parent: the answer to the last request (the load, then each
    /// lifecycle call or event); `data` is the saved state, the declared
    /// package and SDK (`package\nsdk`) or the error message.
    Reply {
        /// Its number: the child numbers its replies 1, 2, 3, ... (the first
        /// answers the load), so the orchestrator can refuse an unsolicited
        /// or duplicate one.
        seq: u64,
        /// How the call ended.
        status: Status,
        /// What it returned.
        data: Vec<u8>,
    },
    /// Child → parent: `count` events handled without error, what as many
    /// `Reply` frames of status `Ok` would say: the replies numbered
    /// `first`, `first + 1`, ... (every one answers an event). A busy child
    /// sends one for a run of events instead of a frame each.
    Handled {
        /// The number of the first reply it stands for.
        first: u64,
        /// How many (at least 1).
        count: u32,
        /// The handlers' time together, in nanoseconds.
        nanos: u64,
    },
    /// Child → parent: the module publishes.
    Publish {
        /// The topic.
        topic: String,
        /// The JSON payload.
        payload: Vec<u8>,
    },
    /// Child → parent: the module subscribes.
    Subscribe(String),
    /// Child → parent: the module unsubscribes.
    Unsubscribe(String),
    /// Child → parent: a log line (1 error … 5 trace).
    Log {
        /// The level.
        level: u8,
        /// The message.
        message: String,
    },
    /// Child → parent: the answer to a `Ping`, with how long the module's
    /// thread has been in its current call (0 when idle).
    Pong {
        /// The ping's number.
        n: u64,
        /// Milliseconds in the current call.
        busy_ms: u64,
    },
    /// Child → parent: the module asks (see `Context::request`); the answer
    /// comes back as an `Event` frame that answers request `id`.
    Request {
        /// The id the child's host gave it (unique for the module).
        id: u64,
        /// The topic.
        topic: String,
        /// The JSON payload.
        payload: Vec<u8>,
        /// How long it waits for the answer, in milliseconds.
        timeout_ms: u64,
    },
    /// Child → parent: the module answers request `id` of module `reply_to`.
    Answer {
        /// The module that asked.
        reply_to: String,
        /// The request answered.
        id: u64,
        /// The JSON payload.
        payload: Vec<u8>,
    },
    /// Child → parent, before a `Pong`: the module's own metrics that
    /// changed since the last one (counters as increments, gauges as values).
    Metrics(Vec<MetricSample>),
    /// Child → parent: a timer event failed in the module.
    TimerFailed {
        /// The timer's topic.
        topic: String,
        /// Why.
        message: String,
    },
}

/// A frame that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The stream failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The stream ended inside a frame.
    #[error("the stream ended inside a frame")]
    Truncated,
    /// The length prefix is above [`MAX_FRAME`] (or zero).
    #[error("bad frame length {0} (limit {MAX_FRAME})")]
    BadLength(usize),
    /// An unknown kind byte.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// The fields do not fit the kind.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
}

const INITIALIZE: u8 = 1;
const START: u8 = 2;
const EVENT: u8 = 3;
const SAVE_STATE: u8 = 4;
const SHUTDOWN: u8 = 5;
const EXIT: u8 = 6;
const PING: u8 = 7;
const REPLY: u8 = 20;
const PUBLISH: u8 = 21;
const SUBSCRIBE: u8 = 22;
const UNSUBSCRIBE: u8 = 23;
const LOG: u8 = 24;
const PONG: u8 = 25;
const TIMER_FAILED: u8 = 26;
const REQUEST: u8 = 27;
const ANSWER: u8 = 28;
const METRICS: u8 = 29;
const HANDLED: u8 = 30;

/// The most a reused frame buffer keeps between frames.
const KEPT_FRAME_BYTES: usize = 64 * 1024;

/// Lets go of a reused frame buffer's room past [`KEPT_FRAME_BYTES`] (one
/// large frame, a module's saved state, does not hold its size for good).
pub fn keep_small(buf: &mut Vec<u8>) {
    if buf.capacity() > KEPT_FRAME_BYTES {
        buf.clear();
        buf.shrink_to(KEPT_FRAME_BYTES);
    }
}

#[inline]
fn put(buf: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(bytes);
}

impl Frame {
    /// Whether the child answers this frame with a `Reply`.
    #[inline]
    pub fn expects_reply(&self) -> bool {
        matches!(
            self,
            Frame::Initialize { .. }
                | Frame::Start
                | Frame::Event(_)
                | Frame::SaveState
                | Frame::Shutdown
        )
    }

    /// Whether it travels on the control pipe whatever the transport:
    /// heartbeats, logs and metrics (everything else goes through the shared
    /// rings when they are used).
    #[inline]
    pub fn is_control(&self) -> bool {
        matches!(
            self,
            Frame::Ping(_) | Frame::Pong { .. } | Frame::Log { .. } | Frame::Metrics(_)
        )
    }

    /// Whether only the orchestrator sends it (every request the child
    /// answers, `Exit` and `Ping`): from a child, a protocol error.
    #[inline]
    pub fn is_parent_only(&self) -> bool {
        self.expects_reply() || matches!(self, Frame::Exit | Frame::Ping(_))
    }

    /// The frame's kind, to name it in an error.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Frame::Initialize { .. } => "Initialize",
            Frame::Start => "Start",
            Frame::Event(_) => "Event",
            Frame::SaveState => "SaveState",
            Frame::Shutdown => "Shutdown",
            Frame::Exit => "Exit",
            Frame::Ping(_) => "Ping",
            Frame::Reply { .. } => "Reply",
            Frame::Handled { .. } => "Handled",
            Frame::Publish { .. } => "Publish",
            Frame::Subscribe(_) => "Subscribe",
            Frame::Unsubscribe(_) => "Unsubscribe",
            Frame::Log { .. } => "Log",
            Frame::Pong { .. } => "Pong",
            Frame::TimerFailed { .. } => "TimerFailed",
            Frame::Request { .. } => "Request",
            Frame::Answer { .. } => "Answer",
            Frame::Metrics(_) => "Metrics",
        }
    }

    /// The frame as bytes, length prefix included.
    #[inline]
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        self.encode_into(&mut buf);
        buf
    }

    /// About how many bytes the frame takes (its variable parts plus a
    /// margin for the fixed ones): room made once instead of growing.
    fn size_hint(&self) -> usize {
        let variable = match self {
            Frame::Initialize { config, state } => {
                config.len() + state.as_ref().map_or(0, Vec::len)
            }
            Frame::Event(event) => EventRef::from(event).variable_len(),
            Frame::Reply { data, .. } => data.len(),
            Frame::Publish { topic, payload } => topic.len() + payload.len(),
            Frame::Subscribe(p) | Frame::Unsubscribe(p) => p.len(),
            Frame::Log { message, .. } => message.len(),
            Frame::TimerFailed { topic, message } => topic.len() + message.len(),
            Frame::Request { topic, payload, .. } => topic.len() + payload.len(),
            Frame::Answer {
                reply_to, payload, ..
            } => reply_to.len() + payload.len(),
            Frame::Metrics(samples) => samples
                .iter()
                .map(|s| s.name.len() + s.help.len() + 20)
                .sum(),
            _ => 0,
        };
        variable + 64
    }

    /// Writes the frame's bytes, length prefix included, over `buf` (its
    /// allocation reused: one buffer for a stream of frames).
    #[inline]
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        buf.clear();
        buf.reserve(self.size_hint());
        buf.extend_from_slice(&[0; 4]);
        match self {
            Frame::Initialize { config, state } => {
                buf.push(INITIALIZE);
                put(buf, config);
                buf.push(u8::from(state.is_some()));
                put(buf, state.as_deref().unwrap_or_default());
            }
            Frame::Start => buf.push(START),
            Frame::Event(event) => EventRef::from(event).put_body(buf),
            Frame::SaveState => buf.push(SAVE_STATE),
            Frame::Shutdown => buf.push(SHUTDOWN),
            Frame::Exit => buf.push(EXIT),
            Frame::Ping(n) => {
                buf.push(PING);
                buf.extend_from_slice(&n.to_le_bytes());
            }
            Frame::Reply { seq, status, data } => {
                buf.push(REPLY);
                buf.extend_from_slice(&seq.to_le_bytes());
                buf.push(*status as u8);
                put(buf, data);
            }
            Frame::Handled {
                first,
                count,
                nanos,
            } => {
                buf.push(HANDLED);
                buf.extend_from_slice(&first.to_le_bytes());
                buf.extend_from_slice(&count.to_le_bytes());
                buf.extend_from_slice(&nanos.to_le_bytes());
            }
            Frame::Publish { topic, payload } => {
                buf.push(PUBLISH);
                put(buf, topic.as_bytes());
                put(buf, payload);
            }
            Frame::Subscribe(p) => {
                buf.push(SUBSCRIBE);
                put(buf, p.as_bytes());
            }
            Frame::Unsubscribe(p) => {
                buf.push(UNSUBSCRIBE);
                put(buf, p.as_bytes());
            }
            Frame::Log { level, message } => {
                buf.push(LOG);
                buf.push(*level);
                put(buf, message.as_bytes());
            }
            Frame::Pong { n, busy_ms } => {
                buf.push(PONG);
                buf.extend_from_slice(&n.to_le_bytes());
                buf.extend_from_slice(&busy_ms.to_le_bytes());
            }
            Frame::TimerFailed { topic, message } => {
                buf.push(TIMER_FAILED);
                put(buf, topic.as_bytes());
                put(buf, message.as_bytes());
            }
            Frame::Request {
                id,
                topic,
                payload,
                timeout_ms,
            } => {
                buf.push(REQUEST);
                buf.extend_from_slice(&id.to_le_bytes());
                put(buf, topic.as_bytes());
                put(buf, payload);
                buf.extend_from_slice(&timeout_ms.to_le_bytes());
            }
            Frame::Answer {
                reply_to,
                id,
                payload,
            } => {
                buf.push(ANSWER);
                put(buf, reply_to.as_bytes());
                buf.extend_from_slice(&id.to_le_bytes());
                put(buf, payload);
            }
            Frame::Metrics(samples) => {
                buf.push(METRICS);
                let count = u32::try_from(samples.len()).unwrap_or(u32::MAX);
                buf.extend_from_slice(&count.to_le_bytes());
                for sample in samples {
                    buf.extend_from_slice(&sample.kind.code().to_le_bytes());
                    put(buf, sample.name.as_bytes());
                    put(buf, sample.help.as_bytes());
                    buf.extend_from_slice(&sample.value.to_bits().to_le_bytes());
                }
            }
        }
        let len = u32::try_from(buf.len() - 4).unwrap_or(u32::MAX);
        buf[..4].copy_from_slice(&len.to_le_bytes());
    }

    /// Writes the frame and flushes.
    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&self.encode())?;
        w.flush()
    }

    /// Reads one frame; `Ok(None)` at a clean end of stream (between frames).
    pub fn read_from(r: &mut impl Read) -> Result<Option<Frame>, ProtocolError> {
        Self::read_with(r, &mut Vec::new())
    }

    /// [`Frame::read_from`] reading the body into `body` (its allocation
    /// reused: one buffer for a stream of frames).
    pub fn read_with(
        r: &mut impl Read,
        body: &mut Vec<u8>,
    ) -> Result<Option<Frame>, ProtocolError> {
        if !Self::read_body(r, body)? {
            return Ok(None);
        }
        Self::decode(body).map(Some)
    }

    /// Reads one frame's body (kind byte and fields) into `body`, to decode
    /// with [`Frame::decode`] or, borrowing it, [`EventRef::decode`];
    /// `Ok(false)` at a clean end of stream (between frames).
    pub fn read_body(r: &mut impl Read, body: &mut Vec<u8>) -> Result<bool, ProtocolError> {
        let mut len = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match r.read(&mut len[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => return Err(ProtocolError::Truncated),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        let len = u32::from_le_bytes(len) as usize;
        if len == 0 || len > MAX_FRAME {
            return Err(ProtocolError::BadLength(len));
        }
        body.clear();
        body.resize(len, 0);
        r.read_exact(body).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => ProtocolError::Truncated,
            _ => ProtocolError::Io(e),
        })?;
        Ok(true)
    }

    /// Decodes a frame body (kind byte and fields, without the length prefix).
    #[inline]
    pub fn decode(body: &[u8]) -> Result<Frame, ProtocolError> {
        let (&kind, rest) = body
            .split_first()
            .ok_or(ProtocolError::Malformed("empty"))?;
        let mut f = Fields(rest);
        let frame = match kind {
            INITIALIZE => {
                let config = f.bytes()?;
                let has_state = f.byte()? != 0;
                let state = f.bytes()?;
                Frame::Initialize {
                    config,
                    state: has_state.then_some(state),
                }
            }
            START => Frame::Start,
            EVENT => Frame::Event(EventRef::from_fields(&mut f)?.to_frame()),
            SAVE_STATE => Frame::SaveState,
            SHUTDOWN => Frame::Shutdown,
            EXIT => Frame::Exit,
            PING => Frame::Ping(f.u64()?),
            REPLY => {
                let seq = f.u64()?;
                let status = match f.byte()? {
                    0 => Status::Ok,
                    1 => Status::Error,
                    2 => Status::Panic,
                    3 => Status::Host,
                    _ => return Err(ProtocolError::Malformed("reply status")),
                };
                Frame::Reply {
                    seq,
                    status,
                    data: f.bytes()?,
                }
            }
            HANDLED => Frame::Handled {
                first: f.u64()?,
                count: match f.u32()? {
                    0 => return Err(ProtocolError::Malformed("no events handled")),
                    count => count,
                },
                nanos: f.u64()?,
            },
            PUBLISH => Frame::Publish {
                topic: f.text()?,
                payload: f.bytes()?,
            },
            SUBSCRIBE => Frame::Subscribe(f.text()?),
            UNSUBSCRIBE => Frame::Unsubscribe(f.text()?),
            LOG => Frame::Log {
                level: f.byte()?,
                message: f.text()?,
            },
            PONG => Frame::Pong {
                n: f.u64()?,
                busy_ms: f.u64()?,
            },
            TIMER_FAILED => Frame::TimerFailed {
                topic: f.text()?,
                message: f.text()?,
            },
            REQUEST => Frame::Request {
                id: f.u64()?,
                topic: f.text()?,
                payload: f.bytes()?,
                timeout_ms: f.u64()?,
            },
            ANSWER => Frame::Answer {
                reply_to: f.text()?,
                id: f.u64()?,
                payload: f.bytes()?,
            },
            METRICS => Frame::Metrics(f.metric_samples()?),
            other => return Err(ProtocolError::UnknownKind(other)),
        };
        if !f.0.is_empty() {
            return Err(ProtocolError::Malformed("trailing bytes"));
        }
        Ok(frame)
    }
}

mod event_ref;
mod fields;

pub use event_ref::EventRef;
use fields::Fields;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
