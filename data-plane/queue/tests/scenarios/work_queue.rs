//! Work queues: competing consumers, leases, receipts, consumer down,
//! single active consumer, peek, purge, stats and the release cursor.

use sluice_queue::{Command, NackAction, QueueError, Reply};

use crate::support::{Harness, c};

#[test]
fn two_consumers_share_the_queue_round_robin_in_fifo_order() {
    let mut q = Harness::new("{}");
    q.publish_keys(&["m1", "m2", "m3", "m4"]);
    let mut got = Vec::new();
    for consumer in ["a", "b", "a", "b"] {
        let deliveries = q.receive(consumer, 1);
        assert_eq!(deliveries.len(), 1);
        got.push((consumer, deliveries[0].meta.routing_key.clone()));
        assert!(!deliveries[0].redelivered);
        assert_eq!(deliveries[0].delivery_count, 1);
    }
    assert_eq!(
        got,
        vec![
            ("a", "m1".to_owned()),
            ("b", "m2".to_owned()),
            ("a", "m3".to_owned()),
            ("b", "m4".to_owned())
        ]
    );
    let stats = q.state.stats();
    assert_eq!((stats.ready, stats.unacked), (0, 4));
    assert_eq!(stats.consumers[&c("a")], 2);
    assert_eq!(stats.consumers[&c("b")], 2);
    assert!(q.receive("a", 1).is_empty());
}

#[test]
fn an_expired_lease_redelivers_with_delivery_count_two() {
    let mut q = Harness::new(r#"{"lease_ms": 5000}"#);
    q.publish_keys(&["job"]);
    let first = q.receive("a", 1).remove(0);
    assert_eq!(first.lease_deadline_ms, 6_000);
    q.tick(5_999);
    assert_eq!(q.state.stats().unacked, 1);
    q.tick(6_000);
    let stats = q.state.stats();
    assert_eq!((stats.ready, stats.unacked), (1, 0));
    let again = q.receive("b", 1).remove(0);
    assert_eq!(again.seq, first.seq);
    assert!(again.redelivered);
    assert_eq!(again.delivery_count, 2);
    assert_ne!(again.receipt, first.receipt);
}

#[test]
fn a_stale_receipt_cannot_ack_a_redelivered_message() {
    let mut q = Harness::new(r#"{"lease_ms": 1000}"#);
    q.publish_keys(&["job"]);
    let first = q.receive("a", 1).remove(0);
    // The lease is over at its deadline, even before anyone else got it.
    q.at(2_000);
    assert_eq!(
        q.ack(&[first.receipt]),
        vec![Err(QueueError::StaleReceipt(first.receipt))]
    );
    let second = q.receive("b", 1).remove(0);
    assert_eq!(
        q.ack(&[first.receipt]),
        vec![Err(QueueError::StaleReceipt(first.receipt))]
    );
    assert_eq!(
        q.nack(first.receipt, NackAction::RequeueNow),
        Err(QueueError::StaleReceipt(first.receipt))
    );
    assert_eq!(q.ack(&[second.receipt]), vec![Ok(second.seq)]);
    // Acked: gone, so the receipt is unknown now.
    assert_eq!(
        q.ack(&[second.receipt]),
        vec![Err(QueueError::UnknownReceipt(second.receipt))]
    );
    assert_eq!(q.state.stats(), Default::default());
}

#[test]
fn extending_a_lease_keeps_the_message_and_zero_gives_it_back() {
    let mut q = Harness::new(r#"{"lease_ms": 1000}"#);
    q.publish_keys(&["job"]);
    let d = q.receive("a", 1).remove(0);
    q.at(1_900);
    let reply = q.run(Command::ExtendLease {
        receipt: d.receipt,
        lease_ms: 5_000,
    });
    assert_eq!(
        reply,
        Ok(Reply::LeaseExtended {
            lease_deadline_ms: 6_900
        })
    );
    q.tick(6_000);
    assert_eq!(q.state.stats().unacked, 1);
    q.run(Command::ExtendLease {
        receipt: d.receipt,
        lease_ms: 0,
    })
    .unwrap();
    assert_eq!(q.state.stats().ready, 1);
    assert_eq!(
        q.ack(&[d.receipt]),
        vec![Err(QueueError::StaleReceipt(d.receipt))]
    );
}

#[test]
fn consumer_down_returns_its_messages_redelivered() {
    let mut q = Harness::new("{}");
    q.publish_keys(&["m1", "m2", "m3"]);
    let held = q.receive("a", 2);
    q.receive("b", 1);
    let reply = q.run(Command::ConsumerDown { consumer: c("a") });
    assert_eq!(reply, Ok(Reply::ConsumerDown { returned: 2 }));
    let again = q.receive("b", 5);
    assert_eq!(Harness::keys(&again), vec!["m1", "m2"]);
    assert!(again.iter().all(|d| d.redelivered && d.delivery_count == 2));
    assert_eq!(
        q.ack(&[held[0].receipt]),
        vec![Err(QueueError::StaleReceipt(held[0].receipt))]
    );
}

#[test]
fn single_active_consumer_fails_over_to_the_next_registered() {
    let mut q = Harness::new(r#"{"single_active_consumer": true}"#);
    assert_eq!(
        q.run(Command::ConsumerUp {
            consumer: c("first")
        }),
        Ok(Reply::ConsumerUp { active: true })
    );
    assert_eq!(
        q.run(Command::ConsumerUp {
            consumer: c("second")
        }),
        Ok(Reply::ConsumerUp { active: false })
    );
    q.publish_keys(&["m1", "m2", "m3"]);
    assert!(matches!(
        q.try_receive("second", 1),
        Err(QueueError::NotActiveConsumer { active, .. }) if active == c("first")
    ));
    let held = q.receive("first", 1);
    assert_eq!(Harness::keys(&held), vec!["m1"]);
    q.run(Command::ConsumerDown {
        consumer: c("first"),
    })
    .unwrap();
    assert_eq!(q.state.active_consumer(), Some(&c("second")));
    // m1 came back to the head: order is kept across the failover.
    let next = q.receive("second", 3);
    assert_eq!(Harness::keys(&next), vec!["m1", "m2", "m3"]);
    assert!(next[0].redelivered);
    // A consumer that only receives registers and waits its turn.
    assert!(q.try_receive("third", 1).is_err());
    q.run(Command::ConsumerDown {
        consumer: c("second"),
    })
    .unwrap();
    assert_eq!(Harness::keys(&q.receive("third", 1)), vec!["m1"]);
}

#[test]
fn an_idle_active_pull_consumer_gives_way_after_a_lease() {
    let mut q = Harness::new(r#"{"single_active_consumer": true, "lease_ms": 5000}"#);
    q.publish_keys(&["m1", "m2", "m3", "m4"]);
    // t = 1000: "a" pulls first and becomes the active consumer.
    let first = q.receive("a", 2);
    assert_eq!(Harness::keys(&first), vec!["m1", "m2"]);
    assert!(matches!(
        q.try_receive("b", 1),
        Err(QueueError::NotActiveConsumer { active, .. }) if active == c("a")
    ));
    let receipts: Vec<_> = first.iter().map(|d| d.receipt).collect();
    q.at(2_000).ack(&receipts);
    // Holding nothing, "a" still counts as alive until a lease passed
    // since its last receive...
    q.tick(5_999);
    assert_eq!(q.state.active_consumer(), Some(&c("a")));
    assert_eq!(q.state.next_timer_ms(), Some(6_000));
    // ...then the timer detaches it (and "b", idle as long) and the next
    // consumer to receive is the active one, in FIFO order.
    q.tick(6_000);
    assert_eq!(q.state.active_consumer(), None);
    assert!(!q.state.stats().consumers.contains_key(&c("a")));
    q.at(6_100);
    assert_eq!(Harness::keys(&q.receive("b", 5)), vec!["m3", "m4"]);
    assert_eq!(q.state.active_consumer(), Some(&c("b")));
    // "a" comes back: it waits its turn behind "b" now.
    assert!(q.try_receive("a", 1).is_err());
}

#[test]
fn an_active_pull_consumer_holding_a_lease_is_not_detached() {
    let mut q = Harness::new(r#"{"single_active_consumer": true, "lease_ms": 5000}"#);
    q.publish_keys(&["m1", "m2"]);
    // A lease longer than the queue's: "a" is working on m1 for a while.
    let held = q
        .run(Command::Receive {
            consumer: c("a"),
            max_messages: 1,
            lease_ms: Some(20_000),
        })
        .unwrap();
    let Reply::Received { deliveries } = held else {
        panic!("receive: {held:?}")
    };
    assert!(q.try_receive("b", 1).is_err());
    q.tick(15_000);
    assert_eq!(q.state.active_consumer(), Some(&c("a")));
    assert!(q.try_receive("b", 1).is_err(), "a holds m1: still active");
    // Its work done in time: the ack settles, and only then does idleness count.
    assert_eq!(q.at(16_000).ack(&[deliveries[0].receipt]), vec![Ok(1)]);
    q.tick(16_001);
    // "a" was idle since t = 1000; "b", which asked at t = 15000, is next.
    assert_eq!(q.state.active_consumer(), Some(&c("b")));
    assert_eq!(Harness::keys(&q.at(16_002).receive("b", 5)), vec!["m2"]);
}

#[test]
fn an_active_pull_consumer_stays_until_its_lease_runs_out() {
    let mut q = Harness::new(r#"{"single_active_consumer": true, "lease_ms": 5000}"#);
    q.publish_keys(&["m1", "m2"]);
    assert_eq!(Harness::keys(&q.receive("a", 1)), vec!["m1"]);
    // "a" dies holding m1: it stays the active consumer for the lease, then
    // m1 comes back and "a", idle as long, is detached in the same pass.
    q.tick(5_999);
    assert_eq!(q.state.active_consumer(), Some(&c("a")));
    q.tick(6_000);
    assert_eq!(q.state.active_consumer(), None);
    let next = q.at(6_001).receive("b", 5);
    assert_eq!(Harness::keys(&next), vec!["m1", "m2"]);
    assert!(next[0].redelivered);
}

#[test]
fn a_registered_consumer_is_never_detached_for_being_idle() {
    let mut q = Harness::new(r#"{"single_active_consumer": true, "lease_ms": 1000}"#);
    q.run(Command::ConsumerUp {
        consumer: c("push"),
    })
    .unwrap();
    q.publish_keys(&["m1"]);
    // A push consumer receives too (its dispatcher proposes `Receive`).
    let held = q.receive("push", 1);
    q.ack(&[held[0].receipt]);
    q.tick(100_000);
    assert_eq!(q.state.active_consumer(), Some(&c("push")));
    assert_eq!(q.state.next_timer_ms(), None);
    // A pull consumer that later registers is kept from then on.
    assert!(q.try_receive("pull", 1).is_err(), "not the active one");
    q.run(Command::ConsumerUp {
        consumer: c("pull"),
    })
    .unwrap();
    q.tick(200_000);
    assert!(q.state.stats().consumers.contains_key(&c("pull")));
}

#[test]
fn peek_shows_ready_messages_without_consuming_and_purge_drops_them() {
    let mut q = Harness::new("{}");
    q.publish_keys(&["m1", "m2", "m3", "m4"]);
    let held = q.receive("a", 1);
    let peeked: Vec<String> = q.peek(2).into_iter().map(|m| m.meta.routing_key).collect();
    assert_eq!(peeked, vec!["m2", "m3"]);
    assert_eq!(q.state.stats().ready, 3);
    assert_eq!(q.state.stats().ready_bytes, 30);
    assert_eq!(q.run(Command::Purge), Ok(Reply::Purged { count: 3 }));
    let stats = q.state.stats();
    assert_eq!((stats.ready, stats.unacked, stats.ready_bytes), (0, 1, 0));
    assert!(q.dead.is_empty(), "purge dead-letters nothing");
    assert_eq!(q.ack(&[held[0].receipt]), vec![Ok(held[0].seq)]);
}

#[test]
fn the_release_cursor_follows_the_oldest_live_body() {
    let mut q = Harness::new("{}");
    assert_eq!(q.state.release_cursor(), 0);
    q.publish_keys(&["m1"]); // log index 1
    q.publish_keys(&["m2"]); // log index 2
    assert_eq!(q.state.release_cursor(), 1);
    let first = q.receive("a", 1).remove(0); // unacked still pins index 1
    assert_eq!(q.state.release_cursor(), 1);
    q.ack(&[first.receipt]);
    assert_eq!(q.state.release_cursor(), 2);
    let second = q.receive("a", 1).remove(0);
    q.ack(&[second.receipt]);
    assert_eq!(q.state.release_cursor(), q.state.applied_index());
}

#[test]
fn commands_below_the_applied_index_are_refused() {
    let mut q = Harness::new("{}");
    q.publish_keys(&["m1"]);
    let applied = q
        .state
        .apply(0, sluice_queue::TimedCommand::new(5_000, Command::Tick));
    assert_eq!(
        applied.result,
        Err(QueueError::LogIndexRegressed { applied: 1, got: 0 })
    );
}

#[test]
fn stats_count_the_bytes_of_every_live_message() {
    let mut q = Harness::new("{}");
    q.publish_keys(&["m1", "m2", "m3"]); // 10 bytes each
    assert_eq!(
        (q.state.stats().bytes, q.state.stats().ready_bytes),
        (30, 30)
    );
    let leased = q.receive("a", 2);
    assert_eq!(
        (q.state.stats().bytes, q.state.stats().ready_bytes),
        (30, 10)
    );
    q.ack(&[leased[0].receipt]);
    assert_eq!(q.state.stats().bytes, 20, "acked messages stop counting");
}

#[test]
fn registered_consumers_are_the_push_ones_not_the_pullers() {
    let mut q = Harness::new(r#"{"single_active_consumer": true, "lease_ms": 1000}"#);
    assert!(q.state.registered_consumers().is_empty());
    q.publish_keys(&["m1", "m2"]);
    // A puller attaches first and is active; a push consumer waits in line.
    let held = q.receive("pull", 1);
    q.run(Command::ConsumerUp {
        consumer: c("push"),
    })
    .unwrap();
    assert_eq!(q.state.registered_consumers(), vec![c("push")]);
    // What a broker does on opening the queue: the push consumer is gone.
    q.run(Command::ConsumerDown {
        consumer: c("push"),
    })
    .unwrap();
    assert!(q.state.registered_consumers().is_empty());
    q.ack(&[held[0].receipt]);
    assert_eq!(Harness::keys(&q.receive("pull", 1)), vec!["m2"]);
}

#[test]
fn an_active_puller_polling_an_empty_queue_keeps_its_place() {
    let mut q = Harness::new(r#"{"single_active_consumer": true, "lease_ms": 1000}"#);
    // Not in line yet: an empty receive is worth proposing.
    assert!(q.state.pull_place_needs_renewal(&c("a"), 1_000));
    q.publish_keys(&["m1"]);
    let held = q.receive("a", 1);
    q.ack(&[held[0].receipt]);
    let seen = q.now;
    assert!(!q.state.pull_place_needs_renewal(&c("a"), seen + 400));
    assert!(q.state.pull_place_needs_renewal(&c("a"), seen + 500));
    // The broker renews with a receive of no messages; past the first
    // lease `a` is still the active one.
    q.at(seen + 500);
    assert!(q.receive("a", 0).is_empty());
    q.tick(seen + 1_200);
    assert_eq!(q.state.active_consumer(), Some(&c("a")));
    q.publish_keys(&["m2"]);
    assert!(q.try_receive("b", 1).is_err(), "b waits its turn");
    assert_eq!(Harness::keys(&q.receive("a", 1)), vec!["m2"]);
    // A push consumer's place is its connection's, never renewed by polling.
    q.run(Command::ConsumerUp {
        consumer: c("push"),
    })
    .unwrap();
    assert!(!q.state.pull_place_needs_renewal(&c("push"), seen + 100_000));
    // Without single active consumer there is no place to keep.
    let plain = Harness::new("{}");
    assert!(!plain.state.pull_place_needs_renewal(&c("a"), 1_000));
}
