//! Publishes `test.ping {"message": ..., "seq": n}` every `publish_interval`,
//! starting at once when started.
//!
//! Config (`config/modules.yaml`): `publish_interval` (duration, default `1s`),
//! `message` (default `"hello"`).

use std::time::Duration;

use orch_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// The payload of `test.ping`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ping {
    /// The configured message.
    pub message: String,
    /// 1 for the first ping, then +1 for each; carried across reloads.
    pub seq: u64,
}

/// The topic of the producer's own timer.
pub const TICK_TOPIC: &str = "producer.tick";

/// The topic of the pings.
pub const PING_TOPIC: &str = "test.ping";

/// Publishes a ping per tick.
pub struct Producer {
    interval: Duration,
    message: String,
    seq: u64,
}

impl Default for Producer {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            message: "hello".to_owned(),
            seq: 0,
        }
    }
}

impl Producer {
    fn publish_ping(&mut self, ctx: &mut Context) -> Result<()> {
        self.seq += 1;
        let ping = Ping {
            message: self.message.clone(),
            seq: self.seq,
        };
        ctx.publish(PING_TOPIC, &ping)?;
        tracing::info!("Published test.ping: {} (seq {})", ping.message, ping.seq);
        Ok(())
    }
}

impl Module for Producer {
    fn initialize(&mut self, ctx: &mut Context, config: &Config) -> Result<()> {
        if let Some(interval) = config.duration("publish_interval")? {
            if interval.is_zero() {
                return Err("publish_interval must be greater than zero".into());
            }
            self.interval = interval;
        }
        if let Some(message) = config.get::<String>("message")? {
            self.message = message;
        }
        // After a reload, continue the sequence where the old generation stopped.
        if let Some(seq) = ctx.restored_state::<u64>()? {
            self.seq = seq;
        }
        tracing::info!(
            "Producer will publish {PING_TOPIC} every {:?}",
            self.interval
        );
        Ok(())
    }

    fn start(&mut self, ctx: &mut Context) -> Result<()> {
        ctx.every(self.interval, TICK_TOPIC)?;
        self.publish_ping(ctx)
    }

    fn on_event(&mut self, ctx: &mut Context, event: &Event) -> Result<()> {
        if event.topic() == TICK_TOPIC {
            self.publish_ping(ctx)?;
        }
        Ok(())
    }

    fn save_state(&mut self, _ctx: &mut Context) -> Result<Option<serde_json::Value>> {
        Ok(Some(serde_json::json!(self.seq)))
    }
}

orch_sdk::export_module!(Producer);

#[cfg(test)]
mod tests {
    use super::*;
    use orch_sdk::testing::ModuleHarness;
    use serde_json::json;

    fn pings(harness: &ModuleHarness<Producer>) -> Vec<Ping> {
        harness
            .host()
            .published_on(PING_TOPIC)
            .into_iter()
            .map(|v| serde_json::from_value(v).unwrap())
            .collect()
    }

    #[test]
    fn publishes_at_once_on_start_then_on_every_tick() {
        let mut harness = ModuleHarness::new(Producer::default());
        harness
            .initialize(json!({"publish_interval": "250ms"}))
            .unwrap();
        assert!(pings(&harness).is_empty(), "nothing before start");
        harness.start().unwrap();
        let timers = harness.host().timers();
        assert_eq!(timers.len(), 1);
        assert_eq!(timers[0].interval, Duration::from_millis(250));
        assert!(timers[0].repeat);
        harness.fire_timer(TICK_TOPIC).unwrap();
        harness.fire_timer(TICK_TOPIC).unwrap();
        let seqs: Vec<u64> = pings(&harness).iter().map(|p| p.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        assert!(pings(&harness).iter().all(|p| p.message == "hello"));
    }

    #[test]
    fn uses_the_configured_message_and_rejects_a_bad_interval() {
        let mut harness = ModuleHarness::new(Producer::default());
        harness.initialize(json!({"message": "hi there"})).unwrap();
        harness.start().unwrap();
        assert_eq!(pings(&harness)[0].message, "hi there");

        let mut harness = ModuleHarness::new(Producer::default());
        let err = harness
            .initialize(json!({"publish_interval": "soon"}))
            .unwrap_err();
        assert!(err.to_string().contains("publish_interval"), "{err}");
        let err = harness
            .initialize(json!({"publish_interval": 0}))
            .unwrap_err();
        assert!(err.to_string().contains("greater than zero"), "{err}");
    }

    #[test]
    fn continues_the_sequence_across_a_reload() {
        let mut old = ModuleHarness::new(Producer::default());
        old.initialize(json!({})).unwrap();
        old.start().unwrap();
        old.fire_timer(TICK_TOPIC).unwrap();
        let state = old.save_state().unwrap();
        assert_eq!(state, Some(json!(2)));

        let mut new = ModuleHarness::new(Producer::default());
        new.initialize_with_state(json!({}), state).unwrap();
        new.start().unwrap();
        assert_eq!(pings(&new)[0].seq, 3);
    }
}
