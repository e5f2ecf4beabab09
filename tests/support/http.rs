//! Plain HTTP/1.1 on loopback for the tests, both ways: a GET (a real scrape
//! of `/metrics`) and a receiver that answers POSTs with the statuses it is
//! given (a real webhook endpoint). Every wait has a deadline.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `GET path` from `address`: the status code and the body.
pub fn http_get(address: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// One POST a [`Receiver`] took.
#[derive(Debug, Clone)]
pub struct Received {
    /// The request line (`POST /alerts HTTP/1.1`).
    pub request_line: String,
    /// The body.
    pub body: String,
    /// The status it was answered with.
    pub answered: u16,
}

/// A loopback HTTP server that answers the n-th request with the n-th of
/// its statuses (the last one from then on), for at most `lifetime`.
pub struct Receiver {
    address: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Listens on a free loopback port.
    pub fn start(statuses: Vec<u16>, lifetime: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let thread = {
            let received = Arc::clone(&received);
            std::thread::spawn(move || {
                let until = Instant::now() + lifetime;
                while Instant::now() < until {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let n = received.lock().map(|r| r.len()).unwrap_or(0);
                            let status =
                                statuses.get(n).or(statuses.last()).copied().unwrap_or(200);
                            if let Some(request) = answer(stream, status)
                                && let Ok(mut all) = received.lock()
                            {
                                all.push(request);
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        };
        Ok(Self {
            address,
            received,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// What it took so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // The thread ends by itself at its lifetime; don't wait for it.
        drop(self.thread.take());
    }
}

fn answer(stream: TcpStream, status: u16) -> Option<Received> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length.min(1 << 20)];
    reader.read_exact(&mut body).ok()?;
    let mut stream = stream;
    let reply = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(reply.as_bytes());
    Some(Received {
        request_line: request_line.trim_end().to_owned(),
        body: String::from_utf8_lossy(&body).into_owned(),
        answered: status,
    })
}
