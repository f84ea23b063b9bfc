//! Publish + receive + ack throughput of the state machine alone (no Raft,
//! no I/O): the ceiling the broker's queue groups run under.
//!
//! `cargo bench -p sluice-queue --bench throughput -- --warm-up-time 1 --measurement-time 3`
//! on the shared 2-core dev machine: about 680k messages/s published,
//! received and acked (≈148 µs per round of 100), 570k/s with 16 message
//! groups, with 10k delayed messages and a 60 s dedup window in the indexes.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_queue::{
    BodyRef, Command, ConsumerId, PublishMessage, QueueSettings, QueueState, Reply, TimedCommand,
};

const BATCH: u64 = 100;

fn message(log_index: u64, slot: u32, group: Option<String>) -> PublishMessage {
    PublishMessage {
        message_id: Some(format!("{log_index}-{slot}")),
        body_ref: BodyRef { log_index, slot },
        size: 256,
        routing_key: "orders.created".to_owned(),
        headers: Default::default(),
        group,
        delay_ms: None,
        expiration_ms: None,
        priority: None,
        deaths: Vec::new(),
        republished: false,
    }
}

/// One round: publish a batch, receive it in batches of 10, ack each batch.
fn round(state: &mut QueueState, index: &mut u64, groups: bool) {
    let now = *index;
    *index += 1;
    let messages = (0..BATCH as u32)
        .map(|slot| message(*index, slot, groups.then(|| format!("g{}", slot % 16))))
        .collect();
    black_box(state.apply(
        *index,
        TimedCommand::new(now, Command::Publish { messages }),
    ));
    loop {
        *index += 1;
        let applied = state.apply(
            *index,
            TimedCommand::new(
                now,
                Command::Receive {
                    consumer: ConsumerId::from("worker"),
                    max_messages: 10,
                    lease_ms: None,
                },
            ),
        );
        let Ok(Reply::Received { deliveries }) = applied.result else {
            panic!("receive failed");
        };
        if deliveries.is_empty() {
            break;
        }
        *index += 1;
        let receipts = deliveries.iter().map(|d| d.receipt).collect();
        black_box(state.apply(
            *index,
            TimedCommand::new(
                now,
                Command::Ack {
                    receipts,
                    refill: None,
                },
            ),
        ));
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue");
    group.throughput(Throughput::Elements(BATCH));
    for (name, settings) in [
        ("publish_receive_ack", r#"{"dedup_window_ms": 60000}"#),
        (
            "publish_receive_ack_groups",
            r#"{"dedup_window_ms": 60000, "message_groups": true}"#,
        ),
    ] {
        let settings: QueueSettings = serde_json::from_str(settings).expect("settings");
        let groups = settings.message_groups;
        // 10k messages wait far in the future, so the indexes are not tiny.
        let mut state = QueueState::new(settings);
        let mut index = 0;
        let backlog = (0..10_000)
            .map(|slot| PublishMessage {
                delay_ms: Some(u64::MAX / 4),
                ..message(0, slot, None)
            })
            .collect::<Vec<_>>();
        index += 1;
        state.apply(
            index,
            TimedCommand::new(0, Command::Publish { messages: backlog }),
        );
        group.bench_function(name, |b| b.iter(|| round(&mut state, &mut index, groups)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
