//! Property tests: random command sequences under random settings keep the
//! queue's invariants, dispatch in seq order within group constraints, and
//! a snapshot taken anywhere replays to the same state and outputs.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sluice_queue::{
    Applied, BodyRef, Command, ConsumerId, Location, NackAction, NackOutcome, Overflow,
    PublishMessage, PublishResult, QueueSettings, QueueState, Receipt, RedriveTarget, Refill,
    Reply, RetryBackoff, Seq, TimedCommand,
};

#[derive(Debug, Clone)]
struct Publish {
    group: Option<u8>,
    id: Option<u8>,
    delay_ms: Option<u64>,
    expiration_ms: Option<u64>,
    priority: Option<u8>,
    size: u64,
}

#[derive(Debug, Clone)]
enum Op {
    Publish(Vec<Publish>),
    Receive {
        consumer: u8,
        max: u32,
        lease_ms: Option<u64>,
    },
    /// Picks, and maybe a refill of (consumer, prefetch).
    Ack(Vec<usize>, Option<(u8, u32)>),
    Nack {
        pick: usize,
        action: u8,
        delay_ms: u64,
    },
    Extend {
        pick: usize,
        lease_ms: u64,
    },
    ConsumerUp(u8),
    ConsumerDown(u8),
    Tick,
    Purge,
    /// Up to this many, to one of three targets (origin, a queue, an exchange).
    Redrive(u32, u8),
    Settle(usize),
    Limits {
        delivery_limit: Option<u32>,
        max_length: Option<u64>,
        ttl: Option<u64>,
    },
}

fn publish() -> impl Strategy<Value = Publish> {
    (
        proptest::option::of(0..3u8),
        proptest::option::of(0..4u8),
        proptest::option::weighted(0.2, 0..3_000u64),
        proptest::option::weighted(0.1, 0..4_000u64),
        1..50u64,
        proptest::option::weighted(0.3, 0..3u8),
    )
        .prop_map(
            |(group, id, delay_ms, expiration_ms, size, priority)| Publish {
                group,
                id,
                delay_ms,
                expiration_ms,
                size,
                priority,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(publish(), 1..4).prop_map(Op::Publish),
        4 => (0..3u8, 1..4u32, proptest::option::of(500..3_000u64))
            .prop_map(|(consumer, max, lease_ms)| Op::Receive { consumer, max, lease_ms }),
        3 => (
            proptest::collection::vec(any::<usize>(), 1..3),
            proptest::option::of((0..3u8, 1..4u32))
        )
            .prop_map(|(picks, refill)| Op::Ack(picks, refill)),
        2 => (any::<usize>(), 0..4u8, 0..2_000u64)
            .prop_map(|(pick, action, delay_ms)| Op::Nack { pick, action, delay_ms }),
        1 => (any::<usize>(), 0..3_000u64).prop_map(|(pick, lease_ms)| Op::Extend { pick, lease_ms }),
        1 => (0..3u8).prop_map(Op::ConsumerUp),
        1 => (0..3u8).prop_map(Op::ConsumerDown),
        2 => Just(Op::Tick),
        1 => Just(Op::Purge),
        1 => (0..3u32, 0..3u8).prop_map(|(max, target)| Op::Redrive(max, target)),
        1 => any::<usize>().prop_map(Op::Settle),
        1 => (
            proptest::option::of(1..4u32),
            proptest::option::of(1..8u64),
            proptest::option::of(500..5_000u64)
        )
            .prop_map(|(delivery_limit, max_length, ttl)| Op::Limits { delivery_limit, max_length, ttl }),
    ]
}

fn settings() -> impl Strategy<Value = QueueSettings> {
    (
        (any::<bool>(), any::<bool>(), any::<bool>()),
        proptest::option::of(1..5u32),
        proptest::option::of((1..500u64, 1..4u32, 500..3_000u64)),
        proptest::option::of(500..6_000u64),
        proptest::option::of(2..10u64),
        proptest::option::of(50..300u64),
        prop_oneof![
            Just(Overflow::DropHead),
            Just(Overflow::RejectPublish),
            Just(Overflow::DeadLetter)
        ],
        proptest::option::of(100..3_000u64),
        500..4_000u64,
    )
        .prop_map(
            |(
                (groups, sac, dlx),
                delivery_limit,
                retry,
                ttl,
                max_length,
                max_bytes,
                overflow,
                dedup,
                lease_ms,
            )| {
                QueueSettings {
                    message_ttl_ms: ttl,
                    max_length,
                    max_length_bytes: max_bytes,
                    overflow,
                    dead_letter_exchange: dlx.then(|| "dlx".to_owned()),
                    delivery_limit,
                    retry: retry.map(|(initial, multiplier, max)| RetryBackoff {
                        initial_delay_ms: initial,
                        multiplier: f64::from(multiplier),
                        max_delay_ms: max,
                    }),
                    dedup_window_ms: dedup,
                    single_active_consumer: sac,
                    message_groups: groups,
                    lease_ms,
                    ..QueueSettings::default()
                }
            },
        )
}

/// What the test knows from outputs alone.
#[derive(Default)]
struct Observed {
    receipts: Vec<Receipt>,
    outbox_ids: Vec<u64>,
    stored: u64,
    gone: u64,
    /// Earliest time each message may next be delivered.
    not_before: BTreeMap<Seq, u64>,
}

fn consumer(n: u8) -> ConsumerId {
    ConsumerId(format!("c{n}"))
}

fn pick<T: Copy>(items: &[T], i: usize) -> Option<T> {
    (!items.is_empty()).then(|| items[i % items.len()])
}

const NO_RECEIPT: Receipt = Receipt {
    seq: 9_999,
    delivery: 1,
};

/// Turn an op into a command, using what earlier outputs handed out.
fn command(op: &Op, seen: &Observed, state: &QueueState, log_index: u64) -> Command {
    match op {
        Op::Publish(batch) => Command::Publish {
            messages: batch
                .iter()
                .enumerate()
                .map(|(slot, p)| PublishMessage {
                    message_id: p.id.map(|id| format!("id{id}")),
                    body_ref: BodyRef {
                        log_index,
                        slot: slot as u32,
                    },
                    size: p.size,
                    routing_key: "k".to_owned(),
                    headers: Default::default(),
                    group: p.group.map(|g| format!("g{g}")),
                    delay_ms: p.delay_ms,
                    expiration_ms: p.expiration_ms,
                    priority: p.priority,
                    deaths: Vec::new(),
                    republished: false,
                })
                .collect(),
        },
        Op::Receive {
            consumer: c,
            max,
            lease_ms,
        } => Command::Receive {
            consumer: consumer(*c),
            max_messages: *max,
            lease_ms: *lease_ms,
        },
        Op::Ack(picks, refill) => Command::Ack {
            receipts: picks
                .iter()
                .map(|i| pick(&seen.receipts, *i).unwrap_or(NO_RECEIPT))
                .collect(),
            refill: refill.map(|(c, prefetch)| Refill {
                consumer: consumer(c),
                prefetch,
                lease_ms: None,
            }),
        },
        Op::Nack {
            pick: i,
            action,
            delay_ms,
        } => Command::Nack {
            receipt: pick(&seen.receipts, *i).unwrap_or(NO_RECEIPT),
            action: match action {
                0 => NackAction::Requeue,
                1 => NackAction::RequeueNow,
                2 => NackAction::RequeueAfter {
                    delay_ms: *delay_ms,
                },
                _ => NackAction::DeadLetter,
            },
        },
        Op::Extend { pick: i, lease_ms } => Command::ExtendLease {
            receipt: pick(&seen.receipts, *i).unwrap_or(NO_RECEIPT),
            lease_ms: *lease_ms,
        },
        Op::ConsumerUp(c) => Command::ConsumerUp {
            consumer: consumer(*c),
        },
        Op::ConsumerDown(c) => Command::ConsumerDown {
            consumer: consumer(*c),
        },
        Op::Tick => Command::Tick,
        Op::Purge => Command::Purge,
        Op::Redrive(max, target) => Command::Redrive {
            max_messages: *max,
            target: match target {
                0 => RedriveTarget::Origin,
                1 => RedriveTarget::Queue { name: "q".into() },
                _ => RedriveTarget::Exchange { name: "x".into() },
            },
        },
        Op::Settle(i) => Command::Settle {
            outbox_ids: pick(&seen.outbox_ids, *i).into_iter().collect(),
        },
        Op::Limits {
            delivery_limit,
            max_length,
            ttl,
        } => Command::UpdateSettings {
            settings: QueueSettings {
                delivery_limit: *delivery_limit,
                max_length: *max_length,
                message_ttl_ms: *ttl,
                ..state.settings().clone()
            },
        },
    }
}

/// Can `msg` be delivered now, judged by brute force over all messages?
fn deliverable(state: &QueueState, seq: Seq) -> bool {
    let Some(msg) = state.message(seq) else {
        return false;
    };
    if msg.location != Location::Ready {
        return false;
    }
    let group = match (&msg.meta.group, state.settings().message_groups) {
        (Some(group), true) => group,
        _ => return true,
    };
    state
        .messages()
        .filter(|m| m.meta.group.as_ref() == Some(group))
        .all(|m| match m.location {
            Location::Ready => m.seq >= seq,
            Location::Unacked { .. } => false,
            Location::Delayed { .. } => m.delivery_count == 0,
        })
}

/// After a receive: nothing else of a delivered message's group may hold
/// the turn or be ready ahead of it.
fn deliverable_when_taken(state: &QueueState, seq: Seq) -> bool {
    let Some(msg) = state.message(seq) else {
        return false;
    };
    let group = match (&msg.meta.group, state.settings().message_groups) {
        (Some(group), true) => group,
        _ => return true,
    };
    state
        .messages()
        .filter(|m| m.seq != seq && m.meta.group.as_ref() == Some(group))
        .all(|m| match m.location {
            Location::Ready => m.seq > seq,
            Location::Unacked { .. } => false,
            Location::Delayed { .. } => m.delivery_count == 0,
        })
}

fn check_step(
    state: &QueueState,
    command: &Command,
    applied: &Applied,
    now: u64,
    seen: &mut Observed,
) {
    state.check_invariants().expect("invariants");
    seen.gone += applied
        .dead_letters
        .iter()
        .filter(|d| d.seq.is_some())
        .count() as u64;
    seen.outbox_ids
        .extend(applied.dead_letters.iter().filter_map(|d| d.outbox_id));
    match &applied.result {
        Ok(Reply::Published { results }) => {
            let Command::Publish { messages } = command else {
                unreachable!()
            };
            for (result, message) in results.iter().zip(messages) {
                if let PublishResult::Stored { seq } = result {
                    seen.stored += 1;
                    let due = now + message.delay_ms.unwrap_or(0);
                    seen.not_before.insert(*seq, due);
                }
            }
        }
        Ok(Reply::Received { deliveries }) => {
            let Command::Receive { max_messages, .. } = command else {
                unreachable!()
            };
            // Delivery order: higher priority first, then seq.
            let order = |seq: Seq| {
                let priority = state.message(seq).and_then(|m| m.meta.priority);
                (std::cmp::Reverse(priority.unwrap_or(0)), seq)
            };
            // Except for a group's next message uncovered during this very
            // receive, when its head reached the delivery limit and was
            // dead-lettered instead: it was not deliverable when the ones
            // before it were taken, so it may outrank them.
            let uncovered = |seq: Seq| {
                let group = state.message(seq).and_then(|m| m.meta.group.clone());
                state.settings().message_groups
                    && group.is_some_and(|group| {
                        applied
                            .dead_letters
                            .iter()
                            .any(|d| d.meta.group.as_ref() == Some(&group))
                    })
            };
            for pair in deliveries.windows(2) {
                assert!(
                    order(pair[0].seq) < order(pair[1].seq) || uncovered(pair[1].seq),
                    "deliveries out of priority / seq order"
                );
            }
            for d in deliveries {
                let not_before = seen.not_before.get(&d.seq).copied().unwrap_or(0);
                assert!(now >= not_before, "message {} delivered before due", d.seq);
                assert_eq!(d.redelivered, d.delivery_count > 1);
                seen.receipts.push(d.receipt);
            }
            for d in deliveries {
                assert!(
                    deliverable_when_taken(state, d.seq),
                    "message {} overtook its group",
                    d.seq
                );
            }
            let last = deliveries.last().map(|d| order(d.seq));
            for m in state.messages() {
                if deliverable(state, m.seq) {
                    assert!(
                        deliveries.len() == *max_messages as usize
                            && last.is_none_or(|last| order(m.seq) > last),
                        "message {} was deliverable but skipped",
                        m.seq
                    );
                }
            }
        }
        Ok(Reply::Acked { results, refilled }) => {
            seen.gone += results.iter().filter(|r| r.is_ok()).count() as u64;
            let Command::Ack { refill, .. } = command else {
                unreachable!()
            };
            match refill {
                Some(refill) if !refilled.is_empty() => {
                    let held = state.stats().consumers.get(&refill.consumer).copied();
                    assert!(
                        held.unwrap_or(0) <= u64::from(refill.prefetch),
                        "a refill overfilled the window: {held:?} > {}",
                        refill.prefetch
                    );
                }
                Some(_) => {}
                None => assert!(refilled.is_empty(), "refilled without a refill"),
            }
            for d in refilled {
                let not_before = seen.not_before.get(&d.seq).copied().unwrap_or(0);
                assert!(now >= not_before, "message {} refilled before due", d.seq);
                assert_eq!(d.redelivered, d.delivery_count > 1);
                assert!(
                    deliverable_when_taken(state, d.seq),
                    "message {} overtook its group",
                    d.seq
                );
                seen.receipts.push(d.receipt);
            }
        }
        Ok(Reply::Nacked {
            outcome: NackOutcome::Delayed { due_ms },
        }) => {
            if let Command::Nack { receipt, .. } = command {
                seen.not_before.insert(receipt.seq, *due_ms);
            }
        }
        Ok(Reply::Purged { count }) => seen.gone += count,
        Ok(Reply::Redriven { messages }) => {
            seen.gone += messages.len() as u64;
            seen.outbox_ids.extend(messages.iter().map(|m| m.outbox_id));
        }
        _ => {}
    }
    // Every stored message is live in exactly one place, or gone.
    assert_eq!(seen.stored - seen.gone, state.messages().count() as u64);
    let stats = state.stats();
    assert_eq!(
        stats.ready + stats.unacked + stats.delayed,
        seen.stored - seen.gone
    );
    assert_eq!(stats.consumers.values().sum::<u64>(), stats.unacked);
    // No group ever has two messages out.
    if state.settings().message_groups {
        let mut out: BTreeMap<String, u32> = BTreeMap::new();
        for m in state.messages() {
            if let (Some(group), Location::Unacked { .. }) = (&m.meta.group, &m.location) {
                *out.entry(group.clone()).or_default() += 1;
            }
        }
        assert!(
            out.values().all(|n| *n <= 1),
            "a group has two unacked messages: {out:?}"
        );
    }
    let lowest = state
        .messages()
        .map(|m| m.body_ref.log_index)
        .chain(state.outbox().map(|(_, e)| match e {
            sluice_queue::OutboxEntry::DeadLetter(d) => d.body_ref.log_index,
            sluice_queue::OutboxEntry::Redrive(r) => r.message.body_ref.log_index,
        }))
        .min();
    let cursor = state.release_cursor();
    assert!(
        lowest.is_none_or(|lowest| cursor <= lowest),
        "release cursor above a live body"
    );
    assert!(cursor <= state.applied_index());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_commands_keep_the_invariants_and_snapshots_replay(
        settings in settings(),
        ops in proptest::collection::vec((op(), 0..1_500u64), 1..80),
        split in any::<prop::sample::Index>(),
    ) {
        let split = split.index(ops.len() + 1);
        let mut state = QueueState::new(settings.clone());
        let mut seen = Observed::default();
        let mut now = 1_000;
        let mut log = Vec::new();
        let mut outputs = Vec::new();
        let mut snapshot = None;
        for (step, (op, dt)) in ops.iter().enumerate() {
            if step == split {
                snapshot = Some(serde_json::to_vec(&state).unwrap());
            }
            now += dt;
            let log_index = step as u64 + 1;
            let command = command(op, &seen, &state, log_index);
            let applied = state.apply(log_index, TimedCommand::new(now, command.clone()));
            check_step(&state, &command, &applied, now, &mut seen);
            log.push((log_index, TimedCommand::new(now, command)));
            outputs.push(applied);
        }
        let snapshot = snapshot.unwrap_or_else(|| serde_json::to_vec(&state).unwrap());

        // Applying the whole log again gives the same outputs and state.
        let mut replica = QueueState::new(settings);
        for ((index, command), expected) in log.iter().zip(&outputs) {
            prop_assert_eq!(&replica.apply(*index, command.clone()), expected);
        }
        prop_assert_eq!(&replica, &state);

        // Restoring the snapshot and applying the rest gives the same too.
        let mut restored: QueueState = serde_json::from_slice(&snapshot).unwrap();
        restored.check_invariants().unwrap();
        for ((index, command), expected) in log[split..].iter().zip(&outputs[split..]) {
            prop_assert_eq!(&restored.apply(*index, command.clone()), expected);
        }
        prop_assert_eq!(&restored, &state);
    }
}
