//! Snapshots round-trip through serde and replay to the same state.

use sluice_queue::{Command, NackAction, QueueState};

use crate::support::{Harness, msg};

#[test]
fn a_restored_snapshot_continues_exactly_like_the_original() {
    let json = r#"{"message_groups": true, "dedup_window_ms": 10000, "dead_letter_exchange": "dlx",
                   "retry": {"initial_delay_ms": 100, "max_delay_ms": 1000}, "lease_ms": 2000}"#;
    let mut q = Harness::new(json);
    let mut grouped = msg("g");
    grouped.group = Some("o1".to_owned());
    grouped.message_id = Some("id-1".to_owned());
    q.publish(vec![grouped.clone(), grouped, msg("a"), msg("b")]);
    let d = q.receive("c1", 2);
    q.nack(d[0].receipt, NackAction::Requeue).unwrap();
    q.nack(d[1].receipt, NackAction::DeadLetter).unwrap();
    q.run(Command::ConsumerUp {
        consumer: "c2".into(),
    })
    .unwrap();

    let bytes = serde_json::to_vec(&q.state).unwrap();
    let mut restored: QueueState = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(restored, q.state);
    restored.check_invariants().unwrap();

    let rest = [
        Command::Tick,
        Command::Receive {
            consumer: "c3".into(),
            max_messages: 5,
            lease_ms: None,
        },
        Command::Publish {
            messages: vec![msg("late")],
        },
    ];
    for (i, command) in rest.into_iter().enumerate() {
        let index = q.log_index + 1 + i as u64;
        let now = 2_000 + i as u64 * 1_000;
        let expected = q
            .state
            .apply(index, sluice_queue::TimedCommand::new(now, command.clone()));
        let got = restored.apply(index, sluice_queue::TimedCommand::new(now, command));
        assert_eq!(got, expected);
    }
    assert_eq!(restored, q.state);
}

#[test]
fn a_snapshot_keeps_when_pull_consumers_last_received() {
    let mut q = Harness::new(r#"{"single_active_consumer": true, "lease_ms": 5000}"#);
    q.publish(vec![msg("m1"), msg("m2")]);
    let held = q.receive("a", 1);
    q.ack(&[held[0].receipt]);
    let bytes = serde_json::to_vec(&q.state).unwrap();
    let mut restored: QueueState = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(restored, q.state);
    assert_eq!(restored.next_timer_ms(), Some(6_000));
    // The restored queue detaches the idle consumer exactly when the original does.
    let tick = sluice_queue::TimedCommand::new(6_000, Command::Tick);
    let index = q.log_index + 1;
    assert_eq!(
        restored.apply(index, tick.clone()),
        q.state.apply(index, tick)
    );
    assert_eq!(restored, q.state);
    assert_eq!(restored.active_consumer(), None);

    // A snapshot written before pull consumers were tracked still loads;
    // its attached consumers count as registered.
    let old = r#"{"settings": {"single_active_consumer": true}, "applied_index": 1,
        "clock_ms": 1000, "next_seq": 1, "messages": [], "attached": {"a": 0},
        "next_attach": 1, "dedup": {}, "outbox": {}, "next_outbox_id": 1}"#;
    let old: QueueState = serde_json::from_str(old).unwrap();
    old.check_invariants().unwrap();
    assert_eq!(old.active_consumer().map(|c| c.0.as_str()), Some("a"));
    assert_eq!(old.next_timer_ms(), None);
}

/// A snapshot written by main's code before the compact backlog (commit
/// 7fe813c, `tests/fixtures/snapshot-main-7fe813c.json`): grouped,
/// prioritised, delayed, expiring and plain messages, one unacked, one dead
/// letter in the outbox. Brokers have such snapshots on disk.
const MAIN_SNAPSHOT: &str = include_str!("../fixtures/snapshot-main-7fe813c.json");

#[test]
fn a_snapshot_written_before_the_compact_backlog_restores_and_runs_on() {
    let restored: QueueState = serde_json::from_str(MAIN_SNAPSHOT).unwrap();
    restored.check_invariants().unwrap();
    let stats = restored.stats();
    assert_eq!(
        (stats.ready, stats.unacked, stats.delayed, stats.outbox),
        (4, 1, 1, 1)
    );
    // The outbox entry keeps its whole dead letter, routing key and all.
    let (_, entry) = restored.outbox().next().unwrap();
    let sluice_queue::OutboxEntry::DeadLetter(dead) = entry else {
        panic!("{entry:?}");
    };
    assert_eq!(dead.meta.routing_key, "a");
    assert_eq!(dead.target.as_ref().unwrap().routing_key, "a");

    // Its messages were kept whole, so they deliver with their metadata
    // from the snapshot; a new plain one is delivered after them, in order.
    let mut q = Harness::new("{}");
    q.log_index = restored.applied_index();
    q.state = restored;
    q.at(2_000).publish(vec![msg("h")]);
    let got = q.receive("c3", 10);
    assert_eq!(Harness::keys(&got), vec!["b", "c", "f", "g", "h"]);
    assert_eq!(got[0].meta.message_id.as_deref(), Some("id-2"));
    assert_eq!(got[1].meta.group.as_deref(), Some("g1"));

    // Written again in the new form, it restores to the same state.
    let bytes = serde_json::to_vec(&q.state).unwrap();
    let again: QueueState = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(again, q.state);

    // The delayed message comes due; the duplicate window still holds.
    q.tick(11_000);
    assert_eq!(Harness::keys(&q.receive("c3", 10)), vec!["e"]);
    let mut dup = msg("dup");
    dup.message_id = Some("id-2".to_owned());
    assert!(matches!(
        q.publish(vec![dup])[..],
        [sluice_queue::PublishResult::Duplicate { seq: 2 }]
    ));
}
