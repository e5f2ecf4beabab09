//! The floor of `bench_bridge`: a bare async-nats publisher and subscriber
//! in one runtime, plain or with the bridge's envelope headers.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, stream};
use futures_util::StreamExt;
use orch_runtime::bus::BusEvent;

use super::{Mode, Run, latency_of, pace, payload_of, summary};

/// The floor: a bare async-nats publisher and subscriber (for JetStream, a
/// publisher with the bridge's window of [`orch_bridge::export::WINDOW`]
/// outstanding acknowledgements and a pull consumer acknowledging each
/// message, as the bridge does).
pub async fn bare(
    url: &str,
    mode: Mode,
    run: u32,
    events: u64,
    size: usize,
    rate: Option<u64>,
) -> Result<Run, String> {
    bare_with(url, mode, run, events, size, rate, false).await
}

/// A subscriber waits this long for the next message before it reports
/// what it got (core NATS may drop what a slow subscriber cannot take); the
/// throughput counts the time to the last message received.
pub const QUIET: Duration = Duration::from_secs(3);

/// [`bare`], with the bridge's envelope headers on each message if
/// `headers`.
#[allow(clippy::too_many_arguments)]
pub async fn bare_with(
    url: &str,
    mode: Mode,
    run: u32,
    events: u64,
    size: usize,
    rate: Option<u64>,
    headers: bool,
) -> Result<Run, String> {
    let publisher = async_nats::connect(url).await.map_err(|e| e.to_string())?;
    let subscriber = async_nats::connect(url).await.map_err(|e| e.to_string())?;
    let subject = format!("floor.r{run}.bench");
    let receive = match mode {
        Mode::Core => {
            let mut sub = subscriber
                .subscribe(subject.clone())
                .await
                .map_err(|e| e.to_string())?;
            subscriber.flush().await.map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(events as usize);
                let mut last = Instant::now();
                while let Ok(Some(message)) = tokio::time::timeout(QUIET, sub.next()).await {
                    latencies.extend(latency_of(&message.payload));
                    last = Instant::now();
                    if latencies.len() as u64 == events {
                        break;
                    }
                }
                (latencies, last)
            })
        }
        Mode::JetStream => {
            let js = jetstream::new(subscriber.clone());
            let stream = js
                .get_or_create_stream(stream::Config {
                    name: format!("FLOOR_R{run}"),
                    subjects: vec![subject.clone()],
                    storage: stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            let consumer = stream
                .get_or_create_consumer(
                    "floor",
                    pull::Config {
                        durable_name: Some("floor".into()),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| e.to_string())?;
            let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(events as usize);
                let mut last = Instant::now();
                while let Ok(Some(Ok(message))) = tokio::time::timeout(QUIET, messages.next()).await
                {
                    latencies.extend(latency_of(&message.payload));
                    let _ = message.ack().await;
                    last = Instant::now();
                    if latencies.len() as u64 == events {
                        break;
                    }
                }
                (latencies, last)
            })
        }
    };
    let js = jetstream::new(publisher.clone());
    let event = BusEvent::new("bench.event", b"{}", Some("bench-producer".into()));
    let floor = orch_bridge::node::Identity::new("floor".into());
    let ids = orch_bridge::node::MessageIds::new(&floor);
    let mut window = std::collections::VecDeque::new();
    let started = Instant::now();
    for index in 0..events {
        pace(started, index, rate).await;
        let bytes: bytes::Bytes = payload_of(index, size).into();
        let envelope = headers.then(|| {
            let id = (mode == Mode::JetStream).then(|| ids.next());
            orch_bridge::envelope::headers(&event, &floor, id)
        });
        match (mode, envelope) {
            (Mode::Core, None) => publisher
                .publish(subject.clone(), bytes)
                .await
                .map_err(|e| e.to_string())?,
            (Mode::Core, Some(h)) => publisher
                .publish_with_headers(subject.clone(), h, bytes)
                .await
                .map_err(|e| e.to_string())?,
            (Mode::JetStream, envelope) => {
                let ack = match envelope {
                    Some(h) => js.publish_with_headers(subject.clone(), h, bytes).await,
                    None => js.publish(subject.clone(), bytes).await,
                };
                window.push_back(ack.map_err(|e| e.to_string())?);
                if window.len() >= orch_bridge::export::WINDOW
                    && let Some(oldest) = window.pop_front()
                {
                    oldest.await.map_err(|e| e.to_string())?;
                }
            }
        }
    }
    for ack in window {
        ack.await.map_err(|e| e.to_string())?;
    }
    publisher.flush().await.map_err(|e| e.to_string())?;
    let (latencies, last) = receive.await.map_err(|e| e.to_string())?;
    if mode == Mode::JetStream {
        drop_stream(&subscriber, &format!("FLOOR_R{run}")).await;
    }
    let elapsed = last.saturating_duration_since(started);
    if (latencies.len() as u64) < events {
        eprintln!(
            "bench_bridge: the bare {} subscriber got {} of {events} messages of {size} B \
             (core NATS drops what a slow subscriber cannot take)",
            mode.name(),
            latencies.len()
        );
    }
    Ok(Run {
        elapsed,
        report: summary(latencies),
        alongside: None,
    })
}

/// Deletes a benchmark's stream once its run is over: each run has its own
/// (up to 100 MB of 1 KB events), and the server's store is not unbounded.
pub async fn drop_stream(client: &async_nats::Client, name: &str) {
    if let Err(e) = jetstream::new(client.clone()).delete_stream(name).await {
        eprintln!("bench_bridge: cannot delete the stream {name}: {e}");
    }
}

/// A bare subscriber beside node B, on its own thread and runtime (as a
/// node's client is): it receives node A's messages as node B does, in the
/// same run on the same cores, and counts them. What core NATS hands a
/// client that does nothing with its messages is the loss node B is held
/// to. Waits up to a minute for the first message, then [`QUIET`].
pub fn alongside(
    url: &str,
    subject: String,
    events: u64,
) -> Result<std::thread::JoinHandle<u64>, String> {
    let (ready_tx, ready) = std::sync::mpsc::channel::<Result<(), String>>();
    let url = url.to_owned();
    let thread = std::thread::Builder::new()
        .name("bench-alongside".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return 0;
                }
            };
            runtime.block_on(async move {
                let subscribed = async {
                    let client = async_nats::connect(url).await.map_err(|e| e.to_string())?;
                    let sub = client.subscribe(subject).await.map_err(|e| e.to_string())?;
                    client.flush().await.map_err(|e| e.to_string())?;
                    Ok::<_, String>((client, sub))
                };
                let (_client, mut sub) = match subscribed.await {
                    Ok(subscribed) => subscribed,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return 0;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                let mut count = 0;
                let mut wait = Duration::from_secs(60);
                while count < events {
                    match tokio::time::timeout(wait, sub.next()).await {
                        Ok(Some(_)) => count += 1,
                        _ => break,
                    }
                    wait = QUIET;
                }
                count
            })
        })
        .map_err(|e| e.to_string())?;
    ready
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| "the bare subscriber beside node B did not start".to_string())??;
    Ok(thread)
}
