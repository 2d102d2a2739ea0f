//! openraft's own storage test suite against the log store and state machine on real sled
//! files: votes, log state, truncation, purging, membership and snapshots behave as
//! openraft requires. One user partition and the catalog group, each on a fresh node.

use std::sync::Arc;

use inkling_actors::inkling::NodeStorage;
use inkling_actors::{ActorConfig, Inkling};
use inkling_replication::log_store::LogStore;
use inkling_replication::raft_types::{NodeId, PartitionRaft};
use inkling_replication::state_machine::{GroupKind, StateMachine};
use inkling_replication::{CATALOG_GROUP, PartitionId};
use inkling_storage::{KvEngine, SledEngine};
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};

/// Keeps a test's folder and node alive as long as its stores.
type Guard = (tempfile::TempDir, Arc<Inkling>);

struct FreshNode {
    group: PartitionId,
    kind: GroupKind,
}

impl StoreBuilder<PartitionRaft, LogStore, StateMachine, Guard> for FreshNode {
    async fn build(&self) -> Result<(Guard, LogStore, StateMachine), StorageError<NodeId>> {
        let folder = tempfile::tempdir().expect("temporary folder");
        let engine: Arc<dyn KvEngine> =
            Arc::new(SledEngine::open(&folder.path().join("sled")).expect("sled opens"));
        let storage = NodeStorage {
            engine: engine.clone(),
            index_dir: folder.path().join("index"),
            taxonomy: Default::default(),
        };
        let inkling = Arc::new(
            Inkling::start(ActorConfig::default(), storage)
                .await
                .expect("node starts"),
        );
        let log = LogStore::new(self.group, engine.clone(), inkling.group_commit());
        let state = StateMachine::new(self.group, self.kind, engine, inkling.clone());
        Ok(((folder, inkling), log, state))
    }
}

#[test]
fn openraft_storage_suite_passes_for_every_group_kind() {
    let cases = [
        FreshNode {
            group: 3,
            kind: GroupKind::Users,
        },
        FreshNode {
            group: CATALOG_GROUP,
            kind: GroupKind::Catalog,
        },
    ];
    for builder in cases {
        let kind = builder.kind;
        Suite::test_all(builder).unwrap_or_else(|error| panic!("{kind:?}: {error}"));
    }
}
