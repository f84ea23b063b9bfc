//! Waking idle queues: on each of a random few, one at a time, a first
//! publish with confirm (which includes whatever it costs to bring an idle
//! queue's group back), a second one right after (the same queue, awake),
//! then a receive of both and their ack. One at a time so the latencies
//! are a queue's own, not a queue behind other queues.

use std::time::Instant;

use serde_json::{Value, json};
use sluice_client::Client;

use super::probe;
use crate::report::Latencies;

/// Kept in the report at most.
const MAX_ERRORS: usize = 5;

pub struct Touched {
    pub requested: usize,
    /// Queues whose publishes were confirmed and came back.
    pub ok: usize,
    first_publish: Latencies,
    second_publish: Latencies,
    receive: Latencies,
    errors: Vec<String>,
    failed: usize,
}

impl Touched {
    pub fn complete(&self) -> bool {
        self.ok == self.requested
    }

    pub fn to_json(&self) -> Value {
        json!({
            "requested": self.requested,
            "ok": self.ok,
            "failed": self.failed,
            "first_publish_ms": self.first_publish.to_json(),
            "second_publish_ms": self.second_publish.to_json(),
            "receive_ms": self.receive.to_json(),
            "errors": self.errors,
        })
    }
}

/// Touches each of `queues` in turn; stops early at `deadline`.
pub async fn touch(client: &Client, queues: &[String], deadline: Instant) -> Touched {
    let mut touched = Touched {
        requested: queues.len(),
        ok: 0,
        first_publish: Latencies::new(),
        second_publish: Latencies::new(),
        receive: Latencies::new(),
        errors: Vec::new(),
        failed: 0,
    };
    for (index, queue) in queues.iter().enumerate() {
        if Instant::now() >= deadline {
            touched.errors.push("deadline reached".to_string());
            break;
        }
        let bodies = [
            format!("touch-{index}-first"),
            format!("touch-{index}-second"),
        ];
        let outcome = async {
            let first = probe::publish(client, queue, &bodies[0]).await?;
            let second = probe::publish(client, queue, &bodies[1]).await?;
            let expected = [bodies[0].as_str(), bodies[1].as_str()];
            let receive = probe::receive_and_ack(client, queue, &expected).await?;
            anyhow::Ok((first, second, receive))
        }
        .await;
        match outcome {
            Ok((first, second, receive)) => {
                touched.ok += 1;
                touched
                    .first_publish
                    .record_micros(first.as_micros() as u64);
                touched
                    .second_publish
                    .record_micros(second.as_micros() as u64);
                touched.receive.record_micros(receive.as_micros() as u64);
            }
            Err(error) => {
                touched.failed += 1;
                if touched.errors.len() < MAX_ERRORS {
                    touched.errors.push(format!("{error:#}"));
                }
            }
        }
    }
    touched
}
