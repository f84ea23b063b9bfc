//! Any broker serves any stream partition: with two brokers, a stream's
//! partitions are spread over both; a produce through either broker writes
//! each partition's records on the broker hosting it (idempotence
//! included), and fetches are forwarded to the partition's broker; a
//! consumer group's describe (lag), seek (to a timestamp) and lag in
//! `/metrics` (on the broker coordinating the group) cover the partitions
//! on the other broker too.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::{Api, Deployment};

#[tokio::test(flavor = "multi_thread")]
async fn either_broker_produces_and_fetches_every_partition() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    let second = sluice.another_broker("n2")?;
    let via_n2 = Api::new(&second.url);
    let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;
    sluice
        .declare(
            &sluice.admin,
            "/v1/streams/clicks",
            json!({"partitions": 4}),
        )
        .await?;

    for (api, label) in [(&sluice.data, "n1"), (&via_n2, "n2")] {
        let records: Vec<Value> = (0..4)
            .map(|p| json!({"value": format!("{label}-{p}"), "partition": p, "headers": {"from": label}}))
            .collect();
        let answer = api
            .post_ok(
                &app,
                "/v1/streams/clicks/records",
                json!({ "records": records }),
            )
            .await?;
        for p in 0..4 {
            assert_eq!(answer["records"][p]["partition"], p as u64, "{answer}");
        }
    }
    for api in [&sluice.data, &via_n2] {
        for p in 0..4 {
            let (status, fetched) = api
                .call(
                    Method::GET,
                    &format!("/v1/streams/clicks/partitions/{p}/records?offset=earliest"),
                    Some(&app),
                    None,
                )
                .await?;
            assert_eq!(status, StatusCode::OK, "{fetched}");
            let values: Vec<&str> = fetched["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["value"].as_str().unwrap())
                .collect();
            assert_eq!(values, [format!("n1-{p}"), format!("n2-{p}")], "{fetched}");
            assert_eq!(fetched["records"][1]["headers"]["from"], "n2");
        }
    }

    // An idempotent producer through either broker, to every partition.
    for p in 0..4 {
        let batch = json!({"records": [{"value": "once", "partition": p}],
                           "producer": {"id": 100 + p, "epoch": 0, "sequence": 0}});
        let first = sluice
            .data
            .post_ok(&app, "/v1/streams/clicks/records", batch.clone())
            .await?;
        let retry = via_n2
            .post_ok(&app, "/v1/streams/clicks/records", batch)
            .await?;
        assert_eq!(retry["records"], first["records"]);
        assert_eq!(retry["duplicate"], true, "{retry}");
        let (status, gap) = via_n2
            .call(
                Method::POST,
                "/v1/streams/clicks/records",
                Some(&app),
                Some(json!({"records": [{"value": "gap", "partition": p}],
                            "producer": {"id": 100 + p, "epoch": 0, "sequence": 3}})),
            )
            .await?;
        assert_eq!(status, StatusCode::CONFLICT, "{gap}");
        assert_eq!(gap["expected_sequence"], 1, "{gap}");
    }

    // Consumer groups see every partition, wherever it is hosted.
    let before_seek = now_ms();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    for p in 0..4 {
        via_n2
            .post_ok(
                &app,
                "/v1/streams/clicks/records",
                json!({"records": [{"value": "late", "partition": p}]}),
            )
            .await?;
    }
    let joined = via_n2
        .post_ok(
            &app,
            "/v1/streams/clicks/groups/audit/join",
            json!({"client_id": "auditor"}),
        )
        .await?;
    let member = joined["member_id"].as_str().unwrap_or_default().to_string();
    via_n2
        .post_ok(
            &app,
            "/v1/streams/clicks/groups/audit/leave",
            json!({"member_id": member}),
        )
        .await?;
    for api in [&sluice.data, &via_n2] {
        let sought = api
            .post_ok(
                &app,
                "/v1/streams/clicks/groups/audit/seek",
                json!({"to": "timestamp", "timestamp_ms": before_seek}),
            )
            .await?;
        for p in 0..4 {
            // n1, n2, the idempotent record, then "late" at offset 3.
            assert_eq!(sought["offsets"][p.to_string()], 3, "{sought}");
        }
        let (status, described) = api
            .call(
                Method::GET,
                "/v1/streams/clicks/groups/audit",
                Some(&app),
                None,
            )
            .await?;
        assert_eq!(status, StatusCode::OK, "{described}");
        let partitions = described["partitions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(partitions.len(), 4, "{described}");
        for lag in partitions {
            assert_eq!(lag["high_watermark"], 4, "{lag}");
            assert_eq!(lag["committed"], 3, "{lag}");
            assert_eq!(lag["lag"], 1, "{lag}");
        }
    }

    // Prometheus: the coordinating broker reports every partition's lag,
    // the other broker's included; the other reports none.
    let mut reported: Vec<(String, u32, String)> = Vec::new();
    for (url, label) in [
        (&sluice.broker.metrics_url, "n1"),
        (&second.metrics_url, "n2"),
    ] {
        let metrics = reqwest::get(url.as_str()).await?.text().await?;
        for line in metrics.lines() {
            if !line.starts_with("sluice_stream_group_lag{")
                || !line.contains("group=\"audit\"")
                || !line.contains("stream=\"clicks\"")
            {
                continue;
            }
            let partition = line
                .split("partition=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .and_then(|p| p.parse().ok())
                .unwrap_or(u32::MAX);
            let value = line.rsplit(' ').next().unwrap_or_default().to_string();
            reported.push((label.to_string(), partition, value));
        }
    }
    reported.sort_by_key(|(_, p, _)| *p);
    let brokers: std::collections::BTreeSet<&str> =
        reported.iter().map(|(b, _, _)| b.as_str()).collect();
    assert_eq!(brokers.len(), 1, "one coordinator: {reported:?}");
    let lags: Vec<(u32, &str)> = reported.iter().map(|(_, p, v)| (*p, v.as_str())).collect();
    assert_eq!(
        lags,
        [(0, "1"), (1, "1"), (2, "1"), (3, "1")],
        "{reported:?}"
    );

    // Least loaded placement spread the partitions over both brokers (each
    // lists those it hosts, awake or asleep). Checked last: a scrape caches
    // the other broker's bounds for a few seconds.
    let mut placed = 0;
    for (broker, name) in [(&sluice.broker, "n1"), (&second, "n2")] {
        let hosted = broker
            .series_by("sluice_stream_partition_awake", "partition")
            .await?
            .len();
        assert!(hosted > 0 && hosted < 4, "{name} hosts {hosted} partitions");
        placed += hosted;
    }
    assert_eq!(placed, 4, "every partition is hosted once");
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
