//! Stream retention against a real control plane and broker: with a
//! `retention_bytes` budget, the partition leader's timer moves the earliest
//! offset past the oldest whole batches once the log outgrows the budget; a
//! fetch below it answers 416 with the new `earliest_offset`, fetching from
//! `earliest` reads the records still kept, and the segment files that held
//! the removed records are deleted from the broker's disk. With
//! `retention_ms`, records older than the window go the same way.

use std::path::Path;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::{Api, Deployment, int_field};

/// One record's value: under the free plan's 256 KiB message limit.
const VALUE_BYTES: usize = 200 * 1024;
/// Enough 200 KiB records to outgrow a 1 MiB budget.
const RECORDS: usize = 8;

/// The byte budget of the first test.
const BUDGET: usize = 1_048_576;
/// Retention keeps the newest whole batches (one record each here) whose
/// stored bytes fit the budget: five 200 KiB batches (1,024,000 bytes plus
/// their framing, well under the 24,576 bytes left) fit, six do not. So the
/// three oldest records go and the earliest offset becomes exactly 3.
const EXPECTED_EARLIEST: u64 = (RECORDS - BUDGET / VALUE_BYTES) as u64;

/// Small segments, so retention has whole segments to delete.
const BROKER_ENV: [(&str, &str); 1] = [("SLUICE_BROKER_STREAM_SEGMENT_BYTES", "65536")];

/// Bytes in the stream partitions' segment files under the broker's data dir.
fn segment_bytes(broker_dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for partition in std::fs::read_dir(broker_dir.join("streams"))? {
        let log = partition?.path().join("log");
        if !log.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(log)? {
            let file = file?;
            if file.path().extension().is_some_and(|e| e == "log") {
                total += file.metadata()?.len();
            }
        }
    }
    Ok(total)
}

/// Polls until the partitions' segment files hold at most `bytes`.
async fn segments_shrink_to(broker_dir: &Path, bytes: u64) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let on_disk = segment_bytes(broker_dir)?;
        if on_disk <= bytes {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "segments still hold {on_disk} bytes (want at most {bytes})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

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
async fn retention_bytes_moves_the_earliest_offset_and_deletes_segments() -> anyhow::Result<()> {
    let sluice = Deployment::start_with_broker_env(&BROKER_ENV).await?;
    let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;
    let data = &sluice.data;
    sluice
        .declare(
            &sluice.admin,
            "/v1/streams/logs",
            json!({"partitions": 1, "retention_bytes": BUDGET}),
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
    let broker_dir = sluice.dir.path().join("broker");
    let produced_bytes = segment_bytes(&broker_dir)?;
    assert!(produced_bytes >= (RECORDS * VALUE_BYTES) as u64);

    // Wait until a fetch at 0 falls below the earliest offset, and until
    // retention reached its point (a timer round may have run while the
    // records were still coming); it never goes past it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let problem = loop {
        let problem = below_earliest(data, &app, Duration::from_secs(30)).await?;
        let earliest = int_field(&problem, "earliest_offset") as u64;
        assert!(
            earliest <= EXPECTED_EARLIEST,
            "retention removed records that fit the budget: {problem}"
        );
        if earliest == EXPECTED_EARLIEST {
            break problem;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "earliest offset stuck below {EXPECTED_EARLIEST}: {problem}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(problem["high_watermark"], RECORDS as u64, "{problem}");
    let earliest = EXPECTED_EARLIEST;

    // Fetching from `earliest` reads the kept records, oldest first.
    let (status, fetched) = fetch(data, &app, "offset=earliest&max_records=1").await?;
    assert_eq!(status, StatusCode::OK, "{fetched}");
    let kept = int_field(&fetched, "earliest_offset") as u64;
    assert_eq!(kept, earliest, "{fetched}");
    let first = &fetched["records"][0];
    assert_eq!(first["offset"].as_u64(), Some(kept), "{fetched}");
    let value = first["value"].as_str().unwrap_or_default();
    assert_eq!(value, format!("{kept}").repeat(VALUE_BYTES));

    // The segments of the removed records are deleted; the budget's worth stays.
    segments_shrink_to(&broker_dir, BUDGET as u64 + VALUE_BYTES as u64 + 4096).await?;
    let (status, kept_after) = fetch(data, &app, "offset=earliest&max_records=100").await?;
    assert_eq!(status, StatusCode::OK, "{kept_after}");
    assert_eq!(
        kept_after["records"].as_array().map(Vec::len),
        Some(RECORDS - kept as usize),
        "{kept_after}"
    );
    Ok(())
}

/// The time window of the second test: long enough to read the records
/// after a timer round (every 2 s) but before they are due.
const RETENTION: Duration = Duration::from_millis(5_000);

#[tokio::test(flavor = "multi_thread")]
async fn retention_ms_removes_records_older_than_the_window() -> anyhow::Result<()> {
    let sluice = Deployment::start_with_broker_env(&BROKER_ENV).await?;
    let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;
    let data = &sluice.data;
    sluice
        .declare(
            &sluice.admin,
            "/v1/streams/logs",
            json!({"partitions": 1, "retention_ms": RETENTION.as_millis() as u64}),
        )
        .await?;
    // No record is older than this instant (the broker stamps them later).
    let first_produced = tokio::time::Instant::now();
    for n in 0..5 {
        let value = format!("{n}").repeat(40 * 1024);
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
    // Fresh records are readable...
    let (status, fresh) = fetch(data, &app, "offset=0&max_records=5").await?;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    assert_eq!(
        fresh["records"].as_array().map(Vec::len),
        Some(5),
        "{fresh}"
    );

    // ...and still there after a timer round (every 2 s) ran while none was
    // due yet: retention does not take records before their time.
    tokio::time::sleep_until(first_produced + Duration::from_millis(3_000)).await;
    let (status, kept) = fetch(data, &app, "offset=0&max_records=5").await?;
    let read_at = first_produced.elapsed();
    anyhow::ensure!(
        read_at < RETENTION,
        "the check came too late ({read_at:?}) to tell anything"
    );
    assert_eq!(status, StatusCode::OK, "{kept}");
    assert_eq!(kept["records"].as_array().map(Vec::len), Some(5), "{kept}");

    // ...and gone once older than the window: every one of them.
    let problem = below_earliest(data, &app, Duration::from_secs(30)).await?;
    let problem = if problem["earliest_offset"] == 5 {
        problem
    } else {
        tokio::time::sleep(Duration::from_secs(3)).await;
        fetch(data, &app, "offset=0").await?.1
    };
    assert_eq!(problem["earliest_offset"], 5, "{problem}");
    assert_eq!(problem["high_watermark"], 5, "{problem}");
    let broker_dir = sluice.dir.path().join("broker");
    segments_shrink_to(&broker_dir, 2 * 64 * 1024).await?;

    // The stream goes on at offset 5.
    let (status, produced) = data
        .call(
            Method::POST,
            "/v1/streams/logs/records",
            Some(&app),
            Some(json!({"records": [{"value": "after"}]})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{produced}");
    let (status, after) = fetch(data, &app, "offset=earliest").await?;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["records"][0]["offset"], 5, "{after}");
    assert_eq!(after["records"][0]["value"], "after", "{after}");
    Ok(())
}
