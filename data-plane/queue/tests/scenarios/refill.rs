//! Acks that refill a push consumer's prefetch window in the same command:
//! what they lease, and whom they never lease to.

use sluice_queue::{Command, Receipt, Refill};

use crate::support::{Harness, c};

fn refill(consumer: &str, prefetch: u32) -> Option<Refill> {
    Some(Refill {
        consumer: c(consumer),
        prefetch,
        lease_ms: None,
    })
}

fn registered(q: &mut Harness, consumer: &str) {
    q.run(Command::ConsumerUp {
        consumer: c(consumer),
    })
    .expect("consumer up");
}

#[test]
fn an_ack_tops_the_window_up_in_fifo_order() {
    let mut q = Harness::new("{}");
    registered(&mut q, "a");
    q.publish_keys(&["m1", "m2", "m3", "m4", "m5"]);
    let held = q.receive("a", 2);
    assert_eq!(Harness::keys(&held), vec!["m1", "m2"]);

    let (results, refilled) = q.ack_refilling(&[held[0].receipt], refill("a", 2));
    assert!(results[0].is_ok());
    assert_eq!(Harness::keys(&refilled), vec!["m3"]);
    assert!(!refilled[0].redelivered);
    assert_eq!(q.state.stats().consumers[&c("a")], 2);

    // Two acked at once make room for two.
    let (_, refilled) = q.ack_refilling(&[held[1].receipt, refilled[0].receipt], refill("a", 2));
    assert_eq!(Harness::keys(&refilled), vec!["m4", "m5"]);
    let stats = q.state.stats();
    assert_eq!((stats.ready, stats.consumers[&c("a")]), (0, 2));
}

#[test]
fn a_failed_ack_leaves_a_full_window_full() {
    let mut q = Harness::new("{}");
    registered(&mut q, "a");
    q.publish_keys(&["m1", "m2"]);
    let held = q.receive("a", 1);
    let stale = Receipt {
        seq: held[0].receipt.seq,
        delivery: 7,
    };
    let (results, refilled) = q.ack_refilling(&[stale], refill("a", 1));
    assert!(results[0].is_err());
    assert!(refilled.is_empty(), "{refilled:?}");
    assert_eq!(q.state.stats().consumers[&c("a")], 1);
}

#[test]
fn a_consumer_that_went_down_or_only_pulls_is_never_refilled() {
    let mut q = Harness::new("{}");
    q.publish_keys(&["m1", "m2", "m3"]);
    // A puller: it never registered, so an ack cannot lease to it.
    let pulled = q.receive("puller", 1);
    let (_, refilled) = q.ack_refilling(&[pulled[0].receipt], refill("puller", 5));
    assert!(refilled.is_empty());

    // A push consumer whose ConsumerDown was applied before its last ack.
    registered(&mut q, "gone");
    let held = q.receive("gone", 1);
    q.run(Command::ConsumerDown {
        consumer: c("gone"),
    })
    .expect("consumer down");
    let (results, refilled) = q.ack_refilling(&[held[0].receipt], refill("gone", 5));
    assert!(
        results[0].is_err(),
        "its message went back with ConsumerDown"
    );
    assert!(refilled.is_empty());
    let stats = q.state.stats();
    assert_eq!((stats.ready, stats.unacked), (2, 0));
    assert!(q.state.registered_consumers().is_empty());
}

#[test]
fn under_single_active_consumer_only_the_active_one_is_refilled() {
    let mut q = Harness::new(r#"{"single_active_consumer": true}"#);
    registered(&mut q, "first");
    registered(&mut q, "second");
    q.publish_keys(&["m1", "m2", "m3"]);
    let held = q.receive("first", 1);
    let (_, refilled) = q.ack_refilling(&[held[0].receipt], refill("second", 1));
    assert!(refilled.is_empty());
    let (_, refilled) = q.ack_refilling(&[], refill("first", 1));
    assert_eq!(Harness::keys(&refilled), vec!["m2"]);
}

#[test]
fn a_refill_keeps_a_message_group_one_at_a_time() {
    let mut q = Harness::new(r#"{"message_groups": true}"#);
    registered(&mut q, "a");
    let mut messages: Vec<_> = ["insert", "update", "delete"]
        .iter()
        .map(|key| {
            let mut message = crate::support::msg(key);
            message.group = Some("order-1".to_owned());
            message
        })
        .collect();
    messages.push(crate::support::msg("other"));
    q.publish(messages);
    let held = q.receive("a", 4);
    assert_eq!(Harness::keys(&held), vec!["insert", "other"]);
    let (_, refilled) = q.ack_refilling(&[held[0].receipt], refill("a", 4));
    assert_eq!(Harness::keys(&refilled), vec!["update"]);
}

#[test]
fn an_ack_written_before_refills_existed_still_decodes() {
    let old: Command =
        serde_json::from_str(r#"{"type":"ack","receipts":[{"seq":3,"delivery":1}]}"#)
            .expect("old ack");
    assert_eq!(
        old,
        Command::Ack {
            receipts: vec![Receipt {
                seq: 3,
                delivery: 1
            }],
            refill: None,
        }
    );
    // And one without a refill is written exactly as before.
    assert_eq!(
        serde_json::to_string(&old).expect("encode"),
        r#"{"type":"ack","receipts":[{"seq":3,"delivery":1}]}"#
    );
}
