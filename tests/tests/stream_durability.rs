//! Stream partitions survive `kill -9`: after a restart on the same data
//! directory, every produced record is fetched at its offset, new records
//! continue the offsets, and an idempotent producer's retry still gets its
//! original offsets (the producer state is rebuilt from the log). Also: a
//! record over the stream's `max_message_bytes` is refused with 413.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::Deployment;

#[tokio::test(flavor = "multi_thread")]
async fn partitions_survive_kill_9_and_keep_producer_state() -> anyhow::Result<()> {
    let mut sluice = Deployment::start().await?;
    let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;
    sluice
        .declare(
            &sluice.admin,
            "/v1/streams/ledger",
            json!({"partitions": 2, "max_message_bytes": 16}),
        )
        .await?;
    let path = "/v1/streams/ledger/records";
    for i in 0..5 {
        sluice
            .data
            .post_ok(
                &app,
                path,
                json!({"records": [{"value": format!("v{i}"), "partition": 0}]}),
            )
            .await?;
    }
    let batch = json!({"records": [{"value": "once", "partition": 1}],
                       "producer": {"id": 7, "epoch": 1, "sequence": 0}});
    let first = sluice.data.post_ok(&app, path, batch.clone()).await?;

    let (status, problem) = sluice
        .data
        .call(
            Method::POST,
            path,
            Some(&app),
            Some(json!({"records": [{"value": "seventeen bytes!!"}]})),
        )
        .await?;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{problem}");
    assert_eq!(problem["field"], "records[0].value");

    sluice.kill_and_restart_broker()?;

    let fetch = |partition: u32| {
        let data = &sluice.data;
        let app = &app;
        async move {
            let (status, body) = data
                .call(
                    Method::GET,
                    &format!("/v1/streams/ledger/partitions/{partition}/records?offset=earliest"),
                    Some(app),
                    None,
                )
                .await?;
            anyhow::ensure!(status == StatusCode::OK, "{status} {body}");
            anyhow::Ok(body)
        }
    };
    let fetched = fetch(0).await?;
    let values: Vec<&str> = fetched["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["v0", "v1", "v2", "v3", "v4"], "{fetched}");
    assert_eq!(fetched["high_watermark"], 5);

    let next = sluice
        .data
        .post_ok(
            &app,
            path,
            json!({"records": [{"value": "v5", "partition": 0}]}),
        )
        .await?;
    assert_eq!(next["records"][0]["offset"], 5);
    let retry = sluice.data.post_ok(&app, path, batch).await?;
    assert_eq!(retry["records"], first["records"]);
    assert_eq!(retry["duplicate"], Value::Bool(true));
    let fetched = fetch(1).await?;
    assert_eq!(fetched["records"].as_array().unwrap().len(), 1, "{fetched}");
    Ok(())
}
