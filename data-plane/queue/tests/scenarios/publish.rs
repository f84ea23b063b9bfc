//! Publishing: dedup windows, overflow policies, delayed messages.

use sluice_queue::{Command, DeadLetterReason, PublishMessage, PublishResult, RejectReason};

use crate::support::{Harness, msg, settings};

fn with_id(key: &str, id: &str) -> PublishMessage {
    PublishMessage {
        message_id: Some(id.to_owned()),
        ..msg(key)
    }
}

#[test]
fn dedup_drops_a_repeated_message_id_within_the_window_only() {
    let mut q = Harness::new(r#"{"dedup_window_ms": 1000}"#);
    let first = q.publish(vec![with_id("a", "order-1"), with_id("b", "order-1")]);
    assert_eq!(
        first,
        vec![
            PublishResult::Stored { seq: 1 },
            PublishResult::Duplicate { seq: 1 }
        ]
    );
    // Still a duplicate after the original was consumed.
    let d = q.receive("c", 1).remove(0);
    q.ack(&[d.receipt]);
    q.at(1_999);
    assert_eq!(
        q.publish(vec![with_id("a", "order-1")]),
        vec![PublishResult::Duplicate { seq: 1 }]
    );
    q.at(2_000);
    assert_eq!(
        q.publish(vec![with_id("a", "order-1")]),
        vec![PublishResult::Stored { seq: 2 }]
    );
    // Without ids nothing is deduplicated.
    assert_eq!(q.publish_keys(&["x", "x"]), vec![3, 4]);
}

#[test]
fn without_a_dedup_window_ids_are_only_metadata() {
    let mut q = Harness::new("{}");
    let results = q.publish(vec![with_id("a", "same"), with_id("a", "same")]);
    assert_eq!(
        results,
        vec![
            PublishResult::Stored { seq: 1 },
            PublishResult::Stored { seq: 2 }
        ]
    );
}

#[test]
fn drop_head_drops_the_oldest_ready_messages() {
    let mut q = Harness::new(r#"{"max_length": 2}"#);
    q.publish_keys(&["m1", "m2", "m3"]);
    let keys: Vec<String> = q.peek(5).into_iter().map(|m| m.meta.routing_key).collect();
    assert_eq!(keys, vec!["m2", "m3"]);
    assert_eq!(q.dead.len(), 1);
    assert_eq!(
        (q.dead[0].reason, q.dead[0].target.is_none()),
        (DeadLetterReason::Maxlen, true)
    );
}

#[test]
fn drop_head_dead_letters_when_an_exchange_is_set_and_counts_bytes() {
    let mut q = Harness::new(r#"{"max_length_bytes": 25, "dead_letter_exchange": "dlx"}"#);
    q.publish_keys(&["m1", "m2", "m3"]); // 10 bytes each
    assert_eq!(q.state.stats().ready_bytes, 20);
    assert_eq!(q.dead.len(), 1);
    assert_eq!(q.dead[0].meta.routing_key, "m1");
    assert!(q.dead[0].outbox_id.is_some());
}

#[test]
fn reject_publish_refuses_over_the_limits() {
    let mut q = Harness::new(r#"{"max_length_bytes": 25, "overflow": "reject-publish"}"#);
    let results = q.publish(vec![msg("m1"), msg("m2"), msg("m3")]);
    assert_eq!(
        results[2],
        PublishResult::Rejected {
            reason: RejectReason::MaxLengthBytes
        }
    );
    let mut q = Harness::new(r#"{"max_length": 2, "overflow": "reject-publish"}"#);
    let results = q.publish(vec![msg("m1"), msg("m2"), msg("m3")]);
    assert_eq!(
        results[2],
        PublishResult::Rejected {
            reason: RejectReason::MaxLength
        }
    );
    assert!(q.dead.is_empty());
    // Unacked messages do not count: consuming makes room.
    let d = q.receive("c", 1);
    assert_eq!(d.len(), 1);
    assert_eq!(
        q.publish(vec![msg("m3")]),
        vec![PublishResult::Stored { seq: 3 }]
    );
}

#[test]
fn overflow_dead_letter_refuses_and_dead_letters_the_new_message() {
    let mut q = Harness::new(
        r#"{"max_length": 1, "overflow": "dead-letter", "dead_letter_exchange": "dlx"}"#,
    );
    let results = q.publish(vec![msg("m1"), msg("m2")]);
    assert_eq!(
        results,
        vec![
            PublishResult::Stored { seq: 1 },
            PublishResult::DeadLettered
        ]
    );
    let dl = &q.dead[0];
    assert_eq!(
        (dl.seq, dl.reason, dl.meta.routing_key.as_str()),
        (None, DeadLetterReason::Maxlen, "m2")
    );
    assert_eq!(dl.body_ref.slot, 1);
    assert_eq!(q.state.release_cursor(), 1);
}

#[test]
fn a_lower_limit_applies_at_once_under_drop_head() {
    let mut q = Harness::new("{}");
    q.publish_keys(&["m1", "m2", "m3"]);
    q.run(Command::UpdateSettings {
        settings: settings(r#"{"max_length": 1}"#),
    })
    .unwrap();
    assert_eq!(q.state.stats().ready, 1);
    assert_eq!(q.dead.len(), 2);
}

#[test]
fn delayed_messages_are_never_delivered_before_due() {
    let mut q = Harness::new("{}");
    let mut later = msg("later");
    later.delay_ms = Some(5_000);
    q.publish(vec![later, msg("now")]);
    assert_eq!(q.state.stats().delayed, 1);
    assert_eq!(q.state.next_timer_ms(), Some(6_000));
    assert_eq!(Harness::keys(&q.receive("c", 5)), vec!["now"]);
    q.at(5_999);
    assert!(q.receive("c", 5).is_empty());
    q.at(6_000);
    let d = q.receive("c", 5);
    assert_eq!(Harness::keys(&d), vec!["later"]);
    assert!(!d[0].redelivered);
}

#[test]
fn republished_messages_bypass_the_dedup_window() {
    // A message redriven (or dead-lettered) back into a queue that still
    // remembers its id is a re-entry, not a retry of the publish.
    let mut q = Harness::new(r#"{"dedup_window_ms": 60000}"#);
    assert_eq!(
        q.publish(vec![with_id("a", "order-1")]),
        vec![PublishResult::Stored { seq: 1 }]
    );
    let again = PublishMessage {
        republished: true,
        ..with_id("a", "order-1")
    };
    assert_eq!(
        q.publish(vec![again]),
        vec![PublishResult::Stored { seq: 2 }]
    );
    // ...and it does not refresh the window for later publishes of the id.
    assert_eq!(
        q.publish(vec![with_id("a", "order-1")]),
        vec![PublishResult::Duplicate { seq: 1 }]
    );
}
