//! Stream produce → fetch against a real control plane and broker: keyed
//! records keep their partition, concurrent producers get dense offsets in
//! produce order, fetches start at earliest / latest / an offset / a
//! timestamp and long-poll until a produce wakes them, idempotent retries
//! get their original offsets, and the API's errors are RFC 7807 problems.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::{Api, Deployment};

async fn produce(data: &Api, key: &str, body: Value) -> anyhow::Result<(StatusCode, Value)> {
    data.call(
        Method::POST,
        "/v1/streams/events/records",
        Some(key),
        Some(body),
    )
    .await
}

async fn fetch(data: &Api, key: &str, partition: u32, query: &str) -> anyhow::Result<Value> {
    let (status, body) = data
        .call(
            Method::GET,
            &format!("/v1/streams/events/partitions/{partition}/records?{query}"),
            Some(key),
            None,
        )
        .await?;
    anyhow::ensure!(status == StatusCode::OK, "fetch {query}: {status} {body}");
    Ok(body)
}

#[tokio::test(flavor = "multi_thread")]
async fn produce_and_fetch_records() -> anyhow::Result<()> {
    let (sluice, app) = Deployment::with_stream("events", 3).await?;
    let data = &sluice.data;

    // Keys: the same key always lands on the same partition.
    let mut partition_of = std::collections::HashMap::new();
    for round in 0..3 {
        let records: Vec<Value> = (0..6)
            .map(|k| json!({"key": format!("user-{k}"), "value": format!("r{round}-{k}")}))
            .collect();
        let (status, produced) = produce(data, &app, json!({ "records": records })).await?;
        assert_eq!(status, StatusCode::OK, "{produced}");
        for k in 0..6 {
            let p = produced["records"][k]["partition"].as_u64().unwrap();
            assert!(p < 3);
            assert_eq!(*partition_of.entry(k).or_insert(p), p, "key user-{k} moved");
        }
    }
    let spread: std::collections::HashSet<_> = partition_of.values().collect();
    assert!(
        spread.len() > 1,
        "six keys all on one partition: {partition_of:?}"
    );
    // Fetch earliest on a key's partition: its records, in produce order.
    let p0 = partition_of[&0];
    let fetched = fetch(data, &app, p0 as u32, "offset=earliest").await?;
    let values: Vec<&str> = fetched["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["key"] == "user-0")
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["r0-0", "r1-0", "r2-0"], "{fetched}");
    let offsets: Vec<u64> = fetched["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, (0..offsets.len() as u64).collect::<Vec<_>>());
    assert_eq!(fetched["next_offset"], offsets.len() as u64);
    assert_eq!(fetched["high_watermark"], offsets.len() as u64);
    assert_eq!(fetched["earliest_offset"], 0);

    // Explicit offset, max_records, headers, base64 values, explicit
    // partition, producer timestamps (an hour ahead: above every earlier
    // record's, so a timestamp fetch finds them).
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64
        + 3_600_000;
    let (status, produced) = produce(
        data,
        &app,
        json!({"records": [
            {"value": "/wAB", "value_encoding": "base64", "partition": 2, "headers": {"h": "v"}, "timestamp": base},
            {"value": "text", "partition": 2, "timestamp": base + 1_000}
        ]}),
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{produced}");
    let first = produced["records"][0]["offset"].as_u64().unwrap();
    assert_eq!(
        produced["records"][1]["offset"].as_u64().unwrap(),
        first + 1
    );
    let fetched = fetch(data, &app, 2, &format!("offset={first}&max_records=1")).await?;
    assert_eq!(fetched["records"].as_array().unwrap().len(), 1, "{fetched}");
    assert_eq!(fetched["records"][0]["value"], "/wAB", "not UTF-8: base64");
    assert_eq!(fetched["records"][0]["value_encoding"], "base64");
    assert_eq!(fetched["records"][0]["headers"]["h"], "v");
    assert_eq!(fetched["records"][0]["timestamp"], base);
    assert_eq!(fetched["next_offset"], first + 1);

    // Timestamp: the first record at or after it.
    let fetched = fetch(data, &app, 2, &format!("timestamp={}", base + 500)).await?;
    assert_eq!(fetched["records"][0]["value"], "text", "{fetched}");
    assert_eq!(fetched["records"][0]["offset"], first + 1);
    let fetched = fetch(data, &app, 2, &format!("timestamp={}", base + 5_000)).await?;
    assert_eq!(fetched["records"].as_array().unwrap().len(), 0, "{fetched}");
    assert_eq!(fetched["next_offset"], first + 2);

    // Latest + long-poll woken by a produce.
    let latest = fetch(data, &app, 1, "offset=latest").await?;
    assert_eq!(latest["records"].as_array().unwrap().len(), 0);
    let from = latest["next_offset"].as_u64().unwrap();
    let waiter = {
        let data = Api::new(&sluice.broker.url);
        let app = app.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let body = fetch(&data, &app, 1, &format!("offset={from}&wait_ms=10000")).await;
            (started.elapsed(), body)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = produce(
        data,
        &app,
        json!({"records": [{"value": "wake", "partition": 1}]}),
    )
    .await?;
    assert_eq!(status, StatusCode::OK);
    let (elapsed, body) = waiter.await?;
    let body = body?;
    assert_eq!(body["records"][0]["value"], "wake", "{body}");
    assert!(elapsed < Duration::from_secs(5), "woken late: {elapsed:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_producers_idempotence_and_errors() -> anyhow::Result<()> {
    let (sluice, app) = Deployment::with_stream("events", 2).await?;
    let data = &sluice.data;

    // Four producers, 20 sequential batches each, to partition 0.
    let producers: Vec<_> = (0..4)
        .map(|producer| {
            let data = Api::new(&sluice.broker.url);
            let app = app.clone();
            tokio::spawn(async move {
                for i in 0..20 {
                    let (status, body) = produce(
                        &data,
                        &app,
                        json!({"records": [{"value": format!("p{producer}-{i}"), "partition": 0}]}),
                    )
                    .await?;
                    anyhow::ensure!(status == StatusCode::OK, "{body}");
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for p in producers {
        p.await??;
    }
    let fetched = fetch(data, &app, 0, "offset=earliest&max_records=1000").await?;
    let records = fetched["records"].as_array().unwrap();
    assert_eq!(records.len(), 80);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["offset"], i as u64, "offsets are dense");
    }
    for producer in 0..4 {
        let mine: Vec<String> = records
            .iter()
            .map(|r| r["value"].as_str().unwrap().to_string())
            .filter(|v| v.starts_with(&format!("p{producer}-")))
            .collect();
        let expected: Vec<String> = (0..20).map(|i| format!("p{producer}-{i}")).collect();
        assert_eq!(mine, expected, "producer {producer}'s order");
    }

    // Idempotent producer: a retry gets the original offsets; a gap is refused.
    let batch = json!({"records": [{"value": "a", "partition": 1}, {"value": "b", "partition": 1}],
                       "producer": {"id": 42, "epoch": 0, "sequence": 0}});
    let (status, first) = produce(data, &app, batch.clone()).await?;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, retry) = produce(data, &app, batch).await?;
    assert_eq!(status, StatusCode::OK, "{retry}");
    assert_eq!(retry["records"], first["records"]);
    assert_eq!(retry["duplicate"], true);
    let (status, gap) = produce(
        data,
        &app,
        json!({"records": [{"value": "c", "partition": 1}], "producer": {"id": 42, "epoch": 0, "sequence": 5}}),
    )
    .await?;
    assert_eq!(status, StatusCode::CONFLICT, "{gap}");
    assert_eq!(gap["expected_sequence"], 2);
    let fetched = fetch(data, &app, 1, "offset=earliest").await?;
    assert_eq!(fetched["records"].as_array().unwrap().len(), 2, "{fetched}");

    // Out of range: a problem carrying the bounds.
    let (status, problem) = data
        .call(
            Method::GET,
            "/v1/streams/events/partitions/1/records?offset=99",
            Some(&app),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE, "{problem}");
    assert_eq!(problem["earliest_offset"], 0);
    assert_eq!(problem["high_watermark"], 2);

    // A batch spread over both partitions carries a sequence per partition;
    // each partition deduplicates its part on its own. Here partition 0's
    // part was already written (say the first attempt timed out after it).
    let part = json!({"records": [{"value": "x0", "partition": 0}],
                      "producer": {"id": 43, "epoch": 0, "sequence": 0}});
    let (status, written) = produce(data, &app, part).await?;
    assert_eq!(status, StatusCode::OK, "{written}");
    let spread = json!({"records": [{"value": "x0", "partition": 0}, {"value": "x1", "partition": 1}],
                        "producer": {"id": 43, "epoch": 0, "sequences": {"0": 0, "1": 0}}});
    let (status, retried) = produce(data, &app, spread.clone()).await?;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(retried["duplicate_partitions"], json!([0]), "{retried}");
    assert_eq!(retried["records"][0], written["records"][0], "{retried}");
    assert_eq!(retried["records"][1]["offset"], 2, "{retried}");
    let (_, again) = produce(data, &app, spread).await?;
    assert_eq!(again["duplicate_partitions"], json!([0, 1]), "{again}");
    assert_eq!(again["records"], retried["records"]);
    let one_sequence = json!({"records": [{"value": "y", "partition": 0}, {"value": "z", "partition": 1}],
                              "producer": {"id": 43, "epoch": 0, "sequence": 1}});
    let (status, problem) = produce(data, &app, one_sequence).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["field"], "producer.sequence", "{problem}");
    let partition_one = fetch(data, &app, 1, "offset=2").await?;
    assert_eq!(
        partition_one["records"].as_array().map(Vec::len),
        Some(1),
        "{partition_one}"
    );

    // Bad input: 422 naming the field.
    let (status, problem) = produce(
        data,
        &app,
        json!({"records": [{"value": "x"}, {"value": "y", "partition": 7}]}),
    )
    .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["field"], "records[1].partition");
    let (status, problem) = produce(data, &app, json!({"records": [{"valu": "x"}]})).await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (status, problem) = data
        .call(
            Method::GET,
            "/v1/streams/events/partitions/0/records?max_records=0",
            Some(&app),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["field"], "max_records");

    // A publish-only key cannot fetch; another tenant sees 404.
    let publisher = sluice.key(&sluice.admin, &["publish"]).await?;
    let (status, _) = data
        .call(
            Method::GET,
            "/v1/streams/events/partitions/0/records",
            Some(&publisher),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let other_admin = sluice.tenant(&sluice.operator, "globex").await?;
    let other = sluice.key(&other_admin, &["publish", "consume"]).await?;
    let (status, _) = produce(data, &other, json!({"records": [{"value": "x"}]})).await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = data
        .call(
            Method::GET,
            "/v1/streams/events/partitions/0/records",
            Some(&other),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn producer_ids_are_allocated_by_the_broker() -> anyhow::Result<()> {
    let (sluice, app) = Deployment::with_stream("events", 2).await?;
    let data = &sluice.data;
    let allocate = |key: String| async move {
        data.call(
            Method::POST,
            "/v1/streams/events/producers",
            Some(&key),
            None,
        )
        .await
    };
    let (status, first) = allocate(app.clone()).await?;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, second) = allocate(app.clone()).await?;
    assert_eq!(status, StatusCode::OK, "{second}");
    let id = first["producer_id"].as_u64().expect("an id");
    assert!(id > 0 && i64::try_from(id).is_ok(), "{first}");
    assert_eq!(first["epoch"], 0);
    assert_ne!(first["producer_id"], second["producer_id"]);

    // Producing with the allocated id is idempotent.
    let batch = json!({"records": [{"value": "a", "partition": 1}],
                       "producer": {"id": id, "epoch": 0, "sequence": 0}});
    let (status, produced) = produce(data, &app, batch.clone()).await?;
    assert_eq!(status, StatusCode::OK, "{produced}");
    assert_eq!(produced["duplicate"], false);
    let (status, retry) = produce(data, &app, batch).await?;
    assert_eq!(status, StatusCode::OK, "{retry}");
    assert_eq!(retry["duplicate"], true);
    assert_eq!(retry["records"], produced["records"]);

    // A consume-only key may not allocate; another tenant's key sees 404.
    let consumer = sluice.key(&sluice.admin, &["consume"]).await?;
    let (status, problem) = allocate(consumer).await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let other_admin = sluice.tenant(&sluice.operator, "globex").await?;
    let other = sluice.key(&other_admin, &["publish", "consume"]).await?;
    let (status, problem) = allocate(other).await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    Ok(())
}

/// A `format=batches` fetch: (status, start offset, next offset).
async fn fetch_batches(
    url: &str,
    key: &str,
    partition: u32,
    query: &str,
) -> anyhow::Result<(StatusCode, u64, u64)> {
    let response = reqwest::Client::new()
        .get(format!(
            "{url}/v1/streams/events/partitions/{partition}/records?format=batches&{query}"
        ))
        .bearer_auth(key)
        .send()
        .await?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(u64::MAX)
    };
    Ok((
        response.status(),
        header("x-sluice-start-offset"),
        header("x-sluice-next-offset"),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn max_bytes_bounds_a_fetch_but_returns_at_least_one_record() -> anyhow::Result<()> {
    let (sluice, app) = Deployment::with_stream("events", 1).await?;
    let data = &sluice.data;
    // Ten records of 10 KB, one per request (so one per stored batch).
    for i in 0..10 {
        let value = format!("{i}{}", "x".repeat(10_000 - 1));
        let (status, body) = produce(data, &app, json!({"records": [{"value": value}]})).await?;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let everything = fetch(data, &app, 0, "offset=earliest").await?;
    assert_eq!(everything["records"].as_array().unwrap().len(), 10);

    for (max_bytes, most) in [(15_000, 9), (100, 1)] {
        let fetched = fetch(
            data,
            &app,
            0,
            &format!("offset=earliest&max_bytes={max_bytes}"),
        )
        .await?;
        let records = fetched["records"].as_array().unwrap();
        assert!(
            (1..=most).contains(&records.len()),
            "json, max_bytes={max_bytes}: {} records",
            records.len()
        );
        assert_eq!(records[0]["offset"], 0);
        assert_eq!(fetched["next_offset"], records.len() as u64);

        let (status, start, next) = fetch_batches(
            &sluice.broker.url,
            &app,
            0,
            &format!("offset=0&max_bytes={max_bytes}"),
        )
        .await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(start, 0);
        assert!(
            (1..=most as u64).contains(&next),
            "batches, max_bytes={max_bytes}: next offset {next}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_a_problem_naming_the_field() -> anyhow::Result<()> {
    let (sluice, app) = Deployment::with_stream("events", 1).await?;
    let data = &sluice.data;
    let fetch_path = "/v1/streams/events/partitions/0/records";
    let cases: Vec<(&str, Method, String, Option<Value>, &str)> = vec![
        (
            "wait_ms over its max",
            Method::GET,
            format!("{fetch_path}?wait_ms=20001"),
            None,
            "wait_ms",
        ),
        (
            "offset with timestamp",
            Method::GET,
            format!("{fetch_path}?offset=0&timestamp=1"),
            None,
            "timestamp",
        ),
        (
            "non-numeric offset",
            Method::GET,
            format!("{fetch_path}?offset=abc"),
            None,
            "offset",
        ),
        (
            "negative offset",
            Method::GET,
            format!("{fetch_path}?offset=-1"),
            None,
            "offset",
        ),
        (
            "invalid base64 value",
            Method::POST,
            "/v1/streams/events/records".into(),
            Some(json!({"records": [{"value": "not base64!", "value_encoding": "base64"}]})),
            "records[0].value",
        ),
        (
            "empty records",
            Method::POST,
            "/v1/streams/events/records".into(),
            Some(json!({"records": []})),
            "records",
        ),
        (
            "session_timeout_ms 0",
            Method::POST,
            "/v1/streams/events/groups/g/join".into(),
            Some(json!({"session_timeout_ms": 0})),
            "session_timeout_ms",
        ),
        (
            "session_timeout_ms over its max",
            Method::POST,
            "/v1/streams/events/groups/g/join".into(),
            Some(json!({"session_timeout_ms": 300_001})),
            "session_timeout_ms",
        ),
        (
            "bad seek target",
            Method::POST,
            "/v1/streams/events/groups/g/seek".into(),
            Some(json!({"to": "yesterday"})),
            "to",
        ),
        (
            "seek to a timestamp without one",
            Method::POST,
            "/v1/streams/events/groups/g/seek".into(),
            Some(json!({"to": "timestamp"})),
            "timestamp_ms",
        ),
    ];
    for (case, method, path, body, field) in cases {
        let (status, problem) = data.call(method, &path, Some(&app), body).await?;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{case}: {problem}"
        );
        assert_eq!(problem["field"], field, "{case}: {problem}");
        assert_eq!(
            problem["type"], "https://sluice.dev/problems/validation",
            "{case}: {problem}"
        );
    }
    Ok(())
}
