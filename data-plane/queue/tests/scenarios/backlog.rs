//! The compact backlog (issue 21): plain messages keep only a small record
//! in the state and their id, routing key and headers in the log, yet they
//! interleave with the messages kept whole exactly as before, and every
//! output about them is complete once read back from the log.

use sluice_queue::{Command, NackAction, PublishMessage, RedriveTarget, Reply};

use crate::support::{Harness, msg};

fn with_meta(key: &str) -> PublishMessage {
    PublishMessage {
        message_id: Some(format!("id-{key}")),
        headers: [("h".to_string(), key.to_string())].into(),
        ..msg(key)
    }
}

#[test]
fn plain_and_whole_messages_interleave_by_priority_then_seq() {
    let mut q = Harness::new("{}");
    q.publish(vec![
        msg("plain-1"),
        PublishMessage {
            priority: Some(0),
            ..msg("zero-2")
        },
        msg("plain-3"),
        PublishMessage {
            priority: Some(3),
            ..msg("high-4")
        },
        PublishMessage {
            expiration_ms: Some(60_000),
            ..msg("expiring-5")
        },
        msg("plain-6"),
    ]);
    let first = q.receive("a", 2);
    assert_eq!(Harness::keys(&first), ["high-4", "plain-1"]);
    // A plain message given back keeps its place among the others.
    q.nack(first[1].receipt, NackAction::RequeueNow).unwrap();
    let rest = q.receive("a", 10);
    assert_eq!(
        Harness::keys(&rest),
        ["plain-1", "zero-2", "plain-3", "expiring-5", "plain-6"]
    );
    assert!(rest[0].redelivered);
    assert_eq!(q.state.stats().unacked, 6);
}

#[test]
fn a_plain_message_is_completed_from_its_publish_entry_everywhere() {
    let mut q = Harness::new(r#"{"dead_letter_exchange": "dlx"}"#);
    q.publish(vec![with_meta("a"), with_meta("b"), with_meta("c")]);
    let peeked = q.peek(1);
    assert_eq!(peeked[0].meta.message_id.as_deref(), Some("id-a"));
    assert!(!peeked[0].meta.in_log);

    // Delivered: id, routing key and headers as published.
    let got = q.receive("a", 1);
    assert_eq!(got[0].meta.routing_key, "a");
    assert_eq!(got[0].meta.headers["h"], "a");
    assert!(!got[0].meta.in_log);

    // Dead-lettered: the target routes by the message's own routing key.
    q.nack(got[0].receipt, NackAction::DeadLetter).unwrap();
    let dead = q.dead.last().unwrap();
    assert_eq!(dead.meta.message_id.as_deref(), Some("id-a"));
    assert_eq!(dead.target.as_ref().unwrap().routing_key, "a");
    assert_eq!(dead.meta.deaths.len(), 1);

    // Redriven straight from the backlog.
    let Ok(Reply::Redriven { messages }) = q.run(Command::Redrive {
        max_messages: 10,
        target: RedriveTarget::Origin,
    }) else {
        panic!("redrive");
    };
    let keys: Vec<&str> = messages
        .iter()
        .map(|m| m.message.meta.routing_key.as_str())
        .collect();
    assert_eq!(keys, ["b", "c"]);
    assert_eq!(messages[1].message.meta.headers["h"], "c");
    assert_eq!(q.state.stats().ready, 0);
}

#[test]
fn a_queue_ttl_expires_plain_messages_oldest_first() {
    let mut q = Harness::new(r#"{"message_ttl_ms": 1000, "dead_letter_exchange": "dlx"}"#);
    q.publish(vec![msg("old")]);
    q.at(1_500).publish(vec![msg("new")]);
    assert_eq!(q.state.next_timer_ms(), Some(2_000));
    q.tick(2_000);
    let expired: Vec<&str> = q.dead.iter().map(|d| d.meta.routing_key.as_str()).collect();
    assert_eq!(expired, ["old"]);
    assert_eq!(Harness::keys(&q.receive("a", 5)), ["new"]);
}

#[test]
fn purge_and_limits_count_plain_messages() {
    let mut q = Harness::new(r#"{"max_length": 2, "overflow": "drop-head"}"#);
    q.publish(vec![msg("1"), msg("2"), msg("3")]);
    let stats = q.state.stats();
    assert_eq!((stats.ready, stats.ready_bytes, stats.bytes), (2, 20, 20));
    assert_eq!(q.dead.len(), 1);
    assert_eq!(q.dead[0].meta.routing_key, "1");
    assert_eq!(q.run(Command::Purge).unwrap(), Reply::Purged { count: 2 });
    assert_eq!(q.state.stats(), Default::default());
    assert_eq!(q.state.release_cursor(), q.log_index);
}
