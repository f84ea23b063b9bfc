//! Idle stream partitions sleep and wake like queues: with partitions put
//! to sleep after 300 ms of disuse, a partition that was produced to falls
//! asleep (`sluice_stream_partition_awake` 0) and still reports its offsets,
//! a fetch wakes only the partition it reads, every record comes back at
//! its offset, and after a graceful restart the sleeping partitions keep
//! what they hold and continue their offsets.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::{Deployment, eventually};

const HIBERNATE: [(&str, &str); 1] = [("SLUICE_BROKER_HIBERNATE_AFTER_MS", "300")];
const WAIT: Duration = Duration::from_secs(15);

async fn awake(sluice: &Deployment) -> anyhow::Result<BTreeMap<String, u64>> {
    sluice
        .broker
        .series_by("sluice_stream_partition_awake", "partition")
        .await
}

async fn both_asleep(sluice: &Deployment) -> bool {
    eventually(WAIT, || async {
        matches!(awake(sluice).await, Ok(a) if a.len() == 2 && a.values().all(|v| *v == 0))
    })
    .await
}

async fn produce(
    sluice: &Deployment,
    app: &str,
    partition: u32,
    value: &str,
) -> anyhow::Result<()> {
    let records = json!({"records": [{"value": value, "partition": partition}]});
    sluice
        .data
        .post_ok(app, "/v1/streams/ledger/records", records)
        .await?;
    Ok(())
}

async fn values(sluice: &Deployment, app: &str, partition: u32) -> anyhow::Result<Vec<Value>> {
    let path = format!("/v1/streams/ledger/partitions/{partition}/records?offset=earliest");
    let (status, body) = sluice
        .data
        .call(Method::GET, &path, Some(app), None)
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    Ok(body["records"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| json!([r["offset"], r["value"]]))
        .collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_partitions_sleep_report_offsets_and_wake_one_at_a_time() -> anyhow::Result<()> {
    let mut sluice = Deployment::start_with_broker_env(&HIBERNATE).await?;
    let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;
    sluice
        .declare(
            &sluice.admin,
            "/v1/streams/ledger",
            json!({"partitions": 2}),
        )
        .await?;
    for value in ["a", "b", "c"] {
        produce(&sluice, &app, 0, value).await?;
    }
    produce(&sluice, &app, 1, "x").await?;
    assert!(both_asleep(&sluice).await, "{:?}", awake(&sluice).await?);
    let ends = sluice
        .broker
        .series_by("sluice_stream_partition_end_offset", "partition")
        .await?;
    assert_eq!(
        (ends.get("0"), ends.get("1")),
        (Some(&3), Some(&1)),
        "asleep, they still report their offsets"
    );
    assert!(both_asleep(&sluice).await, "reporting woke nothing");

    // A fetch wakes the partition it reads, and only that one.
    assert_eq!(
        values(&sluice, &app, 0).await?,
        vec![json!([0, "a"]), json!([1, "b"]), json!([2, "c"])]
    );
    let states = awake(&sluice).await?;
    assert_eq!(states.get("1"), Some(&0), "{states:?}");

    // A graceful restart keeps what the sleeping partitions hold.
    assert!(both_asleep(&sluice).await);
    sluice
        .broker
        .process
        .stop_with_grace(Duration::from_secs(10))?;
    sluice.restart_broker_with(&HIBERNATE)?;
    assert!(both_asleep(&sluice).await, "asleep after the restart");
    produce(&sluice, &app, 1, "y").await?;
    assert_eq!(
        values(&sluice, &app, 1).await?,
        vec![json!([0, "x"]), json!([1, "y"])]
    );
    Ok(())
}
