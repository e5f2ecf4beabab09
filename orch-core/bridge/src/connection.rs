//! The connection to the broker: options from `bridge.nats` (servers, auth,
//! TLS, reconnect with back-off, never giving up), and its state, which the
//! outbox waits on and `bridge.connected` / `bridge.disconnected` report.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::{Client, ConnectOptions, Event};
use orch_config::{NatsAuth, NatsSettings};
use orch_runtime::bus::Bus;
use orch_sdk::events::{BridgeConnected, BridgeDisconnected};

use crate::BridgeError;

/// Whether the bridge is connected, and to which server.
#[derive(Default)]
pub struct Link {
    state: Mutex<LinkState>,
    /// Told at every change (the outbox's reader waits on it).
    changed: tokio::sync::Notify,
}

#[derive(Default)]
struct LinkState {
    connected: bool,
    /// Connections made (a change from disconnected to connected).
    connects: u64,
    server: String,
    closed: bool,
    /// Imported messages the client dropped (its buffer for a subscription
    /// was full), and when that was last said.
    dropped: u64,
    dropped_said: Option<Instant>,
}

/// Dropped imports are reported at most this often (the client reports
/// every message it drops).
const DROPS_SAID_EVERY: Duration = Duration::from_secs(5);

impl Link {
    /// Waits up to `timeout` for a connection; whether there is one.
    pub async fn until_connected(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before the state is read: a change in between
            // still wakes it.
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            {
                let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if state.connected || state.closed {
                    return state.connected;
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.is_connected();
            }
        }
    }

    /// Whether it was closed for good (the bridge is shutting down).
    pub fn is_closed(&self) -> bool {
        self.state.lock().map(|s| s.closed).unwrap_or(true)
    }

    /// Whether it is connected now.
    pub fn is_connected(&self) -> bool {
        self.state.lock().map(|s| s.connected).unwrap_or(false)
    }

    /// The server of the current (or last) connection, `host:port`.
    pub fn server(&self) -> String {
        self.state
            .lock()
            .map(|s| s.server.clone())
            .unwrap_or_default()
    }

    /// Connections made so far: the first plus every reconnect.
    pub fn connects(&self) -> u64 {
        self.state.lock().map(|s| s.connects).unwrap_or(0)
    }

    /// Imported messages the client dropped so far (its buffer for a
    /// subscription was full).
    pub fn dropped(&self) -> u64 {
        self.state.lock().map(|s| s.dropped).unwrap_or(0)
    }

    /// Counts one imported message the client dropped; the total when it is
    /// time to say so.
    fn note_dropped(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.dropped += 1;
        let due = state
            .dropped_said
            .is_none_or(|said| said.elapsed() >= DROPS_SAID_EVERY);
        if due {
            state.dropped_said = Some(Instant::now());
        }
        due.then_some(state.dropped)
    }

    pub(crate) fn set(&self, connected: bool, server: Option<String>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if connected && !state.connected {
            state.connects += 1;
        }
        state.connected = connected;
        if let Some(server) = server {
            state.server = server;
        }
        drop(state);
        self.changed.notify_waiters();
    }

    /// Wakes every waiter for good: the bridge is shutting down.
    pub fn close(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.closed = true;
        state.connected = false;
        drop(state);
        self.changed.notify_waiters();
    }
}

/// The reconnect delay after `attempts` failed attempts: 100 ms doubling up
/// to 5 s.
fn back_off(attempts: usize) -> Duration {
    let exponent = u32::try_from(attempts.min(6)).unwrap_or(6);
    Duration::from_millis(100 * 2u64.pow(exponent)).min(Duration::from_secs(5))
}

/// Connects to `settings.servers` in the background (the call returns at
/// once; the connection comes when a server answers, and comes back after
/// every loss). `link` and the bus hear of each change.
pub async fn connect(
    settings: &NatsSettings,
    node: &str,
    link: Arc<Link>,
    bus: Bus,
) -> Result<Client, BridgeError> {
    let client_cell: Arc<std::sync::OnceLock<Client>> = Arc::default();
    let events = {
        let link = Arc::clone(&link);
        let client_cell = Arc::clone(&client_cell);
        let bus = bus.clone();
        move |event: Event| {
            let link = Arc::clone(&link);
            let client_cell = Arc::clone(&client_cell);
            let bus = bus.clone();
            async move { on_event(event, &link, &client_cell, &bus) }
        }
    };
    let mut options = ConnectOptions::new()
        .name(format!("cargo-orch {node}"))
        // Replies to this node (JetStream's acknowledgements, API answers,
        // the messages its durable consumer pulls) come on subjects of its
        // own, so the server's permissions can keep other nodes from them
        // (`subscribe: _INBOX.<node>.>`).
        .custom_inbox_prefix(format!("_INBOX.{node}"))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(back_off)
        .connection_timeout(Duration::from_secs(5))
        .event_callback(events);
    options = match &settings.auth {
        NatsAuth::None => options,
        NatsAuth::Token(token) => options.token(token.clone()),
        NatsAuth::UserPassword { user, password } => {
            options.user_and_password(user.clone(), password.clone())
        }
        NatsAuth::NkeySeed(seed) => options.nkey(seed.clone()),
        NatsAuth::CredsFile(path) => options.credentials_file(path).await.map_err(|e| {
            BridgeError::Config(format!(
                "cannot read bridge.nats.auth.creds {}: {e}",
                path.display()
            ))
        })?,
    };
    if let Some(tls) = &settings.tls {
        options = options.require_tls(true);
        if let Some(ca) = &tls.ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &tls.client {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
    }
    let client = options
        .connect(settings.servers.clone())
        .await
        .map_err(|e| BridgeError::Connect(e.to_string()))?;
    let _ = client_cell.set(client.clone());
    // The first connection may have come before the client was at hand to
    // name its server: announce it now.
    if matches!(
        client.connection_state(),
        async_nats::connection::State::Connected
    ) && link.server().is_empty()
    {
        on_event(Event::Connected, &link, &client_cell, &bus);
    }
    Ok(client)
}

fn on_event(event: Event, link: &Link, client: &std::sync::OnceLock<Client>, bus: &Bus) {
    match event {
        Event::Connected => {
            let Some(client) = client.get() else {
                // Before `connect` returned: it announces the connection.
                link.set(true, None);
                return;
            };
            let info = client.server_info();
            let server = format!("{}:{}", info.host, info.port);
            link.set(true, Some(server.clone()));
            tracing::info!("[BRIDGE] connected to NATS at {server}");
            bus.publish_system_nowait(&BridgeConnected { server });
        }
        Event::Disconnected => {
            link.set(false, None);
            let server = link.server();
            tracing::warn!(
                "[BRIDGE] lost NATS at {server}: reconnecting with back-off; exported events \
                 wait in the outbox"
            );
            bus.publish_system_nowait(&BridgeDisconnected { server });
        }
        Event::SlowConsumer(sid) => {
            if let Some(dropped) = link.note_dropped() {
                tracing::warn!(
                    "[BRIDGE] the import subscription {sid} fell behind: {dropped} message(s) \
                     beyond its buffer dropped so far (core NATS is at most once; use \
                     JetStream where nothing may be lost)"
                );
            }
        }
        other => tracing::warn!("[BRIDGE] NATS: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_imports_are_counted_and_said_now_and_then() {
        let link = Link::default();
        assert_eq!(link.note_dropped(), Some(1));
        for _ in 0..1_000 {
            assert_eq!(link.note_dropped(), None);
        }
        link.state.lock().expect("state").dropped_said =
            Instant::now().checked_sub(DROPS_SAID_EVERY);
        assert_eq!(link.note_dropped(), Some(1_002));
    }

    #[test]
    fn back_off_doubles_up_to_five_seconds() {
        assert_eq!(back_off(0), Duration::from_millis(100));
        assert_eq!(back_off(1), Duration::from_millis(200));
        assert_eq!(back_off(3), Duration::from_millis(800));
        assert_eq!(back_off(10), Duration::from_secs(5));
    }
}
