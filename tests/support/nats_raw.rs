//! A plain NATS client speaking the protocol's text commands over TCP, as a
//! peer on the broker would (no orchestrator, no client library): publish
//! with any headers, subscribe, make requests (the JetStream API), and see
//! the server's `-ERR` answers. Every read has a deadline.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// How long one read waits for the server at most.
const READ: Duration = Duration::from_secs(10);

/// One message the server delivered.
#[derive(Debug, Clone)]
pub struct RawMessage {
    /// Its subject.
    pub subject: String,
    /// Its reply subject, if any.
    pub reply: Option<String>,
    /// Its headers, in order (`Name: value` lines read back).
    pub headers: Vec<(String, String)>,
    /// Its payload.
    pub payload: Vec<u8>,
}

impl RawMessage {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A connection to a nats-server on loopback.
pub struct RawNats {
    stream: TcpStream,
    buffer: Vec<u8>,
    next_sid: u64,
    /// Messages read while waiting for something else.
    pub messages: Vec<RawMessage>,
    /// The `-ERR` lines the server sent so far.
    pub errors: Vec<String>,
    /// Where the answers to requests come (`_INBOX.raw` unless set: a user
    /// may only subscribe to an inbox of its own).
    pub inbox: String,
}

impl RawNats {
    /// Connects to `127.0.0.1:port`, as `user`/`password` when given, and
    /// waits until the server took the connection.
    pub fn connect(port: u16, user: Option<(&str, &str)>) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .with_context(|| format!("cannot connect to 127.0.0.1:{port}"))?;
        stream.set_read_timeout(Some(Duration::from_millis(200)))?;
        let mut client = Self {
            stream,
            buffer: Vec::new(),
            next_sid: 1,
            messages: Vec::new(),
            errors: Vec::new(),
            inbox: "_INBOX.raw".to_owned(),
        };
        let auth = user
            .map(|(u, p)| {
                format!(
                    ",\"user\":{},\"pass\":{}",
                    serde_json::Value::from(u),
                    serde_json::Value::from(p)
                )
            })
            .unwrap_or_default();
        let connect = format!(
            "CONNECT {{\"verbose\":false,\"pedantic\":false,\"headers\":true,\
             \"no_responders\":true,\"lang\":\"raw\",\"version\":\"0\"{auth}}}\r\n"
        );
        client.stream.write_all(connect.as_bytes())?;
        client.flush()?;
        if let Some(error) = client.errors.first() {
            bail!("the server refused the connection: {error}");
        }
        Ok(client)
    }

    /// Sends `PUB`/`HPUB` of `payload` on `subject` with `headers` (none:
    /// `PUB`), without waiting.
    pub fn publish(
        &mut self,
        subject: &str,
        reply: Option<&str>,
        headers: &[(&str, &str)],
        payload: &[u8],
    ) -> anyhow::Result<()> {
        let reply = reply.map(|r| format!(" {r}")).unwrap_or_default();
        let mut command = Vec::with_capacity(payload.len() + 256);
        if headers.is_empty() {
            command.extend_from_slice(
                format!("PUB {subject}{reply} {}\r\n", payload.len()).as_bytes(),
            );
        } else {
            let mut block = String::from("NATS/1.0\r\n");
            for (name, value) in headers {
                block.push_str(&format!("{name}: {value}\r\n"));
            }
            block.push_str("\r\n");
            command.extend_from_slice(
                format!(
                    "HPUB {subject}{reply} {} {}\r\n",
                    block.len(),
                    block.len() + payload.len()
                )
                .as_bytes(),
            );
            command.extend_from_slice(block.as_bytes());
        }
        command.extend_from_slice(payload);
        command.extend_from_slice(b"\r\n");
        self.stream.write_all(&command)?;
        Ok(())
    }

    /// Writes protocol commands as they are (a run prepared once, sent
    /// many times: faster than any one-by-one publish).
    pub fn send_raw(&mut self, commands: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(commands)?;
        Ok(())
    }

    /// Subscribes to `subject`; returns the subscription id.
    pub fn subscribe(&mut self, subject: &str) -> anyhow::Result<u64> {
        let sid = self.next_sid;
        self.next_sid += 1;
        self.stream
            .write_all(format!("SUB {subject} {sid}\r\n").as_bytes())?;
        Ok(sid)
    }

    /// Sends `PING` and reads until the `PONG`: the server has handled
    /// everything sent before (its `-ERR`s are in [`RawNats::errors`]).
    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.stream.write_all(b"PING\r\n")?;
        let deadline = Instant::now() + READ;
        while Instant::now() < deadline {
            if let Some(Item::Pong) = self.read_one()? {
                return Ok(());
            }
        }
        bail!("no PONG within {READ:?} (errors so far: {:?})", self.errors)
    }

    /// A request on `subject`: waits for the first answer on a fresh inbox.
    pub fn request(&mut self, subject: &str, payload: &[u8]) -> anyhow::Result<RawMessage> {
        let inbox = format!("{}.{}", self.inbox, self.next_sid);
        let sid = self.subscribe(&inbox)?;
        self.publish(subject, Some(&inbox), &[], payload)?;
        let deadline = Instant::now() + READ;
        let answer = loop {
            if let Some(at) = self.messages.iter().position(|m| m.subject == inbox) {
                break self.messages.remove(at);
            }
            if Instant::now() >= deadline {
                bail!("no answer on {subject} within {READ:?} ({:?})", self.errors);
            }
            self.read_one()?;
        };
        self.stream
            .write_all(format!("UNSUB {sid}\r\n").as_bytes())?;
        Ok(answer)
    }

    /// Reads what the server sends for `period` (messages into
    /// [`RawNats::messages`], errors into [`RawNats::errors`]).
    pub fn read_for(&mut self, period: Duration) -> anyhow::Result<()> {
        let until = Instant::now() + period;
        while Instant::now() < until {
            self.read_one()?;
        }
        Ok(())
    }

    /// Reads one protocol item, or none when the socket had nothing for a
    /// moment (its read timeout).
    fn read_one(&mut self) -> anyhow::Result<Option<Item>> {
        loop {
            if let Some(item) = self.parse()? {
                return Ok(Some(item));
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => bail!("the server closed the connection: {:?}", self.errors),
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Takes one complete item off the buffer, if there is one.
    fn parse(&mut self) -> anyhow::Result<Option<Item>> {
        let Some(end) = self.buffer.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
        let words: Vec<&str> = line.split_whitespace().collect();
        let body = end + 2;
        let item = match words.first().copied().unwrap_or("") {
            "PING" => {
                self.stream.write_all(b"PONG\r\n")?;
                Item::Other
            }
            "PONG" => Item::Pong,
            "-ERR" => {
                self.errors.push(line.clone());
                Item::Other
            }
            "MSG" | "HMSG" => {
                let headed = words[0] == "HMSG";
                let sizes: Vec<usize> = words
                    .iter()
                    .rev()
                    .take(if headed { 2 } else { 1 })
                    .map(|w| w.parse().context("a size"))
                    .collect::<anyhow::Result<_>>()?;
                let (total, header_len) = (sizes[0], if headed { sizes[1] } else { 0 });
                if self.buffer.len() < body + total + 2 {
                    return Ok(None);
                }
                let reply_words = words.len() - if headed { 5 } else { 4 };
                let message = RawMessage {
                    subject: words[1].to_owned(),
                    reply: (reply_words == 1).then(|| words[3].to_owned()),
                    headers: String::from_utf8_lossy(&self.buffer[body..body + header_len])
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(": "))
                        .map(|(n, v)| (n.to_owned(), v.to_owned()))
                        .collect(),
                    payload: self.buffer[body + header_len..body + total].to_vec(),
                };
                self.buffer.drain(..body + total + 2);
                self.messages.push(message);
                return Ok(Some(Item::Other));
            }
            _ => Item::Other,
        };
        self.buffer.drain(..body);
        Ok(Some(item))
    }
}

/// What one read took off the wire.
enum Item {
    Pong,
    Other,
}
