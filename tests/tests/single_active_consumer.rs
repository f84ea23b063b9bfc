//! Single active consumer on a real broker: one consumer receives at a time,
//! in FIFO order, and when it goes away the next one takes over — a pull
//! consumer once it held nothing and did not receive for a lease (it has no
//! connection whose end the broker could see), a push consumer as soon as
//! its stream closes.

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::{Deployment, PushConsumer};

const WAIT: Duration = Duration::from_secs(10);

fn bodies(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"body": format!("{prefix}-{i}")}))
        .collect()
}

fn body(message: &Value) -> &str {
    message["body"].as_str().unwrap_or_default()
}

/// A pull receive as consumer `consumer`: the messages, or the problem's
/// `type` when the broker refuses (409 `not-active-consumer`).
async fn receive_as(
    sluice: &Deployment,
    key: &str,
    queue: &str,
    consumer: &str,
    max: u32,
) -> anyhow::Result<Result<Vec<Value>, String>> {
    let request = json!({"max_messages": max, "wait_ms": 200, "consumer": consumer});
    let (status, body) = sluice
        .data
        .call(
            Method::POST,
            &format!("/v1/queues/{queue}/receive"),
            Some(key),
            Some(request),
        )
        .await?;
    match status {
        StatusCode::OK => Ok(Ok(body["messages"].as_array().cloned().unwrap_or_default())),
        StatusCode::CONFLICT => Ok(Err(body["type"].as_str().unwrap_or_default().to_string())),
        _ => bail!("receive as {consumer}: {status} {body}"),
    }
}

/// Receives as `consumer` until it gets messages, retrying while another
/// consumer is the active one, for at most `WAIT`.
async fn receive_when_active(
    sluice: &Deployment,
    key: &str,
    queue: &str,
    consumer: &str,
) -> anyhow::Result<Vec<Value>> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(messages) = receive_as(sluice, key, queue, consumer, 10).await?
            && !messages.is_empty()
        {
            return Ok(messages);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("{consumer} never became the active consumer of {queue}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_next_consumer_takes_over_when_the_active_one_goes_away() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    let admin = &sluice.admin;
    let spec = json!({"single_active_consumer": true, "lease_ms": 1000});
    for queue in ["pulled", "pushed", "mixed"] {
        sluice
            .declare(admin, &format!("/v1/queues/{queue}"), spec.clone())
            .await?;
    }
    let app = sluice.key(admin, &["publish", "consume"]).await?;

    // Pull: "a" receives first and is the active consumer.
    sluice
        .publish_to_queue(&app, "pulled", bodies("m", 6))
        .await?;
    let first = receive_as(&sluice, &app, "pulled", "a", 2)
        .await?
        .map_err(anyhow::Error::msg)?;
    assert_eq!(first.iter().map(body).collect::<Vec<_>>(), ["m-0", "m-1"]);
    for message in &first {
        sluice.ack(&app, "pulled", message).await?;
    }
    let refused = receive_as(&sluice, &app, "pulled", "b", 10).await?;
    assert_eq!(
        refused,
        Err("https://sluice.dev/problems/not-active-consumer".to_string()),
        "b receives nothing while a is active"
    );
    // "a" takes one more and dies holding it.
    let held = receive_as(&sluice, &app, "pulled", "a", 1)
        .await?
        .map_err(anyhow::Error::msg)?;
    assert_eq!(held.iter().map(body).collect::<Vec<_>>(), ["m-2"]);
    let stats = sluice.stats(&app, "pulled").await?;
    assert_eq!(stats["active_consumer"], "a", "{stats}");
    // Once a's lease ran out "b" gets the rest, in order, m-2 redelivered.
    let rest = receive_when_active(&sluice, &app, "pulled", "b").await?;
    assert_eq!(
        rest.iter().map(body).collect::<Vec<_>>(),
        ["m-2", "m-3", "m-4", "m-5"]
    );
    assert_eq!(rest[0]["redelivered"], true, "{}", rest[0]);
    for message in &rest {
        sluice.ack(&app, "pulled", message).await?;
    }
    let stats = sluice.stats(&app, "pulled").await?;
    assert_eq!(stats["active_consumer"], "b", "{stats}");
    assert!(stats["consumers"].get("a").is_none(), "{stats}");

    // Push: the first stream is active, the second waits; closing the
    // first hands over what it held and the rest, in order.
    let mut active = PushConsumer::connect(&sluice.data, &app, "pushed", "prefetch=1").await?;
    let mut waiting = PushConsumer::connect(&sluice.data, &app, "pushed", "prefetch=10").await?;
    sluice
        .publish_to_queue(&app, "pushed", bodies("p", 4))
        .await?;
    let message = active.next_message(WAIT).await?.context("p-0 pushed")?;
    assert_eq!(body(&message), "p-0");
    sluice.ack(&app, "pushed", &message).await?;
    let message = active.next_message(WAIT).await?.context("p-1 pushed")?;
    assert_eq!(body(&message), "p-1");
    assert!(
        waiting.stays_quiet(Duration::from_millis(500)).await?,
        "the waiting consumer gets nothing while the first is active"
    );
    drop(active);
    let mut got = Vec::new();
    while got.len() < 3 {
        let message = waiting
            .next_message(WAIT)
            .await?
            .context("the waiting consumer takes over")?;
        sluice.ack(&app, "pushed", &message).await?;
        got.push(body(&message).to_string());
    }
    assert_eq!(got, ["p-1", "p-2", "p-3"]);

    // Mixed: an idle pull consumer is active; a push consumer that joined
    // after it gets the messages once the pull consumer was idle a lease.
    sluice
        .publish_to_queue(&app, "mixed", bodies("x", 3))
        .await?;
    let pulled = receive_as(&sluice, &app, "mixed", "puller", 1)
        .await?
        .map_err(anyhow::Error::msg)?;
    sluice.ack(&app, "mixed", &pulled[0]).await?;
    let mut pusher = PushConsumer::connect(&sluice.data, &app, "mixed", "prefetch=10").await?;
    let mut got = Vec::new();
    while got.len() < 2 {
        let message = pusher
            .next_message(WAIT)
            .await?
            .context("the push consumer takes over from the idle puller")?;
        sluice.ack(&app, "mixed", &message).await?;
        got.push(body(&message).to_string());
    }
    assert_eq!(got, ["x-1", "x-2"]);
    Ok(())
}

/// A broker that dies with an active push consumer leaves it registered in
/// the queue's log; the restarted broker unregisters it on opening the
/// queue, so the next consumer takes over (and gets what the dead one held)
/// at once, not after the lease — nor never, as the dead consumer would
/// otherwise stay the active one.
#[tokio::test(flavor = "multi_thread")]
async fn a_push_consumer_left_by_a_killed_broker_does_not_stay_active() -> anyhow::Result<()> {
    let mut sluice = Deployment::start().await?;
    sluice
        .declare(
            &sluice.admin,
            "/v1/queues/ledger",
            json!({"single_active_consumer": true, "lease_ms": 120000}),
        )
        .await?;
    let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;
    sluice
        .publish_to_queue(&app, "ledger", bodies("entry", 2))
        .await?;
    let mut push = PushConsumer::connect(&sluice.data, &app, "ledger", "prefetch=1").await?;
    let held = push.next_message(WAIT).await?.context("push got nothing")?;
    assert_eq!(body(&held), "entry-0");

    sluice.kill_and_restart_broker()?;
    drop(push);
    let deadline = tokio::time::Instant::now() + WAIT;
    let taken_over = loop {
        let answer = sluice
            .data
            .call(
                Method::POST,
                "/v1/queues/ledger/receive",
                Some(&app),
                Some(json!({"max_messages": 10, "wait_ms": 200, "consumer": "b"})),
            )
            .await;
        if let Ok((StatusCode::OK, ref answer)) = answer
            && let Some(messages) = answer["messages"].as_array()
            && !messages.is_empty()
        {
            break messages.clone();
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("b never took over from the dead push consumer: {answer:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body(&taken_over[0]), "entry-0", "{taken_over:?}");
    assert_eq!(taken_over[0]["redelivered"], true, "{taken_over:?}");
    assert_eq!(taken_over.len(), 2, "{taken_over:?}");
    Ok(())
}

/// An active pull consumer that keeps long-polling an empty queue is alive:
/// it keeps its turn through quiet periods longer than the lease, and a
/// waiting consumer does not take over.
#[tokio::test(flavor = "multi_thread")]
async fn an_active_puller_keeps_its_turn_while_it_polls_an_empty_queue() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    sluice
        .declare(
            &sluice.admin,
            "/v1/queues/ledger",
            json!({"single_active_consumer": true, "lease_ms": 1000}),
        )
        .await?;
    let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;
    sluice
        .publish_to_queue(&app, "ledger", bodies("early", 1))
        .await?;
    let first = receive_when_active(&sluice, &app, "ledger", "a").await?;
    sluice.ack(&app, "ledger", &first[0]).await?;
    // b gets in line while a is active (its empty receive says so).
    assert_eq!(
        receive_as(&sluice, &app, "ledger", "b", 1).await?,
        Err("https://sluice.dev/problems/not-active-consumer".to_string())
    );
    // Three leases of quiet, a polling all along.
    let quiet = tokio::time::Instant::now() + Duration::from_millis(3000);
    while tokio::time::Instant::now() < quiet {
        let polled = receive_as(&sluice, &app, "ledger", "a", 10).await?;
        assert_eq!(polled, Ok(Vec::new()), "a lost its turn while polling");
    }
    sluice
        .publish_to_queue(&app, "ledger", bodies("late", 2))
        .await?;
    assert_eq!(
        receive_as(&sluice, &app, "ledger", "b", 10).await?,
        Err("https://sluice.dev/problems/not-active-consumer".to_string()),
        "b took over from a polling consumer"
    );
    let late = receive_as(&sluice, &app, "ledger", "a", 10).await?;
    let late = late.map_err(|problem| anyhow::anyhow!("a refused: {problem}"))?;
    assert_eq!(
        late.iter().map(body).collect::<Vec<_>>(),
        ["late-0", "late-1"]
    );
    Ok(())
}
