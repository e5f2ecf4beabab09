//! `metrics: {listen: ...}`: the host's metrics in the Prometheus text
//! format at `/metrics`, liveness at `/healthz` and readiness at `/readyz`,
//! served by one thread of its own.
//!
//! The registry is the host's: a [`Collector`](prometheus_client::collector::Collector)
//! reads the status board, the bridge and the process at each scrape, so
//! nothing on the event path knows about Prometheus.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use orch_bridge::BridgeProbe;
use orch_runtime::status::StatusBoard;
use prometheus_client::registry::Registry;

mod collect;
mod process;

/// How often the server thread looks at its stop flag.
const STOP_CHECK: Duration = Duration::from_millis(200);

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
    pub bridge: Option<BridgeProbe>,
}

/// The running endpoint; stops when dropped.
pub struct MetricsServer {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Listens on `listen` (port 0 picks a free port: see [`MetricsServer::address`]).
    pub fn start(listen: SocketAddr, sources: MetricsSources) -> Result<Self, MetricsError> {
        let failed = |cause: String| MetricsError { listen, cause };
        let server = tiny_http::Server::http(listen).map_err(|e| failed(e.to_string()))?;
        let address = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| failed("not an IP address".into()))?;
        let mut registry = Registry::default();
        registry.register_collector(Box::new(collect::HostCollector::new(sources.clone())));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("orch-metrics".into())
                .spawn(move || serve(&server, &registry, &sources.board, &stop))
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
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(server: &tiny_http::Server, registry: &Registry, board: &StatusBoard, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        let request = match server.recv_timeout(STOP_CHECK) {
            Ok(Some(request)) => request,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!("[METRICS] the metrics endpoint stopped: {e}");
                return;
            }
        };
        let path = request
            .url()
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned();
        let (status, body, content_type) = match (request.method(), path.as_str()) {
            (tiny_http::Method::Get, "/metrics") => {
                let mut text = String::new();
                match prometheus_client::encoding::prometheus_text::encode(&mut text, registry) {
                    Ok(()) => (200, text, "text/plain; version=0.0.4; charset=utf-8"),
                    Err(_) => (500, "cannot encode the metrics\n".into(), "text/plain"),
                }
            }
            (tiny_http::Method::Get, "/healthz") => (200, "ok\n".into(), "text/plain"),
            (tiny_http::Method::Get, "/readyz") if board.is_ready() => {
                (200, "ready\n".into(), "text/plain")
            }
            (tiny_http::Method::Get, "/readyz") => (
                503,
                "not ready: app.started not published yet, or a module failed\n".into(),
                "text/plain",
            ),
            (tiny_http::Method::Get, _) => (
                404,
                "not found: try /metrics, /healthz or /readyz\n".into(),
                "text/plain",
            ),
            _ => (405, "only GET is served\n".into(), "text/plain"),
        };
        let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes());
        let mut response = tiny_http::Response::from_string(body).with_status_code(status);
        if let Ok(header) = header {
            response = response.with_header(header);
        }
        if let Err(e) = request.respond(response) {
            tracing::debug!("[METRICS] a scrape broke off: {e}");
        }
    }
}
