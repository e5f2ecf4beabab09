//! A child's publish and subscribe rates, checked by its reader thread.

use super::ReaderSetup;
use crate::rate_limit::{RateLimiter, Verdict};

/// A child's rate quotas, kept by its reader thread.
pub(super) struct Quotas {
    pub(super) publish: RateLimiter,
    pub(super) subscribe: RateLimiter,
}

impl Quotas {
    /// Fresh quotas from the module's `limits`.
    pub(super) fn of(r: &ReaderSetup) -> Self {
        let limits = r.ctx.limits();
        Self {
            publish: RateLimiter::new(limits.publish_rate),
            subscribe: RateLimiter::new(limits.subscribe_rate),
        }
    }
}

/// Whether the child's next `what` (publishes, subscriptions) is within its
/// `limits.<key>`; the first refusal of a second is logged at once, the count
/// of them when the next second begins.
pub(super) fn within_quota(
    r: &ReaderSetup,
    quota: &mut RateLimiter,
    what: &str,
    key: &str,
) -> bool {
    let rate = quota.per_second();
    match quota.admit() {
        Verdict::Admit => true,
        Verdict::AdmitAfterRefusals(n) => {
            tracing::warn!(
                "module '{}' (isolated): {n} {what} refused in the last second, more than \
                 its `limits.{key}: {rate}`",
                r.name
            );
            true
        }
        Verdict::Refuse => {
            if quota.refused_in_window() == 1 {
                tracing::warn!(
                    "module '{}' (isolated) sends more {what} than its `limits.{key}: {rate}` \
                     a second: the rest of this second's are refused (raise the limit in \
                     modules.yaml if the rate is meant)",
                    r.name
                );
            }
            false
        }
    }
}
