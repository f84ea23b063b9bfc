//! RAM per backlogged message (issue 21): a million plain messages must
//! cost at most 32 bytes each of heap, and draining them must give it back.
//!
//! Its own test binary, because it installs a counting global allocator:
//! every allocation of this process is counted, so the one test here runs
//! alone and measures the state machine's heap before and after.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use sluice_queue::{
    BodyRef, Command, ConsumerId, PublishMessage, QueueSettings, QueueState, Receipt, Reply,
    TimedCommand,
};

/// Bytes allocated and not yet freed, by anyone in the process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is passed to `System` unchanged; the counter only
// observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MESSAGES: u64 = 1_000_000;
/// Messages per publish entry, as a busy broker batches them.
const BATCH: u64 = 100;

/// A plain message as a client publishes it: an id, a routing key and a
/// header — metadata that stays in the log entry, not in the state.
fn message(slot: u32, n: u64) -> PublishMessage {
    PublishMessage {
        message_id: Some(format!("order-{n}")),
        routing_key: "orders.created".to_owned(),
        headers: [("tenant".to_owned(), "acme".to_owned())].into(),
        ..PublishMessage::new(BodyRef { log_index: 0, slot }, 1024)
    }
}

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// The queue and the log position its next command lands at.
struct Driver {
    queue: QueueState,
    log_index: u64,
    now: u64,
}

impl Driver {
    fn apply(&mut self, command: Command) -> Result<Reply, sluice_queue::QueueError> {
        self.log_index += 1;
        self.now += 1;
        self.queue
            .apply(self.log_index, TimedCommand::new(self.now, command))
            .result
    }
}

#[test]
fn a_plain_backlog_costs_at_most_32_bytes_a_message_and_drains_to_nothing() {
    let mut q = Driver {
        queue: QueueState::new(QueueSettings::default()),
        log_index: 0,
        now: 1_000,
    };
    let consumer = ConsumerId::from("c");
    q.apply(Command::Tick).expect("tick");
    let before = live();

    for first in (0..MESSAGES).step_by(BATCH as usize) {
        let messages = (0..BATCH)
            .map(|i| {
                let mut m = message(i as u32 + 1, first + i);
                m.body_ref.log_index = q.log_index + 1;
                m
            })
            .collect();
        q.apply(Command::Publish { messages }).expect("publish");
    }
    let held = live() - before;
    let per_message = held as f64 / MESSAGES as f64;
    println!("{MESSAGES} plain messages hold {held} bytes: {per_message:.1} B each");
    assert_eq!(q.queue.stats().ready, MESSAGES);
    assert!(
        per_message <= 32.0,
        "{per_message:.1} bytes per backlogged message, over 32"
    );

    // Drain in order, as a consumer would: receive a batch, ack it.
    let mut expected_seq = 1;
    loop {
        let received = q.apply(Command::Receive {
            consumer: consumer.clone(),
            max_messages: 500,
            lease_ms: None,
        });
        let Ok(Reply::Received { deliveries }) = received else {
            panic!("receive: {received:?}");
        };
        if deliveries.is_empty() {
            break;
        }
        let receipts: Vec<Receipt> = deliveries
            .iter()
            .map(|d| {
                assert_eq!(d.seq, expected_seq, "FIFO order");
                expected_seq += 1;
                d.receipt
            })
            .collect();
        q.apply(Command::Ack {
            receipts,
            refill: None,
        })
        .expect("ack");
    }
    assert_eq!(expected_seq, MESSAGES + 1);
    assert_eq!(q.queue.stats().ready, 0);
    let left = live() - before;
    println!("drained: {left} bytes left");
    assert!(
        left < 64 * 1024,
        "{left} bytes still held after draining the backlog"
    );
}
