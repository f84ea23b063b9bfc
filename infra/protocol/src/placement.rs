//! Where a Raft group lives: the control plane decides it (`placement/` in
//! the control plane), the feed carries it, brokers open the groups placed
//! on them and forward requests for the others.

use serde::{Deserialize, Serialize};

/// A Raft group and the nodes holding its replicas (preferred leader first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Placement {
    pub group_id: String,
    pub replicas: Vec<String>,
}

impl Placement {
    /// Whether `node_id` holds a replica of the group.
    pub fn is_on(&self, node_id: &str) -> bool {
        self.replicas.iter().any(|r| r == node_id)
    }
}
