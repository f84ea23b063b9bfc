//! Message priority: a higher priority is delivered first, FIFO within a
//! priority (no priority = 0); a message group keeps its publish order
//! whatever the priorities, its head taking its place by its own priority;
//! a requeued message goes back to its place.

use sluice_queue::{NackAction, PublishMessage};

use crate::support::{Harness, msg};

fn with_priority(key: &str, priority: Option<u8>) -> PublishMessage {
    PublishMessage {
        priority,
        ..msg(key)
    }
}

fn grouped(key: &str, group: &str, priority: Option<u8>) -> PublishMessage {
    PublishMessage {
        group: Some(group.to_owned()),
        ..with_priority(key, priority)
    }
}

#[test]
fn higher_priority_first_and_fifo_within_a_priority() {
    let mut q = Harness::new("{}");
    q.publish(vec![
        with_priority("low-1", None),
        with_priority("high-1", Some(9)),
        with_priority("mid-1", Some(5)),
        with_priority("low-2", Some(0)),
        with_priority("high-2", Some(9)),
    ]);
    let deliveries = q.receive("a", 10);
    assert_eq!(
        Harness::keys(&deliveries),
        ["high-1", "high-2", "mid-1", "low-1", "low-2"]
    );
}

#[test]
fn a_requeued_message_goes_back_to_its_place_by_priority() {
    let mut q = Harness::new("{}");
    q.publish(vec![
        with_priority("low", None),
        with_priority("high", Some(3)),
    ]);
    let first = q.receive("a", 1);
    assert_eq!(Harness::keys(&first), ["high"]);
    q.nack(first[0].receipt, NackAction::RequeueNow)
        .expect("requeued");
    q.publish(vec![with_priority("mid", Some(2))]);
    let again = q.receive("a", 10);
    assert_eq!(Harness::keys(&again), ["high", "mid", "low"]);
}

#[test]
fn a_group_keeps_its_order_and_its_head_competes_by_priority() {
    let mut q = Harness::new(r#"{"message_groups": true}"#);
    q.publish(vec![
        grouped("order-1 insert", "order-1", None),
        grouped("order-1 update", "order-1", Some(9)),
        with_priority("other", Some(5)),
    ]);
    // The group's head has priority 0: "other" (5) goes first; the update
    // (9) waits for the insert, priority or not.
    let deliveries = q.receive("a", 10);
    assert_eq!(Harness::keys(&deliveries), ["other", "order-1 insert"]);
    q.ack(&[deliveries[0].receipt, deliveries[1].receipt]);
    let next = q.receive("a", 10);
    assert_eq!(Harness::keys(&next), ["order-1 update"]);
}
