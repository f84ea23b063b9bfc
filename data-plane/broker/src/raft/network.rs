//! How a group reaches its peers. With replication factor 1 the only voter is
//! this node and openraft never sends an RPC; [`SingleVoterNetwork`] reports
//! any attempt as unreachable. The replicated network (one connection per
//! peer broker carrying every group's RPCs) plugs in at [`network_for`].

use std::future::Future;

use openraft::alias::{SnapshotOf, VoteOf};
use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, v2::RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RaftTypeConfig};

/// The network of a group whose replicas are `replicas` (broker node ids).
pub fn network_for(_replicas: &[String]) -> SingleVoterNetwork {
    SingleVoterNetwork
}

/// A group with one voter: there is nobody to talk to.
pub struct SingleVoterNetwork;

fn unreachable<C: RaftTypeConfig>() -> Unreachable<C> {
    Unreachable::new(&std::io::Error::other(
        "single-voter group: no peer network yet",
    ))
}

impl<C> RaftNetworkV2<C> for SingleVoterNetwork
where
    C: RaftTypeConfig<NodeId = u64, Node = BasicNode>,
{
    type SnapshotData = std::io::Cursor<Vec<u8>>;

    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<C>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        Err(RPCError::Unreachable(unreachable()))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<C>,
        _option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        Err(RPCError::Unreachable(unreachable()))
    }

    async fn full_snapshot(
        &mut self,
        _vote: VoteOf<C>,
        _snapshot: SnapshotOf<C, Self::SnapshotData>,
        _cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        Err(StreamingError::Unreachable(unreachable()))
    }
}

impl<C> RaftNetworkFactory<C> for SingleVoterNetwork
where
    C: RaftTypeConfig<NodeId = u64, Node = BasicNode>,
{
    type Network = SingleVoterNetwork;

    async fn new_client(&mut self, _target: u64, _node: &BasicNode) -> Self::Network {
        SingleVoterNetwork
    }
}
