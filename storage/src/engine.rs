//! The key-value engine behind every durable store, and group commit on top of it.
//!
//! Stores talk to [`KvEngine`], never to sled directly, in the way TiKV keeps `engine_traits`
//! apart from RocksDB: a test or a future engine implements the trait and every store works.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::user_keys::UserKeys;
use crate::{Result, StorageError};

/// The named keyspaces Inkling stores data in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Keyspace {
    Products,
    Profiles,
    /// Models fitted offline (segments, association rules), one record per model.
    Models,
    /// Entries of replicated logs, keyed by log and position (the cluster layer's raft logs).
    ReplicatedLog,
    /// Small records that go with the replicated logs: votes, applied positions, membership.
    ReplicationState,
    /// Each replicated log's latest snapshot. They have a tree of their own because sled
    /// rewrites a whole leaf when any key in it changes: beside the small records, which
    /// change on every commit, each large snapshot was rewritten with them, and the data
    /// folder grew by that much each time (docs/benchmarks.md).
    Snapshots,
    /// Each product's passage vector, beside the product: what re-indexing a product and
    /// a catalog snapshot read instead of running the encoder again.
    PassageVectors,
}

impl Keyspace {
    /// The name of the keyspace's sled tree.
    pub fn name(self) -> &'static str {
        match self {
            Keyspace::Products => "products",
            Keyspace::Profiles => "profiles",
            Keyspace::Models => "models",
            Keyspace::ReplicatedLog => "replicated_log",
            Keyspace::ReplicationState => "replication_state",
            Keyspace::Snapshots => "snapshots",
            Keyspace::PassageVectors => "passage_vectors",
        }
    }

    /// Every keyspace, for tools that account for all of them.
    pub const ALL: [Keyspace; 7] = [
        Keyspace::Products,
        Keyspace::Profiles,
        Keyspace::Models,
        Keyspace::ReplicatedLog,
        Keyspace::ReplicationState,
        Keyspace::Snapshots,
        Keyspace::PassageVectors,
    ];
}

/// An ordered key-value engine with an explicit durability point.
///
/// Writes become visible to reads at once but are only guaranteed to survive a crash after
/// [`KvEngine::sync`] returns; [`GroupCommit`] shares one sync among many writers.
pub trait KvEngine: Send + Sync + 'static {
    fn get(&self, keyspace: Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>>;
    fn put(&self, keyspace: Keyspace, key: &[u8], value: &[u8]) -> Result<()>;
    fn delete(&self, keyspace: Keyspace, key: &[u8]) -> Result<()>;
    fn len(&self, keyspace: Keyspace) -> Result<usize>;
    /// Every (key, value) pair of the keyspace, in key order.
    fn scan(&self, keyspace: Keyspace) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// The (key, value) pairs with `start <= key < end`, in key order.
    fn scan_range(&self, keyspace: Keyspace, start: &[u8], end: &[u8]) -> Result<KeyValues>;
    /// The pair with the greatest key in `start <= key < end`.
    fn last_in_range(
        &self,
        keyspace: Keyspace,
        start: &[u8],
        end: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>>;
    /// Removes every key in `start <= key < end`.
    fn delete_range(&self, keyspace: Keyspace, start: &[u8], end: &[u8]) -> Result<()>;
    /// Makes every write that returned before this call durable, and every user key made
    /// before it.
    fn sync(&self) -> Result<()>;
    /// The per-user data keys that seal what user records hold (see [`crate::user_keys`]).
    fn user_keys(&self) -> &UserKeys;
}

/// Key-value pairs in key order.
pub type KeyValues = Vec<(Vec<u8>, Vec<u8>)>;

/// Where the per-user keys live inside the database folder, beside (never in) sled's files.
pub const USER_KEYS_FOLDER: &str = "user-keys";

/// [`KvEngine`] on sled: one tree per keyspace in one database folder, and the per-user
/// data keys in a folder of their own inside it.
pub struct SledEngine {
    db: sled::Db,
    products: sled::Tree,
    profiles: sled::Tree,
    models: sled::Tree,
    replicated_log: sled::Tree,
    replication_state: sled::Tree,
    snapshots: sled::Tree,
    passage_vectors: sled::Tree,
    user_keys: UserKeys,
}

impl SledEngine {
    pub fn open(path: &Path) -> Result<Self> {
        // sled's own periodic flush is off: durability points come only from `sync`,
        // which group commit batches.
        let db = open_waiting_for_lock(path)?;
        let products = db.open_tree(Keyspace::Products.name())?;
        let profiles = db.open_tree(Keyspace::Profiles.name())?;
        let models = db.open_tree(Keyspace::Models.name())?;
        let replicated_log = db.open_tree(Keyspace::ReplicatedLog.name())?;
        let replication_state = db.open_tree(Keyspace::ReplicationState.name())?;
        let snapshots = db.open_tree(Keyspace::Snapshots.name())?;
        let passage_vectors = db.open_tree(Keyspace::PassageVectors.name())?;
        let user_keys = UserKeys::open(&path.join(USER_KEYS_FOLDER))?;
        Ok(Self {
            db,
            products,
            profiles,
            models,
            replicated_log,
            replication_state,
            snapshots,
            passage_vectors,
            user_keys,
        })
    }

    fn tree(&self, keyspace: Keyspace) -> &sled::Tree {
        match keyspace {
            Keyspace::Products => &self.products,
            Keyspace::Profiles => &self.profiles,
            Keyspace::Models => &self.models,
            Keyspace::ReplicatedLog => &self.replicated_log,
            Keyspace::ReplicationState => &self.replication_state,
            Keyspace::Snapshots => &self.snapshots,
            Keyspace::PassageVectors => &self.passage_vectors,
        }
    }
}

/// How long opening waits for a previous handle's lock on the same folder to go.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// Opens the database, waiting while the folder is locked. sled 0.34 releases its file lock
/// on a background thread after the last handle drops (spacejam/sled#1234), so reopening at
/// once, as a node's restart in one process does, can find it still held.
fn open_waiting_for_lock(path: &Path) -> Result<sled::Db> {
    let config = sled::Config::new().path(path).flush_every_ms(None);
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            Err(sled::Error::Io(error))
                if error.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            opened => return Ok(opened?),
        }
    }
}

impl KvEngine for SledEngine {
    fn get(&self, keyspace: Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree(keyspace).get(key)?.map(|value| value.to_vec()))
    }

    fn put(&self, keyspace: Keyspace, key: &[u8], value: &[u8]) -> Result<()> {
        self.tree(keyspace).insert(key, value)?;
        Ok(())
    }

    fn delete(&self, keyspace: Keyspace, key: &[u8]) -> Result<()> {
        self.tree(keyspace).remove(key)?;
        Ok(())
    }

    fn len(&self, keyspace: Keyspace) -> Result<usize> {
        Ok(self.tree(keyspace).len())
    }

    fn scan(&self, keyspace: Keyspace) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.tree(keyspace)
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                Ok((key.to_vec(), value.to_vec()))
            })
            .collect()
    }

    fn scan_range(&self, keyspace: Keyspace, start: &[u8], end: &[u8]) -> Result<KeyValues> {
        self.tree(keyspace)
            .range(start..end)
            .map(|entry| {
                let (key, value) = entry?;
                Ok((key.to_vec(), value.to_vec()))
            })
            .collect()
    }

    fn last_in_range(
        &self,
        keyspace: Keyspace,
        start: &[u8],
        end: &[u8],
    ) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let last = self
            .tree(keyspace)
            .range(start..end)
            .next_back()
            .transpose()?;
        Ok(last.map(|(key, value)| (key.to_vec(), value.to_vec())))
    }

    fn delete_range(&self, keyspace: Keyspace, start: &[u8], end: &[u8]) -> Result<()> {
        let tree = self.tree(keyspace);
        let mut batch = sled::Batch::default();
        for key in tree.range(start..end).keys() {
            batch.remove(key?);
        }
        tree.apply_batch(batch)?;
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        // Keys first: a sealed record must never be durable without the key that opens it.
        self.user_keys.sync()?;
        // Flushing the database flushes the shared log, which covers every tree.
        self.db.flush()?;
        Ok(())
    }

    fn user_keys(&self) -> &UserKeys {
        &self.user_keys
    }
}

type Waiter = oneshot::Sender<Result<(), String>>;

/// Group commit: many writers wait for durability, one `sync` serves all of them.
///
/// A dedicated thread takes every waiter queued so far, runs one sync, then answers them
/// all. A waiter that arrives during a sync joins the next one, so its writes, which happened
/// before it queued, are always covered.
#[derive(Clone)]
pub struct GroupCommit {
    inner: Arc<GroupCommitThread>,
}

/// Owns the thread; dropping the last handle stops the thread and waits for it, so the
/// engine it holds is released before anyone reopens the same files.
struct GroupCommitThread {
    waiters: Option<mpsc::UnboundedSender<Waiter>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for GroupCommitThread {
    fn drop(&mut self) {
        self.waiters.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl GroupCommit {
    pub fn start(engine: Arc<dyn KvEngine>) -> Self {
        let (waiters, receiver) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || run_group_commit(engine, receiver))
            .expect("spawn group-commit thread");
        Self {
            inner: Arc::new(GroupCommitThread {
                waiters: Some(waiters),
                thread: Some(thread),
            }),
        }
    }

    /// Resolves once every write that completed before this call is durable.
    pub async fn wait_durable(&self) -> Result<()> {
        let (done, receipt) = oneshot::channel();
        let waiters = self.inner.waiters.as_ref().ok_or(StorageError::ShutDown)?;
        waiters.send(done).map_err(|_| StorageError::ShutDown)?;
        match receipt.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(StorageError::Other(format!("sync failed: {message}"))),
            Err(_) => Err(StorageError::ShutDown),
        }
    }
}

fn run_group_commit(engine: Arc<dyn KvEngine>, mut receiver: mpsc::UnboundedReceiver<Waiter>) {
    while let Some(first) = receiver.blocking_recv() {
        let mut batch = vec![first];
        while let Ok(next) = receiver.try_recv() {
            batch.push(next);
        }
        let started = Instant::now();
        let outcome = engine.sync().map_err(|error| error.to_string());
        inkling_ops::metrics::STORAGE_SYNC_SECONDS.observe(started.elapsed().as_secs_f64());
        inkling_ops::metrics::GROUP_COMMIT_SIZE.observe(batch.len() as f64);
        for waiter in batch {
            let _ = waiter.send(outcome.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_waits_for_a_previous_handle_to_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = SledEngine::open(dir.path()).unwrap();
        let (opening, opened) = std::sync::mpsc::channel();
        let path = dir.path().to_path_buf();
        let second = std::thread::spawn(move || {
            opening.send(()).unwrap();
            SledEngine::open(&path).map(|_| ())
        });
        opened.recv().unwrap();
        // Let the second open meet the lock before it goes (the test passes either way).
        std::thread::sleep(Duration::from_millis(200));
        drop(first);
        second
            .join()
            .unwrap()
            .expect("opened once the first handle let go");
    }

    #[tokio::test]
    async fn concurrent_waiters_share_syncs_and_writes_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let engine: Arc<dyn KvEngine> = Arc::new(SledEngine::open(dir.path()).unwrap());
            let commit = GroupCommit::start(engine.clone());
            let mut tasks = Vec::new();
            for writer in 0..64u32 {
                let engine = engine.clone();
                let commit = commit.clone();
                tasks.push(tokio::spawn(async move {
                    let key = writer.to_be_bytes();
                    engine.put(Keyspace::Profiles, &key, b"v").unwrap();
                    commit.wait_durable().await.unwrap();
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
        }
        let reopened = SledEngine::open(dir.path()).unwrap();
        assert_eq!(reopened.len(Keyspace::Profiles).unwrap(), 64);
    }
}
