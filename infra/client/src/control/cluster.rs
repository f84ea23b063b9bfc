//! The cluster as the control plane sees it: registered brokers, how far
//! they applied the topology, the audit log, and the health endpoints both
//! planes serve.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::Page;
use crate::call::{Call, empty};
use crate::client::Client;
use crate::path::Path;

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    pub data_url: String,
    pub zone: String,
    pub registered_at: String,
    pub last_heartbeat_at: String,
    pub applied_version: i64,
    /// Group replicas (queues, stream partitions) placed on the node.
    pub hosted_groups: i64,
    /// The most it said it hosts (absent: no limit).
    #[serde(default)]
    pub max_groups: Option<i64>,
    /// Free bytes on its data disk at the last heartbeat (absent: not reported).
    #[serde(default)]
    pub disk_free_bytes: Option<i64>,
    /// Free bytes it keeps: no group is placed on it with no more than this free.
    pub disk_reserve_bytes: i64,
}

/// `GET /v1/topology/status`: the current version and the lowest one every
/// live broker applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyStatus {
    pub version: i64,
    #[serde(default)]
    pub applied_version: Option<i64>,
    pub live_nodes: i64,
}

/// One audit log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(default)]
    pub tenant: Option<String>,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub details: serde_json::Value,
    pub at: String,
}

/// `GET /v1/audit-log` filters (`tenant`: operators only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub tenant: Option<String>,
    pub limit: Option<u32>,
    pub after: Option<i64>,
}

impl Client {
    /// `GET /v1/nodes`: every registered broker, live or not.
    pub fn nodes(&self) -> Call<Vec<Node>> {
        Call::new(self, Method::GET, "/v1/nodes".into())
    }

    /// `GET /v1/topology/status`.
    pub fn topology_status(&self) -> Call<TopologyStatus> {
        Call::new(self, Method::GET, "/v1/topology/status".into())
    }

    /// `GET /v1/audit-log`.
    pub fn audit_log(&self, query: &AuditQuery) -> Call<Page<AuditEntry>> {
        let path = Path::new("/v1/audit-log")
            .query("tenant", query.tenant.as_deref())
            .query("limit", query.limit)
            .query("after", query.after)
            .finish();
        Call::new(self, Method::GET, path)
    }

    /// `GET /healthz` (either plane): the process answers.
    pub fn healthz(&self) -> Call<()> {
        Call::decoded(self, Method::GET, "/healthz".into(), empty)
    }

    /// `GET /readyz` (either plane): ready to serve (503 until then).
    pub fn readyz(&self) -> Call<()> {
        Call::decoded(self, Method::GET, "/readyz".into(), empty)
    }
}
