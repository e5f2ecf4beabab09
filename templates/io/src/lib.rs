//! {{crate_name}}: a TCP line server that runs on a thread of its own.
//!
//! Real modules do I/O; this one shows how, step by step:
//!
//! 1. `initialize`: read `listen`, subscribe to stats requests, then take the listening socket the previous
//!    generation handed over (after a hot reload), or bind a new one. Binding
//!    here means a port in use fails the load, with the port in the error.
//! 2. `start`: `ctx.spawn("listener", ...)` starts the thread that accepts
//!    clients and reads their lines ([`server`]). The host knows the thread:
//!    it stops its [`StopToken`] when the module shuts down and joins it
//!    within `timeouts.shutdown`. The thread publishes through a
//!    [`Publisher`], which works from any thread.
//! 3. `on_event`: a `{{crate_name}}.stats` request is answered at once with
//!    `ctx.reply`; the counters are atomics the thread updates.
//! 4. `save_state` / `shutdown` before a hot reload: the thread stops serving
//!    (a line it was counting is counted first), the counters go to the next
//!    generation, and the listening socket is handed over with
//!    `ctx.hand_over_fd`, so it never closes and clients connecting meanwhile
//!    wait in its queue.

pub mod server;

use std::net::{TcpListener, ToSocketAddrs};
use std::sync::Arc;

use orch_sdk::prelude::*;
use serde::{Deserialize, Serialize};

use crate::server::Counters;

/// What the module publishes for each line a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// The line, without its line ending (invalid UTF-8 replaced by `�`).
    pub text: String,
    /// The client's address, `ip:port`.
    pub peer: String,
}

/// The answer to a `{{crate_name}}.stats` request, and the state carried across
/// hot reloads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Clients accepted so far.
    pub connections: u64,
    /// Lines published so far.
    pub lines: u64,
    /// Bytes of those lines.
    pub bytes: u64,
    /// The address it listens on.
    pub listen: String,
}

/// Where each line is published.
pub const LINE_TOPIC: &str = "{{crate_name}}.line";

/// The topic of stats requests.
pub const STATS_TOPIC: &str = "{{crate_name}}.stats";

/// The key its listening socket is handed over under at a reload.
const LISTENER_KEY: &str = "listener";

/// The address it listens on without a `listen` setting.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";

/// Serves TCP clients, one line at a time.
#[derive(Default)]
pub struct {{type_name}} {
    listener: Option<TcpListener>,
    listen: String,
    counters: Arc<Counters>,
}

impl {{type_name}} {
    /// The address it listens on (the real port when `listen` asked for port 0).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.listener.as_ref()?.local_addr().ok()
    }

    /// Its counters now.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot(&self.listen)
    }

    /// The socket handed over by the previous generation, or a new one.
    fn open_listener(&self, ctx: &mut Context) -> Result<TcpListener> {
        if let Some(fd) = ctx.take_fd(LISTENER_KEY)? {
            let listener = TcpListener::from(fd);
            tracing::info!(
                "took over the listener on {} from the previous generation",
                self.listen
            );
            return Ok(listener);
        }
        let addresses: Vec<_> = self
            .listen
            .to_socket_addrs()
            .map_err(|e| {
                format!(
                    "config key 'listen': '{}' is not host:port ({e})",
                    self.listen
                )
            })?
            .collect();
        let listener = TcpListener::bind(&addresses[..]).map_err(|e| {
            format!(
                "cannot listen on {} ({e}); is another program using the port? \
                 Set another `listen` in config/modules.yaml",
                self.listen
            )
        })?;
        Ok(listener)
    }
}

impl Module for {{type_name}} {
    // Step 1: settings, counters after a reload, and the socket.
    fn initialize(&mut self, ctx: &mut Context, config: &Config) -> Result<()> {
        self.listen = config.get_or("listen", DEFAULT_LISTEN.to_owned())?;
        if let Some(stats) = ctx.restored_state::<Stats>()? {
            self.counters.restore(&stats);
        }
        let listener = self.open_listener(ctx)?;
        // The thread polls: accept and read never block it past a stop.
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        tracing::info!("listening on {address}");
        self.listen = address.to_string();
        self.listener = Some(listener);
        // Subscribed before any module starts: no request is missed.
        ctx.subscribe(STATS_TOPIC)
    }

    // Step 2: the thread that serves the socket, known to the host.
    fn start(&mut self, ctx: &mut Context) -> Result<()> {
        let Some(listener) = self.listener.as_ref() else {
            return Err("start before initialize".into());
        };
        // The thread gets its own handle on the same socket; the module keeps
        // one to hand over at shutdown.
        let listener = listener.try_clone()?;
        let counters = Arc::clone(&self.counters);
        ctx.spawn("listener", move |stop, publisher| {
            server::serve(&listener, &stop, &publisher, &counters);
        })
    }

    // Step 3: requests for the counters, answered without waiting for anyone.
    fn on_event(&mut self, ctx: &mut Context, event: &Event) -> Result<()> {
        if event.topic() == STATS_TOPIC && event.kind() == EventKind::Request {
            ctx.reply(event, &self.stats())?;
        }
        Ok(())
    }

    // Before a hot reload: the next generation continues the counts. The
    // thread stops serving first, so no line is counted after the snapshot.
    fn save_state(&mut self, _ctx: &mut Context) -> Result<Option<serde_json::Value>> {
        let stats = self.counters.seal(&self.listen);
        Ok(Some(serde_json::to_value(stats)?))
    }

    // Step 4: the socket goes to the next generation (in-process modules;
    // isolated ones close it and the next process binds again). The host then
    // stops the thread and joins it.
    fn shutdown(&mut self, ctx: &mut Context) -> Result<()> {
        if let Some(listener) = self.listener.take()
            && let Err(e) = ctx.hand_over_fd(LISTENER_KEY, listener)
        {
            tracing::debug!("listener not handed over: {e}");
        }
        tracing::info!("shutting down after {} lines", self.stats().lines);
        Ok(())
    }
}

// Generates the versioned C entry point the host loads; no `unsafe` to write.
orch_sdk::export_module!({{type_name}});
