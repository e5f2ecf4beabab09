//! The smallest useful module: it loads, logs each lifecycle step, and does nothing else.

use orch_sdk::prelude::*;

/// Logs its lifecycle; subscribes to nothing.
#[derive(Default)]
pub struct TestModule {
    started: bool,
}

impl Module for TestModule {
    fn initialize(&mut self, _ctx: &mut Context, config: &Config) -> Result<()> {
        tracing::info!(
            "Test module initialized ({} config keys)",
            config.values().len()
        );
        Ok(())
    }

    fn start(&mut self, _ctx: &mut Context) -> Result<()> {
        self.started = true;
        tracing::info!("Test module started");
        Ok(())
    }

    fn shutdown(&mut self, _ctx: &mut Context) -> Result<()> {
        self.started = false;
        tracing::info!("Test module shutting down");
        Ok(())
    }
}

orch_sdk::export_module!(TestModule);

#[cfg(test)]
mod tests {
    use super::*;
    use orch_sdk::testing::ModuleHarness;

    #[test]
    fn runs_its_lifecycle_without_touching_the_bus() {
        let mut harness = ModuleHarness::new(TestModule::default());
        harness
            .initialize(serde_json::json!({"anything": 1}))
            .unwrap();
        harness.start().unwrap();
        assert!(harness.module().started);
        harness.shutdown().unwrap();
        assert!(!harness.module().started);
        assert!(harness.host().subscriptions().is_empty());
        assert!(harness.host().published().is_empty());
        assert!(harness.host().timers().is_empty());
    }
}
