//! Applying the feed's changes to the broker's topology, and remembering
//! which queues and streams recent versions changed, so the group hosts
//! converge to those alone instead of walking every group per version.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use sluice_protocol::feed::FeedChanges;

use super::topology::Topology;

/// How many versions of changes a topology remembers. A host that fell
/// further behind (it was busy converging) walks every group once.
const REMEMBERED: usize = 256;

/// The queues and streams one update changed (by tenant and name).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Changed {
    pub queues: HashSet<(i64, String)>,
    pub streams: HashSet<(i64, String)>,
}

/// One update's changes: from the topology at `since` to the one at `version`.
#[derive(Debug)]
struct Step {
    since: i64,
    version: i64,
    changed: Changed,
}

/// The changes of the last few updates, oldest first, each starting where
/// the one before ended. A snapshot starts it afresh (empty).
#[derive(Debug, Default, Clone)]
pub struct RecentChanges {
    steps: VecDeque<Arc<Step>>,
}

impl RecentChanges {
    /// Everything that changed from `version` to `to`; `None` when that is
    /// not known (a snapshot came in between, or it is too long ago).
    pub fn since(&self, version: i64, to: i64) -> Option<Changed> {
        if version == to {
            return Some(Changed::default());
        }
        let start = self.steps.iter().position(|s| s.since == version)?;
        let mut changed = Changed::default();
        let mut at = version;
        for step in self.steps.iter().skip(start) {
            if step.since != at {
                return None;
            }
            changed.queues.extend(step.changed.queues.iter().cloned());
            changed.streams.extend(step.changed.streams.iter().cloned());
            at = step.version;
        }
        (at == to).then_some(changed)
    }

    fn push(&mut self, step: Step) {
        if self.steps.len() == REMEMBERED {
            self.steps.pop_front();
        }
        self.steps.push_back(Arc::new(step));
    }
}

/// The changes did not start at the topology's version (a control plane
/// answering for another broker's version, or one whose database changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("changes from version {since} cannot apply to the topology at version {have}")]
pub struct ChangesMismatch {
    pub since: i64,
    pub have: i64,
}

impl Topology {
    /// The topology at `changes.version`: this one with the changes applied.
    pub fn with_changes(&self, changes: FeedChanges) -> Result<Topology, ChangesMismatch> {
        if changes.since != self.version {
            return Err(ChangesMismatch {
                since: changes.since,
                have: self.version,
            });
        }
        let mut next = self.clone();
        next.version = changes.version;
        let routing_tenants: Vec<i64> = changes.routing.iter().map(|r| r.tenant_id).collect();
        let mut changed = Changed::default();
        for gone in changes.queues_removed {
            let key = (gone.tenant_id, gone.name);
            next.queues.remove(&key);
            changed.queues.insert(key);
        }
        for queue in changes.queues {
            let key = (queue.tenant_id, queue.name.clone());
            changed.queues.insert(key.clone());
            next.queues.insert(key, Arc::new(queue));
        }
        for gone in changes.streams_removed {
            let key = (gone.tenant_id, gone.name);
            next.streams.remove(&key);
            changed.streams.insert(key);
        }
        for stream in changes.streams {
            let key = (stream.tenant_id, stream.name.clone());
            changed.streams.insert(key.clone());
            next.streams.insert(key, Arc::new(stream));
        }
        for id in changes.api_keys_removed {
            next.keys.remove(&id);
        }
        for key in changes.api_keys {
            next.keys.insert(key.id.clone(), Arc::new(key));
        }
        for routing in changes.routing {
            next.exchanges.remove(&routing.tenant_id);
            next.bindings.remove(&routing.tenant_id);
            if !routing.exchanges.is_empty() {
                next.exchanges
                    .insert(routing.tenant_id, Arc::new(routing.exchanges));
            }
            if !routing.bindings.is_empty() {
                next.bindings
                    .insert(routing.tenant_id, Arc::new(routing.bindings));
            }
        }
        // A queue declared or deleted changes its tenant's default exchange.
        let queue_tenants = changed.queues.iter().map(|(tenant, _)| *tenant);
        for tenant in queue_tenants.chain(routing_tenants) {
            next.routing_changed.insert(tenant, changes.version);
        }
        next.recent.push(Step {
            since: changes.since,
            version: changes.version,
            changed,
        });
        Ok(next)
    }

    /// What changed from `version` to this topology's (see [`RecentChanges::since`]).
    pub fn changed_since(&self, version: i64) -> Option<Changed> {
        self.recent.since(version, self.version)
    }
}

#[cfg(test)]
mod tests {
    use sluice_protocol::feed::{FeedName, FeedQueue, FeedSnapshot, KeyVerifier, TenantRouting};
    use sluice_protocol::placement::Placement;

    use super::*;

    fn queue(tenant_id: i64, name: &str) -> FeedQueue {
        FeedQueue {
            tenant_id,
            name: name.into(),
            spec: Default::default(),
            placement: Placement {
                group_id: format!("q-{name}"),
                replicas: vec!["n1".into()],
            },
        }
    }

    fn changes(since: i64, version: i64) -> FeedChanges {
        FeedChanges {
            since,
            version,
            queues: Vec::new(),
            queues_removed: Vec::new(),
            streams: Vec::new(),
            streams_removed: Vec::new(),
            api_keys: Vec::new(),
            api_keys_removed: Vec::new(),
            routing: Vec::new(),
        }
    }

    fn snapshot(version: i64, queues: Vec<FeedQueue>) -> Topology {
        Topology::from_snapshot(FeedSnapshot {
            version,
            tenants: Vec::new(),
            api_keys: Vec::new(),
            exchanges: Vec::new(),
            queues,
            bindings: Vec::new(),
            streams: Vec::new(),
            nodes: Vec::new(),
        })
    }

    #[test]
    fn changes_add_replace_and_remove_what_they_name() {
        let start = snapshot(5, vec![queue(1, "a"), queue(1, "b")]);
        let mut step = changes(5, 7);
        step.queues = vec![queue(1, "c")];
        step.queues_removed = vec![FeedName {
            tenant_id: 1,
            name: "a".into(),
        }];
        step.api_keys = vec![KeyVerifier {
            id: "k1".into(),
            tenant_id: 1,
            scopes: Vec::new(),
            secret_sha256: "00".into(),
            expires_at: None,
        }];
        step.routing = vec![TenantRouting {
            tenant_id: 1,
            exchanges: Vec::new(),
            bindings: Vec::new(),
        }];
        let next = start.with_changes(step).expect("applies at 5");
        assert_eq!(next.version, 7);
        let mut names: Vec<_> = next.queues.keys().map(|(_, n)| n.as_str()).collect();
        names.sort();
        assert_eq!(names, ["b", "c"]);
        assert!(next.keys.contains_key("k1"));
        assert_eq!(start.queues.len(), 2, "the old topology is untouched");
        let changed = next.changed_since(5).expect("known");
        assert_eq!(
            changed.queues,
            HashSet::from([(1, "a".to_string()), (1, "c".to_string())])
        );
    }

    #[test]
    fn changes_must_start_at_the_topology_version() {
        let start = snapshot(5, Vec::new());
        let err = start.with_changes(changes(4, 6)).expect_err("gap");
        assert_eq!(err, ChangesMismatch { since: 4, have: 5 });
    }

    #[test]
    fn changed_since_joins_consecutive_steps_and_knows_where_it_does_not_know() {
        let mut topology = snapshot(1, Vec::new());
        for (since, version, name) in [(1, 2, "a"), (2, 4, "b"), (4, 5, "c")] {
            let mut step = changes(since, version);
            step.queues = vec![queue(1, name)];
            topology = topology.with_changes(step).expect("consecutive");
        }
        let names = |c: Changed| {
            let mut n: Vec<String> = c.queues.into_iter().map(|(_, n)| n).collect();
            n.sort();
            n
        };
        assert_eq!(names(topology.changed_since(2).expect("known")), ["b", "c"]);
        assert_eq!(
            names(topology.changed_since(1).expect("known")),
            ["a", "b", "c"]
        );
        assert_eq!(topology.changed_since(5), Some(Changed::default()));
        assert_eq!(topology.changed_since(3), None, "no step starts at 3");
        assert_eq!(topology.changed_since(0), None, "before the snapshot");
        let fresh = snapshot(9, Vec::new());
        assert_eq!(fresh.changed_since(5), None, "a snapshot forgets");
    }
}
