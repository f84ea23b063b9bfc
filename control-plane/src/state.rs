//! What every request handler shares: the database pool, the JWT signer and
//! the configuration. Cheap to clone.

use std::sync::Arc;

use sqlx::PgPool;

use crate::auth::jwt::Signer;
use crate::brokers::BrokerClient;
use crate::config::Config;
use crate::feed::{AppliedWatch, VersionWatch};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub signer: Arc<Signer>,
    pub config: Arc<Config>,
    /// SHA-256 of the operator key, compared in constant time.
    pub operator_key_hash: Option<Vec<u8>>,
    /// SHA-256 of the brokers' node key.
    pub node_key_hash: Option<Vec<u8>>,
    /// The latest topology version, for feed long-polls.
    pub versions: VersionWatch,
    /// How far the live brokers have converged, for declares that wait on it.
    pub applied: AppliedWatch,
    /// Asks brokers for what only they know (queue depth).
    pub brokers: BrokerClient,
    /// Cancelled when the server starts shutting down, so long-polls answer
    /// at once instead of holding the graceful shutdown open.
    pub shutdown: tokio_util::sync::CancellationToken,
}
