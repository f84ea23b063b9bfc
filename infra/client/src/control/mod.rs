//! The control plane's API (`openapi/control-plane.json`): tenants and
//! their quotas, API keys and tokens ([`tenants`]), the topology — exchanges,
//! queues, bindings, streams ([`topology`]) — and the cluster's brokers and
//! convergence ([`cluster`]). Shapes shared by every collection are here.

pub mod cluster;
pub mod tenants;
pub mod topology;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

pub use cluster::{AuditEntry, AuditQuery, Node, TopologyStatus};
pub use tenants::{
    ApiKey, ApiKeyCreated, CreateApiKey, CreateTenant, KeyStatus, Plan, QuotaReport, Quotas,
    QuotasPatch, Scope, Tenant, TenantCreated, TenantStatus, Token, Usage,
};
pub use topology::{
    Binding, BindingFilter, BindingSpec, DestinationType, Exchange, ExchangeSpec, ExchangeType,
    HeaderMatch, Overflow, Queue, QueueRates, QueueSpec, QueueStats, RetryBackoff, Stream,
    StreamSpec,
};

/// One page of a list; `next` is the `after` of the following page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Which page of a list: `limit` 1–1000 (default 100), after `after`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: Option<u32>,
    pub after: Option<String>,
}

/// The answer to a topology change (declare or delete): the resource and
/// how far the change got.
#[derive(Debug, Clone, PartialEq)]
pub struct Change<T> {
    /// 201 created, 200 unchanged (or deleted), 202 stored but not yet
    /// applied by every live broker within the control plane's wait.
    pub status: StatusCode,
    pub value: T,
}

impl<T> Change<T> {
    /// Whether the declare created the resource.
    pub fn created(&self) -> bool {
        self.status == StatusCode::CREATED
    }

    /// Whether every live broker applied the change before the answer.
    pub fn applied(&self) -> bool {
        self.status != StatusCode::ACCEPTED
    }
}

/// What a delete removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub name: String,
    pub bindings_removed: i64,
    pub topology_version: i64,
}

/// Conditions of an exchange or queue delete.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Refuse (409 `in-use`) while bindings use it.
    pub if_unused: bool,
    /// Refuse (409) while a queue holds messages.
    pub if_empty: bool,
}

/// Decodes a topology change's answer with its status.
pub(crate) fn change<T: serde::de::DeserializeOwned>(
    answer: crate::Answer,
) -> Result<Change<T>, crate::ClientError> {
    answer.error_unless_success()?;
    Ok(Change {
        status: answer.status,
        value: answer.json()?,
    })
}

impl crate::path::Path {
    /// Appends `limit` and `after`.
    pub(crate) fn page(self, page: &PageRequest) -> crate::path::Path {
        self.query("limit", page.limit)
            .query("after", page.after.as_deref())
    }
}
