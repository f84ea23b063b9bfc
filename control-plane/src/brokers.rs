//! Calls from the control plane to the brokers that host a queue: its live
//! depth, consumers and rates for `GET /v1/queues/{q}` and for the
//! `if_empty` / `if_unused` checks of a delete. The brokers hold the
//! messages; Postgres only the topology. The answer is `sluice-protocol`'s
//! [`QueueStats`], the type brokers answer with.

use std::time::Duration;

pub use sluice_protocol::peer::{QueueRates, QueueStats};
use sqlx::PgPool;

use crate::placement::LIVE_NODE_WINDOW_SECONDS;

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("no node key configured, brokers cannot be asked")]
    NoNodeKey,
    #[error("no live broker hosts the queue")]
    NoLiveReplica,
    #[error("broker {0} did not answer: {1}")]
    Broker(String, String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

#[derive(Clone)]
pub struct BrokerClient {
    http: reqwest::Client,
    node_key: Option<String>,
}

impl BrokerClient {
    pub fn new(node_key: Option<String>) -> Result<BrokerClient, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        Ok(BrokerClient { http, node_key })
    }

    /// `Ok(None)` when the queue has no replica at all (never hosted, so it
    /// holds nothing); an error when its replicas exist but none answers.
    pub async fn queue_stats(
        &self,
        pool: &PgPool,
        tenant_id: i64,
        queue: &str,
    ) -> Result<Option<QueueStats>, StatsError> {
        let placed: Option<(String, Vec<String>)> = sqlx::query_as(
            "SELECT p.group_id, p.replicas FROM placements p JOIN queues q ON q.id = p.queue_id
             WHERE q.tenant_id = $1 AND q.name = $2",
        )
        .bind(tenant_id)
        .bind(queue)
        .fetch_optional(pool)
        .await?;
        let Some((group_id, replicas)) = placed.filter(|(_, r)| !r.is_empty()) else {
            return Ok(None);
        };
        let node_key = self.node_key.as_ref().ok_or(StatsError::NoNodeKey)?;
        // Replicas in preference order; the first live one that answers wins.
        let live: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, data_url FROM nodes WHERE id = ANY($1)
               AND last_heartbeat_at > now() - make_interval(secs => $2)",
        )
        .bind(&replicas)
        .bind(LIVE_NODE_WINDOW_SECONDS)
        .fetch_all(pool)
        .await?;
        let mut last_error = StatsError::NoLiveReplica;
        for node in &replicas {
            let Some((_, url)) = live.iter().find(|(id, _)| id == node) else {
                continue;
            };
            let response = self
                .http
                .get(format!("{url}/internal/v1/groups/{group_id}/stats"))
                .bearer_auth(node_key)
                .send()
                .await;
            match response {
                Ok(r) if r.status().is_success() => match r.json::<QueueStats>().await {
                    Ok(stats) => return Ok(Some(stats)),
                    Err(e) => last_error = StatsError::Broker(node.clone(), e.to_string()),
                },
                Ok(r) => {
                    last_error = StatsError::Broker(node.clone(), format!("HTTP {}", r.status()))
                }
                Err(e) => last_error = StatsError::Broker(node.clone(), e.to_string()),
            }
        }
        Err(last_error)
    }
}
