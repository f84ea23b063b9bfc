//! Retries and dead-lettering: backoff timings, the delivery limit, TTLs,
//! nack to dead-letter, the outbox that pins bodies until settled, redrive.

use sluice_queue::{
    Command, DeadLetterReason, DeadLetterTarget, DeathRecord, NackAction, NackOutcome, OutboxEntry,
    Reply,
};

use crate::support::{Harness, msg};

const RETRY: &str =
    r#"{"retry": {"initial_delay_ms": 100, "multiplier": 2.0, "max_delay_ms": 350}}"#;

#[test]
fn nack_without_a_delay_follows_the_retry_backoff() {
    let mut q = Harness::new(RETRY);
    q.publish_keys(&["job"]);
    let mut dues = Vec::new();
    for attempt in 1..=4u64 {
        let d = q.receive("a", 1).remove(0);
        assert_eq!(u64::from(d.delivery_count), attempt);
        let start = q.now;
        let Ok(NackOutcome::Delayed { due_ms }) = q.nack(d.receipt, NackAction::Requeue) else {
            panic!("not delayed");
        };
        dues.push(due_ms - start);
        // Never delivered before it is due.
        q.at(due_ms - 1);
        assert!(q.receive("a", 1).is_empty());
        assert_eq!(q.state.stats().delayed, 1);
        q.at(due_ms);
    }
    assert_eq!(dues, vec![100, 200, 350, 350]);
}

#[test]
fn explicit_requeue_delays_override_the_backoff() {
    let mut q = Harness::new(RETRY);
    q.publish_keys(&["job"]);
    let d = q.receive("a", 1).remove(0);
    assert_eq!(
        q.nack(d.receipt, NackAction::RequeueNow),
        Ok(NackOutcome::Requeued)
    );
    let d = q.receive("a", 1).remove(0);
    let outcome = q.nack(d.receipt, NackAction::RequeueAfter { delay_ms: 5_000 });
    assert_eq!(outcome, Ok(NackOutcome::Delayed { due_ms: 6_000 }));
    q.tick(6_000);
    assert_eq!(q.receive("a", 1).len(), 1);
}

#[test]
fn an_expired_lease_waits_out_the_backoff_when_one_is_set() {
    let mut q = Harness::new(
        r#"{"lease_ms": 1000, "retry": {"initial_delay_ms": 500, "max_delay_ms": 10000}}"#,
    );
    q.publish_keys(&["job"]);
    q.receive("a", 1);
    q.tick(2_000);
    assert_eq!(q.state.stats().delayed, 1);
    q.at(2_499);
    assert!(q.receive("a", 1).is_empty());
    q.at(2_500);
    assert_eq!(q.receive("a", 1)[0].delivery_count, 2);
}

#[test]
fn delivery_limit_three_dead_letters_instead_of_a_fourth_delivery() {
    let mut q = Harness::new(
        r#"{"delivery_limit": 3, "dead_letter_exchange": "dlx", "dead_letter_routing_key": "failed"}"#,
    );
    q.publish_keys(&["job"]);
    for attempt in 1..=3 {
        let d = q.receive("a", 1).remove(0);
        assert_eq!(d.delivery_count, attempt);
        let outcome = q.nack(d.receipt, NackAction::Requeue).unwrap();
        let expected = if attempt < 3 {
            NackOutcome::Requeued
        } else {
            NackOutcome::DeadLettered
        };
        assert_eq!(outcome, expected);
    }
    assert!(q.receive("a", 1).is_empty());
    assert_eq!(q.dead.len(), 1);
    let dl = &q.dead[0];
    assert_eq!(dl.reason, DeadLetterReason::DeliveryLimit);
    assert_eq!(dl.delivery_count, 3);
    assert_eq!((dl.count, dl.first_death_ms), (1, q.now));
    assert_eq!(
        dl.target,
        Some(DeadLetterTarget {
            exchange: "dlx".to_owned(),
            routing_key: "failed".to_owned()
        })
    );
}

#[test]
fn the_delivery_limit_also_applies_to_expired_leases() {
    let mut q = Harness::new(r#"{"delivery_limit": 1, "lease_ms": 1000}"#);
    q.publish_keys(&["job"]);
    q.receive("a", 1);
    q.tick(5_000);
    assert_eq!(q.dead.len(), 1);
    assert_eq!(q.dead[0].reason, DeadLetterReason::DeliveryLimit);
    // No exchange: dropped, reported for metrics only.
    assert_eq!(
        (q.dead[0].target.as_ref(), q.dead[0].outbox_id),
        (None, None)
    );
    assert_eq!(q.state.stats(), Default::default());
}

#[test]
fn ttl_expiry_dead_letters_ready_messages_only() {
    let mut q = Harness::new(r#"{"message_ttl_ms": 1000, "dead_letter_exchange": "dlx"}"#);
    q.publish_keys(&["old", "held"]);
    q.at(1_500);
    let mut short = msg("short");
    short.expiration_ms = Some(100);
    q.publish(vec![short]);
    let held = q.receive("a", 2);
    assert_eq!(Harness::keys(&held), vec!["old", "held"]);
    q.nack(held[0].receipt, NackAction::RequeueNow).unwrap();
    // At 1_600 "short" is past its own expiry; at 2_000 "old" is past the
    // queue TTL again now that it is ready; "held" is unacked and stays.
    q.tick(1_600);
    assert_eq!(q.dead.len(), 1);
    assert_eq!(q.dead[0].meta.routing_key, "short");
    q.tick(2_000);
    assert_eq!(q.dead.len(), 2);
    let old = &q.dead[1];
    assert_eq!(
        (old.meta.routing_key.as_str(), old.reason),
        ("old", DeadLetterReason::Expired)
    );
    assert_eq!(
        old.target.as_ref().map(|t| t.routing_key.as_str()),
        Some("old")
    );
    assert_eq!(q.ack(&[held[1].receipt]), vec![Ok(held[1].seq)]);
}

#[test]
fn nack_to_dead_letter_counts_deaths_across_retry_cycles() {
    let mut q = Harness::new(r#"{"dead_letter_exchange": "retry"}"#);
    let mut again = msg("job");
    again.deaths = vec![DeathRecord {
        reason: DeadLetterReason::Rejected,
        count: 2,
        first_death_ms: 10,
    }];
    q.publish(vec![again]);
    let d = q.receive("a", 1).remove(0);
    assert_eq!(
        q.nack(d.receipt, NackAction::DeadLetter),
        Ok(NackOutcome::DeadLettered)
    );
    let dl = &q.dead[0];
    assert_eq!(
        (dl.reason, dl.count, dl.first_death_ms),
        (DeadLetterReason::Rejected, 3, 10)
    );
    assert_eq!(dl.meta.deaths[0].count, 3);
}

#[test]
fn dead_letters_wait_in_the_outbox_and_pin_their_body_until_settled() {
    let mut q = Harness::new(r#"{"dead_letter_exchange": "dlx"}"#);
    q.publish_keys(&["job"]); // log index 1
    q.publish_keys(&["later"]); // log index 2
    let d = q.receive("a", 1).remove(0);
    q.nack(d.receipt, NackAction::DeadLetter).unwrap();
    let id = q.dead[0].outbox_id.expect("outbox id");
    assert_eq!(
        q.state.release_cursor(),
        1,
        "the dead letter's body is still needed"
    );
    let pending: Vec<u64> = q.state.outbox().map(|(id, _)| id).collect();
    assert_eq!(pending, vec![id]);
    assert!(matches!(
        q.state.outbox().next(),
        Some((_, OutboxEntry::DeadLetter(_)))
    ));
    assert_eq!(
        q.run(Command::Settle {
            outbox_ids: vec![id, id, 999]
        }),
        Ok(Reply::Settled { count: 1 })
    );
    assert_eq!(q.state.release_cursor(), 2);
    assert_eq!(q.state.stats().outbox, 0);
}

#[test]
fn redrive_takes_ready_messages_out_for_republishing() {
    let mut q = Harness::new("{}");
    q.publish_keys(&["d1", "d2", "d3"]);
    let held = q.receive("a", 1);
    let preview: Vec<String> = q
        .state
        .peek(10)
        .into_iter()
        .map(|m| m.meta.routing_key)
        .collect();
    assert_eq!(preview, vec!["d2", "d3"]);
    let Ok(Reply::Redriven { messages }) = q.run(Command::Redrive { max_messages: 5 }) else {
        panic!("redrive");
    };
    let keys: Vec<&str> = messages
        .iter()
        .map(|m| m.message.meta.routing_key.as_str())
        .collect();
    assert_eq!(keys, vec!["d2", "d3"]);
    assert_eq!(q.state.stats().ready, 0);
    assert_eq!(q.state.stats().outbox, 2);
    let ids = messages.iter().map(|m| m.outbox_id).collect();
    q.run(Command::Settle { outbox_ids: ids }).unwrap();
    assert_eq!(q.state.stats().outbox, 0);
    assert_eq!(q.ack(&[held[0].receipt]), vec![Ok(held[0].seq)]);
}
