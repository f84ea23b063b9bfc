//! A real single-node openraft group on the segment log: concurrent client writes are
//! committed through group commit, and after a restart the log, vote and committed
//! index bring the state machine back.

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use common::{TestConfig, TestStateMachine};
use openraft::alias::{SnapshotOf, VoteOf};
use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, v2::RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Config, Raft, ServerState};
use sluice_storage::raft::{Records, SegmentLogStore};
use sluice_storage::{LogConfig, Record};

/// A single voter never sends RPCs; any attempt is reported unreachable.
struct NoNetwork;

fn unreachable() -> RPCError<TestConfig> {
    RPCError::Unreachable(Unreachable::new(&std::io::Error::other("single-node test")))
}

impl RaftNetworkV2<TestConfig> for NoNetwork {
    type SnapshotData = std::io::Cursor<Vec<u8>>;

    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TestConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TestConfig>, RPCError<TestConfig>> {
        Err(unreachable())
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<TestConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TestConfig>, RPCError<TestConfig>> {
        Err(unreachable())
    }

    async fn full_snapshot(
        &mut self,
        _vote: VoteOf<TestConfig>,
        _snapshot: SnapshotOf<TestConfig, Self::SnapshotData>,
        _cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TestConfig>, StreamingError<TestConfig>> {
        Err(StreamingError::Unreachable(Unreachable::new(
            &std::io::Error::other("single-node test"),
        )))
    }
}

impl RaftNetworkFactory<TestConfig> for NoNetwork {
    type Network = NoNetwork;

    async fn new_client(&mut self, _target: u64, _node: &BasicNode) -> Self::Network {
        NoNetwork
    }
}

type TestRaft = Raft<TestConfig, TestStateMachine>;

async fn start(dir: &std::path::Path) -> (TestRaft, TestStateMachine) {
    let config = Arc::new(
        Config {
            heartbeat_interval: 50,
            election_timeout_min: 200,
            election_timeout_max: 400,
            ..Default::default()
        }
        .validate()
        .unwrap(),
    );
    let store = SegmentLogStore::<TestConfig>::open(
        dir.join("log"),
        LogConfig {
            segment_bytes: 16 * 1024,
            ..LogConfig::default()
        },
    )
    .await
    .unwrap();
    let sm = TestStateMachine::open(&dir.join("snapshots")).unwrap();
    let raft = TestRaft::new(1, config, NoNetwork, store, sm.clone())
        .await
        .unwrap();
    (raft, sm)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_group_commits_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let (raft, sm) = start(dir.path()).await;
    raft.initialize(BTreeMap::from([(1u64, BasicNode::default())]))
        .await
        .unwrap();
    raft.wait(Some(Duration::from_secs(10)))
        .state(ServerState::Leader, "leader")
        .await
        .unwrap();

    let mut writers = Vec::new();
    for w in 0..16 {
        let raft = raft.clone();
        writers.push(tokio::spawn(async move {
            let mut indexes = Vec::new();
            for i in 0..25 {
                let value = format!("writer {w} message {i}");
                let resp = raft
                    .client_write(Records(vec![Record::from_value(value)]))
                    .await
                    .unwrap();
                indexes.push(resp.log_id.index);
            }
            indexes
        }));
    }
    let mut indexes = Vec::new();
    for w in writers {
        indexes.extend(w.await.unwrap());
    }
    indexes.sort_unstable();
    indexes.dedup();
    assert_eq!(indexes.len(), 400);
    let last = *indexes.last().unwrap();
    assert_eq!(sm.inner.lock().await.records_applied, 400);
    raft.shutdown().await.unwrap();
    drop(raft);

    // Restart on the same directory with an empty in-memory state machine.
    let (raft, sm) = start(dir.path()).await;
    raft.wait(Some(Duration::from_secs(10)))
        .applied_index_at_least(Some(last), "re-applied after restart")
        .await
        .unwrap();
    assert_eq!(sm.inner.lock().await.records_applied, 400);
    raft.wait(Some(Duration::from_secs(10)))
        .state(ServerState::Leader, "leader again")
        .await
        .unwrap();
    let resp = raft
        .client_write(Records(vec![Record::from_value("after restart")]))
        .await
        .unwrap();
    assert!(resp.log_id.index > last);
    assert_eq!(resp.data, 401);
    raft.shutdown().await.unwrap();
}
