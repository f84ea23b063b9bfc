//! Publisher confirms survive `kill -9`: every message whose publish was
//! answered 200 before the broker was killed (SIGKILL, no shutdown) is
//! receivable, intact, after a restart on the same data directory — while
//! publishers were still sending when the kill came — exactly once (each id
//! is published once, so a second delivery of one is a message the restart
//! stored twice), and nothing is received that was never sent.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use sluice_e2e::{Api, Deployment, eventually};

const PUBLISHERS: usize = 4;

fn body_of(id: &str) -> String {
    format!("{id}:{}", id.repeat(8))
}

#[tokio::test(flavor = "multi_thread")]
async fn confirmed_publishes_survive_kill_9() -> anyhow::Result<()> {
    let mut sluice = Deployment::start().await?;
    sluice
        .declare(&sluice.admin, "/v1/queues/ledger", json!({}))
        .await?;
    let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;

    // Publishers send small batches until the broker dies under them.
    let confirmed = Arc::new(Mutex::new(BTreeSet::new()));
    let sent = Arc::new(Mutex::new(BTreeSet::new()));
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let data = Api::new(&sluice.data.base);
        let app = app.clone();
        let confirmed = confirmed.clone();
        let sent = sent.clone();
        publishers.push(tokio::spawn(async move {
            for batch in 0.. {
                let ids: Vec<String> = (0..5).map(|i| format!("p{p}b{batch}m{i}")).collect();
                if let Ok(mut sent) = sent.lock() {
                    sent.extend(ids.iter().cloned());
                }
                let messages: Vec<_> = ids
                    .iter()
                    .map(|id| json!({"body": body_of(id), "message_id": id}))
                    .collect();
                let answer = data
                    .call(
                        Method::POST,
                        "/v1/queues/ledger/messages",
                        Some(&app),
                        Some(json!({ "messages": messages })),
                    )
                    .await;
                match answer {
                    Ok((StatusCode::OK, body)) => {
                        let stored = body["results"]
                            .as_array()
                            .is_some_and(|r| r.iter().all(|r| r["status"] == "stored"));
                        assert!(stored, "{body}");
                        if let Ok(mut confirmed) = confirmed.lock() {
                            confirmed.extend(ids);
                        }
                    }
                    _ => return,
                }
            }
        }));
    }
    let enough = eventually(Duration::from_secs(20), || async {
        confirmed.lock().map(|c| c.len() >= 200).unwrap_or(false)
    })
    .await;
    assert!(enough, "publishers should confirm 200 messages");
    sluice.kill_and_restart_broker()?;
    for publisher in publishers {
        publisher.await?;
    }
    let confirmed = confirmed.lock().map(|c| c.clone()).unwrap_or_default();
    let sent = sent.lock().map(|s| s.clone()).unwrap_or_default();

    // Everything confirmed is there and intact (the batch each publisher had
    // in flight at the kill may be too), each once: every receive is acked
    // before the next, so an id received twice was stored twice.
    let mut received: BTreeMap<String, usize> = BTreeMap::new();
    loop {
        let (status, answer) = sluice
            .data
            .call(
                Method::POST,
                "/v1/queues/ledger/receive",
                Some(&app),
                Some(json!({"max_messages": 100})),
            )
            .await?;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let messages = answer["messages"].as_array().cloned().unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in &messages {
            let id = message["message_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            assert_eq!(
                message["body"].as_str(),
                Some(body_of(&id).as_str()),
                "corrupt body"
            );
            *received.entry(id).or_default() += 1;
        }
        let receipts: Vec<_> = messages.iter().map(|m| m["receipt"].clone()).collect();
        let (status, _) = sluice
            .data
            .call(
                Method::POST,
                "/v1/queues/ledger/ack",
                Some(&app),
                Some(json!({ "receipts": receipts })),
            )
            .await?;
        assert_eq!(status, StatusCode::OK);
    }
    let lost: Vec<&String> = confirmed
        .iter()
        .filter(|id| !received.contains_key(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} confirmed messages lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    let twice: Vec<(&String, &usize)> = received.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} messages were delivered more than once after the restart, e.g. {:?}",
        twice.len(),
        twice.first()
    );
    let never_sent: Vec<&String> = received.keys().filter(|id| !sent.contains(*id)).collect();
    assert!(
        never_sent.is_empty(),
        "received but never sent: {never_sent:?}"
    );
    Ok(())
}
