//! Log compaction of a queue group: snapshot the queue state, then purge the
//! Raft log below the lower of the snapshot and the queue's release cursor.
//!
//! openraft's own purging is switched off (`max_in_snapshot_log_to_keep` is
//! unbounded): it would purge everything a snapshot covers, and message
//! bodies live in the log. Below the release cursor no live message, no
//! unsettled dead letter points into the log, so only that prefix goes.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::group::QueueGroup;

/// Entries applied since the last snapshot before a compaction is tried.
pub const COMPACT_AFTER_ENTRIES: u64 = 4096;
/// How often the task looks.
const CHECK_EVERY: Duration = Duration::from_secs(5);

pub(super) async fn run(group: Arc<QueueGroup>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
        let applied = group.view().read(|q| q.applied_index());
        if applied.saturating_sub(group.view().snapshot_index()) < COMPACT_AFTER_ENTRIES {
            continue;
        }
        if let Err(err) = group.compact().await {
            tracing::warn!(group = %group.spec.group_id, error = %err, "log compaction failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::queue::group::GroupOutlets;
    use std::time::Instant;

    use sluice_queue::{
        BodyRef, Command, ConsumerId, NackAction, PublishMessage, QueueSettings, Reply,
    };
    use tokio::sync::mpsc;

    use super::*;
    use crate::queue::{GroupSpec, MessageBody};

    fn spec() -> GroupSpec {
        let settings: QueueSettings =
            serde_json::from_value(serde_json::json!({})).expect("defaults");
        GroupSpec {
            group_id: "q1".into(),
            tenant_id: 1,
            tenant: "acme".into(),
            queue: "jobs".into(),
            settings,
            replicas: vec!["n1".into()],
        }
    }

    async fn publish(group: &QueueGroup, text: &str) {
        let message = PublishMessage::new(
            BodyRef {
                log_index: 0,
                slot: 1,
            },
            text.len() as u64,
        );
        let body = MessageBody {
            bytes: text.as_bytes().to_vec(),
            encoding: Default::default(),
            content_type: None,
        };
        let outcome = group
            .propose(
                Command::Publish {
                    messages: vec![message],
                },
                vec![body],
            )
            .await
            .expect("publish");
        assert!(outcome.result.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn compaction_purges_below_the_release_cursor_and_restart_keeps_every_live_message() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (dead_letters, _rx) = mpsc::unbounded_channel();
        let group = QueueGroup::open(
            dir.path(),
            "n1",
            spec(),
            GroupOutlets::new(dead_letters.clone()),
        )
        .await
        .expect("open");
        for i in 0..100 {
            publish(&group, &format!("message {i}")).await;
        }
        let consumer = ConsumerId("c".into());
        let receive = Command::Receive {
            consumer: consumer.clone(),
            max_messages: 100,
            lease_ms: Some(60_000),
        };
        let Ok(Reply::Received { deliveries }) = group
            .propose(receive, Vec::new())
            .await
            .expect("receive")
            .result
        else {
            panic!("receive failed");
        };
        assert_eq!(deliveries.len(), 100);
        // Ack all but the last ten, which go back to ready.
        let receipts = deliveries[..90].iter().map(|d| d.receipt).collect();
        group
            .propose(
                Command::Ack {
                    receipts,
                    refill: None,
                },
                Vec::new(),
            )
            .await
            .expect("ack");
        for delivery in &deliveries[90..] {
            let nack = Command::Nack {
                receipt: delivery.receipt,
                action: NackAction::RequeueNow,
            };
            group.propose(nack, Vec::new()).await.expect("nack");
        }
        let cursor = group.view().read(|q| q.release_cursor());
        assert!(
            cursor > 50,
            "the acked prefix is released (cursor {cursor})"
        );

        let purged_upto = group
            .compact()
            .await
            .expect("compact")
            .expect("something to purge");
        assert_eq!(purged_upto, cursor - 1);
        let deadline = Instant::now() + Duration::from_secs(10);
        while group.log_start_offset() <= 1 {
            assert!(Instant::now() < deadline, "openraft did not purge the log");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            group.log_start_offset() <= cursor,
            "nothing a live message needs is purged"
        );
        group.close().await;
        drop(group);

        // Restart: state from the snapshot, the rest from the log, bodies intact.
        let group = QueueGroup::open(dir.path(), "n1", spec(), GroupOutlets::new(dead_letters))
            .await
            .expect("reopen");
        assert_eq!(group.view().read(|q| q.stats().ready), 10);
        let receive = Command::Receive {
            consumer,
            max_messages: 100,
            lease_ms: Some(60_000),
        };
        let Ok(Reply::Received { deliveries }) = group
            .propose(receive, Vec::new())
            .await
            .expect("receive")
            .result
        else {
            panic!("receive failed");
        };
        let refs = deliveries.iter().map(|d| d.body_ref).collect();
        let bodies = group.read_bodies(refs).await.expect("bodies");
        let texts: Vec<String> = bodies
            .iter()
            .map(|b| String::from_utf8_lossy(&b.bytes).into_owned())
            .collect();
        let expected: Vec<String> = (90..100).map(|i| format!("message {i}")).collect();
        assert_eq!(texts, expected);
        group.close().await;
    }
}
