//! Idle queues sleep and wake without anyone noticing: a broker told to put
//! queues to sleep after 300 ms of disuse closes them (`sluice_queue_awake`
//! 0), answers their stats without opening them, opens them again on the
//! next request with every message in order, wakes a sleeping queue when
//! one of its timers falls due (a TTL dead-letters with nobody touching the
//! queue), keeps a queue with a long-poll waiting awake, and — stopped
//! gracefully — starts again with its queues still asleep and intact. A
//! queue that cannot be opened is refused with a retry time, named in the
//! operator's health report, and retried, while the others keep serving.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use sluice_e2e::{Deployment, eventually};

const HIBERNATE: [(&str, &str); 1] = [("SLUICE_BROKER_HIBERNATE_AFTER_MS", "300")];
const WAIT: Duration = Duration::from_secs(15);

async fn awake(sluice: &Deployment) -> anyhow::Result<BTreeMap<String, u64>> {
    sluice.broker.queue_series("sluice_queue_awake").await
}

/// Waits until `queue` is asleep (0) or awake (1) on the broker.
async fn until(sluice: &Deployment, queue: &str, state: u64) -> bool {
    eventually(WAIT, || async {
        matches!(awake(sluice).await, Ok(a) if a.get(queue) == Some(&state))
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_queues_sleep_answer_stats_asleep_and_wake_on_use_and_on_timers() -> anyhow::Result<()>
{
    let mut sluice = Deployment::start_with_broker_env(&HIBERNATE).await?;
    let admin = sluice.admin.clone();
    sluice.declare(&admin, "/v1/queues/jobs", json!({})).await?;
    let app = sluice.key(&admin, &["publish", "consume"]).await?;

    // Declared but never used: hosted, asleep (never opened).
    assert_eq!(awake(&sluice).await?.get("jobs"), Some(&0));

    let bodies: Vec<_> = (0..3)
        .map(|i| json!({"body": format!("job {i}")}))
        .collect();
    sluice.publish_to_queue(&app, "jobs", bodies).await?;
    assert!(
        until(&sluice, "jobs", 0).await,
        "an idle queue falls asleep"
    );

    // Stats of a sleeping queue come from its summary; asking does not wake it.
    let stats = sluice.stats(&app, "jobs").await?;
    assert_eq!(stats["ready"], 3, "{stats}");
    assert_eq!(awake(&sluice).await?.get("jobs"), Some(&0), "stats woke it");

    // A receive wakes it, in order.
    let messages = sluice.receive(&app, "jobs", 10, 1000).await?;
    let got: Vec<_> = messages.iter().map(|m| m["body"].clone()).collect();
    assert_eq!(got, vec![json!("job 0"), json!("job 1"), json!("job 2")]);
    for message in &messages {
        sluice.ack(&app, "jobs", message).await?;
    }

    // A long-poll keeps its queue awake for as long as it waits.
    assert!(until(&sluice, "jobs", 0).await);
    let poll = {
        let client = sluice.data.as_key(&app);
        tokio::spawn(async move {
            client
                .receive("jobs", &sluice_client::data::ReceiveRequest::new(1, 8_000))
                .json_as::<serde_json::Value>()
                .await
        })
    };
    assert!(until(&sluice, "jobs", 1).await, "the long-poll woke it");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        awake(&sluice).await?.get("jobs"),
        Some(&1),
        "asleep under a waiting long-poll"
    );
    let polled = poll.await??;
    assert_eq!(polled["messages"], json!([]), "{polled}");

    // A sleeping queue's timer wakes it: a TTL dead-letters on its own.
    sluice
        .declare(&admin, "/v1/exchanges/expired", json!({"type": "fanout"}))
        .await?;
    sluice
        .declare(&admin, "/v1/queues/expired-dlq", json!({}))
        .await?;
    sluice.bind("expired", "expired-dlq", "").await?;
    sluice
        .declare(
            &admin,
            "/v1/queues/quotes",
            json!({"message_ttl_ms": 6_000, "dead_letter_exchange": "expired"}),
        )
        .await?;
    sluice
        .publish_to_queue(&app, "quotes", vec![json!({"body": "stale soon"})])
        .await?;
    assert!(until(&sluice, "quotes", 0).await, "quotes fell asleep");
    let asleep = sluice.stats(&app, "quotes").await?;
    assert_eq!(
        asleep["ready"], 1,
        "it fell asleep before its TTL ran out: {asleep}"
    );
    let dead_lettered = eventually(WAIT, || async {
        matches!(sluice.stats(&app, "expired-dlq").await, Ok(s) if s["ready"] == 1)
    })
    .await;
    assert!(dead_lettered, "the sleeping queue's TTL fired");
    let quotes = sluice.stats(&app, "quotes").await?;
    assert_eq!(quotes["ready"], 0, "{quotes}");

    // A graceful restart: queues asleep stay asleep, with what they hold.
    sluice
        .publish_to_queue(&app, "jobs", vec![json!({"body": "kept"})])
        .await?;
    assert!(until(&sluice, "jobs", 0).await);
    sluice
        .broker
        .process
        .stop_with_grace(Duration::from_secs(10))?;
    sluice.restart_broker_with(&HIBERNATE)?;
    let restarted = eventually(WAIT, || async {
        matches!(awake(&sluice).await, Ok(a) if a.get("jobs") == Some(&0))
    })
    .await;
    assert!(
        restarted,
        "jobs is hosted and still asleep after the restart"
    );
    assert_eq!(sluice.stats(&app, "jobs").await?["ready"], 1);
    let kept = sluice.receive(&app, "jobs", 10, 1000).await?;
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["body"], "kept");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queue_killed_awake_reopens_at_start_and_a_deleted_sleeping_queue_is_gone()
-> anyhow::Result<()> {
    let mut sluice = Deployment::start_with_broker_env(&HIBERNATE).await?;
    let admin = sluice.admin.clone();
    sluice.declare(&admin, "/v1/queues/busy", json!({})).await?;
    sluice.declare(&admin, "/v1/queues/idle", json!({})).await?;
    let app = sluice.key(&admin, &["publish", "consume"]).await?;
    sluice
        .publish_to_queue(&app, "idle", vec![json!({"body": "i"})])
        .await?;
    assert!(until(&sluice, "idle", 0).await);

    // From here on queues stay awake for a minute unless the broker stops.
    let awake_long = [("SLUICE_BROKER_HIBERNATE_AFTER_MS", "60000")];
    sluice
        .broker
        .process
        .stop_with_grace(Duration::from_secs(10))?;
    sluice.restart_broker_with(&awake_long)?;
    sluice
        .publish_to_queue(&app, "busy", vec![json!({"body": "b"})])
        .await?;
    assert_eq!(awake(&sluice).await?.get("busy"), Some(&1));
    // kill -9 with `busy` awake: it left no sleep record, so the broker
    // opens it at start; `idle` slept and stays asleep.
    let pid = sluice.broker.process.id().to_string();
    anyhow::ensure!(
        std::process::Command::new("kill")
            .args(["-9", &pid])
            .status()?
            .success(),
        "kill -9 {pid} failed"
    );
    while sluice.broker.process.try_wait()?.is_none() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sluice.restart_broker_with(&awake_long)?;
    let reopened = eventually(WAIT, || async {
        matches!(awake(&sluice).await, Ok(a) if a.get("busy") == Some(&1) && a.get("idle") == Some(&0))
    })
    .await;
    assert!(reopened, "{:?}", awake(&sluice).await?);
    assert_eq!(sluice.bodies(&app, "busy").await?, vec!["b".to_string()]);
    assert_eq!(sluice.stats(&app, "idle").await?["ready"], 1);

    // Deleting a sleeping queue deletes what it held.
    let (status, _) = sluice
        .api
        .call(
            reqwest::Method::DELETE,
            "/v1/queues/idle",
            Some(&admin),
            None,
        )
        .await?;
    assert!(status.is_success(), "{status}");
    let gone = eventually(WAIT, || async {
        matches!(awake(&sluice).await, Ok(a) if !a.contains_key("idle"))
    })
    .await;
    assert!(gone, "the deleted queue is no longer hosted");
    sluice.declare(&admin, "/v1/queues/idle", json!({})).await?;
    let fresh = eventually(WAIT, || async {
        matches!(sluice.stats(&app, "idle").await, Ok(s) if s["ready"] == 0)
    })
    .await;
    assert!(fresh, "a queue declared again starts empty");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queue_that_cannot_be_opened_is_refused_with_a_retry_time_and_shows_in_health()
-> anyhow::Result<()> {
    let sluice = Deployment::start_with_broker_env(&HIBERNATE).await?;
    let admin = sluice.admin.clone();
    sluice
        .declare(&admin, "/v1/queues/broken", json!({}))
        .await?;
    let app = sluice.key(&admin, &["publish", "consume"]).await?;
    sluice
        .publish_to_queue(&app, "broken", vec![json!({"body": "b"})])
        .await?;
    assert!(until(&sluice, "broken", 0).await, "it falls asleep");
    let health = sluice.broker.health().await?;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["queues"]["hosted"], 1, "{health}");

    // Its directory is the only one; a file in its place cannot be opened
    // (what running out of descriptors or a broken disk looks like to it).
    let groups = sluice.dir.path().join("broker").join("groups");
    let dirs: Vec<_> = std::fs::read_dir(&groups)?.collect::<Result<_, _>>()?;
    anyhow::ensure!(dirs.len() == 1, "one group directory: {dirs:?}");
    let broken = dirs[0].path();
    let group_id = dirs[0].file_name().to_string_lossy().to_string();
    std::fs::rename(&broken, groups.join("moved-away"))?;
    std::fs::write(&broken, b"not a directory")?;

    let refused = sluice
        .data
        .as_key(&app)
        .receive("broken", &sluice_client::data::ReceiveRequest::new(1, 0))
        .raw()
        .send()
        .await?;
    assert_eq!(refused.status, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let problem: serde_json::Value = refused.json()?;
    assert!(
        problem["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/capacity-exhausted")),
        "{problem}"
    );
    let retry_after = refused
        .header("retry-after")
        .and_then(|s| s.parse::<u64>().ok());
    assert!(
        retry_after.is_some_and(|s| s >= 1),
        "Retry-After {retry_after:?}"
    );

    let degraded = eventually(WAIT, || async {
        matches!(sluice.broker.health().await, Ok(h) if h["status"] == "degraded")
    })
    .await;
    let health = sluice.broker.health().await?;
    assert!(degraded, "{health}");
    assert_eq!(health["queues"]["failing"], 1, "{health}");
    assert_eq!(
        health["queues"]["failing_groups"][0]["group_id"],
        group_id.as_str()
    );

    // Everything else keeps serving.
    sluice.declare(&admin, "/v1/queues/fine", json!({})).await?;
    sluice
        .publish_to_queue(&app, "fine", vec![json!({"body": "f"})])
        .await?;
    assert_eq!(sluice.bodies(&app, "fine").await?, vec!["f".to_string()]);

    // Repaired, it opens again at its next retry, with what it held.
    std::fs::remove_file(&broken)?;
    std::fs::rename(groups.join("moved-away"), &broken)?;
    let back = eventually(WAIT, || async {
        matches!(sluice.bodies(&app, "broken").await, Ok(b) if b == vec!["b".to_string()])
    })
    .await;
    assert!(back, "the repaired queue serves what it held");
    let healed = eventually(WAIT, || async {
        matches!(sluice.broker.health().await, Ok(h) if h["status"] == "ok")
    })
    .await;
    assert!(healed, "{}", sluice.broker.health().await?);
    Ok(())
}
