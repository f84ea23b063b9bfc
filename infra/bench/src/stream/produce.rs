//! The produce side: `producers × window` tasks each claim `--batch` record
//! ids at a time and `POST /v1/streams/{s}/records` them, which answers
//! after the durable commit with every record's partition and offset; the
//! answers go to the verifier, the request latencies to a histogram.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use std::borrow::Cow;

use anyhow::{Context, bail};
use sluice_client::Client;
use sluice_client::data::{ProduceRecord, ProduceRequest, ProducedRecord};

use super::{REQUEST_TIMEOUT, Run, payload};
use crate::report::Latencies;

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
    client: &Client,
    first: u64,
    count: u64,
    sent_micros: u64,
) -> anyhow::Result<Vec<ProducedRecord>> {
    let args = &run.args;
    let request = ProduceRequest {
        records: (first..first + count)
            .map(|id| ProduceRecord {
                key: (args.keys > 0).then(|| Cow::Owned(format!("k{}", id % args.keys))),
                ..ProduceRecord::text(payload::value(
                    &run.tag,
                    id,
                    sent_micros,
                    args.size as usize,
                ))
            })
            .collect(),
        producer: None,
    };
    let answer = client
        .produce(&run.stream, &request)
        .timeout(REQUEST_TIMEOUT)
        .await?;
    if answer.records.len() as u64 != count {
        bail!(
            "produce: {} records sent, {} acked",
            count,
            answer.records.len()
        );
    }
    Ok(answer.records)
}

async fn produce_loop(run: Arc<Run>, client: Client, counters: Arc<Counters>) -> Latencies {
    let args = &run.args;
    let mut latencies = Latencies::new();
    loop {
        let first = counters.next.fetch_add(args.batch, Ordering::Relaxed);
        if first >= args.records || Instant::now() >= run.produce_deadline {
            return latencies;
        }
        let count = args.batch.min(args.records - first);
        let sent = Instant::now();
        let sent_micros = run.micros(sent);
        let outcome = send(&run, &client, first, count, sent_micros).await;
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
        let client = run.client.with_own_pool();
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
