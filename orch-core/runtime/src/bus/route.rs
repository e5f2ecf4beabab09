//! A publisher's route: the subscribers one topic resolved to, kept while the
//! bus's subscriptions stay as they were. A module publishing on the same
//! topic again skips the topic checks, the registry's hash lookup and the
//! pattern scan, and shares its names (topic and source) with every event on
//! it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use orch_sdk::topic;

use super::{Admission, Bus, BusError, BusEvent, Names, Registry, Target};

/// The subscribers of one (valid) topic as of one version of the bus's
/// subscriptions. Made by [`Bus::route`], used by [`Bus::publish_on`], which
/// resolves it again when subscriptions changed.
pub struct Route {
    names: Names,
    /// The version of the subscriptions the targets were resolved at.
    version: u64,
    /// The subscribers in delivery order; `None` when the topic is diverted
    /// (shared work): every publish then takes the bus's full path.
    targets: Option<Box<[Target]>>,
}

impl Route {
    /// The topic.
    pub fn topic(&self) -> &str {
        self.names.get().topic()
    }
}

impl Bus {
    /// The route of `topic` (checked as [`Bus::publish`] checks it) for
    /// `source`'s events (`None`: the host's).
    pub fn route(&self, topic: &str, source: Option<Arc<str>>) -> Result<Route, BusError> {
        topic::validate_topic(topic).map_err(BusError::InvalidTopic)?;
        let registry = self.read();
        Ok(self.resolve(&registry, Names::for_route(topic, source)))
    }

    /// Publishes `payload` on `route` as [`Bus::publish`] does, resolving
    /// the route again first when subscriptions changed since it was made.
    pub fn publish_on(&self, route: &mut Route, payload: &[u8]) -> Result<usize, BusError> {
        self.check_size(route.topic(), payload)?;
        let event = Arc::new(BusEvent::named(&route.names, payload));
        let registry = self.read();
        // Writers bump the version under the write lock: read under the
        // read lock, it is the registry's.
        if route.version != self.shared.version.load(Ordering::Relaxed) {
            *route = self.resolve(&registry, route.names.clone());
        }
        let Some(targets) = &route.targets else {
            drop(registry);
            return self.deliver(event, Admission::Now, None).into_result();
        };
        let mut report = super::DeliveryReport::default();
        let Some((last_target, others)) = targets.split_last() else {
            drop(registry);
            self.settle(Vec::new(), &event, None, &mut report);
            return report.into_result();
        };
        let mut waiting = Self::offer(others.iter(), &event, Admission::Now, None, &mut report);
        // The last subscriber gets the publisher's own reference when no
        // one before it is still to be waited for (then the event is needed
        // after it).
        let left = if waiting.is_empty() {
            let (id, last) = last_target;
            match last.deliver_owned(event, Admission::Now) {
                Ok(delivered) => {
                    report.note(delivered);
                    None
                }
                Err(event) => {
                    waiting.push((*id, Arc::clone(last)));
                    Some(event)
                }
            }
        } else {
            waiting.extend(Self::offer(
                std::iter::once(last_target),
                &event,
                Admission::Now,
                None,
                &mut report,
            ));
            Some(event)
        };
        drop(registry);
        match left {
            Some(event) => self.settle(waiting, &event, None, &mut report),
            None => self.flush_dead_letters_if_any(),
        }
        report.into_result()
    }

    /// The route of `topic` in `registry` (read-locked).
    fn resolve(&self, registry: &Registry, names: Names) -> Route {
        let topic = names.get().topic();
        let version = self.shared.version.load(Ordering::Relaxed);
        let diverted = !registry.diverted.is_empty()
            && registry
                .diverted
                .iter()
                .any(|(pattern, _)| topic::matches(pattern, topic));
        let targets = (!diverted).then(|| Self::matching(registry, topic).cloned().collect());
        Route {
            names,
            version,
            targets,
        }
    }
}
