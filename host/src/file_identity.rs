//! The SHA-256 of a connector file, remembered by the file's status, so a file that has not
//! changed since it was last hashed is not read and hashed again on every load.
//!
//! A connector file's SHA-256 is its identity: the artifact cache's key and what approvals
//! record. Hashing a 400 KiB component takes about 300 µs, half of a load from the artifact
//! cache. Like git's index, this keeps for each file path the status the file had when it was
//! hashed (device, inode, size, modification and change times) and trusts the hash while the
//! status is the same.
//!
//! The change time (`ctime`) is what makes that safe: every write, rename onto the path or
//! `touch` sets it to the current time, and no system call sets it to anything else. A hash is
//! only remembered for a file whose change time was already [`SETTLED`] in the past when the
//! hashing began; any later write gives the file a newer change time than the one recorded, even
//! with coarse file-system timestamps, so its next load hashes it again. (Setting the system
//! clock back defeats this, as it defeats git and make; whoever can do that can also rewrite the
//! artifact cache, whose compiled code the host trusts more than these hashes.)
//!
//! Entries live in the artifact cache directory (`identities/`), written atomically, one small
//! JSON file per path, named by a SHA-256 of the path.

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cap_std::fs::Dir;
use sha2::{Digest, Sha256};

/// How long a file must have been unchanged before its hash is remembered: longer than any
/// file-system timestamp granularity (ext4 and xfs: a kernel tick; FAT: 2 s).
pub const SETTLED: Duration = Duration::from_secs(3);

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct FileStamp {
    device: u64,
    inode: u64,
    size: u64,
    modified_ns: i128,
    changed_ns: i128,
}

impl FileStamp {
    pub(crate) fn of(metadata: &std::fs::Metadata) -> FileStamp {
        let nanos =
            |seconds: i64, nanoseconds: i64| i128::from(seconds) * 1_000_000_000 + i128::from(nanoseconds);
        FileStamp {
            device: metadata.dev(),
            inode: metadata.ino(),
            size: metadata.size(),
            modified_ns: nanos(metadata.mtime(), metadata.mtime_nsec()),
            changed_ns: nanos(metadata.ctime(), metadata.ctime_nsec()),
        }
    }

    /// Whether the file last changed at least `settled` before `now`.
    fn settled_before(&self, now: SystemTime, settled: Duration) -> bool {
        let Ok(since_epoch) = now.duration_since(UNIX_EPOCH) else {
            return false;
        };
        let now_ns = since_epoch.as_nanos() as i128;
        self.changed_ns <= now_ns - settled.as_nanos() as i128
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Entry {
    path: String,
    stamp: FileStamp,
    sha256: String,
}

/// Remembered hashes, in a directory of the artifact cache.
#[derive(Debug)]
pub(crate) struct FileIdentities {
    dir: Dir,
    settled: Duration,
}

impl FileIdentities {
    /// Opens (creating it if needed) the `identities` directory inside `cache`.
    pub(crate) fn open(cache: &Dir, settled: Duration) -> std::io::Result<FileIdentities> {
        cache.create_dir_all("identities")?;
        Ok(FileIdentities {
            dir: cache.open_dir("identities")?,
            settled,
        })
    }

    fn entry_name(path: &str) -> String {
        format!("{}.json", hex::encode(Sha256::digest(path.as_bytes())))
    }

    /// The SHA-256 recorded for `path`, if the file still has the status it had when hashed.
    pub(crate) fn remembered(&self, path: &str, stamp: &FileStamp) -> Option<String> {
        let text = self.dir.read_to_string(Self::entry_name(path)).ok()?;
        let entry: Entry = serde_json::from_str(&text).ok()?;
        (entry.path == path && entry.stamp == *stamp).then_some(entry.sha256)
    }

    /// Records that the file at `path`, with status `stamp` before its bytes were read at
    /// `read_at`, hashes to `sha256`; a file that changed too recently is not recorded.
    /// Returns whether it was. A failure to write is logged and otherwise ignored: the next
    /// load hashes the file again.
    pub(crate) fn remember(&self, path: &str, stamp: &FileStamp, read_at: SystemTime, sha256: &str) -> bool {
        if !stamp.settled_before(read_at, self.settled) {
            return false;
        }
        let entry = Entry {
            path: path.to_owned(),
            stamp: stamp.clone(),
            sha256: sha256.to_owned(),
        };
        let name = Self::entry_name(path);
        let temporary = format!("{name}.{}.tmp", std::process::id());
        let written = serde_json::to_vec(&entry)
            .map_err(std::io::Error::other)
            .and_then(|bytes| self.dir.write(&temporary, bytes))
            .and_then(|()| self.dir.rename(&temporary, &self.dir, &name));
        match written {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, path, "the connector file's hash was not remembered");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Write;

    struct Fixture {
        _temporary: tempfile::TempDir,
        file: std::path::PathBuf,
        identities: FileIdentities,
    }

    fn fixture(settled: Duration) -> Fixture {
        let temporary = tempfile::tempdir().unwrap();
        let cache = Dir::open_ambient_dir(temporary.path(), cap_std::ambient_authority()).unwrap();
        let file = temporary.path().join("connector.wasm");
        std::fs::write(&file, b"first version").unwrap();
        Fixture {
            identities: FileIdentities::open(&cache, settled).unwrap(),
            file,
            _temporary: temporary,
        }
    }

    fn stamp(path: &std::path::Path) -> FileStamp {
        FileStamp::of(&std::fs::metadata(path).unwrap())
    }

    fn later() -> SystemTime {
        SystemTime::now() + Duration::from_secs(60)
    }

    #[test]
    fn an_unchanged_file_is_remembered_and_any_change_forgets_it() {
        let f = fixture(SETTLED);
        let path = f.file.display().to_string();
        let before = stamp(&f.file);
        assert_eq!(f.identities.remembered(&path, &before), None);
        assert!(f.identities.remember(&path, &before, later(), "aa"));
        assert_eq!(f.identities.remembered(&path, &before).as_deref(), Some("aa"));
        // Another path with the same status is another entry.
        assert_eq!(f.identities.remembered("/elsewhere.wasm", &before), None);

        // Rewritten in place, same size: the change time moves (and the modification time
        // is set explicitly, as a tool preserving times would not manage for ctime).
        let mut file = File::options().write(true).open(&f.file).unwrap();
        file.write_all(b"other version").unwrap();
        file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1))
            .unwrap();
        drop(file);
        let after = stamp(&f.file);
        assert_ne!(after, before);
        assert_eq!(f.identities.remembered(&path, &after), None);

        // Replaced by a rename: another inode.
        let replacement = f.file.with_extension("new");
        std::fs::write(&replacement, b"first version").unwrap();
        std::fs::rename(&replacement, &f.file).unwrap();
        let renamed = stamp(&f.file);
        assert_ne!(renamed.inode, before.inode);
        assert_eq!(f.identities.remembered(&path, &renamed), None);
    }

    #[test]
    fn a_file_that_changed_just_now_is_not_remembered() {
        let f = fixture(SETTLED);
        let path = f.file.display().to_string();
        let now = stamp(&f.file);
        assert!(!f.identities.remember(&path, &now, SystemTime::now(), "aa"));
        assert_eq!(f.identities.remembered(&path, &now), None);
    }

    #[test]
    fn a_damaged_entry_is_ignored() {
        let f = fixture(SETTLED);
        let path = f.file.display().to_string();
        let now = stamp(&f.file);
        assert!(f.identities.remember(&path, &now, later(), "aa"));
        f.identities
            .dir
            .write(FileIdentities::entry_name(&path), b"{\"path\":")
            .unwrap();
        assert_eq!(f.identities.remembered(&path, &now), None);
    }
}
