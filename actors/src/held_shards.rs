//! [`HeldShards`]: which index shards this node's index holds, recorded beside them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::ActorError;

/// Written beside the shard folders: which shards this node's index held last, so a
/// restarted node serves them again at once instead of rebuilding every shard.
const HELD_SHARDS_FILE: &str = "held.json";

/// The shards this node's index holds, shared by the catalog writer (which indexes only
/// these), the shards (which join their process group only when held) and the placement.
#[derive(Clone, Debug)]
pub struct HeldShards {
    held: Arc<RwLock<BTreeSet<usize>>>,
    /// Where the set is recorded; `None` keeps it in memory only.
    file: Option<PathBuf>,
}

impl HeldShards {
    /// The set recorded in `index_dir`, or every one of `count` shards when none is (a
    /// new node, a node alone, a re-sharded index).
    pub fn load(index_dir: &Path, count: usize, resharded: bool) -> Self {
        let file = index_dir.join(HELD_SHARDS_FILE);
        let recorded = std::fs::read(&file)
            .ok()
            .filter(|_| !resharded)
            .and_then(|bytes| serde_json::from_slice::<BTreeSet<usize>>(&bytes).ok());
        let held = recorded
            .map(|held| held.into_iter().filter(|shard| *shard < count).collect())
            .unwrap_or_else(|| (0..count).collect());
        Self {
            held: Arc::new(RwLock::new(held)),
            file: Some(file),
        }
    }

    /// Every one of `count` shards, in memory only.
    pub fn every(count: usize) -> Self {
        Self {
            held: Arc::new(RwLock::new((0..count).collect())),
            file: None,
        }
    }

    pub fn holds(&self, shard: usize) -> bool {
        self.held.read().contains(&shard)
    }

    pub fn get(&self) -> BTreeSet<usize> {
        self.held.read().clone()
    }

    /// Records the set, then makes it the one in use; a set that cannot be recorded
    /// changes nothing.
    pub(crate) fn set(&self, shards: BTreeSet<usize>) -> Result<(), ActorError> {
        if let Some(file) = &self.file {
            let json = serde_json::to_vec(&shards).expect("shard numbers serialise");
            std::fs::write(file, json).map_err(|error| {
                ActorError::Storage(format!("cannot write {}: {error}", file.display()))
            })?;
        }
        *self.held.write() = shards;
        Ok(())
    }
}
