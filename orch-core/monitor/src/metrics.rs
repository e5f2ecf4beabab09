//! `metrics: {listen: ...}`: the host's metrics in the Prometheus text
//! format at `/metrics`, liveness at `/healthz` and readiness at `/readyz`,
//! served by one thread of its own.
//!
//! The registry is the host's: a [`Collector`](prometheus_client::collector::Collector)
//! reads the status board, the bridge and the process at each scrape, so
//! nothing on the event path knows about Prometheus.
//!
//! The port may be reachable by anyone on the network, so the server holds
//! whatever a client sends (see [`limits`]): at most
//! [`limits::MAX_CONNECTIONS`] connections (the oldest is closed to make room
//! for a new one), a request head of at most [`limits::MAX_HEAD_BYTES`] read
//! within [`limits::HEAD_DEADLINE`], a response that makes no progress for
//! [`limits::WRITE_STALL`] abandoned, no connection older than
//! [`limits::CONNECTION_LIFETIME`], request bodies never read (a request with
//! one is answered 413 and closed) and accept errors survived.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use orch_runtime::status::{BridgeStatus, StatusBoard};
use prometheus_client::registry::Registry;

mod collect;
mod deadline_io;
mod http;
mod process;
mod routes;

/// What the metrics server allows a client.
pub mod limits {
    use std::time::Duration;

    /// Connections open at once; a new one past this closes the oldest.
    pub const MAX_CONNECTIONS: usize = 256;
    /// The largest request head (request line and headers), in bytes;
    /// a longer one is answered 431 and closed.
    pub const MAX_HEAD_BYTES: usize = 8 * 1024;
    /// Headers in one request, at most (more: 431).
    pub const MAX_HEADERS: usize = 64;
    /// How long a client may take to send a whole request head, counted
    /// from the first moment the server waits for it (so also how long an
    /// idle keep-alive connection stays open).
    pub const HEAD_DEADLINE: Duration = Duration::from_secs(5);
    /// How long a response may wait for the client to read it without a
    /// byte moving.
    pub const WRITE_STALL: Duration = Duration::from_secs(10);
    /// The longest a connection stays open, whatever it does.
    pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
}

/// Why the endpoint did not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {listen} (metrics.listen): {cause}")]
pub struct MetricsError {
    /// The configured address.
    pub listen: SocketAddr,
    /// The cause.
    pub cause: String,
}

/// What a scrape reads.
#[derive(Clone)]
pub struct MetricsSources {
    /// Every module's counters and state.
    pub board: StatusBoard,
    /// The NATS bridge, if there is one.
    pub bridge: Option<Arc<dyn BridgeStatus>>,
}

/// The running endpoint; stops when dropped.
pub struct MetricsServer {
    address: SocketAddr,
    stop: Arc<tokio::sync::Notify>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Listens on `listen` (port 0 picks a free port: see [`MetricsServer::address`]).
    pub fn start(listen: SocketAddr, sources: MetricsSources) -> Result<Self, MetricsError> {
        let failed = |cause: String| MetricsError { listen, cause };
        let listener = std::net::TcpListener::bind(listen).map_err(|e| failed(e.to_string()))?;
        let address = listener.local_addr().map_err(|e| failed(e.to_string()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| failed(e.to_string()))?;
        let mut registry = Registry::default();
        registry.register_collector(Box::new(collect::HostCollector::new(sources.clone())));
        let routes = routes::Routes::new(registry, sources.board);
        let stop = Arc::new(tokio::sync::Notify::new());
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("orch-metrics".into())
                .spawn(move || http::serve(listener, routes, &stop))
                .map_err(|e| failed(e.to_string()))?
        };
        Ok(Self {
            address,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        // A permit is kept if the server is not waiting yet.
        self.stop.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
