//! Erasing a user through a partition's log store and state machine, on real sled files:
//! afterwards no file under the node's folder holds the user's marker, what followed the
//! erasure stays, and every other user's profile and logged events survive a reopen.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use inkling_actors::inkling::NodeStorage;
use inkling_actors::{ActorConfig, Inkling};
use inkling_domain::{Event, EventKind};
use inkling_replication::log_store::LogStore;
use inkling_replication::raft_types::{Command, Entry};
use inkling_replication::state_machine::{GroupKind, StateMachine};
use inkling_replication::{PartitionId, partition_of};
use inkling_storage::{KvEngine, ProfileStore, SledEngine};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::log_id;
use openraft::{EntryPayload, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta, StoredMembership};

const VICTIM: &str = "victim-7";

/// A user of the victim's partition other than the victim.
fn bystander() -> String {
    (0..)
        .map(|n| format!("bystander-{n}"))
        .find(|user| partition_of(user) == partition_of(VICTIM))
        .expect("some user shares the partition")
}

fn marker(user: &str, round: u32) -> String {
    format!("marker-{user}-{round}-c0ffee")
}

fn search(user: &str, round: u32) -> Event {
    Event {
        user_id: user.to_string(),
        session_id: Some("s1".to_string()),
        kind: EventKind::Search,
        item_id: None,
        query: Some(marker(user, round)),
        timestamp: Some(1_000 + u64::from(round)),
        learn: true,
        event_id: Some(format!("{user}-{round}")),
        attribution: None,
    }
}

/// What the node goes through, in order.
#[derive(Clone, Copy)]
enum Step {
    /// Appends one entry of events (the victim's and the bystander's, round n) and applies it.
    Events(u32),
    /// Appends the victim's events of round n without applying them yet.
    AppendEvents(u32),
    /// Appends the victim's erasure without applying it.
    AppendErase,
    /// Applies everything appended.
    ApplyAll,
    BuildSnapshot,
    /// Installs a snapshot, as from a leader, that holds only the bystander.
    InstallSnapshotWithoutVictim,
}

struct Case {
    name: &'static str,
    steps: Vec<Step>,
    /// Rounds of the victim's events that must be gone from every file and from the log.
    gone: &'static [u32],
    /// Rounds of the victim's events that must still be in the profile after a reopen.
    kept: &'static [u32],
}

struct Node {
    folder: tempfile::TempDir,
    engine: Arc<dyn KvEngine>,
    inkling: Arc<Inkling>,
    log: LogStore,
    state: StateMachine,
    appended: Vec<Entry>,
}

async fn start(folder: tempfile::TempDir, group: PartitionId) -> Node {
    let engine: Arc<dyn KvEngine> = Arc::new(open_when_released(&folder.path().join("sled")).await);
    let storage = NodeStorage {
        engine: engine.clone(),
        index_dir: folder.path().join("index"),
        taxonomy: Default::default(),
    };
    let inkling = Arc::new(
        Inkling::start(ActorConfig::default(), storage)
            .await
            .unwrap(),
    );
    let log = LogStore::new(group, engine.clone(), inkling.group_commit());
    let state = StateMachine::new(group, GroupKind::Users, engine.clone(), inkling.clone());
    Node {
        folder,
        engine,
        inkling,
        log,
        state,
        appended: Vec::new(),
    }
}

/// Opens the folder once the previous node's last handle on it is gone.
async fn open_when_released(path: &Path) -> SledEngine {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match SledEngine::open(path) {
            Ok(engine) => return engine,
            Err(error) if tokio::time::Instant::now() > deadline => panic!("reopen: {error}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

impl Node {
    async fn append(&mut self, command: Command) {
        let index = self.appended.len() as u64 + 1;
        let entry = Entry {
            log_id: log_id(1, 0, index),
            payload: EntryPayload::Normal(command),
        };
        self.log.blocking_append([entry.clone()]).await.unwrap();
        self.appended.push(entry);
    }

    async fn apply_all(&mut self, applied: &mut usize) {
        let entries = self.appended[*applied..].to_vec();
        *applied = self.appended.len();
        self.state.apply(entries).await.unwrap();
    }

    async fn run(&mut self, step: Step, applied: &mut usize, bystander: &str) {
        match step {
            Step::Events(round) => {
                let events = vec![search(VICTIM, round), search(bystander, round)];
                self.append(Command::RecordEvents {
                    at_ms: 5_000,
                    events,
                })
                .await;
                self.apply_all(applied).await;
            }
            Step::AppendEvents(round) => {
                let events = vec![search(VICTIM, round)];
                self.append(Command::RecordEvents {
                    at_ms: 5_000,
                    events,
                })
                .await;
            }
            Step::AppendErase => {
                let user_id = VICTIM.to_string();
                self.append(Command::EraseUser { user_id }).await;
            }
            Step::ApplyAll => self.apply_all(applied).await,
            Step::BuildSnapshot => {
                self.state.build_snapshot().await.unwrap();
            }
            Step::InstallSnapshotWithoutVictim => {
                let profile = ProfileStore::new(self.engine.clone())
                    .load(bystander)
                    .unwrap()
                    .unwrap();
                let body = serde_json::json!({ "profiles": [profile], "products": [] });
                let meta = SnapshotMeta {
                    last_log_id: Some(log_id(1, 0, self.appended.len() as u64)),
                    last_membership: StoredMembership::default(),
                    snapshot_id: "from-leader".to_string(),
                };
                let body = Box::new(Cursor::new(serde_json::to_vec(&body).unwrap()));
                self.state.install_snapshot(&meta, body).await.unwrap();
                *applied = self.appended.len();
            }
        }
    }

    /// Makes everything durable and stops the node; answers its folder.
    async fn stop(self) -> tempfile::TempDir {
        self.inkling.group_commit().wait_durable().await.unwrap();
        self.inkling.shutdown().await;
        self.folder
    }
}

fn files_containing(folder: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![folder.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .unwrap_or_default()
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

fn queries(profile: &inkling_domain::Profile) -> Vec<String> {
    profile
        .recent_queries
        .iter()
        .map(|q| q.query.clone())
        .collect()
}

async fn check(case: Case) {
    let name = case.name;
    let group = partition_of(VICTIM);
    let bystander = bystander();
    let mut node = start(tempfile::tempdir().unwrap(), group).await;
    let mut applied = 0;
    let mut rounds = Vec::new();
    for step in &case.steps {
        if let Step::Events(round) = step {
            rounds.push(*round);
        }
        node.run(*step, &mut applied, &bystander).await;
    }
    let folder = node.stop().await;
    for round in case.gone.iter().chain(case.kept) {
        let leaks = files_containing(folder.path(), &marker(VICTIM, *round));
        assert_eq!(
            leaks,
            Vec::<String>::new(),
            "{name}: round {round} in plaintext"
        );
    }

    let mut node = start(folder, group).await;
    let profiles = ProfileStore::new(node.engine.clone());
    let kept = profiles
        .load(&bystander)
        .unwrap()
        .expect("the bystander's profile");
    for round in &rounds {
        assert!(
            queries(&kept).contains(&marker(&bystander, *round)),
            "{name}"
        );
    }
    let victim = profiles.load(VICTIM).unwrap();
    let victim_queries = victim.as_ref().map(queries).unwrap_or_default();
    for round in case.kept {
        assert!(
            victim_queries.contains(&marker(VICTIM, *round)),
            "{name}: lost {round}"
        );
    }
    let logged: Vec<String> = node
        .log
        .get_log_reader()
        .await
        .try_get_log_entries(0..u64::MAX)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|entry| match entry.payload {
            EntryPayload::Normal(Command::RecordEvents { events, .. }) => Some(events),
            _ => None,
        })
        .flatten()
        .filter_map(|event| event.query)
        .collect();
    for round in case.gone {
        assert!(
            !victim_queries.contains(&marker(VICTIM, *round)),
            "{name}: {round}"
        );
        assert!(
            !logged.contains(&marker(VICTIM, *round)),
            "{name}: {round} logged"
        );
    }
    if let Some(snapshot) = node.state.get_current_snapshot().await.unwrap() {
        let body = String::from_utf8(snapshot.snapshot.into_inner()).unwrap();
        for round in case.gone {
            assert!(
                !body.contains(&marker(VICTIM, *round)),
                "{name}: {round} in snapshot"
            );
        }
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_users_marker_is_in_no_file_and_the_rest_survives_a_reopen() {
    use Step::*;
    let cases = [
        Case {
            name: "events then an erasure",
            steps: vec![Events(1), Events(2), AppendErase, ApplyAll],
            gone: &[1, 2],
            kept: &[],
        },
        Case {
            name: "a snapshot built before the erasure",
            steps: vec![Events(1), BuildSnapshot, Events(2), AppendErase, ApplyAll],
            gone: &[1, 2],
            kept: &[],
        },
        Case {
            name: "events logged after the erasure, before it applied, are kept",
            steps: vec![Events(1), AppendErase, AppendEvents(3), ApplyAll],
            gone: &[1],
            kept: &[3],
        },
        Case {
            name: "a snapshot without the user replaces what a lagging replica held",
            steps: vec![Events(1), Events(2), InstallSnapshotWithoutVictim],
            gone: &[1, 2],
            kept: &[],
        },
        Case {
            name: "no erasure: the user's data stays, sealed",
            steps: vec![Events(1), BuildSnapshot],
            gone: &[],
            kept: &[1],
        },
    ];
    for case in cases {
        check(case).await;
    }
}
