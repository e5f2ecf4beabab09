//! The health gate of one node in a batch: on the new digest, ready, and
//! nothing crashed, failed a reload or opened a circuit since its batch
//! began, for `min_healthy` in a row.

use std::time::{Duration, Instant};

use orch_runtime::status::{NodeHealth, NodeRecord};

/// What the gate says of a node now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not there yet: why.
    Waiting(String),
    /// On the new release and healthy for long enough.
    Healthy,
    /// Something went wrong on it: what.
    Unhealthy(String),
}

/// Judges one node: `record` is its presence record (if any), `baseline`
/// its counts when its batch began, `since` when it was first seen on the
/// new digest and ready (kept by the caller between calls).
pub fn judge(
    record: Option<&NodeRecord>,
    digest: &str,
    baseline: NodeHealth,
    since: &mut Option<Instant>,
    min_healthy: Duration,
    now: Instant,
) -> Verdict {
    let Some(record) = record else {
        *since = None;
        return Verdict::Waiting("no presence record (not running?)".into());
    };
    if let Some(worse) = baseline.worse_in(&record.health) {
        return Verdict::Unhealthy(worse);
    }
    if let Some(refused) = record.refused.as_ref().filter(|r| r.digest == digest) {
        return Verdict::Unhealthy(format!("refused {}: {}", refused.version, refused.reason));
    }
    if record.bundle_digest.as_deref() != Some(digest) {
        *since = None;
        return Verdict::Waiting(format!(
            "runs {} (digest {})",
            record.version,
            record
                .bundle_digest
                .as_deref()
                .map_or("none", |d| d.get(..12).unwrap_or(d))
        ));
    }
    if !record.ready {
        *since = None;
        return Verdict::Waiting("not ready".into());
    }
    let first = *since.get_or_insert(now);
    if now.saturating_duration_since(first) >= min_healthy {
        Verdict::Healthy
    } else {
        Verdict::Waiting("healthy, for less than --min-healthy".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(digest: &str, ready: bool, crashes: u64) -> NodeRecord {
        NodeRecord {
            node: "n1".into(),
            incarnation: "1".into(),
            app: "shop".into(),
            version: "2".into(),
            bundle_digest: Some(digest.into()),
            ready,
            modules: Vec::new(),
            health: NodeHealth {
                crashes,
                ..NodeHealth::default()
            },
            refused: None,
        }
    }

    #[test]
    fn a_node_is_healthy_after_min_healthy_on_the_new_digest() {
        let (t0, min) = (Instant::now(), Duration::from_secs(10));
        let mut since = None;
        let base = NodeHealth::default();
        let old = record("old", true, 0);
        assert!(matches!(
            judge(Some(&old), "new", base, &mut since, min, t0),
            Verdict::Waiting(_)
        ));
        let new = record("new", true, 0);
        assert!(matches!(
            judge(Some(&new), "new", base, &mut since, min, t0),
            Verdict::Waiting(_)
        ));
        let later = t0 + min;
        assert_eq!(
            judge(Some(&new), "new", base, &mut since, min, later),
            Verdict::Healthy
        );
        // Not ready resets the clock.
        let unready = record("new", false, 0);
        assert!(matches!(
            judge(Some(&unready), "new", base, &mut since, min, later),
            Verdict::Waiting(_)
        ));
        assert_eq!(since, None);
        assert!(matches!(
            judge(None, "new", base, &mut since, min, later),
            Verdict::Waiting(_)
        ));
    }

    #[test]
    fn a_refusal_of_the_new_release_is_unhealthy_at_once() {
        let mut since = None;
        let mut refusing = record("old", true, 0);
        refusing.refused = Some(orch_runtime::status::RefusedRelease::new(
            "2",
            "new",
            "not signed by a trusted key",
        ));
        let verdict = judge(
            Some(&refusing),
            "new",
            NodeHealth::default(),
            &mut since,
            Duration::from_secs(1),
            Instant::now(),
        );
        assert_eq!(
            verdict,
            Verdict::Unhealthy("refused 2: not signed by a trusted key".into())
        );
    }

    #[test]
    fn a_crash_since_the_batch_began_is_unhealthy_at_once() {
        let mut since = None;
        let base = NodeHealth {
            crashes: 2,
            ..NodeHealth::default()
        };
        let same = record("new", true, 2);
        let now = Instant::now();
        let min = Duration::from_secs(1);
        assert!(matches!(
            judge(Some(&same), "new", base, &mut since, min, now),
            Verdict::Waiting(_)
        ));
        let crashed = record("new", true, 3);
        assert_eq!(
            judge(Some(&crashed), "new", base, &mut since, min, now),
            Verdict::Unhealthy("1 module.crashed".into())
        );
    }
}
