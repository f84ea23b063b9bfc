//! The seed notes' queue features end to end: message groups keep each
//! order's INSERT/UPDATE/DELETE in order across four parallel push
//! consumers; a message whose TTL runs out reaches the dead-letter queue
//! with the reason and its queue; a re-published message id is recognised
//! as a duplicate within the dedup window.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sluice_e2e::{Deployment, PushConsumer};

const ORDERS: usize = 8;
const OPS: [&str; 3] = ["INSERT", "UPDATE", "DELETE"];

#[tokio::test(flavor = "multi_thread")]
async fn message_groups_ttl_and_dedup() -> anyhow::Result<()> {
    let sluice = Arc::new(Deployment::start().await?);
    let admin = &sluice.admin;
    sluice
        .declare(admin, "/v1/exchanges/expired-x", json!({"type": "fanout"}))
        .await?;
    for (queue, spec) in [
        ("order-events", json!({"message_groups": true})),
        ("expired", json!({})),
        (
            "short-lived",
            json!({"message_ttl_ms": 300, "dead_letter_exchange": "expired-x"}),
        ),
        ("payments", json!({"dedup_window_ms": 60000})),
    ] {
        sluice
            .declare(admin, &format!("/v1/queues/{queue}"), spec)
            .await?;
    }
    sluice.bind("expired-x", "expired", "").await?;
    let app = sluice.key(admin, &["publish", "consume"]).await?;

    // Message groups: one order's changes in order, orders in parallel.
    let mut consumers = Vec::new();
    for i in 0..4 {
        let consumer = PushConsumer::connect(
            &sluice.data,
            &app,
            "order-events",
            &format!("prefetch=2&consumer=worker-{i}"),
        )
        .await?;
        consumers.push(consumer);
    }
    // Each order's changes back to back, as a CDC feed writes them: without
    // groups, two consumers would hold one order's INSERT and UPDATE at once.
    let mut changes = Vec::new();
    for order in 0..ORDERS {
        for op in OPS {
            changes.push(json!({"body": op, "group": format!("order-{order}")}));
        }
    }
    sluice
        .publish_to_queue(&app, "order-events", changes)
        .await?;
    let seen: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    // Groups with a change being applied, and groups seen twice at once.
    let in_flight: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let overlaps: Arc<Mutex<Vec<String>>> = Arc::default();
    let total = ORDERS * OPS.len();
    let mut workers = Vec::new();
    for mut consumer in consumers {
        let (sluice, app, seen) = (sluice.clone(), app.clone(), seen.clone());
        let (in_flight, overlaps) = (in_flight.clone(), overlaps.clone());
        workers.push(tokio::spawn(async move {
            loop {
                if seen.lock().map(|s| s.len()).unwrap_or(total) >= total {
                    return anyhow::Ok(());
                }
                let Some(message) = consumer.next_message(Duration::from_millis(200)).await? else {
                    continue;
                };
                let group = message["group"].as_str().unwrap_or_default().to_string();
                let op = message["body"].as_str().unwrap_or_default().to_string();
                if let Ok(mut in_flight) = in_flight.lock()
                    && !in_flight.insert(group.clone())
                    && let Ok(mut overlaps) = overlaps.lock()
                {
                    overlaps.push(format!("{group} {op}"));
                }
                // Applying an INSERT takes longer than the rest: a later
                // change of the same order handed out in parallel would
                // overtake it.
                let work = if op == "INSERT" { 60 } else { 5 };
                tokio::time::sleep(Duration::from_millis(work)).await;
                if let Ok(mut seen) = seen.lock() {
                    seen.push((group.clone(), op, consumer.id.clone()));
                }
                // Out of the in-flight set before the ack: the queue hands
                // out the group's next change only once the ack is applied.
                if let Ok(mut in_flight) = in_flight.lock() {
                    in_flight.remove(&group);
                }
                sluice.ack(&app, "order-events", &message).await?;
            }
        }));
    }
    tokio::time::timeout(Duration::from_secs(20), async {
        for worker in workers {
            worker.await??;
        }
        anyhow::Ok(())
    })
    .await??;
    let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
    let mut per_order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut workers_used = BTreeSet::new();
    for (order, op, worker) in &seen {
        per_order.entry(order.clone()).or_default().push(op.clone());
        workers_used.insert(worker.clone());
    }
    let overlaps = overlaps.lock().map(|o| o.clone()).unwrap_or_default();
    assert!(
        overlaps.is_empty(),
        "one order held twice at once: {overlaps:?}"
    );
    assert_eq!(per_order.len(), ORDERS);
    for (order, ops) in &per_order {
        assert_eq!(ops, &OPS, "{order} applied out of order");
    }
    assert!(
        workers_used.len() >= 2,
        "orders are processed in parallel: {workers_used:?}"
    );

    // TTL: an expired message reaches the dead-letter queue.
    sluice
        .publish_to_queue(&app, "short-lived", vec![json!({"body": "stale quote"})])
        .await?;
    let mut dead: Vec<Value> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while dead.is_empty() && tokio::time::Instant::now() < deadline {
        dead = sluice.receive(&app, "expired", 1, 2000).await?;
    }
    let dead = dead.first().expect("the expired message is dead-lettered");
    assert_eq!(dead["body"], "stale quote");
    assert_eq!(dead["headers"]["x-death-reason"], "expired", "{dead}");
    assert_eq!(dead["headers"]["x-death-queue"], "short-lived", "{dead}");
    assert_eq!(sluice.stats(&app, "short-lived").await?["ready"], 0);

    // Dedup: the same message id twice within the window is stored once.
    let payment = json!({"body": "charge 10 EUR", "message_id": "pay-1"});
    let first = sluice
        .publish_to_queue(&app, "payments", vec![payment.clone()])
        .await?;
    assert_eq!(first["results"][0]["status"], "stored", "{first}");
    let again = sluice
        .publish_to_queue(&app, "payments", vec![payment])
        .await?;
    assert_eq!(again["results"][0]["status"], "duplicate", "{again}");
    let stored = sluice.receive(&app, "payments", 10, 0).await?;
    assert_eq!(stored.len(), 1, "{stored:?}");
    Ok(())
}
