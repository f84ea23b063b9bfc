//! The topology feed as a broker reads it (`GET /internal/v1/feed`, with the
//! node key of a deployment started here): every new topology version is
//! answered with a full snapshot of every tenant, so its size and the time
//! the control plane takes to make it grow with each queue, and are paid
//! again for every declare that a broker applies.

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
    match answer {
        Ok(answer) => json!({
            "bytes": answer.body.len(),
            "ms": round3(sent.elapsed().as_secs_f64() * 1000.0),
        }),
        Err(error) => json!({"error": error.to_string()}),
    }
}
