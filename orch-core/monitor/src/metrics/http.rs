//! The metrics thread: a current-thread tokio runtime that accepts
//! connections and serves each with hyper's HTTP/1 server under the limits of
//! [`super::limits`].

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioTimer;
use orch_runtime::pace::Pacer;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::deadline_io::DeadlineIo;
use super::limits::{
    CONNECTION_LIFETIME, HEAD_DEADLINE, MAX_CONNECTIONS, MAX_HEAD_BYTES, MAX_HEADERS, WRITE_STALL,
};
use super::routes::Routes;

/// How often, at most, a repeating problem (accept errors, closed
/// connections) is logged.
const SAID_EVERY: Duration = Duration::from_secs(10);

/// How long the accept loop rests after an accept error (out of file
/// descriptors, say) before it tries again.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Runs the server on this thread until `stop` is notified.
pub(super) fn serve(listener: std::net::TcpListener, routes: Routes, stop: &Notify) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("[METRICS] cannot start the metrics server: {e}");
            return;
        }
    };
    runtime.block_on(async {
        let listener = match TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(e) => {
                tracing::error!("[METRICS] cannot serve the metrics port: {e}");
                return;
            }
        };
        Server::new(routes).accept_loop(&listener, stop).await;
    });
    // Dropping the runtime ends every connection still open.
}

/// The open connections, oldest first, each with its way to be closed.
#[derive(Default)]
struct Open {
    connections: Mutex<BTreeMap<u64, Arc<Notify>>>,
}

impl Open {
    /// Registers connection `id`; past the cap, closes and returns the
    /// oldest one's id.
    fn admit(&self, id: u64, close: Arc<Notify>) -> Option<u64> {
        let mut connections = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        let evicted = if connections.len() >= MAX_CONNECTIONS {
            connections.pop_first().map(|(old, close)| {
                close.notify_one();
                old
            })
        } else {
            None
        };
        connections.insert(id, close);
        evicted
    }

    fn release(&self, id: u64) {
        self.connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
}

struct Server {
    routes: Arc<Routes>,
    open: Arc<Open>,
    next_id: u64,
    accept_failures: u64,
    accept_said: Pacer,
    evictions: u64,
    eviction_said: Pacer,
}

impl Server {
    fn new(routes: Routes) -> Self {
        Self {
            routes: Arc::new(routes),
            open: Arc::default(),
            next_id: 0,
            accept_failures: 0,
            accept_said: Pacer::new(SAID_EVERY),
            evictions: 0,
            eviction_said: Pacer::new(SAID_EVERY),
        }
    }

    async fn accept_loop(&mut self, listener: &TcpListener, stop: &Notify) {
        loop {
            let accepted = tokio::select! {
                () = stop.notified() => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _peer)) => self.start_connection(stream),
                Err(e) => {
                    self.accept_failed(&e);
                    if is_resource_error(&e) {
                        tokio::select! {
                            () = stop.notified() => return,
                            () = tokio::time::sleep(ACCEPT_PAUSE) => {}
                        }
                    }
                }
            }
        }
    }

    fn accept_failed(&mut self, e: &io::Error) {
        self.accept_failures += 1;
        if self.accept_said.due() {
            tracing::warn!(
                "[METRICS] cannot accept a connection: {e} ({} so far); the metrics port keeps \
                 listening",
                self.accept_failures
            );
        }
    }

    fn start_connection(&mut self, stream: tokio::net::TcpStream) {
        let id = self.next_id;
        self.next_id += 1;
        let close = Arc::new(Notify::new());
        if self.open.admit(id, Arc::clone(&close)).is_some() {
            self.evictions += 1;
            if self.eviction_said.due() {
                tracing::warn!(
                    "[METRICS] more than {MAX_CONNECTIONS} connections to the metrics port: the \
                     oldest are closed to make room ({} so far)",
                    self.evictions
                );
            }
        }
        let _ = stream.set_nodelay(true);
        let routes = Arc::clone(&self.routes);
        let open = Arc::clone(&self.open);
        tokio::spawn(async move {
            tokio::select! {
                ended = tokio::time::timeout(CONNECTION_LIFETIME, connection(stream, routes)) => {
                    // A head too slow or too long, a client that stopped
                    // reading: the connection is closed, nothing to tell.
                    if let Ok(Err(e)) = ended {
                        tracing::debug!("[METRICS] a connection ended: {e}");
                    }
                }
                () = close.notified() => {}
            }
            open.release(id);
        });
    }
}

/// Serves one connection until it ends.
async fn connection(stream: tokio::net::TcpStream, routes: Arc<Routes>) -> hyper::Result<()> {
    let service = service_fn(move |request: hyper::Request<Incoming>| {
        // The body (`Incoming`) is dropped unread.
        let response = routes.answer(request.method(), request.uri().path(), request.headers());
        std::future::ready(Ok::<_, Infallible>(response))
    });
    http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_DEADLINE)
        .max_buf_size(MAX_HEAD_BYTES.max(8192))
        .max_header_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .serve_connection(DeadlineIo::new(stream, WRITE_STALL), service)
        .await
}

/// Whether an accept error means the process ran out of something (file
/// descriptors, memory) that time may give back.
fn is_resource_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::EMFILE | nix::libc::ENFILE | nix::libc::ENOBUFS | nix::libc::ENOMEM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_cap_the_oldest_connection_is_closed() {
        let open = Open::default();
        let first = Arc::new(Notify::new());
        assert_eq!(open.admit(0, Arc::clone(&first)), None);
        for id in 1..MAX_CONNECTIONS as u64 {
            assert_eq!(open.admit(id, Arc::new(Notify::new())), None);
        }
        assert_eq!(
            open.admit(MAX_CONNECTIONS as u64, Arc::new(Notify::new())),
            Some(0)
        );
        // The evicted connection's task finds its permit when it next waits.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(1), first.notified())
                .await
                .expect("the oldest connection was told to close");
        });
        open.release(5);
        assert_eq!(open.admit(1_000, Arc::new(Notify::new())), None);
    }
}
