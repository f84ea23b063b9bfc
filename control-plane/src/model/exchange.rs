//! Exchanges: where publishes go and how they are routed to queues. The
//! settings are the routing crate's own [`ExchangeSpec`]: what is declared
//! here is what brokers route by.

use chrono::{DateTime, Utc};
use serde::Serialize;
pub use sluice_routing::{ExchangeSpec, ExchangeType};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::names;

/// Checks the spec of the exchange called `name`: its alternate exchange's
/// name charset, then routing's own rules.
pub fn validate(name: &str, spec: &ExchangeSpec) -> Result<(), ApiError> {
    if let Some(ae) = &spec.alternate_exchange {
        names::resource("alternate_exchange", ae)?;
    }
    spec.validate(name)?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Exchange {
    pub name: String,
    #[serde(flatten)]
    pub spec: ExchangeSpec,
    /// Topology version at which this exchange was last changed.
    pub topology_version: i64,
    pub created_at: DateTime<Utc>,
}
