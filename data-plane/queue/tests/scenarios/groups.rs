//! Message groups: per-key order with parallelism across keys.

use std::collections::BTreeMap;

use sluice_queue::{Command, NackAction, PublishMessage};

use crate::support::{Harness, msg, settings};

fn op(order: &str, op: &str) -> PublishMessage {
    PublishMessage {
        group: Some(order.to_owned()),
        ..msg(&format!("{order}:{op}"))
    }
}

#[test]
fn four_consumers_keep_each_orders_operations_in_order_while_spreading_orders() {
    let mut q = Harness::new(r#"{"message_groups": true}"#);
    let orders = ["o1", "o2", "o3", "o4", "o5", "o6"];
    let mut batch = Vec::new();
    for step in ["INSERT", "UPDATE", "DELETE"] {
        for order in orders {
            batch.push(op(order, step));
        }
    }
    q.publish(batch);
    let consumers = ["c1", "c2", "c3", "c4"];
    let mut processed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut consumers_per_round = Vec::new();
    // Every consumer asks for up to 2 each round, then acks what it got.
    while q.state.stats().ready > 0 {
        let mut round = Vec::new();
        let mut busy = 0;
        for consumer in consumers {
            let deliveries = q.receive(consumer, 2);
            if !deliveries.is_empty() {
                busy += 1;
            }
            round.extend(deliveries);
        }
        consumers_per_round.push(busy);
        // Within one round no order appears twice: one at a time per group.
        let mut groups: Vec<&str> = round
            .iter()
            .filter_map(|d| d.meta.group.as_deref())
            .collect();
        groups.sort();
        let before = groups.len();
        groups.dedup();
        assert_eq!(groups.len(), before, "a group had two messages out at once");
        for d in &round {
            let (order, step) = d.meta.routing_key.split_once(':').unwrap();
            processed
                .entry(order.to_owned())
                .or_default()
                .push(step.to_owned());
        }
        let receipts: Vec<_> = round.iter().map(|d| d.receipt).collect();
        assert!(q.ack(&receipts).iter().all(Result::is_ok));
    }
    for order in orders {
        assert_eq!(
            processed[order],
            vec!["INSERT", "UPDATE", "DELETE"],
            "{order}"
        );
    }
    assert_eq!(
        consumers_per_round,
        vec![3, 3, 3],
        "orders are spread over consumers"
    );
}

#[test]
fn a_retried_message_keeps_its_group_waiting() {
    let mut q = Harness::new(
        r#"{"message_groups": true, "retry": {"initial_delay_ms": 1000, "max_delay_ms": 1000}}"#,
    );
    q.publish(vec![op("o1", "INSERT"), op("o1", "UPDATE"), msg("loose")]);
    let first = q.receive("a", 5);
    assert_eq!(Harness::keys(&first), vec!["o1:INSERT", "loose"]);
    q.nack(first[0].receipt, NackAction::Requeue).unwrap();
    // While INSERT waits out its backoff, UPDATE must not overtake it.
    assert!(q.receive("b", 5).is_empty());
    q.at(2_000);
    let again = q.receive("b", 5);
    assert_eq!(Harness::keys(&again), vec!["o1:INSERT"]);
    q.ack(&[again[0].receipt]);
    assert_eq!(Harness::keys(&q.receive("b", 5)), vec!["o1:UPDATE"]);
}

#[test]
fn a_dead_lettered_message_frees_its_group() {
    let mut q = Harness::new(r#"{"message_groups": true}"#);
    q.publish(vec![op("o1", "INSERT"), op("o1", "UPDATE")]);
    let d = q.receive("a", 5);
    assert_eq!(d.len(), 1);
    q.nack(d[0].receipt, NackAction::DeadLetter).unwrap();
    assert_eq!(Harness::keys(&q.receive("a", 5)), vec!["o1:UPDATE"]);
}

#[test]
fn switching_groups_on_at_runtime_rebuilds_dispatch() {
    let mut q = Harness::new("{}");
    q.publish(vec![
        op("o1", "INSERT"),
        op("o1", "UPDATE"),
        op("o2", "INSERT"),
    ]);
    q.run(Command::UpdateSettings {
        settings: settings(r#"{"message_groups": true}"#),
    })
    .unwrap();
    assert_eq!(
        Harness::keys(&q.receive("a", 5)),
        vec!["o1:INSERT", "o2:INSERT"]
    );
    q.run(Command::UpdateSettings {
        settings: settings("{}"),
    })
    .unwrap();
    assert_eq!(Harness::keys(&q.receive("a", 5)), vec!["o1:UPDATE"]);
}
