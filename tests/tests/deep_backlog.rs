//! A backlog deeper than the broker keeps in memory (issue 21): with
//! `backlog_memory_pages` at 3 (12,288 messages), a queue of 24,000 spills
//! page files into its directory, survives a graceful restart (its snapshot
//! names the page files) and a `kill -9` (the log after the snapshot is
//! replayed and spills afresh), and drains in publish order with nothing
//! lost or repeated.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use sluice_client::data::AckRequest;
use sluice_e2e::Deployment;

const SMALL_BUDGET: [(&str, &str); 1] = [("SLUICE_BROKER_BACKLOG_MEMORY_PAGES", "3")];
/// Messages per publish request; a graceful stop snapshots a queue with 64
/// or more entries since its last snapshot, so the first part is 70 entries.
const BATCH: usize = 300;

fn body(i: usize) -> String {
    format!("m{i:06}")
}

/// Spilled page files under the broker's queue directories.
fn page_files(broker_dir: &Path) -> usize {
    let Ok(groups) = std::fs::read_dir(broker_dir.join("groups")) else {
        return 0;
    };
    groups
        .flatten()
        .filter_map(|group| std::fs::read_dir(group.path().join("backlog")).ok())
        .flat_map(|files| files.flatten())
        .filter(|file| file.path().extension().is_some_and(|e| e == "page"))
        .count()
}

async fn publish(
    sluice: &Deployment,
    app: &str,
    range: std::ops::Range<usize>,
) -> anyhow::Result<()> {
    let indexes: Vec<usize> = range.collect();
    for chunk in indexes.chunks(BATCH) {
        let messages = chunk.iter().map(|i| json!({"body": body(*i)})).collect();
        let answer = sluice.publish_to_queue(app, "deep", messages).await?;
        let stored = answer["results"]
            .as_array()
            .is_some_and(|r| r.len() == chunk.len() && r.iter().all(|r| r["status"] == "stored"));
        anyhow::ensure!(stored, "not all stored: {answer}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spilled_backlog_survives_restarts_and_drains_in_order() -> anyhow::Result<()> {
    let mut sluice = Deployment::start_with_broker_env(&SMALL_BUDGET).await?;
    let broker_dir = sluice.dir.path().join("broker");
    let admin = sluice.admin.clone();
    sluice.declare(&admin, "/v1/queues/deep", json!({})).await?;
    let app = sluice.key(&admin, &["publish", "consume"]).await?;

    publish(&sluice, &app, 0..70 * BATCH).await?;
    let spilled = page_files(&broker_dir);
    assert!(
        spilled >= 2,
        "21,000 messages spill beyond 3 pages ({spilled} files)"
    );

    // Graceful: the queue snapshots as it closes, naming its page files.
    sluice
        .broker
        .process
        .stop_with_grace(Duration::from_secs(30))?;
    assert!(page_files(&broker_dir) >= 2, "the snapshot keeps its pages");
    sluice.restart_broker_with(&SMALL_BUDGET)?;
    let stats = sluice.stats(&app, "deep").await?;
    assert_eq!(stats["ready"], 70 * BATCH, "{stats}");

    // More, then a crash: the entries after the snapshot are replayed.
    publish(&sluice, &app, 70 * BATCH..80 * BATCH).await?;
    let pid = sluice.broker.process.id().to_string();
    anyhow::ensure!(
        std::process::Command::new("kill")
            .args(["-9", &pid])
            .status()?
            .success()
    );
    while sluice.broker.process.try_wait()?.is_none() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sluice.restart_broker_with(&SMALL_BUDGET)?;

    let mut next = 0;
    loop {
        let messages = sluice.receive(&app, "deep", 100, 0).await?;
        if messages.is_empty() {
            break;
        }
        let mut receipts = Vec::new();
        for message in &messages {
            assert_eq!(message["body"], json!(body(next)), "out of order or lost");
            next += 1;
            receipts.push(message["receipt"].as_str().unwrap_or_default().to_string());
        }
        let answer = sluice
            .data
            .as_key(&app)
            .ack("deep", &AckRequest::new(&receipts[..]))
            .await?;
        assert!(answer.results.iter().all(|r| r.ok()), "{answer:?}");
    }
    assert_eq!(next, 80 * BATCH, "every message delivered once");
    let stats = sluice.stats(&app, "deep").await?;
    assert_eq!(stats["ready"], 0, "{stats}");
    assert_eq!(stats["unacked"], 0, "{stats}");
    Ok(())
}
