//! Where a replica keeps its backlog pages changes no answer (issue 21
//! stage 2): a queue spilling beyond three pages and one holding all in
//! memory, fed the same commands, give the same replies and equal states; a
//! snapshot of the spilling one (naming its page files) restores, on the
//! same directory, to a state that goes on answering like the other.

use sluice_queue::{
    Applied, BodyRef, Command, ConsumerId, PublishMessage, QueueSettings, QueueState, Reply,
    SpillConfig, TimedCommand,
};

const PER_ENTRY: u64 = 1_000;
/// Five pages of 4,096: two spill with three kept in memory.
const ENTRIES: u64 = 20;

fn publish(log_index: u64) -> Command {
    let messages = (0..PER_ENTRY)
        .map(|i| {
            let body_ref = BodyRef {
                log_index,
                slot: i as u32 + 1,
            };
            PublishMessage::new(body_ref, 100 + i)
        })
        .collect();
    Command::Publish { messages }
}

fn receive(max_messages: u32) -> Command {
    Command::Receive {
        consumer: ConsumerId::from("c"),
        max_messages,
        lease_ms: None,
    }
}

/// Applies `command` to both at `log_index`; their answers must agree.
fn both(a: &mut QueueState, b: &mut QueueState, log_index: u64, command: Command) -> Applied {
    let timed = TimedCommand::new(1_000 + log_index, command);
    let from_a = a.apply(log_index, timed.clone());
    let from_b = b.apply(log_index, timed);
    assert_eq!(from_a, from_b, "replies differ at {log_index}");
    assert_eq!(a.spill_fault(), None);
    from_a
}

/// Receives up to `max` from both and acks what came, at two indexes.
fn take(a: &mut QueueState, b: &mut QueueState, log_index: &mut u64, max: u32) -> usize {
    *log_index += 1;
    let Ok(Reply::Received { deliveries }) = both(a, b, *log_index, receive(max)).result else {
        panic!("receive failed");
    };
    let receipts = deliveries.iter().map(|d| d.receipt).collect();
    *log_index += 1;
    both(
        a,
        b,
        *log_index,
        Command::Ack {
            receipts,
            refill: None,
        },
    );
    deliveries.len()
}

#[test]
fn a_spilling_replica_answers_like_one_in_memory_and_restores_from_its_page_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = SpillConfig {
        dir: dir.path().to_path_buf(),
        memory_pages: 3,
    };
    let mut spilling = QueueState::new(QueueSettings::default()).with_spill(config.clone());
    spilling.attach_spill().expect("attach");
    let mut in_memory = QueueState::new(QueueSettings::default());

    let mut log_index = 0;
    for _ in 0..ENTRIES {
        log_index += 1;
        both(&mut spilling, &mut in_memory, log_index, publish(log_index));
    }
    assert_eq!(spilling.backlog_pages(), (3, 5));
    assert_eq!(in_memory.backlog_pages(), (5, 5));
    assert!(spilling == in_memory);
    spilling.check_invariants().expect("invariants");

    // Part of the way, then a snapshot of the spilling replica.
    let mut taken = 0;
    while taken < 3_000 {
        taken += take(&mut spilling, &mut in_memory, &mut log_index, 500);
    }
    let mark = spilling.sync_spill().expect("sync");
    let snapshot = serde_json::to_vec(&spilling).expect("snapshot");
    spilling.snapshot_saved(mark);
    assert!(snapshot.len() < 400_000, "{} bytes", snapshot.len());

    // Restored on the same directory, it goes on answering alike.
    let restored: QueueState = serde_json::from_slice(&snapshot).expect("restore");
    drop(spilling);
    let mut reopened = QueueState::new(QueueSettings::default()).with_spill(config);
    reopened.restore_from(restored);
    reopened.attach_spill().expect("attach");
    assert!(reopened.backlog_pages().0 <= 3);
    assert!(reopened == in_memory);
    loop {
        let got = take(&mut reopened, &mut in_memory, &mut log_index, 500);
        if got == 0 {
            break;
        }
        taken += got;
        assert!(reopened.backlog_pages().0 <= 3);
    }
    assert_eq!(reopened.stats().ready, 0);
    assert_eq!(taken, (ENTRIES * PER_ENTRY) as usize);
}
