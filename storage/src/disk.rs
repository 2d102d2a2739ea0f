//! Room on the disk that holds the data folder.
//!
//! sled and the raft log fail in the middle of a write when the disk is full, and a node
//! whose log append failed stops its raft groups. So a node refuses new data while the
//! disk holding its data folder has less than a threshold free: the write is turned away
//! whole, with an error that says why, before anything is half written. It also weighs a
//! folder as the disk counts it ([`allocated_bytes`]), for the benchmarks of its growth.

use std::path::{Path, PathBuf};

/// Disk blocks under `path`, in bytes, as `du` counts them (sparse files count what they
/// hold, not their length); a missing path holds none.
pub fn allocated_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let mut bytes = metadata.blocks() * 512;
    if metadata.is_dir() {
        for entry in std::fs::read_dir(path)? {
            bytes += allocated_bytes(&entry?.path())?;
        }
    }
    Ok(bytes)
}

/// Checks the free space under a data folder against the least this node keeps free.
#[derive(Debug, Clone)]
pub struct DiskGuard {
    folder: PathBuf,
    min_free_bytes: u64,
}

/// The disk is too full to take new data.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "the disk holding {folder} has {free_mib} MiB free, less than the {min_free_mib} MiB this \
     node keeps free (--min-free-disk-mb); it takes no new data until space is freed"
)]
pub struct LowDisk {
    pub folder: String,
    pub free_mib: u64,
    pub min_free_mib: u64,
}

const MIB: u64 = 1024 * 1024;

impl DiskGuard {
    pub fn new(folder: impl Into<PathBuf>, min_free_bytes: u64) -> Self {
        Self {
            folder: folder.into(),
            min_free_bytes,
        }
    }

    /// Whether the disk has room for new data. A folder whose free space cannot be read
    /// (removed under the node, say) does not stop writes: the write itself then fails
    /// with the real error.
    pub fn check(&self) -> Result<(), LowDisk> {
        if self.min_free_bytes == 0 {
            return Ok(());
        }
        let Some(free) = self.publish_free_space() else {
            return Ok(());
        };
        refuse_below(&self.folder, free, self.min_free_bytes)
    }

    /// Reads the free space under the folder and sets `inkling_disk_free_bytes` to it, for
    /// a check and for every scrape of `/metrics` (followers never check, yet fill too).
    pub fn publish_free_space(&self) -> Option<u64> {
        let free = match fs4::available_space(&self.folder) {
            Ok(free) => free,
            Err(error) => {
                tracing::warn!(folder = %self.folder.display(), %error, "cannot read the free disk space");
                return None;
            }
        };
        inkling_ops::metrics::DISK_FREE_BYTES.set(i64::try_from(free).unwrap_or(i64::MAX));
        Some(free)
    }
}

fn refuse_below(folder: &Path, free: u64, min_free: u64) -> Result<(), LowDisk> {
    if free >= min_free {
        return Ok(());
    }
    Err(LowDisk {
        folder: folder.display().to_string(),
        free_mib: free / MIB,
        min_free_mib: min_free.div_ceil(MIB),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_refused_only_below_the_threshold() {
        // (case, free bytes, least kept free, refused)
        let cases = [
            ("plenty", 10 * MIB, MIB, false),
            ("exactly the threshold", MIB, MIB, false),
            ("one byte short", MIB - 1, MIB, true),
            ("nothing free", 0, MIB, true),
        ];
        for (name, free, min_free, refused) in cases {
            let outcome = refuse_below(Path::new("/data"), free, min_free);
            assert_eq!(outcome.is_err(), refused, "{name}");
        }
    }

    #[test]
    fn the_real_disk_is_read_and_a_refusal_says_why() {
        let folder = tempfile::tempdir().unwrap();
        assert_eq!(DiskGuard::new(folder.path(), 1).check(), Ok(()));
        assert_eq!(
            DiskGuard::new(folder.path(), 0).check(),
            Ok(()),
            "0 never refuses"
        );
        let refusal = DiskGuard::new(folder.path(), u64::MAX).check().unwrap_err();
        assert_eq!(refusal.min_free_mib, u64::MAX.div_ceil(MIB));
        assert!(
            refusal.to_string().contains("--min-free-disk-mb"),
            "{refusal}"
        );
    }
}
