//! Queues: RabbitMQ quorum-queue semantics, declared with every setting a
//! work queue, a retry queue or a dead-letter queue needs. The settings are
//! the queue crate's own type, [`QueueSettings`] (`QueueSpec` in the API):
//! what is declared here is what brokers run.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sluice_protocol::peer::QueueStats;
pub use sluice_queue::{Overflow, QueueSettings, RetryBackoff};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::names;

/// Checks declared settings: the queue's own rules, then the charset of the
/// dead-letter exchange's name (whether it exists is checked in the
/// declare's transaction).
pub fn validate(settings: &QueueSettings) -> Result<(), ApiError> {
    settings.validate()?;
    if let Some(dlx) = &settings.dead_letter_exchange {
        names::resource("dead_letter_exchange", dlx)?;
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Queue {
    pub name: String,
    #[serde(flatten)]
    pub spec: QueueSettings,
    /// Topology version at which this queue was last changed.
    pub topology_version: i64,
    pub created_at: DateTime<Utc>,
    /// Live counts from the broker hosting the queue (on reads, when it answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<QueueStats>,
}
