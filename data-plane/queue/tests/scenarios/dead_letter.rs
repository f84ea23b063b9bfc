//! Retries and dead-lettering: backoff timings, the delivery limit, TTLs,
//! nack to dead-letter, the outbox that pins bodies until settled, redrive.

use sluice_queue::{
    BodyRef, Command, DeadLetterReason, DeadLetterTarget, DeathRecord, MessageMeta, MessageView,
    NackAction, NackOutcome, OutboxEntry, QueueState, RedriveEntry, RedriveTarget, Reply,
    TimedCommand,
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
    let preview: Vec<String> = q.peek(10).into_iter().map(|m| m.meta.routing_key).collect();
    assert_eq!(preview, vec!["d2", "d3"]);
    let Ok(Reply::Redriven { messages }) = q.run(Command::Redrive {
        max_messages: 5,
        target: RedriveTarget::Origin,
    }) else {
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

/// The target of every unsettled redrive entry, by outbox id.
fn redrive_targets(state: &QueueState) -> Vec<(u64, RedriveTarget)> {
    state
        .outbox()
        .filter_map(|(id, entry)| match entry {
            OutboxEntry::Redrive(entry) => Some((id, entry.target.clone())),
            OutboxEntry::DeadLetter(_) => None,
        })
        .collect()
}

#[test]
fn redrive_keeps_its_target_with_each_outbox_entry() {
    let mut q = Harness::new("{}");
    q.publish_keys(&["d1", "d2"]);
    let parked = RedriveTarget::Queue {
        name: "parked".into(),
    };
    let Ok(Reply::Redriven { messages }) = q.run(Command::Redrive {
        max_messages: 1,
        target: parked.clone(),
    }) else {
        panic!("redrive");
    };
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].target, parked, "the reply names the target");
    let exchange = RedriveTarget::Exchange {
        name: "retry".into(),
    };
    let Ok(Reply::Redriven { messages: second }) = q.run(Command::Redrive {
        max_messages: 1,
        target: exchange.clone(),
    }) else {
        panic!("redrive");
    };
    // Unsettled, each entry keeps its own target: a broker reopening the
    // queue reads them from here.
    assert_eq!(
        redrive_targets(&q.state),
        vec![
            (messages[0].outbox_id, parked.clone()),
            (second[0].outbox_id, exchange.clone())
        ]
    );

    // Through a snapshot (a restart after compaction) they stay.
    let bytes = serde_json::to_vec(&q.state).unwrap();
    let restored: QueueState = serde_json::from_slice(&bytes).unwrap();
    restored.check_invariants().unwrap();
    assert_eq!(restored, q.state);
    assert_eq!(redrive_targets(&restored), redrive_targets(&q.state));

    // Through the log (a restart replaying the entry) too.
    for target in [parked, exchange, RedriveTarget::Origin] {
        let command = TimedCommand::new(
            7,
            Command::Redrive {
                max_messages: 3,
                target,
            },
        );
        let json = serde_json::to_vec(&command).unwrap();
        assert_eq!(
            serde_json::from_slice::<TimedCommand>(&json).unwrap(),
            command
        );
    }
}

#[test]
fn redrives_written_before_targets_were_kept_go_to_their_origin() {
    // A log entry as brokers wrote it before the target was recorded.
    let old = r#"{"now_ms":5,"command":{"type":"redrive","max_messages":3}}"#;
    let command: TimedCommand = serde_json::from_str(old).unwrap();
    assert_eq!(
        command.command,
        Command::Redrive {
            max_messages: 3,
            target: RedriveTarget::Origin
        }
    );
    // The default target is written exactly as before, so a broker that
    // does not know targets yet still reads the entry.
    assert_eq!(serde_json::to_string(&command).unwrap(), old);

    // A snapshot from then, holding one unsettled redrive.
    let snapshot = r#"{
        "settings": {}, "applied_index": 3, "clock_ms": 1000, "next_seq": 3,
        "messages": [{"seq": 2, "body_ref": {"log_index": 1, "slot": 1}, "delivery_count": 0,
            "meta": {"message_id": null, "size": 10, "routing_key": "d2", "headers": {},
                     "group": null, "priority": null, "published_at_ms": 1000, "expires_at_ms": null},
            "location": "Ready"}],
        "attached": {}, "next_attach": 0, "dedup": {},
        "outbox": {"1": {"kind": "redrive", "seq": 1, "body_ref": {"log_index": 1, "slot": 0},
            "delivery_count": 2,
            "meta": {"message_id": "m1", "size": 10, "routing_key": "d1",
                     "headers": {"x-death-queue": "jobs"}, "group": null, "priority": null,
                     "published_at_ms": 1000, "expires_at_ms": null}}},
        "next_outbox_id": 2
    }"#;
    let state: QueueState = serde_json::from_str(snapshot).unwrap();
    state.check_invariants().unwrap();
    let entries: Vec<(u64, &OutboxEntry)> = state.outbox().collect();
    let expected = OutboxEntry::Redrive(RedriveEntry {
        message: MessageView {
            seq: 1,
            body_ref: BodyRef {
                log_index: 1,
                slot: 0,
            },
            delivery_count: 2,
            meta: MessageMeta {
                message_id: Some("m1".into()),
                size: 10,
                routing_key: "d1".into(),
                headers: [("x-death-queue".to_string(), "jobs".to_string())].into(),
                group: None,
                priority: None,
                published_at_ms: 1000,
                expires_at_ms: None,
                deaths: Vec::new(),
                in_log: false,
            },
        },
        target: RedriveTarget::Origin,
    });
    assert_eq!(entries, vec![(1, &expected)]);
    assert_eq!(state.release_cursor(), 1, "the entry still pins its body");
}
