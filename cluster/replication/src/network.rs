//! Raft messages between nodes, over HTTP on the node's peer listener, each signed with a
//! proof of the cluster secret.
//!
//! Raft has its own connection pool here, apart from any actor traffic, so heartbeats never
//! queue behind a large search answer. Every call carries openraft's time-to-live as its
//! timeout.

use std::time::Duration;

use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::partition::PartitionId;
use crate::peer_http::PeerHttp;
use crate::raft_types::{NodeId, PartitionRaft};

/// The HTTP paths a node's peer listener serves raft messages on.
pub fn raft_path(partition: PartitionId, message: &str) -> String {
    format!("/peer/raft/{partition}/{message}")
}

/// Makes one client per (partition, peer); they share the HTTP connection pool.
#[derive(Clone)]
pub struct RaftNetworkFor {
    partition: PartitionId,
    http: PeerHttp,
}

impl RaftNetworkFor {
    pub fn new(partition: PartitionId, http: PeerHttp) -> Self {
        Self { partition, http }
    }
}

impl RaftNetworkFactory<PartitionRaft> for RaftNetworkFor {
    type Network = PeerRaft;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerRaft {
        PeerRaft {
            partition: self.partition,
            target,
            node: node.clone(),
            http: self.http.clone(),
        }
    }
}

pub struct PeerRaft {
    partition: PartitionId,
    target: NodeId,
    node: BasicNode,
    http: PeerHttp,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl PeerRaft {
    async fn call<Request, Answer, E>(
        &self,
        message: &str,
        request: &Request,
        ttl: Duration,
    ) -> RpcResult<Answer, E>
    where
        Request: Serialize,
        Answer: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let path = raft_path(self.partition, message);
        let response = self
            .http
            .post_json(&self.node.addr, &path, request, ttl)
            .await
            .map_err(|error| {
                if error.is_connect() {
                    RPCError::Unreachable(Unreachable::new(&error))
                } else {
                    RPCError::Network(NetworkError::new(&error))
                }
            })?;
        if !response.status().is_success() {
            // A refusal (not a member, a bad proof, no such group) is no answer from raft.
            let error =
                std::io::Error::other(format!("{} answered {}", self.node.addr, response.status()));
            return Err(RPCError::Network(NetworkError::new(&error)));
        }
        let answer: Result<Answer, RaftError<NodeId, E>> = response
            .json()
            .await
            .map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        answer.map_err(|error| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                error,
            ))
        })
    }
}

impl RaftNetwork<PartitionRaft> for PeerRaft {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<PartitionRaft>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        self.call("append", &request, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest<PartitionRaft>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call("snapshot", &request, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        request: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        self.call("vote", &request, option.hard_ttl()).await
    }
}
