//! Push consumers over Server-Sent Events, as the seed's work queues use
//! them: two consumers share a queue round-robin; with prefetch 1 the fast
//! consumer does clearly more work than one that takes 300 ms per message
//! (fair dispatch); and a consumer whose connection drops while it holds
//! messages gets them redelivered to another, marked `redelivered`;
//! deleting the queue ends its consumers' streams; a stream and a pull
//! receive with one key are different consumers; a full window gets the
//! next message as soon as one ack frees room (the dispatcher's brief wait
//! for more room never stalls it); acking one message at a time (each ack
//! refilling the window in its own commit) keeps publish order and never
//! exceeds the prefetch.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use sluice_e2e::{Deployment, PushConsumer};

const WAIT: Duration = Duration::from_secs(10);

fn tasks(prefix: &str, n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| json!({"body": format!("{prefix}-{i}")}))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn push_consumers_share_work_fairly_and_survive_a_crash() -> anyhow::Result<()> {
    let sluice = Arc::new(Deployment::start().await?);
    let admin = &sluice.admin;
    for queue in ["tasks", "fair", "crash"] {
        sluice
            .declare(admin, &format!("/v1/queues/{queue}"), json!({}))
            .await?;
    }
    let app = sluice.key(admin, &["publish", "consume"]).await?;

    // Work queue: two consumers, ten tasks, five each (round-robin).
    let mut first = PushConsumer::connect(&sluice.data, &app, "tasks", "prefetch=10").await?;
    let mut second = PushConsumer::connect(&sluice.data, &app, "tasks", "prefetch=10").await?;
    assert_ne!(first.id, second.id, "one queue, two distinct consumers");
    sluice
        .publish_to_queue(&app, "tasks", tasks("task", 10))
        .await?;
    let mut got = [Vec::new(), Vec::new()];
    for (i, consumer) in [&mut first, &mut second].into_iter().enumerate() {
        while got[i].len() < 5 {
            let message = consumer
                .next_message(WAIT)
                .await?
                .expect("a round-robin share of the tasks");
            assert_eq!(message["redelivered"], false);
            sluice.ack(&app, "tasks", &message).await?;
            got[i].push(message["body"].as_str().unwrap_or_default().to_string());
        }
    }
    // Nobody got more than their share.
    for consumer in [&mut first, &mut second] {
        assert!(consumer.stays_quiet(Duration::from_millis(300)).await?);
    }
    let mut all: Vec<String> = got.concat();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 10, "every task exactly once: {got:?}");
    drop((first, second));

    // Fair dispatch: prefetch 1, one consumer 300 ms per message, one fast.
    const FAIR: usize = 16;
    let done = Arc::new(AtomicUsize::new(0));
    let slow = PushConsumer::connect(&sluice.data, &app, "fair", "prefetch=1").await?;
    let fast = PushConsumer::connect(&sluice.data, &app, "fair", "prefetch=1").await?;
    sluice
        .publish_to_queue(&app, "fair", tasks("job", FAIR))
        .await?;
    let work = |mut consumer: PushConsumer, pause: Duration| {
        let sluice = sluice.clone();
        let app = app.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut handled = 0usize;
            while done.load(Ordering::SeqCst) < FAIR {
                let Some(message) = consumer.next_message(Duration::from_millis(200)).await? else {
                    continue;
                };
                tokio::time::sleep(pause).await; // the work itself
                sluice.ack(&app, "fair", &message).await?;
                handled += 1;
                done.fetch_add(1, Ordering::SeqCst);
            }
            anyhow::Ok(handled)
        })
    };
    let slow = work(slow, Duration::from_millis(300));
    let fast = work(fast, Duration::ZERO);
    let (slow, fast) =
        tokio::time::timeout(Duration::from_secs(20), async { (slow.await, fast.await) }).await?;
    let (slow, fast) = (slow??, fast??);
    assert_eq!(slow + fast, FAIR);
    assert!(
        fast >= 3 * slow,
        "the fast consumer should do most work: fast {fast}, slow {slow}"
    );

    // A consumer crashes holding messages: they come back, redelivered.
    let mut doomed = PushConsumer::connect(&sluice.data, &app, "crash", "prefetch=5").await?;
    sluice
        .publish_to_queue(&app, "crash", tasks("held", 3))
        .await?;
    for _ in 0..3 {
        let message = doomed.next_message(WAIT).await?.expect("a held message");
        assert_eq!(message["redelivered"], false);
    }
    assert_eq!(sluice.stats(&app, "crash").await?["unacked"], 3);
    drop(doomed);
    let mut survivor = PushConsumer::connect(&sluice.data, &app, "crash", "prefetch=5").await?;
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let message = survivor
            .next_message(WAIT)
            .await?
            .expect("the crashed consumer's messages come back");
        assert_eq!(message["redelivered"], true, "{message}");
        assert_eq!(message["delivery_count"], 2, "{message}");
        sluice.ack(&app, "crash", &message).await?;
        bodies.push(message["body"].as_str().unwrap_or_default().to_string());
    }
    bodies.sort();
    assert_eq!(bodies, ["held-0", "held-1", "held-2"]);

    // Deleting the queue ends its consumers' streams.
    let (status, body) = sluice
        .api
        .call(
            reqwest::Method::DELETE,
            "/v1/queues/crash",
            Some(admin),
            None,
        )
        .await?;
    assert!(status.is_success(), "{status} {body}");
    // `until_end` fails when the stream is still open after the wait.
    let last = survivor.until_end(WAIT).await?;
    assert!(
        last.iter().all(|event| event.event != "message"),
        "no message after the delete: {last:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_stream_and_a_pull_receive_with_one_key_are_different_consumers()
-> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    sluice
        .declare(&sluice.admin, "/v1/queues/shared", json!({}))
        .await?;
    let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;
    let (_, me) = sluice
        .data
        .call(reqwest::Method::GET, "/v1/whoami", Some(&app), None)
        .await?;
    let key_id = me["key_id"].as_str().unwrap_or_default().to_string();

    // Two streams with one key and no `consumer=`: two consumers of their own.
    let mut pushed = PushConsumer::connect(&sluice.data, &app, "shared", "prefetch=1").await?;
    let other = PushConsumer::connect(&sluice.data, &app, "shared", "prefetch=1").await?;
    assert!(
        pushed.id.starts_with(&format!("push-{key_id}-")),
        "{}",
        pushed.id
    );
    assert_ne!(pushed.id, other.id);
    drop(other);

    sluice
        .publish_to_queue(&app, "shared", tasks("m", 2))
        .await?;
    let held_by_push = pushed.next_message(WAIT).await?.expect("one pushed");
    // The pull consumer (default id: the key id) takes the other one.
    let pulled = sluice.receive(&app, "shared", 1, 2_000).await?;
    assert_eq!(pulled.len(), 1);
    let stats = sluice.stats(&app, "shared").await?;
    assert_eq!(stats["consumers"][&key_id], 1, "{stats}");
    assert_eq!(stats["consumers"][&pushed.id], 1, "{stats}");

    // Closing the stream gives back what the stream held, not what the
    // pull consumer holds: its receipt still acks.
    drop(pushed);
    let returned = sluice_e2e::eventually(WAIT, || async {
        sluice
            .stats(&app, "shared")
            .await
            .is_ok_and(|stats| stats["ready"] == 1)
    })
    .await;
    assert!(returned, "the stream's message comes back");
    let stats = sluice.stats(&app, "shared").await?;
    assert_eq!(stats["unacked"], 1, "{stats}");
    sluice.ack(&app, "shared", &pulled[0]).await?;
    let again = sluice.receive(&app, "shared", 1, 2_000).await?;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["body"], held_by_push["body"]);
    assert_eq!(again[0]["redelivered"], true);
    Ok(())
}

/// A deployment with queue `queue`, an app key, one push consumer with
/// window `prefetch`, and `count` messages `<queue>-<i>` published after it
/// connected.
async fn one_consumer_of(
    queue: &str,
    prefetch: u32,
    count: usize,
) -> anyhow::Result<(Deployment, String, PushConsumer)> {
    let sluice = Deployment::start().await?;
    sluice
        .declare(&sluice.admin, &format!("/v1/queues/{queue}"), json!({}))
        .await?;
    let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;
    let consumer =
        PushConsumer::connect(&sluice.data, &app, queue, &format!("prefetch={prefetch}")).await?;
    sluice
        .publish_to_queue(&app, queue, tasks(queue, count))
        .await?;
    Ok((sluice, app, consumer))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_window_gets_the_next_message_after_one_ack() -> anyhow::Result<()> {
    let (sluice, app, mut consumer) = one_consumer_of("window", 8, 12).await?;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(
            consumer
                .next_message(WAIT)
                .await?
                .expect("a window's worth"),
        );
    }
    assert!(
        consumer.stays_quiet(Duration::from_millis(300)).await?,
        "no more than the prefetch unacked"
    );
    // One ack frees one slot, less than a quarter of the window: the
    // dispatcher waits a moment for more acks, then sends one anyway.
    for round in 0..2 {
        sluice.ack(&app, "window", &held.remove(0)).await?;
        let next = consumer
            .next_message(WAIT)
            .await?
            .unwrap_or_else(|| panic!("ack {round} freed a slot: the next message comes"));
        held.push(next);
        assert!(
            consumer.stays_quiet(Duration::from_millis(100)).await?,
            "one slot, one message"
        );
    }
    let stats = sluice.stats(&app, "window").await?;
    assert_eq!(stats["unacked"], 8, "{stats}");
    assert_eq!(stats["ready"], 2, "{stats}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn one_ack_at_a_time_gets_every_message_in_order_within_the_window() -> anyhow::Result<()> {
    let (sluice, app, mut consumer) = one_consumer_of("ordered", 3, 30).await?;
    // Each ack carries the consumer's next message in its own commit (the
    // refill): they still come in publish order, and never more than the
    // window.
    let mut held = std::collections::VecDeque::new();
    let mut bodies = Vec::new();
    while bodies.len() < 30 {
        let message = consumer
            .next_message(WAIT)
            .await?
            .unwrap_or_else(|| panic!("message {} never came", bodies.len()));
        bodies.push(message["body"].as_str().unwrap_or_default().to_string());
        held.push_back(message);
        // The broker's own count of this consumer's window: what we hold
        // unacked, plus any pushed but not read yet, never past the prefetch.
        let stats = sluice.stats(&app, "ordered").await?;
        let window = stats["consumers"][consumer.id.as_str()]
            .as_u64()
            .unwrap_or_else(|| panic!("no window for {} in {stats}", consumer.id));
        assert!(
            (held.len() as u64..=3).contains(&window),
            "holding {}, the broker counts {window} unacked (prefetch 3): {stats}",
            held.len()
        );
        if held.len() == 3 && bodies.len() % 10 == 0 {
            // A full window stays full until the next ack.
            assert!(
                consumer.stays_quiet(Duration::from_millis(100)).await?,
                "more than the prefetch unacked"
            );
        }
        if held.len() == 3 || bodies.len() == 30 {
            let oldest = held.pop_front().expect("a held message");
            sluice.ack(&app, "ordered", &oldest).await?;
        }
    }
    let expected: Vec<String> = (0..30).map(|i| format!("ordered-{i}")).collect();
    assert_eq!(bodies, expected);
    for message in held {
        sluice.ack(&app, "ordered", &message).await?;
    }
    let stats = sluice.stats(&app, "ordered").await?;
    assert_eq!(
        (stats["ready"].as_u64(), stats["unacked"].as_u64()),
        (Some(0), Some(0)),
        "{stats}"
    );
    Ok(())
}
