//! The topology feed as a broker reads it (`GET /internal/v1/feed`, with the
//! node key of a deployment started here): a full snapshot of every tenant,
//! whose size and making time grow with each queue (a broker reads one when
//! it starts), and the changes answer a broker following the feed reads for
//! the last declare (`changes=true`), which should not grow with them.

use std::time::Instant;

use serde_json::{Value, json};
use sluice_client::{Client, Method};

use crate::report::round3;

/// Fetches one full snapshot (`since=-1`, no wait): its size and how long
/// the answer took, or the error as text (a figure, not a reason to stop).
pub async fn snapshot(control_url: &str, node_key: &str) -> Value {
    let client = Client::new(control_url).with_bearer(node_key);
    let sent = Instant::now();
    let answer = client
        .request(Method::GET, "/internal/v1/feed?since=-1&wait_ms=0")
        .await
        .and_then(|answer| answer.error_unless_success().map(|()| answer));
    let answer = match answer {
        Ok(answer) => answer,
        Err(error) => return json!({"error": error.to_string()}),
    };
    let ms = round3(sent.elapsed().as_secs_f64() * 1000.0);
    let version = serde_json::from_slice::<Value>(&answer.body)
        .ok()
        .and_then(|snapshot| snapshot["version"].as_i64());
    let last_change = match version {
        Some(version) => changes_since(&client, version - 1).await,
        None => json!({"error": "the snapshot has no version"}),
    };
    json!({
        "bytes": answer.body.len(),
        "ms": ms,
        "last_change": last_change,
    })
}

/// The changes answer for a broker at `since`: its size and time, and
/// whether it was changes at all (a snapshot when they could not be told).
async fn changes_since(client: &Client, since: i64) -> Value {
    let sent = Instant::now();
    let path = format!("/internal/v1/feed?since={since}&wait_ms=0&changes=true");
    let answer = client
        .request(Method::GET, &path)
        .await
        .and_then(|answer| answer.error_unless_success().map(|()| answer));
    match answer {
        Ok(answer) => {
            let kind = serde_json::from_slice::<Value>(&answer.body)
                .ok()
                .and_then(|update| update.as_object()?.keys().next().cloned());
            json!({
                "kind": kind,
                "bytes": answer.body.len(),
                "ms": round3(sent.elapsed().as_secs_f64() * 1000.0),
            })
        }
        Err(error) => json!({"error": error.to_string()}),
    }
}
