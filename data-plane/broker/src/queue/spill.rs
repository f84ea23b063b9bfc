//! How much of each queue's compact backlog this broker keeps in memory
//! (`backlog_memory_pages`, issue 21): the rest of a deep backlog waits in
//! page files under the queue's directory (`<group>/backlog/`).
//!
//! Set once when the broker starts and read by every queue group as it
//! opens. It is process-wide, like the allocator it bounds, because groups
//! open from places that carry no broker configuration (a sleeping
//! queue's opener, tools, tests), which then get the default.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use sluice_queue::SpillConfig;

/// The default of `backlog_memory_pages` (also the broker config's).
pub const DEFAULT_MEMORY_PAGES: usize = 16;

static MEMORY_PAGES: AtomicUsize = AtomicUsize::new(DEFAULT_MEMORY_PAGES);

/// Sets the pages per queue kept in memory, for groups opened from now on.
pub fn set_memory_pages(pages: usize) {
    MEMORY_PAGES.store(pages, Ordering::Relaxed);
}

/// Where the queue whose directory is `group_dir` spills, and how much it
/// keeps in memory.
pub fn config(group_dir: &Path) -> SpillConfig {
    SpillConfig {
        dir: group_dir.join("backlog"),
        memory_pages: MEMORY_PAGES.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use sluice_queue::{BodyRef, Command, ConsumerId, PublishMessage, QueueSettings, Reply};
    use tokio::sync::mpsc;

    use super::*;
    use crate::queue::group::{GroupOutlets, QueueGroup};
    use crate::queue::{GroupSpec, MessageBody};

    const PER_ENTRY: usize = 1_000;
    const ENTRIES: usize = 20;

    fn spec() -> GroupSpec {
        GroupSpec {
            group_id: "q1".into(),
            tenant_id: 1,
            tenant: "acme".into(),
            queue: "deep".into(),
            settings: QueueSettings::default(),
            replicas: vec!["n1".into()],
        }
    }

    async fn publish(group: &QueueGroup, first: usize) {
        let (messages, bodies) = (first..first + PER_ENTRY)
            .map(|i| {
                let text = format!("m{i}");
                let body_ref = BodyRef {
                    log_index: 0,
                    slot: (i - first) as u32 + 1,
                };
                let body = MessageBody {
                    bytes: text.clone().into_bytes(),
                    encoding: Default::default(),
                    content_type: None,
                };
                (PublishMessage::new(body_ref, text.len() as u64), body)
            })
            .unzip();
        let outcome = group
            .propose(Command::Publish { messages }, bodies)
            .await
            .expect("publish");
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    }

    fn page_files(dir: &Path) -> usize {
        std::fs::read_dir(dir.join("backlog"))
            .map(|files| files.count())
            .unwrap_or(0)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_spilled_backlog_survives_a_restart_from_its_snapshot_and_drains_in_order() {
        // Other tests of this binary open queues far shallower than 3 pages.
        set_memory_pages(3);
        let dir = tempfile::tempdir().expect("tempdir");
        let (dead_letters, _rx) = mpsc::unbounded_channel();
        let outlets = GroupOutlets::new(dead_letters);
        let group = QueueGroup::open(dir.path(), "n1", spec(), outlets.clone())
            .await
            .expect("open");
        for entry in 0..ENTRIES {
            publish(&group, entry * PER_ENTRY).await;
        }
        let (resident, pages) = group.view().read(|q| q.backlog_pages());
        assert_eq!((resident, pages), (3, 5));
        assert_eq!(page_files(dir.path()), 2);
        group.compact().await.expect("snapshot");
        group.close().await;
        drop(group);

        let group = QueueGroup::open(dir.path(), "n1", spec(), outlets)
            .await
            .expect("reopen");
        let (resident, pages) = group.view().read(|q| q.backlog_pages());
        assert!(
            resident <= 3 && pages == 5,
            "{resident} of {pages} in memory"
        );
        let consumer = ConsumerId("c".into());
        let mut next = 0;
        while next < ENTRIES * PER_ENTRY {
            let receive = Command::Receive {
                consumer: consumer.clone(),
                max_messages: 1_000,
                lease_ms: Some(60_000),
            };
            let outcome = group.propose(receive, Vec::new()).await.expect("receive");
            let Ok(Reply::Received { deliveries }) = outcome.result else {
                panic!("receive failed: {:?}", outcome.result);
            };
            assert!(!deliveries.is_empty(), "stalled at {next}");
            let refs = deliveries.iter().map(|d| d.body_ref).collect();
            for body in group.read_bodies(refs).await.expect("bodies") {
                assert_eq!(String::from_utf8_lossy(&body.bytes), format!("m{next}"));
                next += 1;
            }
            let receipts = deliveries.iter().map(|d| d.receipt).collect();
            let ack = Command::Ack {
                receipts,
                refill: None,
            };
            group.propose(ack, Vec::new()).await.expect("ack");
            assert!(group.view().read(|q| q.backlog_pages().0) <= 3);
        }
        assert_eq!(group.view().read(|q| q.stats().ready), 0);
        // Read back and drained: the next snapshot names no page file.
        group.compact().await.expect("snapshot");
        assert_eq!(page_files(dir.path()), 0);
        group.close().await;
    }
}
