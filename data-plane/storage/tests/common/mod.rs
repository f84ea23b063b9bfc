//! Test Raft type config and a minimal state machine (counts applied records, keeps
//! snapshots in a `SnapshotStore`), shared by the Raft tests.
#![allow(dead_code)]

use std::io::{self, Cursor};
use std::sync::Arc;

use futures_util::{Stream, TryStreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use sluice_storage::raft::{Records, SnapshotStore};
use tokio::sync::Mutex;

openraft::declare_raft_types!(
    pub TestConfig:
        D = Records,
        R = u64,
);

pub type Entry = <TestConfig as openraft::RaftTypeConfig>::Entry;

#[derive(Default)]
pub struct SmInner {
    pub last_applied: Option<LogIdOf<TestConfig>>,
    pub membership: StoredMembershipOf<TestConfig>,
    pub records_applied: u64,
}

/// Counts applied records; snapshots are that count.
#[derive(Clone)]
pub struct TestStateMachine {
    pub inner: Arc<Mutex<SmInner>>,
    pub snapshots: SnapshotStore,
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

impl TestStateMachine {
    /// A fresh state machine whose snapshots live in `dir`.
    pub fn open(dir: &std::path::Path) -> sluice_storage::Result<Self> {
        Ok(TestStateMachine {
            inner: Arc::new(Mutex::new(SmInner::default())),
            snapshots: SnapshotStore::open(dir)?,
        })
    }
}
