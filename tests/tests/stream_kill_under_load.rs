//! `kill -9` of a broker in the middle of producing: producers keep sending
//! until the broker dies under them, and after the restart every record
//! whose produce was answered is at the partition and offset the answer
//! named, each partition's offsets run from 0 without a hole, and nothing
//! appears that was never sent. (The other kill -9 tests kill an idle
//! broker: this one kills it while writes are in flight.)

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::Deployment;

const PRODUCERS: usize = 4;
const PER_REQUEST: usize = 10;

/// Produces until the broker stops answering; answers what was acked:
/// (partition, offset) → value.
async fn produce_until_gone(
    broker: String,
    key: String,
    producer: usize,
) -> BTreeMap<(u64, u64), String> {
    let client = reqwest::Client::new();
    let mut acked = BTreeMap::new();
    for request in 0u64.. {
        let values: Vec<String> = (0..PER_REQUEST)
            .map(|i| format!("p{producer}-r{request}-{i}"))
            .collect();
        let records: Vec<Value> = values.iter().map(|v| json!({"value": v})).collect();
        let sent = client
            .post(format!("{broker}/v1/streams/busy/records"))
            .bearer_auth(&key)
            .json(&json!({ "records": records }))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        let Ok(response) = sent else { break };
        if response.status() != StatusCode::OK {
            break;
        }
        let Ok(answer) = response.json::<Value>().await else {
            break;
        };
        let placed = answer["records"].as_array().cloned().unwrap_or_default();
        assert_eq!(placed.len(), PER_REQUEST, "{answer}");
        for (value, record) in values.into_iter().zip(placed) {
            let partition = record["partition"].as_u64().expect("partition");
            let offset = record["offset"].as_u64().expect("offset");
            acked.insert((partition, offset), value);
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_killed_while_producing_keeps_every_acknowledged_record() -> anyhow::Result<()> {
    let mut sluice = Deployment::start().await?;
    let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;
    sluice
        .declare(&sluice.admin, "/v1/streams/busy", json!({"partitions": 2}))
        .await?;

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            tokio::spawn(produce_until_gone(
                sluice.broker.url.clone(),
                app.clone(),
                p,
            ))
        })
        .collect();
    // Let writes be in flight, then kill the broker under them.
    tokio::time::sleep(Duration::from_millis(800)).await;
    sluice.kill_and_restart_broker()?;
    let mut acked = BTreeMap::new();
    for producer in producers {
        acked.extend(producer.await?);
    }
    assert!(
        acked.len() >= PER_REQUEST,
        "some produces were acknowledged before the kill: {}",
        acked.len()
    );

    for partition in 0..2u64 {
        let mut stored: Vec<(u64, String)> = Vec::new();
        loop {
            let from = stored.len();
            let (status, body) = sluice
                .data
                .call(
                    Method::GET,
                    &format!("/v1/streams/busy/partitions/{partition}/records?offset={from}&max_records=1000"),
                    Some(&app),
                    None,
                )
                .await?;
            anyhow::ensure!(status == StatusCode::OK, "{status} {body}");
            let records = body["records"].as_array().cloned().unwrap_or_default();
            if records.is_empty() {
                break;
            }
            for record in records {
                let offset = record["offset"].as_u64().expect("offset");
                let value = record["value"].as_str().expect("value").to_string();
                stored.push((offset, value));
            }
        }
        // Offsets from 0, without a hole.
        for (i, (offset, _)) in stored.iter().enumerate() {
            assert_eq!(
                *offset, i as u64,
                "partition {partition}: a hole before offset {offset}"
            );
        }
        // Nothing that was never sent; no value twice.
        let mut seen = BTreeSet::new();
        for (offset, value) in &stored {
            assert!(
                value.starts_with('p') && value.contains("-r"),
                "partition {partition} offset {offset}: {value}"
            );
            assert!(seen.insert(value.clone()), "{value} stored twice");
        }
        // Every acknowledged record where its answer said.
        for ((p, offset), value) in acked.range((partition, 0)..(partition + 1, 0)) {
            let got = stored.get(*offset as usize).map(|(_, v)| v.as_str());
            assert_eq!(
                got,
                Some(value.as_str()),
                "acknowledged record at {p}/{offset} lost or moved"
            );
        }
    }
    Ok(())
}
