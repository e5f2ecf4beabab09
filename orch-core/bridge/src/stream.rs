//! The JetStream stream the bridge stores its subjects in: created if
//! missing; an existing one that does not hold `<prefix>.>` is named as the
//! cause, as nothing exported would be stored and nothing imported seen.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use orch_sdk::topic::covers;

/// The stream holding `<prefix>.>`, created if missing; waits for the broker
/// as long as it takes (the bridge's stop ends the wait).
pub async fn open(
    context: &jetstream::Context,
    name: &str,
    prefix: &str,
    replicas: usize,
) -> stream::Stream {
    let wanted = format!("{prefix}.>");
    let mut tries = 0u32;
    loop {
        let config = stream::Config {
            name: name.to_owned(),
            subjects: vec![wanted.clone()],
            storage: stream::StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        };
        match context.get_or_create_stream(config).await {
            Ok(stream) => {
                let holds = &stream.cached_info().config.subjects;
                if holds.iter().any(|subject| covers(subject, &wanted)) {
                    tracing::info!("[BRIDGE] JetStream stream '{name}' holds {wanted}");
                } else {
                    tracing::error!(
                        "[BRIDGE] the JetStream stream '{name}' exists and holds [{}], not \
                         {wanted}: exported events are not stored (each is tried again) and \
                         nothing is imported. Add {wanted} to its subjects (`nats stream edit \
                         {name}`), or name a stream of this prefix's own in \
                         `bridge.nats.jetstream.stream`",
                        holds.join(", ")
                    );
                }
                return stream;
            }
            Err(e) => {
                if tries.is_multiple_of(10) {
                    tracing::warn!(
                        "[BRIDGE] cannot open the JetStream stream '{name}': {e}; trying again"
                    );
                }
                tries += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
