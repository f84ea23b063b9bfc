//! openraft's own storage conformance suite run against the segment log store, plus
//! persistence checks across reopen. The state machine here is a minimal test one that
//! keeps its snapshots in a [`SnapshotStore`].

use std::io::{self, Cursor};
use std::sync::Arc;

use futures_util::{Stream, TryStreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, IOFlushed, RaftLogStorage, RaftStateMachine};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::vote::RaftLeaderIdExt;
use openraft::{EntryPayload, OptionalSend, RaftLogReader, RaftSnapshotBuilder, StorageError};
use sluice_storage::raft::{Records, SegmentLogStore, SnapshotStore};
use sluice_storage::{LogConfig, Record};
use tokio::sync::Mutex;

openraft::declare_raft_types!(
    pub TestConfig:
        D = Records,
        R = u64,
);

type Entry = <TestConfig as openraft::RaftTypeConfig>::Entry;

#[derive(Default)]
struct SmInner {
    last_applied: Option<LogIdOf<TestConfig>>,
    membership: StoredMembershipOf<TestConfig>,
    records_applied: u64,
}

/// Counts applied records; snapshots are that count.
#[derive(Clone)]
struct TestStateMachine {
    inner: Arc<Mutex<SmInner>>,
    snapshots: SnapshotStore,
}

impl RaftSnapshotBuilder<TestConfig> for TestStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(
        &mut self,
    ) -> Result<SnapshotOf<TestConfig, Cursor<Vec<u8>>>, io::Error> {
        let inner = self.inner.lock().await;
        let meta = SnapshotMetaOf::<TestConfig> {
            last_log_id: inner.last_applied,
            last_membership: inner.membership.clone(),
        };
        let data = inner.records_applied.to_le_bytes().to_vec();
        self.snapshots.save(&meta, &data)?;
        Ok(SnapshotOf::<TestConfig, _> {
            meta,
            snapshot: Cursor::new(data),
        })
    }
}

impl RaftStateMachine<TestConfig> for TestStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TestConfig>>, StoredMembershipOf<TestConfig>), io::Error> {
        let inner = self.inner.lock().await;
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TestConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut inner = self.inner.lock().await;
        while let Some((entry, responder)) = entries.try_next().await? {
            inner.last_applied = Some(entry.log_id);
            match &entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(records) => inner.records_applied += records.0.len() as u64,
                EntryPayload::Membership(m) => {
                    inner.membership =
                        StoredMembershipOf::<TestConfig>::new(Some(entry.log_id), m.clone());
                }
            }
            if let Some(r) = responder {
                r.send(inner.records_applied);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TestConfig>,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let data = snapshot.into_inner();
        self.snapshots.save(meta, &data)?;
        let mut count = [0u8; 8];
        let n = data.len().min(8);
        count[..n].copy_from_slice(&data[..n]);
        let mut inner = self.inner.lock().await;
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.records_applied = u64::from_le_bytes(count);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TestConfig, Self::SnapshotData>>, io::Error> {
        Ok(self
            .snapshots
            .load_latest::<SnapshotMetaOf<TestConfig>>()?
            .map(|(meta, data)| SnapshotOf::<TestConfig, _> {
                meta,
                snapshot: Cursor::new(data),
            }))
    }
}

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
        let snapshots = SnapshotStore::open(dir.path().join("snapshots"))
            .map_err(|e| StorageError::read(TestConfig::err_from_error(&io::Error::from(e))))?;
        let sm = TestStateMachine {
            inner: Arc::new(Mutex::new(SmInner::default())),
            snapshots,
        };
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
