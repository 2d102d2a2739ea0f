//! [`Cluster`]: this node's place in the cluster, and the façade the gateway talks to.
//!
//! A shopper's requests run where the shopper's partition is led: events are proposed to
//! that raft group, and searches, recommendations and profile reads are answered by the
//! session actor on the leader. The façade serves a request with this node's
//! [`LocalReplicas`] when the partition is led here, and otherwise sends it to the leader's
//! router over the actor mesh; on "not leader" it follows the hint and retries until the
//! request's deadline (`with_leader`). Catalog writes go through the catalog's own raft
//! group, whose every voter writes them into its catalog and index; searches read the local
//! index.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use inkling_actors::model_pool::PoolStats;
use inkling_actors::{ActorError, Inkling, RankedList, RecommendRequest, SearchRequest};
use inkling_domain::{Event, Product, Profile, now_ms};
use inkling_ops::trace::TraceContext;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::membership::Membership;
use crate::mesh::{Mesh, RouterMsg, call_router};
use crate::partition::{CATALOG_GROUP, PartitionId, partition_of};
use crate::raft_types::{Applied, Command, NodeId, Raft};
use crate::replicas::LocalReplicas;
use crate::status::ClusterStatus;

pub use crate::request::{RouteError, UserAnswer, UserCall, UserRecords};

/// How long one attempt may take, and how long to pause between attempts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    /// One forwarding attempt from a node that holds no replica of the partition may take
    /// this long before the next is tried: a frozen leader accepts connections but never
    /// answers. A node with a replica gives up on an attempt as soon as its raft sees
    /// another leader.
    pub attempt_timeout: Duration,
    /// Pause between attempts while a partition has no reachable leader.
    pub retry_pause: Duration,
}

/// Products per catalog proposal. Each carries its passage vectors (about 2 KiB a product
/// in JSON), and a raft append carries up to 64 entries: at 1,000, the largest API batch's
/// part stays inside the size each entry may take (`peer_api::PEER_MAX_BODY_BYTES`).
pub const PRODUCTS_PER_PROPOSAL: usize = 1_000;

const ROUTING: RetryPolicy = RetryPolicy {
    attempt_timeout: Duration::from_millis(2000),
    retry_pause: Duration::from_millis(50),
};

/// Where a partition's known leader is: this node (with what serving here needs), or the
/// node at an HTTP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Leader<Local> {
    Here(Local),
    At(String),
}

/// What this node knows of partitions' leaders: the decisions of [`with_leader`] read
/// nothing else, so they can be checked against a scripted source.
pub(crate) trait LeaderSource {
    /// What an attempt on this node needs (the partition's raft, for proposing).
    type Local;

    /// The partition's leader as this node knows it now; `None` while it knows none.
    async fn leader_of(&self, partition: PartitionId) -> Option<Leader<Self::Local>>;

    /// Whether this node holds a replica of the partition: its raft then notices a new
    /// leader by itself, so an attempt needs no timeout of its own.
    fn holds_replica(&self, partition: PartitionId) -> bool;

    /// Resolves when this node's replica of the partition sees another leader than the one
    /// it sees now; never, for a partition it holds no replica of.
    async fn leader_changes(&self, partition: PartitionId);
}

impl LeaderSource for LocalReplicas {
    type Local = Raft;

    async fn leader_of(&self, partition: PartitionId) -> Option<Leader<Raft>> {
        let Some(raft) = self.member_raft(partition) else {
            return self.leader_hint(partition).await.map(Leader::At);
        };
        let metrics = raft.metrics();
        let metrics = metrics.borrow();
        let leader = metrics.current_leader?;
        if leader == self.me() {
            return Some(Leader::Here(raft.clone()));
        }
        let node = metrics.membership_config.membership().get_node(&leader)?;
        Some(Leader::At(node.addr.clone()))
    }

    fn holds_replica(&self, partition: PartitionId) -> bool {
        self.member_raft(partition).is_some()
    }

    async fn leader_changes(&self, partition: PartitionId) {
        let Some(raft) = self.member_raft(partition) else {
            return std::future::pending().await;
        };
        let mut metrics = raft.metrics();
        let leader = metrics.borrow_and_update().current_leader;
        while metrics.changed().await.is_ok() {
            if metrics.borrow_and_update().current_leader != leader {
                return;
            }
        }
        std::future::pending().await
    }
}

/// Runs `attempt` against the partition's leader until it succeeds, fails for good, or the
/// deadline passes. A "not leader" answer's hint is the next attempt's leader; without one,
/// the source is asked again after a pause.
pub(crate) async fn with_leader<S, T, F, Fut>(
    source: &S,
    policy: RetryPolicy,
    partition: PartitionId,
    deadline: Instant,
    attempt: F,
) -> Result<T, ActorError>
where
    S: LeaderSource,
    F: Fn(Leader<S::Local>, Duration) -> Fut,
    Fut: Future<Output = Result<T, RouteError>>,
{
    let mut hint: Option<String> = None;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let leader = match hint.take() {
            Some(addr) => Some(Leader::At(addr)),
            None => source.leader_of(partition).await,
        };
        let budget = if source.holds_replica(partition) {
            remaining
        } else {
            remaining.min(policy.attempt_timeout)
        };
        let outcome = match leader {
            Some(leader) => {
                let attempt = tokio::time::timeout(budget, attempt(leader, budget));
                tokio::select! {
                    outcome = attempt => outcome.unwrap_or_else(|_| {
                        Err(RouteError::Unreachable("the leader timed out".to_string()))
                    }),
                    () = source.leader_changes(partition) => Err(RouteError::Unreachable(
                        "the partition elected another leader".to_string(),
                    )),
                }
            }
            None => Err(RouteError::NotLeader {
                partition,
                hint: None,
            }),
        };
        let error = match outcome {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        if !error.is_retryable() {
            return Err(error.into_actor_error());
        }
        if Instant::now() + policy.retry_pause >= deadline {
            return Err(match error {
                RouteError::Failed(error) => error,
                other => ActorError::Timeout(format!(
                    "partition {partition} had no reachable leader within the deadline ({other})"
                )),
            });
        }
        if let RouteError::NotLeader {
            hint: Some(addr), ..
        } = &error
        {
            hint = Some(addr.clone());
        }
        tokio::time::sleep(policy.retry_pause).await;
    }
}

/// Which leader, in which term, committed a write to a partition.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Commit {
    pub partition: PartitionId,
    pub term: u64,
    /// The raft id of the leader ([`crate::node_id_of`] of its name).
    pub leader: NodeId,
}

pub struct Cluster {
    pub(crate) replicas: Arc<LocalReplicas>,
    pub(crate) membership: Arc<Membership>,
    mesh: Mesh,
    pub(crate) http: crate::peer_http::PeerHttp,
    /// Idempotency keys for events that arrive without one, so forwarding retries never
    /// apply an event twice.
    event_keys: (u64, AtomicU64),
    request_timeout: Duration,
    initial_catalog_loader: bool,
    pub(crate) draining: AtomicBool,
    pub(crate) drained: tokio::sync::Notify,
    /// What a draining node's exit waits for, as of the last rebalancing pass.
    pub(crate) drain_waiting_for: parking_lot::Mutex<Vec<String>>,
    /// Copies of each index shard the placement wants (`--index-replicas`).
    pub(crate) index_replicas: usize,
    /// Whether this node's index is taking or giving up shards now.
    pub(crate) index_move_in_flight: AtomicBool,
}

impl Cluster {
    pub(crate) fn new(
        replicas: Arc<LocalReplicas>,
        membership: Arc<Membership>,
        mesh: Mesh,
        http: crate::peer_http::PeerHttp,
        request_timeout: Duration,
        initial_catalog_loader: bool,
        index_replicas: usize,
    ) -> Self {
        Self {
            replicas,
            membership,
            mesh,
            http,
            event_keys: (now_ms(), AtomicU64::new(0)),
            request_timeout,
            initial_catalog_loader,
            draining: AtomicBool::new(false),
            drained: tokio::sync::Notify::new(),
            drain_waiting_for: parking_lot::Mutex::new(Vec::new()),
            index_replicas: index_replicas.max(1),
            index_move_in_flight: AtomicBool::new(false),
        }
    }

    /// This node's raft of the group, member or not: peers' raft messages go to it.
    pub fn raft(&self, partition: PartitionId) -> Option<&Raft> {
        self.replicas.raft(partition)
    }

    /// Records events and returns once each is committed by a quorum of its partition's
    /// voters, every one of which has synced it to disk.
    pub async fn record_events(&self, events: Vec<Event>) -> Result<usize, ActorError> {
        Ok(self.record_events_committed(events).await?.0)
    }

    /// [`Self::record_events`], also answering, per partition written, the term and leader
    /// that committed the events: the ownership record the chaos checker verifies.
    pub async fn record_events_committed(
        &self,
        events: Vec<Event>,
    ) -> Result<(usize, Vec<Commit>), ActorError> {
        let count = events.len();
        // A broken build for the chaos checker to catch: acknowledge without proposing.
        if inkling_actors::fail_point_armed("events-ack-before-commit") {
            return Ok((count, Vec::new()));
        }
        let deadline = Instant::now() + self.request_timeout;
        let at_ms = now_ms();
        let mut by_partition: BTreeMap<PartitionId, Vec<Event>> = BTreeMap::new();
        for mut event in events {
            if event.event_id.is_none() {
                event.event_id = Some(self.next_event_key());
            }
            by_partition
                .entry(partition_of(&event.user_id))
                .or_default()
                .push(event);
        }
        let proposals = by_partition
            .into_iter()
            .map(|(partition, events)| async move {
                let command = Command::RecordEvents { at_ms, events };
                let applied = self.propose(partition, command, deadline).await?;
                Ok::<_, ActorError>(Commit {
                    partition,
                    term: applied.term,
                    leader: applied.leader,
                })
            });
        let mut commits = Vec::new();
        for outcome in futures::future::join_all(proposals).await {
            commits.push(outcome?);
        }
        Ok((count, commits))
    }

    /// Stores and indexes products on every replica of the catalog; answers once they are
    /// committed by a quorum and searchable on the catalog group's leader. This node embeds
    /// them, once, and the replicas index the vectors it sends. A large batch is proposed
    /// in parts of [`PRODUCTS_PER_PROPOSAL`], in order: if one fails, the parts before it
    /// stay written, and sending the batch again is safe (writes are upserts).
    pub async fn upsert_products(&self, products: Vec<Product>) -> Result<usize, ActorError> {
        let deadline = Instant::now() + self.replicas.catalog_write_timeout(products.len());
        let writes = self.replicas.actors().embed_passages(products).await?;
        let mut written = 0;
        for part in writes.chunks(PRODUCTS_PER_PROPOSAL) {
            let command = Command::WriteProducts(part.to_vec());
            written += self.propose(CATALOG_GROUP, command, deadline).await?.count;
        }
        Ok(written)
    }

    /// The product as this node's catalog replica holds it: the catalog group's log reaches
    /// every node, so any gateway answers without a hop.
    pub async fn product(&self, id: String) -> Result<Option<Product>, ActorError> {
        self.replicas.actors().product(id).await
    }

    /// Deletes a product from every replica; answers whether the catalog had it.
    pub async fn delete_product(&self, id: String) -> Result<bool, ActorError> {
        let deadline = Instant::now() + self.replicas.catalog_write_timeout(1);
        let command = Command::DeleteProduct(id);
        Ok(self.propose(CATALOG_GROUP, command, deadline).await?.count > 0)
    }

    /// Sets the gauges that are read only when `/metrics` is scraped: the replicas of each
    /// index shard and the free space on this node's disk.
    pub fn publish_scrape_gauges(&self) {
        crate::status::publish_replica_gauges();
        self.replicas.publish_free_disk();
    }

    /// Whether this node loads the initial catalog: the catalog group's first choice, so
    /// one node proposes it and the log carries it to the others.
    pub fn loads_initial_catalog(&self) -> bool {
        self.initial_catalog_loader
    }

    /// Waits until the group has a leader this node knows of, or `timeout` passes.
    pub async fn wait_for_leader(
        &self,
        group: PartitionId,
        timeout: Duration,
    ) -> Result<(), ActorError> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.replicas.leader_of(group).await.is_some() {
                return Ok(());
            }
            tokio::time::sleep(ROUTING.retry_pause).await;
        }
        Err(ActorError::Timeout(format!(
            "raft group {group} elected no leader within {timeout:?}"
        )))
    }

    /// Erases a user from every voter of their partition, and their session.
    pub async fn erase_user(&self, user_id: String) -> Result<(), ActorError> {
        let deadline = Instant::now() + self.request_timeout;
        let partition = partition_of(&user_id);
        self.propose(partition, Command::EraseUser { user_id }, deadline)
            .await
            .map(|_| ())
    }

    pub async fn search(&self, request: SearchRequest) -> Result<RankedList, ActorError> {
        match self.call_user(UserCall::Search(Box::new(request))).await? {
            UserAnswer::Ranked(list) => Ok(*list),
            _ => Err(unexpected_answer()),
        }
    }

    pub async fn recommend(&self, request: RecommendRequest) -> Result<RankedList, ActorError> {
        match self
            .call_user(UserCall::Recommend(Box::new(request)))
            .await?
        {
            UserAnswer::Ranked(list) => Ok(*list),
            _ => Err(unexpected_answer()),
        }
    }

    pub async fn profile(&self, user_id: String) -> Result<Profile, ActorError> {
        match self.call_user(UserCall::Profile(user_id)).await? {
            UserAnswer::Profile(profile) => Ok(*profile),
            _ => Err(unexpected_answer()),
        }
    }

    /// Everything stored about the user (profile, the events their partition's log holds,
    /// whether a session is live), read on the partition's leader.
    pub async fn export_user(&self, user_id: String) -> Result<UserRecords, ActorError> {
        match self.call_user(UserCall::Export(user_id)).await? {
            UserAnswer::Export(records) => Ok(*records),
            _ => Err(unexpected_answer()),
        }
    }

    /// This node's model pool (device, workers, queue), for its health; none without an
    /// encoder.
    pub async fn local_model_pool_stats(&self) -> Option<Result<PoolStats, ActorError>> {
        self.replicas.model_pool_stats().await
    }

    /// The index shards no copy serves reads of, that this node knows of: for readiness.
    pub fn unserved_index_shards(&self) -> Vec<usize> {
        self.replicas.actors().unserved_shards()
    }

    /// How many products this node's catalog replica holds, for its health.
    pub async fn local_catalog_size(&self) -> Result<usize, ActorError> {
        self.replicas.catalog_size().await
    }

    /// How many sessions are live on this node, for its health.
    pub async fn local_active_sessions(&self) -> Result<u64, ActorError> {
        self.replicas.active_sessions().await
    }

    /// The half-life of profile affinities, in milliseconds: how a profile is presented.
    pub fn profile_half_life_ms(&self) -> u64 {
        self.replicas.profile_half_life_ms()
    }

    /// This node's actors, which [`Self::shutdown`] leaves running: the node stops them
    /// after the cluster, once it has dropped the cluster.
    pub fn actors_to_stop(&self) -> Arc<Inkling> {
        self.replicas.actors().clone()
    }

    /// Members, partitions and their leaders, as this node sees them.
    pub async fn status(&self) -> ClusterStatus {
        let mut status = crate::status::gather(&self.replicas, &self.membership, &self.mesh).await;
        status.waiting_for_admission = self.waiting_for_admission().await;
        status.drain_waiting_for = self.drain_waiting_for();
        status.index_shards_held = self.replicas.actors().held_shards().into_iter().collect();
        status
    }

    /// What this node's own replica stores for the user, without routing: for operators
    /// and tests checking that every replica agrees (an erased user is gone from each).
    pub fn stored_profile(
        &self,
        user_id: &str,
    ) -> Result<Option<inkling_domain::Profile>, ActorError> {
        self.replicas.stored_profile(user_id)
    }

    /// Whether the peer plane answers `name`: a node of some raft group's membership here,
    /// or a live member of gossip (which only holders of the cluster secret can speak).
    pub async fn counts_as_member(&self, name: &str) -> bool {
        let id = crate::raft_types::node_id_of(name);
        let in_a_group = self.replicas.rafts().any(|(_, raft)| {
            raft.metrics()
                .borrow()
                .membership_config
                .membership()
                .get_node(&id)
                .is_some()
        });
        in_a_group
            || self
                .membership
                .live_members()
                .await
                .iter()
                .any(|member| member.name == name)
    }

    /// Stops the raft groups and gossip; the actors are the node's to stop.
    pub async fn shutdown(&self) {
        self.replicas.stop_rafts().await;
        self.mesh.leave();
        self.membership.leave().await;
    }

    fn next_event_key(&self) -> String {
        let (incarnation, counter) = &self.event_keys;
        let sequence = counter.fetch_add(1, Ordering::Relaxed);
        format!("{}/{incarnation}/{sequence}", self.replicas.name())
    }

    async fn propose(
        &self,
        partition: PartitionId,
        command: Command,
        deadline: Instant,
    ) -> Result<Applied, ActorError> {
        let replicas = &*self.replicas;
        with_leader(replicas, ROUTING, partition, deadline, |leader, budget| {
            let command = command.clone();
            async move {
                match leader {
                    Leader::Here(raft) => replicas.propose_to(&raft, partition, command).await,
                    Leader::At(addr) => {
                        let trace = TraceContext::current();
                        let message = |reply| RouterMsg::Propose(partition, command, trace, reply);
                        call_router(&addr, message, budget).await
                    }
                }
            }
        })
        .await
    }

    async fn call_user(&self, call: UserCall) -> Result<UserAnswer, ActorError> {
        let deadline = Instant::now() + self.request_timeout;
        let partition = partition_of(call.user_id());
        let replicas = &*self.replicas;
        with_leader(replicas, ROUTING, partition, deadline, |leader, budget| {
            let call = call.clone();
            async move {
                match leader {
                    Leader::Here(_) => replicas.serve(call).await,
                    Leader::At(addr) => {
                        let trace = TraceContext::current();
                        let message = |reply| RouterMsg::User(call, trace, reply);
                        call_router(&addr, message, budget).await
                    }
                }
            }
        })
        .await
    }
}

fn unexpected_answer() -> ActorError {
    ActorError::Unavailable("the leader answered another kind of request".to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    const PARTITION: PartitionId = 3;

    /// Short enough that the cases that run into their deadline end at once.
    const POLICY: RetryPolicy = RetryPolicy {
        attempt_timeout: Duration::from_millis(20),
        retry_pause: Duration::from_millis(1),
    };
    /// Long enough that no case expected to succeed meets it, however busy the machine.
    const AMPLE: Duration = Duration::from_secs(10);
    const SHORT: Duration = Duration::from_millis(100);

    /// What one attempt answers.
    #[derive(Clone)]
    enum Answer {
        Served,
        Fails(RouteError),
        /// Never answers: a frozen leader.
        Hangs,
    }

    /// A leader source that answers from a script, and records where each attempt went.
    struct ScriptedLeaders {
        /// What `leader_of` answers, call after call; the last answer repeats.
        leaders: Vec<Option<Leader<()>>>,
        /// What each attempt answers, in order; the last answer repeats.
        answers: Vec<Answer>,
        holds_replica: bool,
        /// Attempts (counting from 1) during which the partition elects another leader.
        elections: Vec<usize>,
        asked: Mutex<usize>,
        tried: Mutex<Vec<String>>,
    }

    impl ScriptedLeaders {
        /// Records the attempt before returning its future, so `leader_changes`, created
        /// next, knows which attempt it races.
        fn attempt(&self, leader: Leader<()>) -> impl Future<Output = Result<(), RouteError>> {
            let mut tried = self.tried.lock().unwrap();
            tried.push(match leader {
                Leader::Here(()) => "here".to_string(),
                Leader::At(addr) => addr,
            });
            let answer = self.answers[(tried.len() - 1).min(self.answers.len() - 1)].clone();
            async move {
                match answer {
                    Answer::Served => Ok(()),
                    Answer::Fails(error) => Err(error),
                    Answer::Hangs => std::future::pending().await,
                }
            }
        }
    }

    impl LeaderSource for ScriptedLeaders {
        type Local = ();

        async fn leader_of(&self, _: PartitionId) -> Option<Leader<()>> {
            let mut asked = self.asked.lock().unwrap();
            let answer = self.leaders[(*asked).min(self.leaders.len() - 1)].clone();
            *asked += 1;
            answer
        }

        fn holds_replica(&self, _: PartitionId) -> bool {
            self.holds_replica
        }

        async fn leader_changes(&self, _: PartitionId) {
            let attempt = self.tried.lock().unwrap().len();
            if !self.elections.contains(&attempt) {
                std::future::pending::<()>().await;
            }
        }
    }

    struct Case {
        name: &'static str,
        leaders: Vec<Option<Leader<()>>>,
        answers: Vec<Answer>,
        holds_replica: bool,
        elections: Vec<usize>,
        deadline: Duration,
        /// `Ok` or the kind of error the caller gets.
        outcome: Result<(), &'static str>,
        /// Where the attempts went, in order.
        tried: &'static [&'static str],
        /// Whether more attempts, like the last, may follow until the deadline.
        then_retries: bool,
    }

    impl Default for Case {
        fn default() -> Self {
            Self {
                name: "",
                leaders: vec![at("b")],
                answers: vec![Answer::Served],
                holds_replica: false,
                elections: Vec::new(),
                deadline: AMPLE,
                outcome: Ok(()),
                tried: &["b"],
                then_retries: false,
            }
        }
    }

    fn here() -> Option<Leader<()>> {
        Some(Leader::Here(()))
    }

    fn at(addr: &str) -> Option<Leader<()>> {
        Some(Leader::At(addr.to_string()))
    }

    fn not_leader(hint: Option<&str>) -> Answer {
        Answer::Fails(RouteError::NotLeader {
            partition: PARTITION,
            hint: hint.map(str::to_string),
        })
    }

    fn unreachable() -> Answer {
        Answer::Fails(RouteError::Unreachable("connection refused".to_string()))
    }

    fn failed(error: ActorError) -> Answer {
        Answer::Fails(RouteError::Failed(error))
    }

    fn kind(error: &ActorError) -> &'static str {
        match error {
            ActorError::Timeout(_) => "timeout",
            ActorError::Unavailable(_) => "unavailable",
            ActorError::Storage(_) => "storage",
            ActorError::Overloaded(_) => "overloaded",
            ActorError::InsufficientStorage(_) => "insufficient_storage",
        }
    }

    async fn check(case: Case) {
        let source = ScriptedLeaders {
            leaders: case.leaders,
            answers: case.answers,
            holds_replica: case.holds_replica,
            elections: case.elections,
            asked: Mutex::new(0),
            tried: Mutex::new(Vec::new()),
        };
        let deadline = Instant::now() + case.deadline;
        let outcome = with_leader(&source, POLICY, PARTITION, deadline, |leader, _budget| {
            source.attempt(leader)
        })
        .await;
        let name = case.name;
        let answered = outcome.as_ref().map(|_| ()).map_err(kind);
        assert_eq!(answered, case.outcome, "{name}: {outcome:?}");
        let tried = source.tried.into_inner().unwrap();
        let (first, rest) = tried.split_at(case.tried.len().min(tried.len()));
        assert_eq!(first, case.tried, "{name}: tried {tried:?}");
        if case.then_retries {
            assert!(!rest.is_empty(), "{name}: no retry in {tried:?}");
            assert!(
                rest.iter().all(|addr| Some(addr) == first.last()),
                "{name}: {tried:?}"
            );
        } else {
            assert!(rest.is_empty(), "{name}: tried {tried:?}");
        }
    }

    #[tokio::test]
    async fn requests_go_to_the_leader_and_follow_hints_until_the_deadline() {
        let cases = [
            Case {
                name: "a partition led here is served here",
                leaders: vec![here()],
                tried: &["here"],
                ..Case::default()
            },
            Case {
                name: "a partition led elsewhere is sent to its leader",
                ..Case::default()
            },
            Case {
                name: "a 'not leader' hint is where the next attempt goes",
                answers: vec![not_leader(Some("c")), Answer::Served],
                tried: &["b", "c"],
                ..Case::default()
            },
            Case {
                name: "'not leader' without a hint asks the source again",
                leaders: vec![at("b"), at("c")],
                answers: vec![not_leader(None), Answer::Served],
                tried: &["b", "c"],
                ..Case::default()
            },
            Case {
                name: "no known leader waits for one",
                leaders: vec![None, None, here()],
                tried: &["here"],
                ..Case::default()
            },
            Case {
                name: "an unreachable leader is tried again",
                answers: vec![unreachable(), Answer::Served],
                tried: &["b", "b"],
                ..Case::default()
            },
            Case {
                name: "a frozen leader is given up after the attempt timeout",
                answers: vec![Answer::Hangs, Answer::Served],
                tried: &["b", "b"],
                ..Case::default()
            },
            Case {
                name: "a replica's election cuts an attempt short",
                answers: vec![Answer::Hangs, Answer::Served],
                holds_replica: true,
                elections: vec![1],
                tried: &["b", "b"],
                ..Case::default()
            },
            Case {
                name: "a replica waits on its leader until the deadline",
                answers: vec![Answer::Hangs],
                holds_replica: true,
                deadline: SHORT,
                outcome: Err("timeout"),
                ..Case::default()
            },
            Case {
                name: "a failure that will not pass is answered at once",
                answers: vec![failed(ActorError::Storage("disk".to_string()))],
                outcome: Err("storage"),
                ..Case::default()
            },
            Case {
                name: "an unavailable actor is retried, and its error answered at the deadline",
                answers: vec![failed(ActorError::Unavailable("restarting".to_string()))],
                deadline: SHORT,
                outcome: Err("unavailable"),
                then_retries: true,
                ..Case::default()
            },
            Case {
                name: "no leader until the deadline times out",
                leaders: vec![None],
                deadline: SHORT,
                outcome: Err("timeout"),
                tried: &[],
                ..Case::default()
            },
            Case {
                name: "an unreachable leader until the deadline times out",
                answers: vec![unreachable()],
                deadline: SHORT,
                outcome: Err("timeout"),
                then_retries: true,
                ..Case::default()
            },
        ];
        for case in cases {
            check(case).await;
        }
    }
}
