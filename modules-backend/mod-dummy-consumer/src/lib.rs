//! Subscribes to `test.ping` and logs every ping it receives.

use orch_sdk::prelude::*;
use serde::Deserialize;

/// The fields of `test.ping` the consumer reads.
#[derive(Debug, Deserialize)]
pub struct Ping {
    /// The producer's message.
    pub message: String,
    /// The producer's sequence number.
    pub seq: u64,
}

/// The topic the consumer listens to.
pub const PING_TOPIC: &str = "test.ping";

/// Counts and logs pings.
#[derive(Default)]
pub struct Consumer {
    received: u64,
    last_seq: Option<u64>,
}

impl Module for Consumer {
    fn initialize(&mut self, ctx: &mut Context, _config: &Config) -> Result<()> {
        ctx.subscribe(PING_TOPIC)?;
        tracing::info!("Subscribed to event: {PING_TOPIC}");
        if let Some(received) = ctx.restored_state::<u64>()? {
            self.received = received;
        }
        Ok(())
    }

    fn on_event(&mut self, _ctx: &mut Context, event: &Event) -> Result<()> {
        let ping: Ping = event.data()?;
        tracing::info!("Received test.ping: {} (seq {})", ping.message, ping.seq);
        self.received += 1;
        self.last_seq = Some(ping.seq);
        Ok(())
    }

    fn save_state(&mut self, _ctx: &mut Context) -> Result<Option<serde_json::Value>> {
        Ok(Some(serde_json::json!(self.received)))
    }

    fn shutdown(&mut self, _ctx: &mut Context) -> Result<()> {
        tracing::info!("Consumer received {} pings in all", self.received);
        Ok(())
    }
}

orch_sdk::export_module!(Consumer);

#[cfg(test)]
mod tests {
    use super::*;
    use orch_sdk::testing::ModuleHarness;
    use serde_json::json;

    #[test]
    fn subscribes_in_initialize_and_counts_pings() {
        let mut harness = ModuleHarness::new(Consumer::default());
        harness.initialize(json!({})).unwrap();
        assert_eq!(harness.host().subscriptions(), vec![PING_TOPIC]);
        harness.start().unwrap();
        for seq in 1..=3 {
            let delivered = harness
                .deliver(PING_TOPIC, &json!({"message": "hello", "seq": seq}))
                .unwrap();
            assert!(delivered);
        }
        assert!(!harness.deliver("test.other", &json!({})).unwrap());
        assert_eq!(harness.module().received, 3);
        assert_eq!(harness.module().last_seq, Some(3));
    }

    /// `tests/data/pings.orch`: 20 pings of the shipped producer, recorded
    /// from a running orchestrator with `cargo orch record 'test.>' --count 20`.
    #[test]
    fn a_recorded_stream_of_pings_is_counted_in_order() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pings.orch");
        let recording = orch_recording::format::read(&path).unwrap();
        let mut harness = ModuleHarness::new(Consumer::default());
        harness.initialize(json!({})).unwrap();
        harness.start().unwrap();
        let fed = orch_recording::feed(&mut harness, &recording).unwrap();
        assert_eq!((fed.delivered, fed.skipped), (20, 0));
        assert_eq!(harness.module().received, 20);
        let last = recording.events.last().unwrap().payload["seq"].as_u64();
        assert_eq!(harness.module().last_seq, last);
    }

    #[test]
    fn a_malformed_ping_is_an_error_naming_the_topic() {
        let mut harness = ModuleHarness::new(Consumer::default());
        harness.initialize(json!({})).unwrap();
        let err = harness
            .deliver(PING_TOPIC, &json!({"message": 5}))
            .unwrap_err();
        assert!(err.to_string().contains("test.ping"), "{err}");
        assert_eq!(harness.module().received, 0);
    }
}
