//! A user partition's raft log on the node's storage engine.
//!
//! Entries and votes of every partition share one engine, so one group-commit sync makes the
//! appends of all partitions durable at once. openraft is told an append is flushed only
//! after that sync has returned: telling it earlier would let a leader count a vote for an
//! entry a crash can still lose, and an acknowledged write with it.
//!
//! Recorded events are stored sealed, each user's under that user's key on this node
//! (`inkling_storage::user_keys`): an erasure destroys the key, and the copies sled's files
//! may keep of the entry, purged or not, can no longer be read. An entry read back after its
//! user was erased holds that user's events no more (a lagging follower is sent the entry
//! without them, then the erasure). Every other entry is stored as plain JSON, as are
//! entries written before sealing existed.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use inkling_domain::Event;
use inkling_storage::{GroupCommit, KeyId, Keyspace, KvEngine};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, LogState, RaftLogReader, StorageIOError, Vote,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::partition::PartitionId;
use crate::raft_types::{Command, Entry, LogId, NodeId, PartitionRaft, StorageError};

pub(crate) fn storage_error(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    error: impl std::error::Error + 'static,
) -> StorageError {
    StorageIOError::new(subject, verb, AnyError::new(&error)).into()
}

fn log_read_error(error: impl std::error::Error + 'static) -> StorageError {
    storage_error(ErrorSubject::Logs, ErrorVerb::Read, error)
}

fn log_write_error(error: impl std::error::Error + 'static) -> StorageError {
    storage_error(ErrorSubject::Logs, ErrorVerb::Write, error)
}

/// Where a snapshot was kept among a partition's small records before snapshots had a
/// keyspace of their own.
const LEGACY_SNAPSHOT: &str = "snapshot";

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

    /// The partition's stored snapshot. A data folder written before snapshots had their
    /// own keyspace holds it among the small records, where it is read until the next
    /// snapshot replaces it.
    pub(crate) fn read_snapshot(
        &self,
        subject: ErrorSubject<NodeId>,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let read = |keyspace, key: &[u8]| {
            self.engine
                .get(keyspace, key)
                .map_err(|error| storage_error(subject.clone(), ErrorVerb::Read, error))
        };
        let key = self.partition.to_be_bytes();
        if let Some(bytes) = read(Keyspace::Snapshots, &key)? {
            return Ok(Some(bytes));
        }
        read(
            Keyspace::ReplicationState,
            &StateKeys(self.partition).key(LEGACY_SNAPSHOT),
        )
    }

    /// Replaces the partition's snapshot, and drops one left among the small records.
    pub(crate) fn write_snapshot(
        &self,
        bytes: &[u8],
        subject: ErrorSubject<NodeId>,
    ) -> Result<(), StorageError> {
        let write_error = |error| storage_error(subject.clone(), ErrorVerb::Write, error);
        self.engine
            .put(Keyspace::Snapshots, &self.partition.to_be_bytes(), bytes)
            .map_err(write_error)?;
        let legacy = StateKeys(self.partition).key(LEGACY_SNAPSHOT);
        self.engine
            .delete(Keyspace::ReplicationState, &legacy)
            .map_err(write_error)
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

    fn decode(&self, bytes: &[u8]) -> Result<Entry, StorageError> {
        decode_entry(self.engine.as_ref(), bytes, None)
    }

    /// The entry as stored: recorded events sealed per user, anything else as JSON. An
    /// erasure proposed here starts a new key generation for its user, so what the user
    /// records after it survives it.
    fn encode(&self, entry: &Entry) -> Result<Vec<u8>, StorageError> {
        let keys = self.engine.user_keys();
        let index = entry.log_id.index;
        match &entry.payload {
            EntryPayload::Normal(Command::RecordEvents { at_ms, events }) => {
                let mut by_user: std::collections::BTreeMap<&str, Vec<&Event>> = Default::default();
                for event in events {
                    by_user.entry(&event.user_id).or_default().push(event);
                }
                let mut header = SealedEvents {
                    log_id: entry.log_id,
                    at_ms: *at_ms,
                    users: Vec::new(),
                };
                let mut parts = Vec::new();
                for (user, events) in by_user {
                    let json = serde_json::to_vec(&events).expect("events serialise");
                    parts.push(keys.seal_log(user, index, &json).map_err(log_write_error)?);
                    header.users.push(keys.key_id(user).to_hex());
                }
                Ok(pack_parts(&header, &parts))
            }
            EntryPayload::Normal(Command::EraseUser { user_id }) => {
                keys.rotate(user_id, index.saturating_add(1))
                    .map_err(log_write_error)?;
                Ok(serde_json::to_vec(entry).expect("entries serialise"))
            }
            _ => Ok(serde_json::to_vec(entry).expect("entries serialise")),
        }
    }
}

/// How an entry of recorded events is stored: its position, the proposer's clock, and
/// whose events each sealed part holds (key ids, never user ids).
#[derive(Serialize, Deserialize)]
struct SealedEvents {
    log_id: LogId,
    at_ms: u64,
    users: Vec<String>,
}

/// The first byte of a record stored as a JSON header and sealed parts; JSON starts with `{`.
const PARTS_FORMAT: u8 = 2;

/// A record as a JSON header followed by length-prefixed parts.
pub(crate) fn pack_parts<H: Serialize>(header: &H, parts: &[Vec<u8>]) -> Vec<u8> {
    let header = serde_json::to_vec(header).expect("headers serialise");
    let size = 5 + header.len() + parts.iter().map(|part| 4 + part.len()).sum::<usize>();
    let mut bytes = Vec::with_capacity(size);
    bytes.push(PARTS_FORMAT);
    for chunk in std::iter::once(&header).chain(parts) {
        let length = u32::try_from(chunk.len()).expect("a part under 4 GiB");
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend_from_slice(chunk);
    }
    bytes
}

/// A record's header and its parts, borrowed from the stored bytes.
pub(crate) type Unpacked<'a, H> = (H, Vec<&'a [u8]>);

/// The header and parts of a record [`pack_parts`] made; `None` for a JSON record.
pub(crate) fn unpack_parts<H: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Option<Result<Unpacked<'_, H>, String>> {
    let rest = bytes.strip_prefix(&[PARTS_FORMAT])?;
    let mut chunks = Vec::new();
    let mut rest = rest;
    while !rest.is_empty() {
        let Some((length, tail)) = rest.split_first_chunk::<4>() else {
            return Some(Err("a part's length is cut short".to_string()));
        };
        let length = u32::from_be_bytes(*length) as usize;
        if tail.len() < length {
            return Some(Err("a part is cut short".to_string()));
        }
        chunks.push(&tail[..length]);
        rest = &tail[length..];
    }
    if chunks.is_empty() {
        return Some(Err("no header".to_string()));
    }
    let header = chunks.remove(0);
    Some(
        serde_json::from_slice(header)
            .map(|header| (header, chunks))
            .map_err(|error| error.to_string()),
    )
}

/// Reads a stored entry back. With `only`, a sealed entry keeps that user's events alone.
fn decode_entry(
    engine: &dyn KvEngine,
    bytes: &[u8],
    only: Option<&KeyId>,
) -> Result<Entry, StorageError> {
    let Some(unpacked) = unpack_parts::<SealedEvents>(bytes) else {
        return serde_json::from_slice(bytes).map_err(log_read_error);
    };
    let (header, parts) = unpacked.map_err(|error| log_read_error(std::io::Error::other(error)))?;
    if header.users.len() != parts.len() {
        let error = std::io::Error::other("a sealed entry's parts and users differ");
        return Err(log_read_error(error));
    }
    let mut events = Vec::new();
    for (user, part) in header.users.iter().zip(parts) {
        let id = KeyId::from_hex(user)
            .ok_or_else(|| log_read_error(std::io::Error::other("a bad key id")))?;
        if only.is_some_and(|only| *only != id) {
            continue;
        }
        // `None`: the user was erased, and their events with them.
        let Some(json) = engine
            .user_keys()
            .unseal(&id, part)
            .map_err(log_read_error)?
        else {
            continue;
        };
        let sealed: Vec<Event> = serde_json::from_slice(&json).map_err(log_read_error)?;
        events.extend(sealed);
    }
    let command = Command::RecordEvents {
        at_ms: header.at_ms,
        events,
    };
    Ok(Entry {
        log_id: header.log_id,
        payload: EntryPayload::Normal(command),
    })
}

/// The user's events that this node's log of the partition still holds, oldest first, and
/// whether the log still starts at its beginning (nothing was compacted into a snapshot).
pub(crate) fn logged_events(
    engine: &Arc<dyn KvEngine>,
    partition: PartitionId,
    user_id: &str,
) -> Result<(Vec<Event>, bool), StorageError> {
    let records = PartitionRecords::new(engine.clone(), partition);
    let purged: Option<LogId> = records.read("purged", ErrorSubject::Logs)?;
    let key = |index: u64| {
        let mut key = partition.to_be_bytes().to_vec();
        key.extend_from_slice(&index.to_be_bytes());
        key
    };
    let rows = engine
        .scan_range(Keyspace::ReplicatedLog, &key(0), &key(u64::MAX))
        .map_err(|error| storage_error(ErrorSubject::Logs, ErrorVerb::Read, error))?;
    let id = engine.user_keys().key_id(user_id);
    let mut events = Vec::new();
    for (_, bytes) in rows {
        let entry = decode_entry(engine.as_ref(), &bytes, Some(&id))?;
        if let EntryPayload::Normal(Command::RecordEvents { events: logged, .. }) = entry.payload {
            events.extend(logged.into_iter().filter(|event| event.user_id == user_id));
        }
    }
    Ok((events, purged.is_none()))
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
        rows.iter().map(|(_, bytes)| self.decode(bytes)).collect()
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
            Some((_, bytes)) => Some(self.decode(&bytes)?.log_id),
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
            let bytes = self.encode(&entry)?;
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

#[cfg(test)]
mod tests {
    use inkling_storage::SledEngine;
    use openraft::ErrorSubject;

    use super::*;

    /// A data folder written before snapshots had their own keyspace keeps working: its
    /// snapshot is read where it was, and the next one moves it.
    #[test]
    fn a_snapshot_among_the_small_records_is_read_then_moved_by_the_next() {
        let folder = tempfile::tempdir().unwrap();
        let engine: Arc<dyn KvEngine> = Arc::new(SledEngine::open(folder.path()).unwrap());
        let records = PartitionRecords::new(engine.clone(), 7);
        let legacy = StateKeys(7).key(LEGACY_SNAPSHOT);
        let subject = || ErrorSubject::Snapshot(None);
        let stored = |records: &PartitionRecords| records.read_snapshot(subject()).unwrap();

        assert_eq!(stored(&records), None);
        engine
            .put(Keyspace::ReplicationState, &legacy, b"old")
            .unwrap();
        assert_eq!(stored(&records).as_deref(), Some(&b"old"[..]));
        records.write_snapshot(b"new", subject()).unwrap();
        assert_eq!(stored(&records).as_deref(), Some(&b"new"[..]));
        let left = engine.get(Keyspace::ReplicationState, &legacy).unwrap();
        assert_eq!(left, None, "the old copy is gone");
        let other = PartitionRecords::new(engine, 8);
        assert_eq!(stored(&other), None, "partitions keep their own snapshots");
    }
}
