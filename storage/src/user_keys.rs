//! Per-user data keys, kept outside the key-value engine so that erasing a user can destroy
//! them for good: crypto-shredding.
//!
//! sled is log-structured: a removed value stays in its segment files until that segment is
//! cleaned, which happens only once enough else is written (`tests/sled_remnants.rs`
//! measures it). So what a user's records hold is sealed (ChaCha20-Poly1305, from `ring`)
//! under a key of that user, and the keys live in small files of their own
//! (`bucket-NN.jsonl`), which an erasure rewrites without the user's keys (write to a
//! temporary file, fsync, rename, fsync the folder). What sled still holds of the user
//! afterwards is ciphertext nobody can open.
//!
//! A user has one or more key *generations*. Each is tagged with `since`, a position chosen
//! by the caller (the replicated log's index it was made at): [`UserKeys::forget`] destroys
//! the generations made at or before the erasure's position and keeps those made after it,
//! so what was written after the erasure stays readable. Log records are sealed under the
//! newest generation ([`UserKeys::seal_log`]), state under the oldest live one
//! ([`UserKeys::seal_state`]): state written before an erasure is applied must die with it.
//!
//! Files hold no user id: a user is known by a keyed hash ([`KeyId`]) under the node's own
//! `node.key`. A destroyed generation leaves a tombstone (the key id and the generation's
//! random tag, no key), so a record sealed under it reads as erased, while a record whose
//! generation was never known reads as corrupt.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::{Result, StorageError};

/// The first byte of a sealed value; a JSON record starts with `{` or `[`.
pub const SEALED_VERSION: u8 = 1;
/// Key files are spread over this many buckets, so an erasure rewrites a sixteenth of them.
const BUCKETS: u8 = 16;
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 8;
const NODE_KEY_FILE: &str = "node.key";

/// A user as the key files know them: a keyed hash of the user id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 16]);

impl KeyId {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self(bytes))
    }

    fn bucket(&self) -> u8 {
        self.0[0] % BUCKETS
    }
}

/// One generation of a user's key.
#[derive(Clone)]
struct Generation {
    tag: u64,
    since: u64,
    group: u16,
    /// Made by [`UserKeys::rotate`] for what follows an erasure, rather than for a first write.
    rotated: bool,
    key: [u8; KEY_LEN],
}

#[derive(Default)]
struct UserEntry {
    /// Oldest first.
    live: Vec<Generation>,
    destroyed: Vec<u64>,
}

/// One line of a key file.
#[derive(Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
enum Line {
    Key {
        id: String,
        tag: u64,
        since: u64,
        group: u16,
        rotated: bool,
        key: String,
    },
    Erased {
        id: String,
        tag: u64,
    },
}

#[derive(Default)]
struct KeyState {
    users: HashMap<KeyId, UserEntry>,
    /// Append handles of the bucket files, opened on first use.
    appenders: HashMap<u8, File>,
    /// Buckets appended to since the last [`UserKeys::sync`].
    dirty: BTreeSet<u8>,
    /// Whether a bucket file was created since the last sync (the folder needs one too).
    created: bool,
}

/// The node's per-user data keys; see the module's documentation.
pub struct UserKeys {
    dir: PathBuf,
    node_key: hmac::Key,
    random: SystemRandom,
    state: Mutex<KeyState>,
}

impl UserKeys {
    /// Opens (or creates) the key folder `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|error| io_error(dir, error))?;
        let random = SystemRandom::new();
        let node_key = load_or_create_node_key(dir, &random)?;
        let mut state = KeyState::default();
        for bucket in 0..BUCKETS {
            let path = bucket_path(dir, bucket);
            let _ = std::fs::remove_file(path.with_extension("jsonl.tmp"));
            if path.exists() {
                load_bucket(&path, &mut state.users)?;
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            node_key: hmac::Key::new(hmac::HMAC_SHA256, &node_key),
            random,
            state: Mutex::new(state),
        })
    }

    /// The user's key id on this node.
    pub fn key_id(&self, user_id: &str) -> KeyId {
        let digest = hmac::sign(&self.node_key, user_id.as_bytes());
        let mut id = [0; 16];
        id.copy_from_slice(&digest.as_ref()[..16]);
        KeyId(id)
    }

    /// A stable 16-bit hash of the user id (the low bits of xxh3), by which callers group
    /// users: the cluster's partition of a user is this modulo the partition count.
    pub fn group_of(user_id: &str) -> u16 {
        (xxhash_rust::xxh3::xxh3_64(user_id.as_bytes()) & 0xffff) as u16
    }

    /// Seals a log record of the user at position `since` under their newest key, making
    /// one if they have none. The key is durable after the next [`Self::sync`].
    pub fn seal_log(&self, user_id: &str, since: u64, plaintext: &[u8]) -> Result<Vec<u8>> {
        self.seal(user_id, since, plaintext, |live| live.last())
    }

    /// Seals the user's state (a profile) under their oldest live key, making one if they
    /// have none, so that it dies with the next erasure applied.
    pub fn seal_state(&self, user_id: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
        self.seal(user_id, 0, plaintext, |live| live.first())
    }

    /// Opens a sealed value of the user; `None` when its key was destroyed (the user was
    /// erased).
    pub fn unseal(&self, id: &KeyId, sealed: &[u8]) -> Result<Option<Vec<u8>>> {
        let corrupt = |what: &str| StorageError::Other(format!("sealed record: {what}"));
        if sealed.len() < 1 + TAG_LEN + NONCE_LEN || sealed[0] != SEALED_VERSION {
            return Err(corrupt("unknown format"));
        }
        let tag = u64::from_be_bytes(sealed[1..1 + TAG_LEN].try_into().expect("8 bytes"));
        let key = {
            let state = self.state.lock();
            let entry = state.users.get(id);
            match entry.and_then(|entry| entry.live.iter().find(|g| g.tag == tag)) {
                Some(generation) => generation.key,
                None if entry.is_some_and(|entry| entry.destroyed.contains(&tag)) => {
                    return Ok(None);
                }
                None => return Err(corrupt("its key is unknown on this node")),
            }
        };
        let nonce: [u8; NONCE_LEN] = sealed[1 + TAG_LEN..1 + TAG_LEN + NONCE_LEN]
            .try_into()
            .expect("nonce length");
        let mut buffer = sealed[1 + TAG_LEN + NONCE_LEN..].to_vec();
        let plaintext = cipher(&key)
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(id.0),
                &mut buffer,
            )
            .map_err(|_| corrupt("authentication failed"))?;
        Ok(Some(plaintext.to_vec()))
    }

    /// Opens a sealed value of the user named by id.
    pub fn unseal_for(&self, user_id: &str, sealed: &[u8]) -> Result<Option<Vec<u8>>> {
        self.unseal(&self.key_id(user_id), sealed)
    }

    /// Starts a new generation for what the user writes after position `since - 1` (an
    /// erasure proposed there): the erasure, once applied, spares it.
    pub fn rotate(&self, user_id: &str, since: u64) -> Result<()> {
        let id = self.key_id(user_id);
        let generation = self.new_generation(since, Self::group_of(user_id), true)?;
        let mut state = self.state.lock();
        self.append(&mut state, &id, &generation)?;
        state.users.entry(id).or_default().live.push(generation);
        Ok(())
    }

    /// Destroys the user's generations made at or before `upto`, durably, before it
    /// returns. Answers how many were destroyed.
    pub fn forget(&self, user_id: &str, upto: u64) -> Result<usize> {
        let id = self.key_id(user_id);
        let mut state = self.state.lock();
        let Some(entry) = state.users.get_mut(&id) else {
            return Ok(0);
        };
        let destroyed = destroy_where(entry, |generation, _| generation.since <= upto);
        if destroyed > 0 {
            self.rewrite(&mut state, id.bucket())?;
        }
        Ok(destroyed)
    }

    /// After a snapshot at `upto` replaced a group's state: for every user of a group that
    /// `in_scope` accepts and whose key id is not in `present`, destroys every generation
    /// but the newest, and the newest too unless it was made by a rotation or after
    /// `upto` (what follows an erasure, or a first write after the snapshot, stays
    /// readable). Durable before it returns; answers how many were destroyed.
    pub fn forget_absent(
        &self,
        in_scope: impl Fn(u16) -> bool,
        present: &HashSet<KeyId>,
        upto: u64,
    ) -> Result<usize> {
        let mut state = self.state.lock();
        let mut touched = BTreeSet::new();
        let mut destroyed = 0;
        for (id, entry) in state.users.iter_mut() {
            let scoped = entry
                .live
                .iter()
                .any(|generation| in_scope(generation.group));
            if !scoped || present.contains(id) {
                continue;
            }
            let newest = entry.live.len().saturating_sub(1);
            let count = destroy_where(entry, |generation, index| {
                index < newest || (!generation.rotated && generation.since <= upto)
            });
            if count > 0 {
                touched.insert(id.bucket());
                destroyed += count;
            }
        }
        for bucket in touched {
            self.rewrite(&mut state, bucket)?;
        }
        Ok(destroyed)
    }

    /// Makes every key made so far durable. The engine calls it before each of its own
    /// syncs, so a record is never durable before the key that opens it.
    pub fn sync(&self) -> Result<()> {
        let (files, created) = {
            let mut state = self.state.lock();
            let dirty = std::mem::take(&mut state.dirty);
            let files: Vec<File> = dirty
                .iter()
                .filter_map(|bucket| state.appenders.get(bucket)?.try_clone().ok())
                .collect();
            (files, std::mem::take(&mut state.created))
        };
        for file in files {
            file.sync_data()
                .map_err(|error| io_error(&self.dir, error))?;
        }
        if created {
            sync_folder(&self.dir)?;
        }
        Ok(())
    }

    fn seal(
        &self,
        user_id: &str,
        since: u64,
        plaintext: &[u8],
        choose: impl Fn(&[Generation]) -> Option<&Generation>,
    ) -> Result<Vec<u8>> {
        let id = self.key_id(user_id);
        let generation = {
            let mut state = self.state.lock();
            let chosen = state
                .users
                .get(&id)
                .and_then(|entry| choose(&entry.live).cloned());
            match chosen {
                Some(generation) => generation,
                None => {
                    let generation = self.new_generation(since, Self::group_of(user_id), false)?;
                    self.append(&mut state, &id, &generation)?;
                    state
                        .users
                        .entry(id)
                        .or_default()
                        .live
                        .push(generation.clone());
                    generation
                }
            }
        };
        let mut nonce = [0; NONCE_LEN];
        self.random.fill(&mut nonce).map_err(|_| no_randomness())?;
        let mut sealed = Vec::with_capacity(1 + TAG_LEN + NONCE_LEN + plaintext.len() + 16);
        sealed.push(SEALED_VERSION);
        sealed.extend_from_slice(&generation.tag.to_be_bytes());
        sealed.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        cipher(&generation.key)
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(id.0),
                &mut body,
            )
            .map_err(|_| StorageError::Other("sealing failed".to_string()))?;
        sealed.extend_from_slice(&body);
        Ok(sealed)
    }

    fn new_generation(&self, since: u64, group: u16, rotated: bool) -> Result<Generation> {
        let mut key = [0; KEY_LEN];
        let mut tag = [0; TAG_LEN];
        self.random.fill(&mut key).map_err(|_| no_randomness())?;
        self.random.fill(&mut tag).map_err(|_| no_randomness())?;
        Ok(Generation {
            tag: u64::from_be_bytes(tag),
            since,
            group,
            rotated,
            key,
        })
    }

    /// Appends a new generation to its bucket file. Written at once, so a process that dies
    /// leaves it in the page cache; durable at the next [`Self::sync`].
    fn append(&self, state: &mut KeyState, id: &KeyId, generation: &Generation) -> Result<()> {
        let bucket = id.bucket();
        let path = bucket_path(&self.dir, bucket);
        if !state.appenders.contains_key(&bucket) {
            state.created |= !path.exists();
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|error| io_error(&path, error))?;
            state.appenders.insert(bucket, file);
        }
        let mut line = serde_json::to_vec(&key_line(id, generation)).expect("lines serialise");
        line.push(b'\n');
        let file = state.appenders.get_mut(&bucket).expect("opened above");
        file.write_all(&line)
            .map_err(|error| io_error(&path, error))?;
        state.dirty.insert(bucket);
        Ok(())
    }

    /// Replaces a bucket file by one written from memory, durably: temporary file, fsync,
    /// rename, fsync of the folder. The old file, with the destroyed keys, is gone.
    fn rewrite(&self, state: &mut KeyState, bucket: u8) -> Result<()> {
        let path = bucket_path(&self.dir, bucket);
        let temporary = path.with_extension("jsonl.tmp");
        let mut text = Vec::new();
        let mut ids: Vec<&KeyId> = state
            .users
            .keys()
            .filter(|id| id.bucket() == bucket)
            .collect();
        ids.sort();
        for id in ids {
            let entry = &state.users[id];
            for generation in &entry.live {
                serde_json::to_writer(&mut text, &key_line(id, generation)).expect("serialises");
                text.push(b'\n');
            }
            for tag in &entry.destroyed {
                let line = Line::Erased {
                    id: id.to_hex(),
                    tag: *tag,
                };
                serde_json::to_writer(&mut text, &line).expect("serialises");
                text.push(b'\n');
            }
        }
        write_durably(&temporary, &text)?;
        std::fs::rename(&temporary, &path).map_err(|error| io_error(&path, error))?;
        sync_folder(&self.dir)?;
        // Appends went to the old file, now replaced and covered by the new one.
        state.appenders.remove(&bucket);
        state.dirty.remove(&bucket);
        Ok(())
    }
}

/// Destroys the generations `doomed` picks (given each and its place, oldest first),
/// leaving tombstones; answers how many.
fn destroy_where(entry: &mut UserEntry, doomed: impl Fn(&Generation, usize) -> bool) -> usize {
    let mut kept = Vec::new();
    let mut destroyed = 0;
    for (index, mut generation) in std::mem::take(&mut entry.live).into_iter().enumerate() {
        if doomed(&generation, index) {
            entry.destroyed.push(generation.tag);
            generation.key.fill(0);
            destroyed += 1;
        } else {
            kept.push(generation);
        }
    }
    entry.live = kept;
    destroyed
}

fn key_line(id: &KeyId, generation: &Generation) -> Line {
    Line::Key {
        id: id.to_hex(),
        tag: generation.tag,
        since: generation.since,
        group: generation.group,
        rotated: generation.rotated,
        key: hex::encode(generation.key),
    }
}

fn cipher(key: &[u8; KEY_LEN]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).expect("32-byte key"))
}

fn bucket_path(dir: &Path, bucket: u8) -> PathBuf {
    dir.join(format!("bucket-{bucket:02}.jsonl"))
}

/// Reads a bucket file into `users`. A last line cut short by a crash is skipped: nothing
/// that depends on it was ever made durable.
fn load_bucket(path: &Path, users: &mut HashMap<KeyId, UserEntry>) -> Result<()> {
    let text = std::fs::read(path).map_err(|error| io_error(path, error))?;
    let lines: Vec<&[u8]> = text.split(|byte| *byte == b'\n').collect();
    let last = lines.len().saturating_sub(1);
    for (number, line) in lines.into_iter().enumerate() {
        if line.is_empty() {
            continue;
        }
        let parsed = serde_json::from_slice::<Line>(line)
            .ok()
            .and_then(parse_line);
        match parsed {
            Some((id, Ok(generation))) => users.entry(id).or_default().live.push(generation),
            Some((id, Err(tag))) => users.entry(id).or_default().destroyed.push(tag),
            None if number == last => {
                tracing::warn!(path = %path.display(), "ignoring a key line cut short");
            }
            None => {
                return Err(StorageError::Other(format!(
                    "corrupt key file {} at line {}",
                    path.display(),
                    number + 1
                )));
            }
        }
    }
    Ok(())
}

/// A key line as a live generation, or a tombstone line as the destroyed tag.
fn parse_line(line: Line) -> Option<(KeyId, std::result::Result<Generation, u64>)> {
    match line {
        Line::Key {
            id,
            tag,
            since,
            group,
            rotated,
            key,
        } => {
            let key = hex::decode(&key).ok()?.try_into().ok()?;
            let generation = Generation {
                tag,
                since,
                group,
                rotated,
                key,
            };
            Some((KeyId::from_hex(&id)?, Ok(generation)))
        }
        Line::Erased { id, tag } => Some((KeyId::from_hex(&id)?, Err(tag))),
    }
}

/// The node's secret for key ids: made once, never stored in the engine.
fn load_or_create_node_key(dir: &Path, random: &SystemRandom) -> Result<[u8; KEY_LEN]> {
    let path = dir.join(NODE_KEY_FILE);
    if path.exists() {
        let bytes = std::fs::read(&path).map_err(|error| io_error(&path, error))?;
        return bytes
            .try_into()
            .map_err(|_| StorageError::Other(format!("{} is not a 32-byte key", path.display())));
    }
    let mut key = [0; KEY_LEN];
    random.fill(&mut key).map_err(|_| no_randomness())?;
    let temporary = path.with_extension("tmp");
    write_durably(&temporary, &key)?;
    std::fs::rename(&temporary, &path).map_err(|error| io_error(&path, error))?;
    sync_folder(dir)?;
    Ok(key)
}

/// Writes a new file readable by its owner only, and fsyncs it.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut options = OpenOptions::new();
    options.create(true).write(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|error| io_error(path, error))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|error| io_error(path, error))
}

/// Makes a folder's entries (a created or renamed file) durable.
fn sync_folder(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|folder| folder.sync_all())
        .map_err(|error| io_error(dir, error))
}

fn io_error(path: &Path, error: std::io::Error) -> StorageError {
    StorageError::Other(format!("{}: {error}", path.display()))
}

fn no_randomness() -> StorageError {
    StorageError::Other("the system random source failed".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "victim-7";

    /// One step of a script run against a key folder.
    enum Step {
        /// Seals the label as a log record at `since`.
        Log(&'static str, u64),
        /// Seals the label as the user's state.
        State(&'static str),
        Rotate(u64),
        Forget(u64),
        /// A snapshot at this position that does not hold the user replaced their group.
        SnapshotWithout(u64),
        /// Syncs, drops the keys and opens the folder again.
        Reopen,
    }

    struct Case {
        name: &'static str,
        steps: Vec<Step>,
        readable: &'static [&'static str],
        erased: &'static [&'static str],
    }

    fn check(case: Case) {
        let dir = tempfile::tempdir().unwrap();
        let mut keys = UserKeys::open(dir.path()).unwrap();
        let mut sealed: HashMap<&str, Vec<u8>> = HashMap::new();
        for step in case.steps {
            match step {
                Step::Log(label, since) => {
                    let bytes = keys.seal_log(USER, since, label.as_bytes()).unwrap();
                    sealed.insert(label, bytes);
                }
                Step::State(label) => {
                    sealed.insert(label, keys.seal_state(USER, label.as_bytes()).unwrap());
                }
                Step::Rotate(since) => keys.rotate(USER, since).unwrap(),
                Step::Forget(upto) => {
                    keys.forget(USER, upto).unwrap();
                }
                Step::SnapshotWithout(upto) => {
                    keys.forget_absent(|_| true, &HashSet::new(), upto).unwrap();
                }
                Step::Reopen => {
                    keys.sync().unwrap();
                    drop(keys);
                    keys = UserKeys::open(dir.path()).unwrap();
                }
            }
        }
        let name = case.name;
        for label in case.readable {
            let opened = keys.unseal_for(USER, &sealed[label]).unwrap();
            assert_eq!(opened.as_deref(), Some(label.as_bytes()), "{name}: {label}");
        }
        for label in case.erased {
            let opened = keys.unseal_for(USER, &sealed[label]).unwrap();
            assert_eq!(opened, None, "{name}: {label} should be erased");
        }
    }

    #[test]
    fn an_erasure_destroys_the_keys_of_what_came_before_it_only() {
        use Step::*;
        let cases = [
            Case {
                name: "sealed records open, also after a reopen",
                steps: vec![Log("event", 3), State("profile"), Reopen],
                readable: &["event", "profile"],
                erased: &[],
            },
            Case {
                name: "an erasure shreds the log and the state before it",
                steps: vec![Log("event", 3), State("profile"), Forget(9)],
                readable: &[],
                erased: &["event", "profile"],
            },
            Case {
                name: "the erasure survives a reopen",
                steps: vec![Log("event", 3), Forget(9), Reopen],
                readable: &[],
                erased: &["event"],
            },
            Case {
                name: "what is logged after the erasure was proposed survives it",
                steps: vec![
                    Log("before", 3),
                    Rotate(10),
                    Log("after", 11),
                    State("profile-before-apply"),
                    Forget(9),
                    Reopen,
                ],
                readable: &["after"],
                erased: &["before", "profile-before-apply"],
            },
            Case {
                name: "state saved after the erasure applied uses the new key",
                steps: vec![
                    Log("before", 3),
                    Rotate(10),
                    Forget(9),
                    State("profile-after"),
                ],
                readable: &["profile-after"],
                erased: &["before"],
            },
            Case {
                name: "a snapshot without the user shreds what it replaced",
                steps: vec![Log("old", 3), State("profile"), SnapshotWithout(20), Reopen],
                readable: &[],
                erased: &["old", "profile"],
            },
            Case {
                name: "a snapshot without the user spares what followed an erasure",
                steps: vec![
                    Log("old", 3),
                    Rotate(10),
                    Log("new", 21),
                    SnapshotWithout(20),
                ],
                readable: &["new"],
                erased: &["old"],
            },
            Case {
                name: "a snapshot spares a first write after it",
                steps: vec![Log("new", 21), SnapshotWithout(20)],
                readable: &["new"],
                erased: &[],
            },
        ];
        for case in cases {
            check(case);
        }
    }

    #[test]
    fn tampered_or_unknown_records_are_errors_not_erasures() {
        let dir = tempfile::tempdir().unwrap();
        let keys = UserKeys::open(dir.path()).unwrap();
        let mut sealed = keys.seal_log(USER, 1, b"event").unwrap();
        let other = keys.seal_log("someone-else", 1, b"event").unwrap();
        assert!(
            keys.unseal_for("someone-else", &sealed).is_err(),
            "another user's key"
        );
        assert!(
            keys.unseal_for(USER, &other).is_err(),
            "a record moved between users"
        );
        *sealed.last_mut().unwrap() ^= 1;
        assert!(keys.unseal_for(USER, &sealed).is_err(), "a flipped bit");
        assert!(keys.unseal_for(USER, b"\x01short").is_err());
    }

    #[test]
    fn key_files_name_no_user_and_a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let keys = UserKeys::open(dir.path()).unwrap();
        let sealed = keys.seal_log(USER, 1, b"event").unwrap();
        keys.sync().unwrap();
        drop(keys);
        for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
            let text = std::fs::read(entry.path()).unwrap();
            assert!(!text.windows(USER.len()).any(|w| w == USER.as_bytes()));
            if entry.file_name().to_string_lossy().starts_with("bucket-") {
                let mut file = OpenOptions::new().append(true).open(entry.path()).unwrap();
                file.write_all(b"{\"t\":\"key\",\"id\":\"ab").unwrap();
            }
        }
        let keys = UserKeys::open(dir.path()).unwrap();
        assert_eq!(keys.unseal_for(USER, &sealed).unwrap().unwrap(), b"event");
    }

    #[test]
    fn group_of_holds_the_low_bits_partitions_are_taken_from() {
        for user in ["a", "victim-7", "用户"] {
            let hash = xxhash_rust::xxh3::xxh3_64(user.as_bytes());
            assert_eq!(u64::from(UserKeys::group_of(user)) % 16, hash % 16);
        }
    }
}
