//! `bridge.nats.work`: shared work. Each entry names a group and its
//! topics; an event a module publishes on one of them leaves the node (it is
//! not delivered to the publisher's own subscribers) and goes to exactly one
//! node of those with a subscriber: on JetStream through one shared durable
//! consumer per group (at least once), on core NATS through a queue group
//! (at most once).

use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use super::check::Checker;
use super::merge::merge_by_key;

/// One `bridge.nats.work` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkGroup {
    /// `group`: the name the nodes share (a name token): the durable
    /// consumer, or the queue group on core NATS.
    pub group: String,
    /// `topics`: the topic patterns whose events are this group's jobs.
    pub topics: Vec<String>,
    /// `max_in_flight`: jobs this node holds at most (taken from the broker
    /// and not yet handled); it also never takes more than its subscribers'
    /// mailboxes have room for.
    pub max_in_flight: usize,
}

/// The default `max_in_flight`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;

/// The largest `max_in_flight`.
pub const MAX_IN_FLIGHT: usize = 10_000;

/// One entry as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RawWork {
    group: Option<Spanned<String>>,
    topics: Option<Vec<Spanned<String>>>,
    max_in_flight: Option<Spanned<Value>>,
}
merge_by_key!(RawWork {
    group,
    topics,
    max_in_flight
});

/// `work:`: every entry checked; groups and topics each appear once.
pub(crate) fn groups(c: &mut Checker, raw: Option<&[Spanned<RawWork>]>) -> Vec<WorkGroup> {
    let mut groups: Vec<WorkGroup> = Vec::new();
    for entry in raw.unwrap_or_default() {
        let Some(group) = group_name(c, entry) else {
            continue;
        };
        if groups.iter().any(|g| g.group == group) {
            c.error(
                &entry.referenced,
                format!("`bridge.nats.work` names the group `{group}` twice"),
                "list every topic of a group in one entry's `topics:`",
            );
            continue;
        }
        let topics = crate::bridge_tokens::patterns(
            c,
            "bridge.nats.work.topics",
            entry.value.topics.as_deref(),
        );
        if topics.is_empty() {
            c.error(
                &entry.referenced,
                format!("`bridge.nats.work` group `{group}` has no topics"),
                "add the topics whose events are its jobs, for example `topics: [jobs.resize]`",
            );
            continue;
        }
        for topic in &topics {
            if let Some(other) = groups.iter().find(|g| g.topics.contains(topic)) {
                c.error(
                    &entry.referenced,
                    format!(
                        "`bridge.nats.work`: topic `{topic}` is in the groups `{}` and `{group}`",
                        other.group
                    ),
                    "a job goes to one group: keep each topic in one entry",
                );
            }
        }
        let max_in_flight = c.count(
            "bridge.nats.work.max_in_flight",
            entry.value.max_in_flight.as_ref(),
            DEFAULT_MAX_IN_FLIGHT,
        );
        let max_in_flight = match entry.value.max_in_flight.as_ref() {
            Some(at) if max_in_flight > MAX_IN_FLIGHT => {
                c.error(
                    &at.referenced,
                    format!(
                        "`bridge.nats.work.max_in_flight` is {max_in_flight}, more than \
                         {MAX_IN_FLIGHT}"
                    ),
                    "it bounds the jobs one node holds at once: a few times the handlers' \
                     parallelism is plenty (default 64)",
                );
                DEFAULT_MAX_IN_FLIGHT
            }
            _ => max_in_flight,
        };
        groups.push(WorkGroup {
            group,
            topics,
            max_in_flight,
        });
    }
    groups
}

/// The entry's `group`: required, a name token.
fn group_name(c: &mut Checker, entry: &Spanned<RawWork>) -> Option<String> {
    let Some(raw) = entry.value.group.as_ref() else {
        c.error(
            &entry.referenced,
            "a `bridge.nats.work` entry names no `group`",
            "add `group: resizers` (the nodes that share these jobs use the same name)",
        );
        return None;
    };
    crate::bridge_tokens::name_token(c, "bridge.nats.work.group", raw)
}

/// Topics both exported and shared as work: a job is never also an exported
/// event, so the export entry would silently do nothing.
pub(crate) fn check_exports(
    c: &mut Checker,
    groups: &[WorkGroup],
    export: &[String],
    at: &serde_saphyr::Location,
) {
    for group in groups {
        for topic in group.topics.iter().filter(|t| export.contains(t)) {
            c.error(
                at,
                format!(
                    "`bridge.nats`: `{topic}` is both in `export` and in the work group `{}`",
                    group.group
                ),
                "an event on a work topic goes to one node's subscribers, never to every \
                 importer: remove it from `export` (or from `work`)",
            );
        }
    }
}
