//! Streams: partitioned, replayable logs (Kafka semantics). The settings are
//! the stream crate's own [`StreamSettings`] (`StreamSpec` in the API): what
//! is declared here is what brokers run partitions by.

use chrono::{DateTime, Utc};
use serde::Serialize;
pub use sluice_stream::StreamSettings;
use utoipa::ToSchema;

use crate::error::ApiError;

/// Checks declared settings; `max_message_bytes` is the tenant's quota, which
/// the stream's own record size limit may not exceed.
pub fn validate(settings: &StreamSettings, max_message_bytes: i64) -> Result<(), ApiError> {
    let quota = u64::try_from(max_message_bytes).unwrap_or(0);
    settings.validate(quota)?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Stream {
    pub name: String,
    #[serde(flatten)]
    pub spec: StreamSettings,
    /// Topology version at which this stream was last changed.
    pub topology_version: i64,
    pub created_at: DateTime<Utc>,
}
