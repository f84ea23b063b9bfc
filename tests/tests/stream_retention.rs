//! Stream retention against a real control plane and broker: with a
//! `retention_bytes` budget, the partition leader's timer moves the earliest
//! offset past the oldest whole batches once the log outgrows the budget; a
//! fetch below it answers 416 with the new `earliest_offset`, and fetching
//! from `earliest` reads the records still kept.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::{Api, Deployment};

/// One record's value: under the free plan's 256 KiB message limit.
const VALUE_BYTES: usize = 200 * 1024;
/// Enough 200 KiB records to outgrow a 1 MiB budget.
const RECORDS: usize = 8;

async fn fetch(data: &Api, key: &str, query: &str) -> anyhow::Result<(StatusCode, Value)> {
    data.call(
        Method::GET,
        &format!("/v1/streams/logs/partitions/0/records?{query}"),
        Some(key),
        None,
    )
    .await
}

/// Polls a fetch at offset 0 until it answers 416; the problem it answered.
async fn below_earliest(data: &Api, key: &str, timeout: Duration) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (status, body) = fetch(data, key, "offset=0&max_records=1").await?;
        if status == StatusCode::RANGE_NOT_SATISFIABLE {
            return Ok(body);
        }
        anyhow::ensure!(status == StatusCode::OK, "fetch at 0: {status} {body}");
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "offset 0 is still readable after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_bytes_moves_the_earliest_offset() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;
    let data = &sluice.data;
    sluice
        .declare(
            &sluice.admin,
            "/v1/streams/logs",
            json!({"partitions": 1, "retention_bytes": 1_048_576}),
        )
        .await?;

    for n in 0..RECORDS {
        let value = format!("{n}").repeat(VALUE_BYTES);
        let (status, produced) = data
            .call(
                Method::POST,
                "/v1/streams/logs/records",
                Some(&app),
                Some(json!({"records": [{"value": value}]})),
            )
            .await?;
        assert_eq!(status, StatusCode::OK, "produce {n}: {produced}");
    }

    // Wait until a fetch at 0 falls below the earliest offset.
    let problem = below_earliest(data, &app, Duration::from_secs(30)).await?;
    let earliest = problem["earliest_offset"].as_u64().unwrap_or(0);
    assert!(earliest > 0, "{problem}");
    assert!(earliest < RECORDS as u64, "everything went: {problem}");
    assert_eq!(problem["high_watermark"], RECORDS as u64, "{problem}");

    // Fetching from `earliest` reads the kept records, oldest first.
    let (status, fetched) = fetch(data, &app, "offset=earliest&max_records=1").await?;
    assert_eq!(status, StatusCode::OK, "{fetched}");
    let kept = fetched["earliest_offset"].as_u64().unwrap_or(0);
    assert!(kept >= earliest, "{fetched}");
    let first = &fetched["records"][0];
    assert_eq!(first["offset"].as_u64(), Some(kept), "{fetched}");
    let value = first["value"].as_str().unwrap_or_default();
    assert_eq!(value, format!("{kept}").repeat(VALUE_BYTES));
    Ok(())
}
