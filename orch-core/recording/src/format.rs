//! The recording file of `cargo orch record` and `cargo orch replay`: gzip
//! of JSON lines, version 1.
//!
//! ```text
//! {"format":"cargo-orch-recording","version":1,"pattern":"test.>","started_at_ms":...}
//! {"t_ms":0,"topic":"test.ping","source":"mod-dummy-producer","origin":null,"id":7,"at_ms":...,"payload":{...}}
//! ...
//! {"end":true,"events":1000,"dropped":0}
//! ```
//!
//! `t_ms` is the event's publish time less the first event's (what replay
//! paces by); `payload` is the event's JSON as published, with the
//! configuration's secrets scrubbed. A file cut short (the recorder was
//! killed) has no end line: replay plays what is there and says so.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

/// The `format` of the first line.
pub const FORMAT: &str = "cargo-orch-recording";
/// The version this program writes and reads.
pub const VERSION: u32 = 1;
/// A line of a recording holds at most this many bytes (a payload is at
/// most the bus's event limit).
pub const MAX_LINE_BYTES: u64 = 16 * 1024 * 1024;

/// The first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    /// The pattern recorded.
    pub pattern: String,
    /// When the recording began, ms since the epoch.
    pub started_at_ms: u64,
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    /// Milliseconds after the first recorded event.
    pub t_ms: u64,
    /// Its topic.
    pub topic: String,
    /// The module that published it (`None`: the host).
    pub source: Option<String>,
    /// The node it came from, when imported.
    pub origin: Option<String>,
    /// Its id on the bus where it was recorded.
    pub id: u64,
    /// When it was published, ms since the epoch.
    pub at_ms: u64,
    /// The payload.
    pub payload: serde_json::Value,
}

/// The last line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    /// Always true.
    pub end: bool,
    /// Events written.
    pub events: u64,
    /// Events the tap dropped (its client fell behind).
    pub dropped: u64,
}

/// Writes a recording.
pub struct Writer<W: Write> {
    out: GzEncoder<W>,
    events: u64,
}

impl<W: Write> Writer<W> {
    /// Starts a recording with its header.
    pub fn new(out: W, pattern: &str, started_at_ms: u64) -> std::io::Result<Self> {
        let mut writer = Self {
            out: GzEncoder::new(out, Compression::default()),
            events: 0,
        };
        writer.line(&Header {
            format: FORMAT.into(),
            version: VERSION,
            pattern: pattern.into(),
            started_at_ms,
        })?;
        Ok(writer)
    }

    fn line(&mut self, value: &impl Serialize) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, value)?;
        self.out.write_all(b"\n")
    }

    /// Adds one event.
    pub fn event(&mut self, event: &Recorded) -> std::io::Result<()> {
        self.events += 1;
        self.line(event)
    }

    /// Events written so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Writes the end line and finishes the compression.
    pub fn finish(mut self, dropped: u64) -> std::io::Result<W> {
        let events = self.events;
        self.line(&Trailer {
            end: true,
            events,
            dropped,
        })?;
        self.out.finish()
    }
}

/// A recording read back: its header, its events, and its trailer when the
/// file is whole.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The first line.
    pub header: Header,
    /// Every event, in order.
    pub events: Vec<Recorded>,
    /// The end line (`None`: the file was cut short).
    pub trailer: Option<Trailer>,
}

/// Reads the recording at `path`; an error names the file and line.
pub fn read(path: &Path) -> Result<Recording, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = BufReader::new(GzDecoder::new(file));
    let mut line = Vec::new();
    let mut number = 0u32;
    let mut next = |line: &mut Vec<u8>| -> Result<bool, String> {
        line.clear();
        number += 1;
        let read = std::io::Read::take(&mut lines, MAX_LINE_BYTES + 1)
            .read_until(b'\n', line)
            .map_err(|e| format!("{}:{number}: not a gzip recording: {e}", path.display()))?;
        if read as u64 > MAX_LINE_BYTES {
            return Err(format!(
                "{}:{number}: a line longer than {MAX_LINE_BYTES} bytes",
                path.display()
            ));
        }
        Ok(read > 0)
    };
    let at = |n: u32, what: &str| format!("{}:{n}: {what}", path.display());
    if !next(&mut line)? {
        return Err(at(1, "empty: not a recording"));
    }
    let header: Header = serde_json::from_slice(&line)
        .map_err(|e| at(1, &format!("not a recording's first line: {e}")))?;
    if header.format != FORMAT || header.version != VERSION {
        return Err(at(
            1,
            &format!(
                "a {} file of version {}, this program reads {FORMAT} version {VERSION}",
                header.format, header.version
            ),
        ));
    }
    let mut events = Vec::new();
    let mut trailer = None;
    let mut n = 1u32;
    while next(&mut line)? {
        n += 1;
        if trailer.is_some() {
            return Err(at(n, "a line after the end line"));
        }
        if let Ok(end) = serde_json::from_slice::<Trailer>(&line) {
            trailer = Some(end);
            continue;
        }
        let event: Recorded = serde_json::from_slice(&line)
            .map_err(|e| at(n, &format!("not a recorded event: {e}")))?;
        events.push(event);
    }
    Ok(Recording {
        header,
        events,
        trailer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_reads_back_as_written_and_a_cut_one_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.orch");
        let mut writer =
            Writer::new(std::fs::File::create(&path).expect("create"), "test.>", 5).expect("w");
        for i in 0..3u64 {
            writer
                .event(&Recorded {
                    t_ms: i * 10,
                    topic: "test.ping".into(),
                    source: Some("p".into()),
                    origin: None,
                    id: i,
                    at_ms: 100 + i * 10,
                    payload: serde_json::json!({"seq": i}),
                })
                .expect("event");
        }
        writer.finish(2).expect("finish");
        let back = read(&path).expect("read");
        assert_eq!(back.header.pattern, "test.>");
        assert_eq!(back.events.len(), 3);
        assert_eq!(back.events[2].payload["seq"], 2);
        assert_eq!(back.trailer.map(|t| (t.events, t.dropped)), Some((3, 2)));

        std::fs::write(&path, b"not gzip").expect("write");
        assert!(read(&path).expect_err("refused").contains("r.orch:1"));
    }
}
