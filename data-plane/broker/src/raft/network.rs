//! How a group reaches its peers. With replication factor 1 the only voter is
//! this node and openraft never sends an RPC; [`SingleVoterNetwork`] reports
//! any attempt as unreachable. The replicated network (one connection per
//! peer broker carrying every group's RPCs) plugs in at [`network_for`].

use std::future::Future;

use openraft::BasicNode;
use openraft::alias::{SnapshotOf, VoteOf};
use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, v2::RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};

use super::GroupConfig;

/// The network of a group whose replicas are `replicas` (broker node ids).
pub fn network_for(_replicas: &[String]) -> SingleVoterNetwork {
    SingleVoterNetwork
}

/// A group with one voter: there is nobody to talk to.
pub struct SingleVoterNetwork;

fn unreachable() -> Unreachable<GroupConfig> {
    Unreachable::new(&std::io::Error::other(
        "single-voter group: no peer network yet",
    ))
}

impl RaftNetworkV2<GroupConfig> for SingleVoterNetwork {
    type SnapshotData = std::io::Cursor<Vec<u8>>;

    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<GroupConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<GroupConfig>, RPCError<GroupConfig>> {
        Err(RPCError::Unreachable(unreachable()))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<GroupConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<GroupConfig>, RPCError<GroupConfig>> {
        Err(RPCError::Unreachable(unreachable()))
    }

    async fn full_snapshot(
        &mut self,
        _vote: VoteOf<GroupConfig>,
        _snapshot: SnapshotOf<GroupConfig, Self::SnapshotData>,
        _cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<GroupConfig>, StreamingError<GroupConfig>> {
        Err(StreamingError::Unreachable(unreachable()))
    }
}

impl RaftNetworkFactory<GroupConfig> for SingleVoterNetwork {
    type Network = SingleVoterNetwork;

    async fn new_client(&mut self, _target: u64, _node: &BasicNode) -> Self::Network {
        SingleVoterNetwork
    }
}
