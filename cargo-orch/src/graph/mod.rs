//! `cargo orch graph`: which module talks to which, drawn from the topic
//! contracts of modules.yaml (`publishes:` / `subscribes:`) and the bridge
//! section of main.yaml. An edge runs from a publisher to every subscriber
//! whose pattern its topic can match (patterns on both sides: two patterns
//! connect when some topic matches both), and to or from the NATS bridge
//! for exported and imported topics. What nobody hears, and what nobody
//! feeds, is called out.
//!
//! - [`model`]: the graph from the configuration;
//! - [`live`]: the graph of a running orchestrator (`--live`): real
//!   subscriptions, events per edge;
//! - [`render`]: DOT, Mermaid and SVG (laid out by layout-rs, no external
//!   program).

pub mod live;
pub mod model;
pub mod render;

pub use orch_sdk::topic::overlap;

#[cfg(test)]
mod tests {
    use super::overlap;

    #[test]
    fn patterns_overlap_when_a_topic_matches_both() {
        assert!(overlap("test.ping", "test.ping"));
        assert!(overlap("test.ping", "test.*"));
        assert!(overlap("test.>", "test.ping.fast"));
        assert!(overlap("test.*", "*.ping"));
        assert!(overlap(">", "a.b.c"));
        assert!(!overlap("test.ping", "test.pong"));
        assert!(!overlap("test.*", "test.ping.fast"));
        assert!(!overlap("test.>", "test"));
        assert!(!overlap("a.b", "a"));
    }
}
