//! The bridge's state for operators (`cargo orch status`, the metrics),
//! read from any thread without touching the bridge's own.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use orch_runtime::mailbox::Mailbox;
use orch_runtime::status::{BridgeSnapshot, BridgeStatus};

use crate::connection::Link;
use crate::export::ExportStats;
use crate::stats::ImportStats;

/// Reads a running bridge's state from any thread.
#[derive(Clone)]
pub struct BridgeProbe {
    pub(crate) node: String,
    pub(crate) link: Arc<Link>,
    pub(crate) outbox: Option<Mailbox>,
    pub(crate) exported: Arc<ExportStats>,
    pub(crate) imported: Arc<ImportStats>,
    pub(crate) view: Arc<std::sync::Mutex<crate::presence::View>>,
    pub(crate) requests: Arc<crate::requests::RequestStats>,
    pub(crate) work: crate::work::AllStats,
}

impl BridgeStatus for BridgeProbe {
    fn snapshot(&self) -> BridgeSnapshot {
        let server = self.link.server();
        let in_hand = self.exported.in_hand.load(Ordering::Acquire);
        BridgeSnapshot {
            node: self.node.clone(),
            connected: self.link.is_connected(),
            server: Some(server).filter(|s| !s.is_empty()),
            reconnects: self.link.connects().saturating_sub(1),
            exported: self.exported.sent.load(Ordering::Relaxed),
            export_failures: self.exported.failed.load(Ordering::Relaxed),
            export_too_large: self.exported.too_large.load(Ordering::Relaxed),
            imported: self.imported.delivered.load(Ordering::Relaxed),
            import_repeats: self.imported.repeats.load(Ordering::Relaxed),
            import_namesakes: self.imported.namesakes.load(Ordering::Relaxed),
            import_malformed: self.imported.malformed.load(Ordering::Relaxed),
            import_rejected: self.imported.rejected(),
            import_refused: self.imported.refused.load(Ordering::Relaxed),
            import_fenced: self.imported.fenced.load(Ordering::Relaxed),
            import_dropped: self.imported.dropped.load(Ordering::Relaxed) + self.link.dropped(),
            outbox_depth: self.outbox.as_ref().map_or(0, Mailbox::len)
                + usize::try_from(in_hand).unwrap_or(0),
            outbox_capacity: self.outbox.as_ref().map_or(0, Mailbox::capacity),
            nodes: self.view.lock().unwrap_or_else(|e| e.into_inner()).nodes(),
            requests: self.requests.counts(),
            work: self
                .work
                .iter()
                .map(|(group, stats)| stats.counts(group))
                .collect(),
        }
    }
}
