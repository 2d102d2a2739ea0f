//! How big sled's folder grows under a write pattern like a node's, and what it levels off
//! at: 200 profiles rewritten in turn, a replicated log per group (17 groups) appended once
//! per write and purged after each snapshot, and an applied-index record. It measured the
//! choices in docs/benchmarks.md ("Disk under steady events"); it prints the folder's size
//! every 100,000 writes.
//!
//! ```sh
//! cargo run --release -p inkling-storage --example sled_growth -- KEYS WRITES EVERY KEEP
//! ```
//!
//! KEYS is where each shopper's idempotency keys go: `profile` (packed in the profile, 11
//! bytes a key), `records` (two records a key: by hash and by sequence), `chunks` (one
//! record per 512 keys) or `none`. EVERY is the log entries between snapshots, KEEP those
//! kept after one.

use std::time::Instant;

const USERS: u64 = 200;
const GROUPS: u64 = 17;
const PROFILE_BYTES: usize = 5_000;
const LOG_ENTRY_BYTES: usize = 350;
const KEY_WINDOW: u64 = 10_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [keys, writes, every, keep] = args.as_slice() else {
        return Err("usage: sled_growth profile|records|chunks|none WRITES EVERY KEEP".into());
    };
    let (writes, every, keep): (u64, u64, u64) = (writes.parse()?, every.parse()?, keep.parse()?);
    let dir = tempfile::tempdir()?;
    let db = sled::Config::new()
        .path(dir.path())
        .flush_every_ms(None)
        .open()?;
    let (profiles, key_records) = (db.open_tree("profiles")?, db.open_tree("keys")?);
    let (log, state) = (db.open_tree("log")?, db.open_tree("state")?);
    let started = Instant::now();
    let mut keys_of = vec![0u64; USERS as usize];
    for write in 0..writes {
        let user = (write * 7_919) % USERS;
        let applied = keys_of[user as usize];
        keys_of[user as usize] += 1;
        let user_key = format!("user-{user}").into_bytes();
        let mut profile_bytes = PROFILE_BYTES;
        let hash = write.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        match keys.as_str() {
            "profile" => profile_bytes += 11 * applied.min(KEY_WINDOW) as usize,
            "records" => {
                let by_hash = [&user_key[..], b"h", &hash.to_be_bytes()].concat();
                key_records.insert(by_hash, &applied.to_be_bytes())?;
                let by_sequence = [&user_key[..], b"s", &applied.to_be_bytes()].concat();
                key_records.insert(by_sequence, &hash.to_be_bytes())?;
            }
            "chunks" => {
                let chunk = [&user_key[..], &(applied / 512).to_be_bytes()].concat();
                key_records.insert(chunk, vec![1u8; ((applied % 512) + 1) as usize * 8])?;
            }
            "none" => {}
            other => return Err(format!("unknown KEYS {other}").into()),
        }
        let profile: Vec<u8> = (0..profile_bytes)
            .map(|at| (at as u64 ^ write) as u8)
            .collect();
        profiles.insert(&user_key, profile)?;
        let (group, index) = (write % GROUPS, write / GROUPS);
        log.insert(log_key(group, index), vec![7u8; LOG_ENTRY_BYTES])?;
        if index % every == 0 && index >= every + keep {
            let mut purge = sled::Batch::default();
            for key in log
                .range(log_key(group, 0)..log_key(group, index - keep))
                .keys()
            {
                purge.remove(key?);
            }
            log.apply_batch(purge)?;
        }
        state.insert("applied", &write.to_be_bytes())?;
        // A group commit covers a few writes.
        if write % 4 == 0 {
            db.flush()?;
        }
        if (write + 1) % 100_000 == 0 {
            let mib = inkling_storage::disk::allocated_bytes(dir.path())? as f64 / 1_048_576.0;
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "{keys} every {every} keep {keep}: {:>8} writes {mib:>8.1} MiB ({seconds:.0} s)",
                write + 1
            );
        }
    }
    Ok(())
}

fn log_key(group: u64, index: u64) -> Vec<u8> {
    [group.to_be_bytes(), index.to_be_bytes()].concat()
}
