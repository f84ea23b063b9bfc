//! The produce side: `producers × window` tasks each claim `--batch` record
//! ids at a time and `POST /v1/streams/{s}/records` them, which answers
//! after the durable commit with every record's partition and offset; the
//! answers go to the verifier, the request latencies to a histogram.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::{REQUEST_TIMEOUT, Run, payload};
use crate::report::Latencies;

#[derive(Serialize)]
struct ProduceRequest<'a> {
    records: Vec<OutgoingRecord<'a>>,
}

#[derive(Serialize)]
struct OutgoingRecord<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    value: &'a str,
}

#[derive(Deserialize)]
struct ProduceResponse {
    records: Vec<Produced>,
}

#[derive(Deserialize)]
struct Produced {
    partition: u32,
    offset: u64,
}

/// What the produce side did.
pub struct Produce {
    pub latencies: Latencies,
    pub acked: u64,
    pub failed: u64,
    pub requests: u64,
    /// Run start → last ack, in seconds.
    pub elapsed_s: f64,
}

#[derive(Default)]
struct Counters {
    next: AtomicU64,
    acked: AtomicU64,
    failed: AtomicU64,
    requests: AtomicU64,
    /// Microseconds since the run's start of the last ack.
    last_ack_micros: AtomicU64,
}

/// Sends one batch of ids `first..first + count`; their places on success.
async fn send(
    run: &Run,
    client: &reqwest::Client,
    url: &str,
    first: u64,
    count: u64,
    sent_micros: u64,
) -> anyhow::Result<Vec<Produced>> {
    let args = &run.args;
    let values: Vec<String> = (first..first + count)
        .map(|id| payload::value(&run.tag, id, sent_micros, args.size as usize))
        .collect();
    let keys: Vec<Option<String>> = (first..first + count)
        .map(|id| (args.keys > 0).then(|| format!("k{}", id % args.keys)))
        .collect();
    let request = ProduceRequest {
        records: values
            .iter()
            .zip(&keys)
            .map(|(value, key)| OutgoingRecord {
                key: key.as_deref(),
                value,
            })
            .collect(),
    };
    let response = client
        .post(url)
        .bearer_auth(&run.key)
        .timeout(REQUEST_TIMEOUT)
        .json(&request)
        .send()
        .await
        .context("produce")?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        bail!("produce: {status} {text}");
    }
    let answer: ProduceResponse = response.json().await.context("produce answer")?;
    if answer.records.len() as u64 != count {
        bail!(
            "produce: {} records sent, {} acked",
            count,
            answer.records.len()
        );
    }
    Ok(answer.records)
}

async fn produce_loop(
    run: Arc<Run>,
    client: reqwest::Client,
    counters: Arc<Counters>,
) -> Latencies {
    let args = &run.args;
    let url = format!("{}/records", run.stream_url);
    let mut latencies = Latencies::new();
    loop {
        let first = counters.next.fetch_add(args.batch, Ordering::Relaxed);
        if first >= args.records || Instant::now() >= run.produce_deadline {
            return latencies;
        }
        let count = args.batch.min(args.records - first);
        let sent = Instant::now();
        let sent_micros = run.micros(sent);
        let outcome = send(&run, &client, &url, first, count, sent_micros).await;
        let acked_at = Instant::now();
        counters.requests.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(places) => {
                latencies.record_micros(acked_at.duration_since(sent).as_micros() as u64);
                if let Ok(mut verifier) = run.verifier.lock() {
                    for (id, place) in (first..).zip(&places) {
                        verifier.acked(id, place.partition, place.offset);
                    }
                }
                counters.acked.fetch_add(count, Ordering::Relaxed);
                counters
                    .last_ack_micros
                    .fetch_max(run.micros(acked_at), Ordering::Relaxed);
            }
            Err(error) => {
                counters.failed.fetch_add(count, Ordering::Relaxed);
                run.error(format!("{error:#}"));
            }
        }
    }
}

/// Produces `--records` records (or until the deadline) and waits for every answer.
pub async fn run(run: Arc<Run>) -> anyhow::Result<Produce> {
    let counters = Arc::new(Counters::default());
    let mut tasks = Vec::new();
    for _ in 0..run.args.producers {
        let client = reqwest::Client::new();
        for _ in 0..run.args.window {
            tasks.push(tokio::spawn(produce_loop(
                run.clone(),
                client.clone(),
                counters.clone(),
            )));
        }
    }
    let mut latencies = Latencies::new();
    for task in tasks {
        latencies.merge(&task.await.context("a producer panicked")?);
    }
    Ok(Produce {
        latencies,
        acked: counters.acked.load(Ordering::Relaxed),
        failed: counters.failed.load(Ordering::Relaxed),
        requests: counters.requests.load(Ordering::Relaxed),
        elapsed_s: counters.last_ack_micros.load(Ordering::Relaxed) as f64 / 1e6,
    })
}
