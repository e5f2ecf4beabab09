//! `notify.webhook`: a JSON body POSTed for each chosen host event
//! (`module.failed`, `module.crashed`, `module.reload_failed` by default).
//!
//! The bus hands each event to a bounded queue and never waits (a full
//! queue drops the newest alert and counts it); one thread of its own sends
//! them in order, each with retries and exponential back-off (backon) on
//! transport errors, 5xx and 429 answers, each attempt bounded by
//! `notify.webhook.timeout`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use backon::{BlockingRetryable, ExponentialBuilder};
use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use orch_config::WebhookSettings;
use orch_runtime::bus::{Admission, Bus, BusEvent, Delivered, EventSink, SubscriberId};
use serde::Serialize;

/// The first retry waits this long; each next one twice as long (jittered).
const FIRST_RETRY: Duration = Duration::from_millis(250);
/// No retry waits longer.
const LONGEST_RETRY: Duration = Duration::from_secs(10);

/// The body of one alert.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// `app.name`.
    pub app: String,
    /// This host's name.
    pub host: String,
    /// The orchestrator's pid.
    pub pid: u32,
    /// The event's topic (`module.failed`).
    pub topic: String,
    /// The event's payload (`null` if it was not JSON).
    pub event: serde_json::Value,
    /// When it was published, in milliseconds since the Unix epoch.
    pub time_ms: u64,
}

/// What the sender counts.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Alerts the endpoint took (a 2xx answer).
    pub sent: AtomicU64,
    /// Alerts given up after every retry, or refused with a 4xx.
    pub failed: AtomicU64,
    /// Alerts dropped because the queue was full.
    pub dropped: AtomicU64,
}

/// A running webhook sender; stops when dropped (alerts still queued get
/// up to two seconds).
pub struct Webhook {
    bus: Bus,
    subscriber: SubscriberId,
    stats: Arc<WebhookStats>,
    queue: Option<Sender<Alert>>,
    thread: Option<JoinHandle<()>>,
}

impl Webhook {
    /// Subscribes to `settings.events` on `bus` and starts the sender.
    pub fn start(settings: &WebhookSettings, app: &str, bus: &Bus) -> std::io::Result<Self> {
        let (queue, alerts) = bounded(settings.queue.max(1));
        let stats = Arc::new(WebhookStats::default());
        let sink = Arc::new(AlertSink {
            app: app.to_owned(),
            host: host_name(),
            queue: queue.clone(),
            stats: Arc::clone(&stats),
        });
        let subscriber = bus.register(sink);
        for pattern in &settings.events {
            if let Err(e) = bus.subscribe(subscriber, pattern) {
                tracing::warn!("[NOTIFY] cannot follow '{pattern}': {e}");
            }
        }
        let sender = AlertSender {
            agent: agent(settings.timeout),
            url: settings.url.clone(),
            retries: settings.retries,
            stats: Arc::clone(&stats),
        };
        let thread = std::thread::Builder::new()
            .name("orch-webhook".into())
            .spawn(move || sender.run(&alerts))?;
        tracing::info!(
            "[NOTIFY] webhook alerts for [{}] ({} retries, queue {})",
            settings.events.join(", "),
            settings.retries,
            settings.queue
        );
        Ok(Self {
            bus: bus.clone(),
            subscriber,
            stats,
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// The sender's counters.
    pub fn stats(&self) -> &WebhookStats {
        &self.stats
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.bus.remove(self.subscriber);
        drop(self.queue.take());
        let Some(thread) = self.thread.take() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            tracing::warn!("[NOTIFY] alerts still being sent at exit are abandoned");
        }
    }
}

/// Takes events off the bus into the queue, never waiting.
struct AlertSink {
    app: String,
    host: String,
    queue: Sender<Alert>,
    stats: Arc<WebhookStats>,
}

impl EventSink for AlertSink {
    fn deliver(&self, event: &Arc<BusEvent>, _admission: Admission) -> Delivered {
        let alert = Alert {
            app: self.app.clone(),
            host: self.host.clone(),
            pid: std::process::id(),
            topic: event.topic().to_owned(),
            event: serde_json::from_slice(event.payload()).unwrap_or(serde_json::Value::Null),
            time_ms: orch_runtime::status::now_ms(),
        };
        match self.queue.try_send(alert) {
            Ok(()) => Delivered::Accepted,
            Err(TrySendError::Full(alert)) => {
                let dropped = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(
                        "[NOTIFY] the alert queue is full: '{}' dropped ({dropped} so far)",
                        alert.topic
                    );
                }
                Delivered::Accepted
            }
            Err(TrySendError::Disconnected(_)) => Delivered::Gone,
        }
    }
}

/// Why one attempt failed.
#[derive(Debug)]
enum Attempt {
    /// Worth another try: a transport error, 5xx or 429.
    Retry(String),
    /// Not worth one: any other answer.
    Refused(String),
}

/// Sends the queued alerts, one at a time.
struct AlertSender {
    agent: ureq::Agent,
    url: String,
    retries: u32,
    stats: Arc<WebhookStats>,
}

impl AlertSender {
    fn run(&self, alerts: &Receiver<Alert>) {
        for alert in alerts {
            let backoff = ExponentialBuilder::default()
                .with_min_delay(FIRST_RETRY)
                .with_max_delay(LONGEST_RETRY)
                .with_max_times(usize::try_from(self.retries).unwrap_or(usize::MAX))
                .with_jitter();
            let outcome = (|| self.post(&alert))
                .retry(backoff)
                .when(|e| matches!(e, Attempt::Retry(_)))
                .notify(|e, wait| {
                    tracing::warn!(
                        "[NOTIFY] alert '{}' not delivered ({}); trying again in {}",
                        alert.topic,
                        describe(e),
                        orch_sdk::duration::human(wait)
                    );
                })
                .call();
            match outcome {
                Ok(()) => {
                    self.stats.sent.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("[NOTIFY] alert '{}' delivered", alert.topic);
                }
                Err(e) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        "[NOTIFY] alert '{}' given up: {}; check notify.webhook.url and the receiver",
                        alert.topic,
                        describe(&e)
                    );
                }
            }
        }
    }

    fn post(&self, alert: &Alert) -> Result<(), Attempt> {
        let body = serde_json::to_vec(alert).map_err(|e| Attempt::Refused(e.to_string()))?;
        let response = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .send(&body[..])
            .map_err(|e| Attempt::Retry(e.to_string()))?;
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(()),
            429 | 500..=599 => Err(Attempt::Retry(format!("HTTP {status}"))),
            _ => Err(Attempt::Refused(format!("HTTP {status}"))),
        }
    }
}

fn describe(attempt: &Attempt) -> &str {
    match attempt {
        Attempt::Retry(why) | Attempt::Refused(why) => why,
    }
}

/// An agent whose every attempt ends within `timeout`, answers of any
/// status returned (not errors), no redirects followed to other hosts' secrets.
fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}
