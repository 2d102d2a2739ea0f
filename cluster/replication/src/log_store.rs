//! A user partition's raft log on the node's storage engine.
//!
//! Entries and votes of every partition share one engine, so one group-commit sync makes the
//! appends of all partitions durable at once. openraft is told an append is flushed only
//! after that sync has returned: telling it earlier would let a leader count a vote for an
//! entry a crash can still lose, and an acknowledged write with it.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use inkling_storage::{GroupCommit, Keyspace, KvEngine};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, ErrorSubject, ErrorVerb, LogState, RaftLogReader, StorageIOError, Vote};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::partition::PartitionId;
use crate::raft_types::{Entry, LogId, NodeId, PartitionRaft, StorageError};

pub(crate) fn storage_error(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    error: impl std::error::Error + 'static,
) -> StorageError {
    StorageIOError::new(subject, verb, AnyError::new(&error)).into()
}

/// Keys of one partition's small records in [`Keyspace::ReplicationState`].
pub(crate) struct StateKeys(PartitionId);

impl StateKeys {
    pub(crate) fn key(&self, name: &str) -> Vec<u8> {
        let mut key = self.0.to_be_bytes().to_vec();
        key.extend_from_slice(name.as_bytes());
        key
    }
}

/// Reads and writes a partition's small JSON records.
#[derive(Clone)]
pub(crate) struct PartitionRecords {
    engine: Arc<dyn KvEngine>,
    partition: PartitionId,
}

impl PartitionRecords {
    pub(crate) fn new(engine: Arc<dyn KvEngine>, partition: PartitionId) -> Self {
        Self { engine, partition }
    }

    pub(crate) fn read<T: DeserializeOwned>(
        &self,
        name: &str,
        subject: ErrorSubject<NodeId>,
    ) -> Result<Option<T>, StorageError> {
        let key = StateKeys(self.partition).key(name);
        let Some(bytes) = self
            .engine
            .get(Keyspace::ReplicationState, &key)
            .map_err(|error| storage_error(subject.clone(), ErrorVerb::Read, error))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| storage_error(subject, ErrorVerb::Read, error))
    }

    pub(crate) fn write<T: Serialize>(
        &self,
        name: &str,
        value: &T,
        subject: ErrorSubject<NodeId>,
    ) -> Result<(), StorageError> {
        let key = StateKeys(self.partition).key(name);
        let bytes = serde_json::to_vec(value)
            .map_err(|error| storage_error(subject.clone(), ErrorVerb::Write, error))?;
        self.engine
            .put(Keyspace::ReplicationState, &key, &bytes)
            .map_err(|error| storage_error(subject, ErrorVerb::Write, error))
    }
}

/// One partition's log. Clones share the flusher, so the log reader openraft asks for is a
/// clone.
#[derive(Clone)]
pub struct LogStore {
    partition: PartitionId,
    engine: Arc<dyn KvEngine>,
    records: PartitionRecords,
    commit: GroupCommit,
    flushes: mpsc::UnboundedSender<LogFlushed<PartitionRaft>>,
}

impl LogStore {
    pub fn new(partition: PartitionId, engine: Arc<dyn KvEngine>, commit: GroupCommit) -> Self {
        let (flushes, pending) = mpsc::unbounded_channel();
        tokio::spawn(report_flushes(commit.clone(), pending));
        Self {
            partition,
            records: PartitionRecords::new(engine.clone(), partition),
            engine,
            commit,
            flushes,
        }
    }

    fn entry_key(&self, index: u64) -> Vec<u8> {
        let mut key = self.partition.to_be_bytes().to_vec();
        key.extend_from_slice(&index.to_be_bytes());
        key
    }

    fn decode(bytes: &[u8]) -> Result<Entry, StorageError> {
        serde_json::from_slice(bytes)
            .map_err(|error| storage_error(ErrorSubject::Logs, ErrorVerb::Read, error))
    }
}

/// Answers openraft's flush callbacks in append order, each only after a group-commit sync
/// that began after its entries were written. Callbacks that queue up during one sync share
/// the next.
async fn report_flushes(
    commit: GroupCommit,
    mut pending: mpsc::UnboundedReceiver<LogFlushed<PartitionRaft>>,
) {
    while let Some(first) = pending.recv().await {
        let mut batch = vec![first];
        while let Ok(next) = pending.try_recv() {
            batch.push(next);
        }
        let outcome = commit
            .wait_durable()
            .await
            .map_err(|error| std::io::Error::other(error.to_string()));
        for callback in batch {
            callback.log_io_completed(outcome.as_ref().map(|_| ()).map_err(clone_io_error));
        }
    }
}

fn clone_io_error(error: &std::io::Error) -> std::io::Error {
    std::io::Error::new(error.kind(), error.to_string())
}

fn range_to_indexes(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(index) => *index,
        Bound::Excluded(index) => index.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(index) => index.saturating_add(1),
        Bound::Excluded(index) => *index,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<PartitionRaft> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = range_to_indexes(&range);
        let rows = self
            .engine
            .scan_range(
                Keyspace::ReplicatedLog,
                &self.entry_key(start),
                &self.entry_key(end),
            )
            .map_err(|error| storage_error(ErrorSubject::Logs, ErrorVerb::Read, error))?;
        rows.iter().map(|(_, bytes)| Self::decode(bytes)).collect()
    }
}

impl RaftLogStorage<PartitionRaft> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<PartitionRaft>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.records.read("purged", ErrorSubject::Logs)?;
        let last = self
            .engine
            .last_in_range(
                Keyspace::ReplicatedLog,
                &self.entry_key(0),
                &self.entry_key(u64::MAX),
            )
            .map_err(|error| storage_error(ErrorSubject::Logs, ErrorVerb::Read, error))?;
        let last_log_id = match last {
            Some((_, bytes)) => Some(Self::decode(&bytes)?.log_id),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    /// A vote is durable before this returns: a node that forgot its vote could vote twice
    /// in one term.
    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.records.write("vote", vote, ErrorSubject::Vote)?;
        self.commit
            .wait_durable()
            .await
            .map_err(|error| storage_error(ErrorSubject::Vote, ErrorVerb::Write, error))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.records.read("vote", ErrorSubject::Vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Durable with the next sync; losing it only makes a restarted node wait for the
        // leader before applying what it already holds.
        self.records
            .write("committed", &committed, ErrorSubject::Store)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self
            .records
            .read("committed", ErrorSubject::Store)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<PartitionRaft>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        // A full disk (the chaos nemesis arms it on one node): the append fails, and raft
        // stops on this node rather than acknowledge what it could not store.
        if inkling_actors::fail_point_armed("disk-full") {
            let full = std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "no space left on device (injected: disk-full)",
            );
            tracing::error!(
                group = self.partition,
                "cannot append to the raft log: {full}"
            );
            return Err(storage_error(ErrorSubject::Logs, ErrorVerb::Write, full));
        }
        for entry in entries {
            let bytes = serde_json::to_vec(&entry)
                .map_err(|error| storage_error(ErrorSubject::Logs, ErrorVerb::Write, error))?;
            self.engine
                .put(
                    Keyspace::ReplicatedLog,
                    &self.entry_key(entry.log_id.index),
                    &bytes,
                )
                .map_err(|error| storage_error(ErrorSubject::Logs, ErrorVerb::Write, error))?;
        }
        if self.flushes.send(callback).is_err() {
            return Err(storage_error(
                ErrorSubject::Logs,
                ErrorVerb::Write,
                std::io::Error::other("the log flusher has stopped"),
            ));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.engine
            .delete_range(
                Keyspace::ReplicatedLog,
                &self.entry_key(log_id.index),
                &self.entry_key(u64::MAX),
            )
            .map_err(|error| storage_error(ErrorSubject::Logs, ErrorVerb::Write, error))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.records
            .write("purged", &Some(log_id), ErrorSubject::Logs)?;
        self.engine
            .delete_range(
                Keyspace::ReplicatedLog,
                &self.entry_key(0),
                &self.entry_key(log_id.index.saturating_add(1)),
            )
            .map_err(|error| storage_error(ErrorSubject::Logs, ErrorVerb::Write, error))
    }
}
