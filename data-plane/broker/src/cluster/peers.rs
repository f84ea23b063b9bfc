//! Calls to other brokers that carry no client's credential: storing a
//! message the broker republishes (a dead letter, a redrive) in a queue
//! hosted on another broker, and asking the bounds of a stream's partitions
//! hosted on another broker (consumer-group lag in `/metrics`, which no
//! client calls with a credential). They authenticate with the node key
//! every broker shares and land on `/internal/v1/...` (`frontend::http::internal`).
//!
//! Bounds are cached per (stream, broker) for [`BOUNDS_TTL`]: a Prometheus
//! scrape every few seconds then costs at most one call per broker and
//! stream in that time, and lag is as fresh as the TTL.
//!
//! Client requests are relayed with the client's own credential instead
//! (`relay`); a dead letter has no client. The payloads are
//! `sluice-protocol`'s (`Republish`, [`StreamBounds`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
pub use sluice_protocol::peer::StreamBounds;

use super::NodeKey;
use crate::control::TopologyHandle;

/// How long another broker's partition bounds are reused.
pub const BOUNDS_TTL: Duration = Duration::from_secs(5);

/// (tenant id, stream, broker URL) → when asked, what it answered.
type BoundsCache = HashMap<(i64, String, String), (Instant, Arc<StreamBounds>)>;

/// This broker's way to the others.
#[derive(Clone)]
pub struct Peers {
    node_id: String,
    node_key: NodeKey,
    client: reqwest::Client,
    topology: TopologyHandle,
    /// Locked only to look up or store an answer, never across a call.
    bounds: Arc<Mutex<BoundsCache>>,
}

impl Peers {
    pub fn new(node_id: String, node_key: NodeKey, topology: TopologyHandle) -> Self {
        Peers {
            node_id,
            node_key,
            client: super::http_client(),
            topology,
            bounds: Arc::default(),
        }
    }

    /// The HTTP client every call to another broker shares.
    pub fn http(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn node_key(&self) -> &NodeKey {
        &self.node_key
    }

    /// The bounds of the tenant's `stream` partitions hosted by the broker
    /// at `url`, at most [`BOUNDS_TTL`] old.
    pub async fn stream_bounds(
        &self,
        url: &str,
        tenant_id: i64,
        stream: &str,
    ) -> anyhow::Result<Arc<StreamBounds>> {
        let key = (tenant_id, stream.to_string(), url.to_string());
        let now = Instant::now();
        {
            let cache = self.bounds.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, bounds)) = cache.get(&key)
                && now.duration_since(*at) < BOUNDS_TTL
            {
                return Ok(bounds.clone());
            }
        }
        let answer = self
            .client
            .get(format!(
                "{url}/internal/v1/tenants/{tenant_id}/streams/{stream}/bounds"
            ))
            .bearer_auth(self.node_key.as_str())
            .send()
            .await?;
        let status = answer.status();
        if !status.is_success() {
            let text = answer.text().await.unwrap_or_default();
            anyhow::bail!("the broker at {url} answered {status}: {text}");
        }
        let bounds = Arc::new(answer.json::<StreamBounds>().await?);
        let mut cache = self.bounds.lock().unwrap_or_else(|e| e.into_inner());
        // Forget what expired long ago (streams deleted, brokers gone).
        cache.retain(|_, (at, _)| now.duration_since(*at) < 10 * BOUNDS_TTL);
        cache.insert(key, (now, bounds.clone()));
        Ok(bounds)
    }

    /// The URL of the broker hosting the tenant's `queue`, unless that is us
    /// (or nobody yet).
    fn host_of(&self, tenant_id: i64, queue: &str) -> Option<String> {
        super::placement::queue_host(&self.topology.current(), &self.node_id, tenant_id, queue)
    }

    /// Stores `message` in the tenant's `queue` on the broker hosting it.
    pub async fn republish(
        &self,
        tenant_id: i64,
        queue: &str,
        republish: &impl Serialize,
    ) -> anyhow::Result<()> {
        let url = self
            .host_of(tenant_id, queue)
            .ok_or_else(|| anyhow::anyhow!("queue `{queue}` has no broker to take it yet"))?;
        let answer = self
            .client
            .post(format!(
                "{url}/internal/v1/tenants/{tenant_id}/queues/{queue}/republish"
            ))
            .bearer_auth(self.node_key.as_str())
            .json(republish)
            .send()
            .await?;
        let status = answer.status();
        if !status.is_success() {
            let text = answer.text().await.unwrap_or_default();
            anyhow::bail!("the broker hosting `{queue}` answered {status}: {text}");
        }
        Ok(())
    }
}
