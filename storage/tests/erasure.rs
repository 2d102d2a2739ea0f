//! Erasing a user on real sled files: what the files keep afterwards is unreadable, and
//! everyone else's data survives a reopen.

use std::path::Path;
use std::sync::Arc;

use inkling_domain::{Event, EventKind, Profile, ProfileConfig};
use inkling_storage::{Keyspace, KvEngine, ProfileStore, SledEngine};

/// Paths of the files under `folder` whose bytes contain `needle`.
fn files_containing(folder: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![folder.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .unwrap()
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

fn profile_with_query(user_id: &str, query: &str) -> Profile {
    let mut profile = Profile::new(user_id);
    let event = Event {
        user_id: user_id.to_string(),
        session_id: Some("s1".to_string()),
        kind: EventKind::Search,
        item_id: None,
        query: Some(query.to_string()),
        timestamp: Some(1_000),
        learn: true,
        event_id: Some(format!("{user_id}-1")),
        attribution: None,
    };
    profile.apply(&event, None, 1_000, &ProfileConfig::default());
    profile
}

struct Case {
    name: &'static str,
    /// Users written, each with a search for `marker-<user>`.
    users: &'static [&'static str],
    erased: &'static [&'static str],
    /// Writes after the erasure, to push sled to reuse segments.
    churn: usize,
}

fn check(case: &Case) {
    let name = case.name;
    let dir = tempfile::tempdir().unwrap();
    let marker = |user: &str| format!("marker-{user}-5d1c");
    let mut leftovers = Vec::new();
    {
        let engine: Arc<dyn KvEngine> = Arc::new(SledEngine::open(dir.path()).unwrap());
        let profiles = ProfileStore::new(engine.clone());
        for user in case.users {
            profiles
                .save(&profile_with_query(user, &marker(user)))
                .unwrap();
        }
        engine.sync().unwrap();
        for user in case.users {
            assert_eq!(
                files_containing(dir.path(), &marker(user)),
                Vec::<String>::new()
            );
        }
        for user in case.erased {
            // What sled's files may keep: the record as it was stored.
            leftovers.push(
                engine
                    .get(Keyspace::Profiles, user.as_bytes())
                    .unwrap()
                    .unwrap(),
            );
            profiles.delete(user).unwrap();
            engine.user_keys().forget(user, u64::MAX).unwrap();
        }
        for round in 0..case.churn {
            let key = (round % 50).to_be_bytes();
            engine.put(Keyspace::Products, &key, &[7; 512]).unwrap();
        }
        engine.sync().unwrap();
    }
    let engine: Arc<dyn KvEngine> = Arc::new(SledEngine::open(dir.path()).unwrap());
    let profiles = ProfileStore::new(engine.clone());
    for (user, leftover) in case.erased.iter().zip(&leftovers) {
        assert_eq!(profiles.load(user).unwrap(), None, "{name}: {user}");
        let opened = engine.user_keys().unseal_for(user, leftover).unwrap();
        assert_eq!(opened, None, "{name}: {user}'s old record still opens");
        assert_eq!(
            files_containing(dir.path(), &marker(user)),
            Vec::<String>::new()
        );
    }
    for user in case.users.iter().filter(|user| !case.erased.contains(user)) {
        let profile = profiles.load(user).unwrap().expect("kept user");
        assert_eq!(
            profile.recent_queries[0].query,
            marker(user),
            "{name}: {user}"
        );
    }
    assert_eq!(
        profiles.all().unwrap().len(),
        case.users.len() - case.erased.len(),
        "{name}"
    );
}

#[test]
fn an_erased_user_is_unreadable_and_the_others_survive_a_reopen() {
    let cases = [
        Case {
            name: "one user erased among three",
            users: &["victim-7", "bystander-1", "bystander-2"],
            erased: &["victim-7"],
            churn: 0,
        },
        Case {
            name: "an erasure after heavy writing",
            users: &["victim-7", "bystander-1"],
            erased: &["victim-7"],
            churn: 5_000,
        },
        Case {
            name: "everyone erased",
            users: &["victim-7", "victim-8"],
            erased: &["victim-7", "victim-8"],
            churn: 0,
        },
        Case {
            name: "nobody erased",
            users: &["bystander-1"],
            erased: &[],
            churn: 0,
        },
    ];
    for case in &cases {
        check(case);
    }
}

/// The measurement behind sealing: a value written in plaintext and removed stays in
/// sled's `db` file. sled 0.34 cleans a segment only once less than half of it is live
/// (`SEGMENT_CLEANUP_THRESHOLD = 50`, not configurable: `Config::segment_cleanup_threshold`
/// is a deprecated no-op), and never zeroes or punches a freed one; in this test about
/// 10 MB of later writes happened to overwrite it, 1 MB did not.
#[test]
fn sled_keeps_a_removed_plaintext_value_in_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let marker = "marker-plaintext-9e41";
    {
        let engine = SledEngine::open(dir.path()).unwrap();
        engine
            .put(Keyspace::Profiles, b"victim", marker.as_bytes())
            .unwrap();
        engine.sync().unwrap();
        engine.delete(Keyspace::Profiles, b"victim").unwrap();
        for round in 0..2_000u32 {
            let key = (round % 50).to_be_bytes();
            engine.put(Keyspace::Products, &key, &[1; 512]).unwrap();
        }
        engine.sync().unwrap();
        assert_eq!(engine.get(Keyspace::Profiles, b"victim").unwrap(), None);
    }
    assert!(
        !files_containing(dir.path(), marker).is_empty(),
        "sled dropped the removed value: sealing is still right, but this note is stale"
    );
}
