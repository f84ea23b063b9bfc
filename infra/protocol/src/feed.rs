//! The topology feed (`GET /internal/v1/feed`): one consistent picture of
//! everything brokers need at a topology version — tenants and their quotas,
//! key verifiers, exchanges, queues, bindings and streams with their typed
//! settings and placements, and every registered broker.
//!
//! The control plane builds a [`FeedSnapshot`] from its rows and sends it;
//! a broker reads it with [`FeedSnapshot::from_json`]. Reading ignores
//! unknown fields (a newer control plane may add some, and settings it adds
//! first), but a field of the wrong type or an unknown value (an `overflow`
//! the broker does not know) makes the whole snapshot unreadable: applying
//! the rest with a setting guessed would serve a queue that is not the one
//! declared.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sluice_queue::QueueSettings;
use sluice_routing::{BindingSpec, ExchangeSpec};
use sluice_stream::StreamSettings;

use crate::placement::Placement;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeedSnapshot {
    /// Topology version this snapshot is consistent at.
    pub version: i64,
    pub tenants: Vec<FeedTenant>,
    /// Verifiers of every usable (not revoked) key; expiry is checked by the broker.
    pub api_keys: Vec<KeyVerifier>,
    pub exchanges: Vec<FeedExchange>,
    pub queues: Vec<FeedQueue>,
    pub bindings: Vec<FeedBinding>,
    pub streams: Vec<FeedStream>,
    /// Every registered broker, so a broker can forward to the one hosting a group.
    pub nodes: Vec<FeedNode>,
}

/// What the feed answers a broker that asks for changes (`changes=true`):
/// only what changed since its version when the control plane can tell
/// that, else everything. A declare then costs the brokers what it
/// changed, not the size of the whole topology.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FeedUpdate {
    /// Everything: the first answer, and whenever the changes cannot be
    /// told (too many, or of a kind only a whole snapshot carries: tenants,
    /// quotas, brokers and placements moving).
    Snapshot(FeedSnapshot),
    Changes(FeedChanges),
}

/// Everything that changed between two versions, as it is at the later one.
/// Applied to the topology at `since`, it gives the topology at `version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeedChanges {
    /// The version the changes apply to (the caller's `since`).
    pub since: i64,
    /// The version they bring the topology to.
    pub version: i64,
    /// Queues declared or changed after `since`, as they are now.
    pub queues: Vec<FeedQueue>,
    /// Queues deleted after `since`.
    pub queues_removed: Vec<FeedName>,
    /// Streams declared or changed after `since`, as they are now.
    pub streams: Vec<FeedStream>,
    /// Streams deleted after `since`.
    pub streams_removed: Vec<FeedName>,
    /// Keys created after `since` and still usable.
    pub api_keys: Vec<KeyVerifier>,
    /// Ids of keys revoked (or created and revoked) after `since`.
    pub api_keys_removed: Vec<String>,
    /// For each tenant whose exchanges or bindings changed (a queue or
    /// stream deleted takes its bindings with it): all of them, replacing
    /// what the broker had for that tenant.
    pub routing: Vec<TenantRouting>,
}

/// A tenant's resource by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeedName {
    pub tenant_id: i64,
    pub name: String,
}

/// Every exchange and binding of one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantRouting {
    pub tenant_id: i64,
    pub exchanges: Vec<FeedExchange>,
    pub bindings: Vec<FeedBinding>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeedNode {
    pub id: String,
    pub data_url: String,
    pub zone: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeedTenant {
    pub id: i64,
    pub name: String,
    /// `active` or `suspended` (a suspended tenant's keys are refused).
    pub status: String,
    pub quotas: Quotas,
}

impl FeedTenant {
    /// Whether the tenant's keys are refused.
    pub fn is_suspended(&self) -> bool {
        self.status == "suspended"
    }
}

/// The limits of one tenant. Counts are enforced by the control plane,
/// sizes and rates by the brokers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Quotas {
    pub max_queues: i64,
    pub max_exchanges: i64,
    pub max_bindings: i64,
    pub max_streams: i64,
    /// Sum of the partitions of all streams.
    pub max_partitions: i64,
    /// Active (not revoked) API keys.
    pub max_api_keys: i64,
    pub max_message_bytes: i64,
    pub publish_messages_per_second: i64,
    pub publish_bytes_per_second: i64,
    pub max_storage_bytes: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyVerifier {
    pub id: String,
    pub tenant_id: i64,
    pub scopes: Vec<String>,
    /// Hex SHA-256 of the key's secret.
    pub secret_sha256: String,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeedExchange {
    pub tenant_id: i64,
    pub name: String,
    pub spec: ExchangeSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeedQueue {
    pub tenant_id: i64,
    pub name: String,
    pub spec: QueueSettings,
    pub placement: Placement,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeedBinding {
    pub tenant_id: i64,
    pub id: String,
    pub spec: BindingSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeedStream {
    pub tenant_id: i64,
    pub name: String,
    pub spec: StreamSettings,
    /// One placement per partition, in partition order.
    pub partitions: Vec<Placement>,
}

/// A snapshot a broker cannot read: where in it, and why. The broker keeps
/// the topology it has and does not report `version` as applied, so the
/// control plane shows it as not converging (`GET /v1/topology/status`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("topology snapshot {} is unreadable at `{path}`: {reason}", version.map_or_else(|| "(version unknown)".to_string(), |v| format!("v{v}")))]
pub struct UnreadableSnapshot {
    /// The snapshot's version, when at least that much could be read.
    pub version: Option<i64>,
    /// JSON path of the value that did not fit, e.g. `queues[3].spec.overflow`.
    pub path: String,
    pub reason: String,
}

impl FeedSnapshot {
    /// Reads a snapshot as the control plane sent it (see the module docs
    /// for what is tolerated and what is not).
    pub fn from_json(bytes: &[u8]) -> Result<FeedSnapshot, UnreadableSnapshot> {
        read_strictly(bytes)
    }
}

impl FeedUpdate {
    /// Reads an update as the control plane sent it, as strictly as a snapshot.
    pub fn from_json(bytes: &[u8]) -> Result<FeedUpdate, UnreadableSnapshot> {
        read_strictly(bytes)
    }

    /// The version the update brings the topology to.
    pub fn version(&self) -> i64 {
        match self {
            FeedUpdate::Snapshot(snapshot) => snapshot.version,
            FeedUpdate::Changes(changes) => changes.version,
        }
    }
}

/// Reads `T`, naming the JSON path of the first value that does not fit.
fn read_strictly<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, UnreadableSnapshot> {
    /// Just the version (of a snapshot, or inside an update), so the error
    /// can say which one it was.
    #[derive(Deserialize)]
    struct VersionOnly {
        version: i64,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum UpdateVersionOnly {
        Snapshot(VersionOnly),
        Changes(VersionOnly),
    }
    let unreadable = |path: String, reason: String| UnreadableSnapshot {
        version: serde_json::from_slice::<VersionOnly>(bytes)
            .map(|v| v.version)
            .or_else(|_| {
                serde_json::from_slice::<UpdateVersionOnly>(bytes).map(|u| match u {
                    UpdateVersionOnly::Snapshot(v) | UpdateVersionOnly::Changes(v) => v.version,
                })
            })
            .ok(),
        path,
        reason,
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let read = serde_path_to_error::deserialize(&mut de)
        .map_err(|err| unreadable(err.path().to_string(), err.into_inner().to_string()))?;
    de.end()
        .map_err(|err| unreadable(".".to_string(), err.to_string()))?;
    Ok(read)
}

#[cfg(test)]
mod tests;
