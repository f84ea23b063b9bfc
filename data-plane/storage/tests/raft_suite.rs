//! openraft's own storage conformance suite run against the segment log store, plus
//! persistence checks across reopen.

mod common;

use std::io;

use common::{Entry, TestConfig, TestStateMachine};
use openraft::alias::{LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::vote::RaftLeaderIdExt;
use openraft::{EntryPayload, RaftLogReader, StorageError};
use sluice_storage::raft::{Records, SegmentLogStore};
use sluice_storage::{LogConfig, Record};

fn small_segments() -> LogConfig {
    // Tiny segments so the suite's dozen entries span several segment files.
    LogConfig {
        segment_bytes: 200,
        index_interval_bytes: 64,
        ..LogConfig::default()
    }
}

struct Builder;

impl StoreBuilder<TestConfig, SegmentLogStore<TestConfig>, TestStateMachine, tempfile::TempDir>
    for Builder
{
    async fn build(
        &self,
    ) -> Result<
        (
            tempfile::TempDir,
            SegmentLogStore<TestConfig>,
            TestStateMachine,
        ),
        StorageError<TestConfig>,
    > {
        let dir =
            tempfile::tempdir().map_err(|e| StorageError::read(TestConfig::err_from_error(&e)))?;
        let store = SegmentLogStore::open(dir.path().join("log"), small_segments())
            .await
            .map_err(|e| StorageError::read(TestConfig::err_from_error(&io::Error::from(e))))?;
        let sm = TestStateMachine::open(&dir.path().join("snapshots"))
            .map_err(|e| StorageError::read(TestConfig::err_from_error(&io::Error::from(e))))?;
        Ok((dir, store, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    TestConfig::run(async {
        Suite::test_all(Builder).await.unwrap();
    });
}

fn log_id(term: u64, index: u64) -> LogIdOf<TestConfig> {
    LogIdOf::<TestConfig>::new(
        <TestConfig as openraft::RaftTypeConfig>::LeaderId::new_committed(term, 1),
        index,
    )
}

fn data_entry(term: u64, index: u64, value: &str) -> Entry {
    Entry::new_normal(
        log_id(term, index),
        Records(vec![Record::from_value(value)]),
    )
}

async fn append_and_wait(store: &mut SegmentLogStore<TestConfig>, entries: Vec<Entry>) {
    let (tx, rx) = TestConfig::oneshot();
    store.append(entries, IOFlushed::signal(tx)).await.unwrap();
    rx.await.unwrap().unwrap();
}

#[tokio::test]
async fn state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = SegmentLogStore::<TestConfig>::open(dir.path(), small_segments())
            .await
            .unwrap();
        let entries = (0..20)
            .map(|i| data_entry(1 + i / 10, i, &format!("v{i}")))
            .collect();
        append_and_wait(&mut store, entries).await;
        store
            .save_vote(&VoteOf::<TestConfig>::new(2, 1))
            .await
            .unwrap();
        store.save_committed(Some(log_id(2, 15))).await.unwrap();
        store.purge(log_id(1, 4)).await.unwrap();
        store.truncate_after(Some(log_id(2, 17))).await.unwrap();
        store.log().close().await.unwrap();
    }
    let mut store = SegmentLogStore::<TestConfig>::open(dir.path(), small_segments())
        .await
        .unwrap();
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 4)));
    assert_eq!(state.last_log_id, Some(log_id(2, 17)));
    assert_eq!(
        store.read_vote().await.unwrap(),
        Some(VoteOf::<TestConfig>::new(2, 1))
    );
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(2, 15)));
    let entries = store.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(entries.first().map(|e| e.log_id.index), Some(5));
    assert_eq!(entries.len(), 13);
    for e in &entries {
        let i = e.log_id.index;
        assert_eq!(
            e,
            &data_entry(1 + i / 10, i, &format!("v{i}")).with_ts_of(e)
        );
    }
}

/// Record timestamps are taken at creation; compare everything else.
trait WithTsOf {
    fn with_ts_of(self, other: &Entry) -> Entry;
}

impl WithTsOf for Entry {
    fn with_ts_of(mut self, other: &Entry) -> Entry {
        if let (EntryPayload::Normal(a), EntryPayload::Normal(b)) =
            (&mut self.payload, &other.payload)
        {
            for (ra, rb) in a.0.iter_mut().zip(&b.0) {
                ra.timestamp = rb.timestamp;
            }
        }
        self
    }
}
