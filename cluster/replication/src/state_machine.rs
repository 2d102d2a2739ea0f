//! The state machines of the raft groups: for a user partition, the profile store itself;
//! for the catalog group, the catalog and the index shards.
//!
//! Every voter folds the same committed events, in log order and with the proposer's clock,
//! into its own profile store, so any voter can take over a user with the full profile; and
//! every voter writes the same products, in log order, into its own catalog and index. The
//! applied position is written after the state it covers: a crash can only leave it
//! behind, and replaying an entry is harmless because every event carries an idempotency
//! key (the gateway gives one to events sent without) and product writes are upserts.
//!
//! Erasing a user deletes the profile and destroys the user's keys on this node, durably,
//! before the erasure counts as applied: what sled's files still hold of the user (log
//! entries, old profile versions, the stored snapshot) is sealed under those keys
//! (`inkling_storage::user_keys`). The stored snapshot keeps each profile sealed too; read
//! back, it leaves out the users erased since it was built. A replica that catches up by
//! installing a snapshot destroys the keys of its partition's users the snapshot no longer
//! holds, so an erasure it never applied still shreds what it kept.

use std::collections::HashSet;
use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use inkling_actors::{ActorError, Inkling};
use inkling_domain::{Product, ProductWrite, Profile};
use inkling_storage::{GroupCommit, KeyId, KvEngine, ProfileStore, UserKeys};
use openraft::storage::RaftStateMachine;
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StoredMembership,
};
use serde::{Deserialize, Serialize};

use crate::log_store::{PartitionRecords, pack_parts, storage_error, unpack_parts};
use crate::partition::{PARTITIONS, PartitionId, partition_of};
use crate::raft_types::{Applied, Command, Entry, LogId, NodeId, PartitionRaft, StorageError};

type Membership = StoredMembership<NodeId, openraft::BasicNode>;
type Meta = SnapshotMeta<NodeId, openraft::BasicNode>;

/// What a snapshot holds: every profile of a partition's users, or every product of the
/// catalog with its passage vector.
#[derive(Serialize, Deserialize, Default)]
struct SnapshotBody {
    profiles: Vec<Profile>,
    /// Products without vectors: what snapshots held before they carried vectors.
    products: Vec<Product>,
    #[serde(default)]
    product_writes: Vec<ProductWrite>,
}

impl SnapshotBody {
    /// Every product the snapshot holds, with the vectors it carries.
    fn catalog_writes(&self) -> impl Iterator<Item = ProductWrite> + '_ {
        let unembedded = self.products.iter().cloned().map(ProductWrite::unembedded);
        unembedded.chain(self.product_writes.iter().cloned())
    }
}

/// What a raft group replicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    Users,
    Catalog,
}

/// The stored snapshot as written before profiles were sealed: its metadata and body.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: Meta,
    body: Vec<u8>,
}

/// The stored snapshot's header; each of its sealed parts is the profile of the user
/// named by the key id at the same place in `users`.
#[derive(Deserialize)]
struct SealedSnapshot {
    meta: Meta,
    products: Vec<Product>,
    #[serde(default)]
    product_writes: Vec<ProductWrite>,
    users: Vec<String>,
}

/// [`SealedSnapshot`] as written.
#[derive(Serialize)]
struct SealedSnapshotRef<'a> {
    meta: &'a Meta,
    products: &'a [Product],
    product_writes: &'a [ProductWrite],
    users: Vec<String>,
}

#[derive(Clone)]
pub struct StateMachine {
    /// The group's id: a user partition, or the catalog group's.
    group: PartitionId,
    kind: GroupKind,
    records: PartitionRecords,
    profiles: ProfileStore,
    engine: Arc<dyn KvEngine>,
    inkling: Arc<Inkling>,
    commit: GroupCommit,
}

/// How long a catalog write may keep failing for a passing reason before the replica gives
/// up on the group: a storage error from apply stops the group on this node.
const TRANSIENT_APPLY_LIMIT: Duration = Duration::from_secs(600);
const APPLY_RETRY: Duration = Duration::from_millis(200);

/// Runs a committed catalog write until it succeeds. An apply must not fail for a passing
/// reason (a busy model pool, a shard restarting, no model pool reachable yet on a node
/// that runs none): that would stop the replica for good. Writes are upserts and deletes,
/// so running one again is safe.
async fn until_applied<T, F, Fut>(log_id: &LogId, write: F) -> Result<T, ActorError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, ActorError>>,
{
    let started = tokio::time::Instant::now();
    for attempt in 0u64.. {
        match write().await {
            Ok(done) => return Ok(done),
            Err(ActorError::Storage(error)) => return Err(ActorError::Storage(error)),
            Err(error) if started.elapsed() > TRANSIENT_APPLY_LIMIT => return Err(error),
            Err(error) => {
                // Once every few seconds is enough to see why a replica lags.
                if attempt % 25 == 0 {
                    tracing::warn!(%log_id, %error, "catalog write not applied yet; trying again");
                }
                tokio::time::sleep(APPLY_RETRY).await;
            }
        }
    }
    unreachable!("the attempts never run out")
}

impl StateMachine {
    pub fn new(
        group: PartitionId,
        kind: GroupKind,
        engine: Arc<dyn KvEngine>,
        inkling: Arc<Inkling>,
    ) -> Self {
        Self {
            group,
            kind,
            records: PartitionRecords::new(engine.clone(), group),
            profiles: ProfileStore::new(engine.clone()),
            engine,
            commit: inkling.group_commit(),
            inkling,
        }
    }

    async fn apply_command(
        &self,
        log_id: &LogId,
        command: Command,
    ) -> Result<Applied, StorageError> {
        let apply_error = |error: ActorError| {
            storage_error(ErrorSubject::Apply(*log_id), ErrorVerb::Write, error)
        };
        let writer = self.inkling.profile_writer();
        let count = match command {
            Command::RecordEvents { at_ms, events } => {
                let count = events.len();
                writer.apply_batch(events, at_ms).map_err(apply_error)?;
                count
            }
            Command::EraseUser { user_id } => {
                writer.erase(&user_id).map_err(apply_error)?;
                // Spares the generation the erasure's append started: what the user sent
                // after the erasure is theirs to keep.
                self.keys()
                    .forget(&user_id, log_id.index)
                    .map_err(|error| {
                        storage_error(ErrorSubject::Apply(*log_id), ErrorVerb::Write, error)
                    })?;
                1
            }
            Command::UpsertProducts(products) => {
                let write = || self.inkling.upsert_products(products.clone());
                until_applied(log_id, write).await.map_err(apply_error)?
            }
            Command::WriteProducts(writes) => {
                let write = || self.inkling.write_products(writes.clone());
                until_applied(log_id, write).await.map_err(apply_error)?
            }
            Command::DeleteProduct(id) => {
                let write = || self.inkling.delete_product(id.clone());
                usize::from(until_applied(log_id, write).await.map_err(apply_error)?)
            }
        };
        Ok(Applied {
            count,
            ..Applied::default()
        })
    }

    /// What a snapshot of the catalog group holds.
    async fn catalog_snapshot_body(&self) -> Result<SnapshotBody, StorageError> {
        let read_error =
            |error: ActorError| storage_error(ErrorSubject::StateMachine, ErrorVerb::Read, error);
        Ok(SnapshotBody {
            product_writes: self
                .inkling
                .all_product_writes()
                .await
                .map_err(read_error)?,
            ..Default::default()
        })
    }

    /// Replaces this group's state with a snapshot's.
    async fn restore(
        &self,
        body: &SnapshotBody,
        subject: ErrorSubject<NodeId>,
    ) -> Result<(), StorageError> {
        let write_error =
            |error: ActorError| storage_error(subject.clone(), ErrorVerb::Write, error);
        match self.kind {
            GroupKind::Users => {
                for stale in self.partition_profiles()? {
                    self.profiles
                        .delete(&stale.user_id)
                        .map_err(|error| storage_error(subject.clone(), ErrorVerb::Write, error))?;
                }
                for profile in &body.profiles {
                    self.profiles
                        .save(profile)
                        .map_err(|error| storage_error(subject.clone(), ErrorVerb::Write, error))?;
                }
            }
            GroupKind::Catalog => {
                let writes: Vec<ProductWrite> = body.catalog_writes().collect();
                let kept: std::collections::HashSet<&str> = writes
                    .iter()
                    .map(|write| write.product.id.as_str())
                    .collect();
                let current = self.inkling.all_products().await.map_err(write_error)?;
                for stale in current
                    .into_iter()
                    .filter(|product| !kept.contains(product.id.as_str()))
                {
                    self.inkling
                        .delete_product(stale.id)
                        .await
                        .map_err(write_error)?;
                }
                for chunk in writes.chunks(1_000) {
                    self.inkling
                        .write_products(chunk.to_vec())
                        .await
                        .map_err(write_error)?;
                }
            }
        }
        Ok(())
    }

    /// The profiles of this partition's users.
    fn partition_profiles(&self) -> Result<Vec<Profile>, StorageError> {
        self.profiles
            .all_of(|user_id| partition_of(user_id) == self.group)
            .map_err(|error| storage_error(ErrorSubject::StateMachine, ErrorVerb::Read, error))
    }

    fn keys(&self) -> &UserKeys {
        self.engine.user_keys()
    }

    /// Stores the snapshot with every profile sealed under its user's key.
    fn store_snapshot(
        &self,
        meta: &Meta,
        body: &SnapshotBody,
        subject: ErrorSubject<NodeId>,
    ) -> Result<(), StorageError> {
        let mut users = Vec::new();
        let mut parts = Vec::new();
        for profile in &body.profiles {
            let json = serde_json::to_vec(profile).expect("profiles serialise");
            let sealed = self
                .keys()
                .seal_state(&profile.user_id, &json)
                .map_err(|error| storage_error(subject.clone(), ErrorVerb::Write, error))?;
            users.push(self.keys().key_id(&profile.user_id).to_hex());
            parts.push(sealed);
        }
        let header = SealedSnapshotRef {
            meta,
            products: &body.products,
            product_writes: &body.product_writes,
            users,
        };
        self.records
            .write_snapshot(&pack_parts(&header, &parts), subject)
    }

    /// The stored snapshot, its body as JSON, without the users erased since it was built.
    fn load_snapshot(&self) -> Result<Option<(Meta, Vec<u8>)>, StorageError> {
        let subject = || ErrorSubject::Snapshot(None);
        let read_error =
            |error: String| storage_error(subject(), ErrorVerb::Read, std::io::Error::other(error));
        let Some(bytes) = self.records.read_snapshot(subject())? else {
            return Ok(None);
        };
        let Some(unpacked) = unpack_parts::<SealedSnapshot>(&bytes) else {
            let stored: StoredSnapshot = serde_json::from_slice(&bytes)
                .map_err(|error| storage_error(subject(), ErrorVerb::Read, error))?;
            return Ok(Some((stored.meta, stored.body)));
        };
        let (header, parts) = unpacked.map_err(read_error)?;
        if header.users.len() != parts.len() {
            return Err(read_error(
                "the snapshot's parts and users differ".to_string(),
            ));
        }
        let mut profiles = Vec::new();
        for (user, part) in header.users.iter().zip(parts) {
            let id = KeyId::from_hex(user).ok_or_else(|| read_error("a bad key id".into()))?;
            let opened = self.keys().unseal(&id, part);
            let Some(json) = opened.map_err(|error| read_error(error.to_string()))? else {
                continue;
            };
            let profile: Profile = serde_json::from_slice(&json)
                .map_err(|error| storage_error(subject(), ErrorVerb::Read, error))?;
            profiles.push(profile);
        }
        let body = SnapshotBody {
            profiles,
            products: header.products,
            product_writes: header.product_writes,
        };
        let json = serde_json::to_vec(&body).expect("snapshots serialise");
        Ok(Some((header.meta, json)))
    }

    /// After a snapshot replaced this partition's users: destroys the keys of the users it
    /// no longer holds (see [`UserKeys::forget_absent`]).
    fn forget_absent_users(
        &self,
        body: &SnapshotBody,
        meta: &Meta,
        subject: ErrorSubject<NodeId>,
    ) -> Result<(), StorageError> {
        if self.kind != GroupKind::Users {
            return Ok(());
        }
        let present: HashSet<KeyId> = body
            .profiles
            .iter()
            .map(|profile| self.keys().key_id(&profile.user_id))
            .collect();
        let upto = meta.last_log_id.map_or(0, |log_id| log_id.index);
        let group = self.group;
        self.keys()
            .forget_absent(|bits| bits % PARTITIONS == group, &present, upto)
            .map(|_| ())
            .map_err(|error| storage_error(subject, ErrorVerb::Write, error))
    }

    fn applied(&self) -> Result<(Option<LogId>, Membership), StorageError> {
        let applied = self
            .records
            .read("applied", ErrorSubject::StateMachine)?
            .flatten();
        let membership = self
            .records
            .read("membership", ErrorSubject::StateMachine)?
            .unwrap_or_default();
        Ok((applied, membership))
    }
}

impl RaftStateMachine<PartitionRaft> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, Membership), StorageError> {
        self.applied()
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let (mut applied, mut membership) = self.applied()?;
        let mut answers = Vec::new();
        for entry in entries {
            applied = Some(entry.log_id);
            let answer = match entry.payload {
                EntryPayload::Blank => Applied::default(),
                EntryPayload::Normal(command) => self.apply_command(&entry.log_id, command).await?,
                EntryPayload::Membership(config) => {
                    membership = StoredMembership::new(Some(entry.log_id), config);
                    Applied::default()
                }
            };
            answers.push(answer);
        }
        self.records
            .write("membership", &membership, ErrorSubject::StateMachine)?;
        self.records
            .write("applied", &applied, ErrorSubject::StateMachine)?;
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let subject = || ErrorSubject::Snapshot(Some(meta.signature()));
        let body = snapshot.into_inner();
        let parsed: SnapshotBody = serde_json::from_slice(&body)
            .map_err(|error| storage_error(subject(), ErrorVerb::Read, error))?;
        self.restore(&parsed, subject()).await?;
        self.records.write(
            "membership",
            &meta.last_membership,
            ErrorSubject::StateMachine,
        )?;
        self.records
            .write("applied", &meta.last_log_id, ErrorSubject::StateMachine)?;
        self.store_snapshot(meta, &parsed, subject())?;
        self.forget_absent_users(&parsed, meta, subject())?;
        // The log before the snapshot is purged next: the snapshot must outlive a crash.
        self.commit
            .wait_durable()
            .await
            .map_err(|error| storage_error(subject(), ErrorVerb::Write, error))
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<PartitionRaft>>, StorageError> {
        Ok(self.load_snapshot()?.map(|(meta, body)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(body)),
        }))
    }
}

impl RaftSnapshotBuilder<PartitionRaft> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<PartitionRaft>, StorageError> {
        if self.kind == GroupKind::Catalog {
            let (last_log_id, last_membership) = self.applied()?;
            let body = self.catalog_snapshot_body().await?;
            return self.finish_snapshot(last_log_id, last_membership, &body);
        }
        // Reading, unsealing and sealing a partition's profiles is blocking work: it runs
        // off the async workers, which serve requests meanwhile.
        let builder = self.clone();
        tokio::task::spawn_blocking(move || {
            let (last_log_id, last_membership) = builder.applied()?;
            let body = SnapshotBody {
                profiles: builder.partition_profiles()?,
                ..Default::default()
            };
            builder.finish_snapshot(last_log_id, last_membership, &body)
        })
        .await
        .map_err(|error| storage_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, error))?
    }
}

impl StateMachine {
    /// Stores the snapshot of `body`, taken at `last_log_id`. The position is read before
    /// the body: profiles read after it may hold later events, which a replica replaying
    /// the log from that position skips by their idempotency keys.
    fn finish_snapshot(
        &self,
        last_log_id: Option<LogId>,
        last_membership: Membership,
        body: &SnapshotBody,
    ) -> Result<Snapshot<PartitionRaft>, StorageError> {
        let json = serde_json::to_vec(body).map_err(|error| {
            storage_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, error)
        })?;
        let snapshot_id = match &last_log_id {
            Some(log_id) => format!("{}-{}-{}", self.group, log_id.leader_id.term, log_id.index),
            None => format!("{}-empty", self.group),
        };
        let meta = Meta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        self.store_snapshot(&meta, body, ErrorSubject::Snapshot(None))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(json)),
        })
    }
}
