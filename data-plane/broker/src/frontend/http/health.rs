//! The operator's health report (`GET /healthz` on the scrape listener):
//! whether every hosted group can be opened. A broker whose groups fail to
//! open (out of file descriptors, memory or disk) keeps serving the ones
//! that are open and backs off the others; it is alive, so it answers 200,
//! but `degraded`, naming the groups and the last error of each.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::node::Node;

/// At most this many failing groups are named (the count is always whole).
const NAMED: usize = 20;

#[derive(Debug, Serialize)]
pub struct Health {
    /// `ok`, or `degraded` while some group cannot be opened.
    pub status: &'static str,
    pub queues: GroupHealth,
    pub partitions: GroupHealth,
}

#[derive(Debug, Default, Serialize)]
pub struct GroupHealth {
    pub hosted: usize,
    pub awake: usize,
    pub failing: usize,
    /// Some of the failing groups: id and the error of its last open.
    pub failing_groups: Vec<FailingGroup>,
}

#[derive(Debug, Serialize)]
pub struct FailingGroup {
    pub group_id: String,
    pub error: String,
}

impl GroupHealth {
    fn count(&mut self, group_id: &str, awake: bool, failing: Option<String>) {
        self.hosted += 1;
        self.awake += usize::from(awake);
        if let Some(error) = failing {
            self.failing += 1;
            if self.failing_groups.len() < NAMED {
                self.failing_groups.push(FailingGroup {
                    group_id: group_id.to_string(),
                    error,
                });
            }
        }
    }
}

pub async fn health(State(node): State<Node>) -> Json<Health> {
    let mut queues = GroupHealth::default();
    for hosted in node.queues.all() {
        queues.count(&hosted.spec.group_id, hosted.is_awake(), hosted.failing());
    }
    let mut partitions = GroupHealth::default();
    for hosted in node.partitions.all() {
        partitions.count(&hosted.spec.group_id, hosted.is_awake(), hosted.failing());
    }
    let status = if queues.failing + partitions.failing == 0 {
        "ok"
    } else {
        "degraded"
    };
    Json(Health {
        status,
        queues,
        partitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_groups_are_counted_whole_and_named_up_to_a_limit() {
        let mut health = GroupHealth::default();
        for n in 0..30 {
            let failing = (n % 2 == 0).then(|| "Too many open files".to_string());
            health.count(&format!("q{n}"), n % 3 == 0, failing);
        }
        assert_eq!((health.hosted, health.awake, health.failing), (30, 10, 15));
        assert_eq!(health.failing_groups.len(), 15);
        assert_eq!(health.failing_groups[0].group_id, "q0");
    }
}
