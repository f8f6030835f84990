//! The node's blob store: content-addressed files under `blobs/`, named by
//! their BLAKE3 hash. Written to a temporary file and renamed, so a crash
//! never leaves a partial blob under a real name; verified on every read, so
//! a corrupted file is never served or run (it is deleted instead).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sharegrid_core::ContentId;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Larger than the store accepts.
    #[error("blob of {len} bytes exceeds the store's {max}-byte limit")]
    TooLarge {
        /// Its size.
        len: u64,
        /// The limit.
        max: u64,
    },
}

/// Content-addressed blobs in a directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
    max_blob_bytes: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl BlobStore {
    /// Opens (creating) the store in `dir`; blobs over `max_blob_bytes` are
    /// refused. Parts of fetches a crash interrupted are deleted.
    pub fn open(dir: impl Into<PathBuf>, max_blob_bytes: u64) -> Result<Self, BlobError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_name().to_str().is_some_and(|n| n.ends_with(".part")) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(BlobStore { dir, max_blob_bytes })
    }

    fn part_path(&self, id: &ContentId, fetch: u64) -> PathBuf {
        self.dir.join(format!("{}.{fetch}.part", id.to_hex()))
    }

    /// Writes `data` at `offset` of fetch number `fetch`'s part of blob `id`
    /// (a fetch streamed to disk; parts never count as blobs).
    pub fn write_part(&self, id: &ContentId, fetch: u64, offset: u64, data: &[u8]) -> Result<(), BlobError> {
        use std::os::unix::fs::FileExt;
        let path = self.part_path(id, fetch);
        if offset.saturating_add(data.len() as u64) > self.max_blob_bytes {
            return Err(BlobError::TooLarge {
                len: offset.saturating_add(data.len() as u64),
                max: self.max_blob_bytes,
            });
        }
        let f = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(offset == 0)
            .open(&path)
            .map_err(io(&path))?;
        f.write_all_at(data, offset).map_err(io(&path))
    }

    /// Makes a complete part (its hash checked as it arrived) the blob `id`.
    pub fn commit_part(&self, id: &ContentId, fetch: u64, total: u64) -> Result<(), BlobError> {
        let part = self.part_path(id, fetch);
        let f = fs::File::open(&part).map_err(io(&part))?;
        let len = f.metadata().map_err(io(&part))?.len();
        if len != total {
            let _ = fs::remove_file(&part);
            return Err(BlobError::Io {
                path: part,
                source: std::io::Error::other(format!("{len} bytes written of {total}")),
            });
        }
        f.sync_all().map_err(io(&part))?;
        let path = self.path(id);
        fs::rename(&part, &path).map_err(io(&path))
    }

    /// Deletes a failed fetch's part.
    pub fn remove_part(&self, id: &ContentId, fetch: u64) {
        let _ = fs::remove_file(self.part_path(id, fetch));
    }

    fn path(&self, id: &ContentId) -> PathBuf {
        self.dir.join(id.to_hex())
    }

    /// Stores `bytes`, returning their id. Storing a blob twice is harmless.
    pub fn put(&self, bytes: &[u8]) -> Result<ContentId, BlobError> {
        if bytes.len() as u64 > self.max_blob_bytes {
            return Err(BlobError::TooLarge {
                len: bytes.len() as u64,
                max: self.max_blob_bytes,
            });
        }
        let id = ContentId::of(bytes);
        let path = self.path(&id);
        if path.exists() {
            return Ok(id);
        }
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(io(&self.dir))?;
        tmp.write_all(bytes).map_err(io(&path))?;
        tmp.as_file().sync_all().map_err(io(&path))?;
        tmp.persist(&path).map_err(|e| BlobError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        Ok(id)
    }

    /// The blob's bytes, if held and intact. A file whose bytes do not match
    /// its name is deleted and reported as absent.
    pub fn get(&self, id: &ContentId) -> Result<Option<Vec<u8>>, BlobError> {
        let path = self.path(id);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(BlobError::Io { path, source }),
        };
        if ContentId::of(&bytes) != *id {
            tracing::warn!(path = %path.display(), "corrupt blob deleted");
            let _ = fs::remove_file(&path);
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    /// Bytes `offset..offset+len` of a held blob and its total size, for
    /// serving a chunk: only that range is read, whatever the offset, so a
    /// peer asking for the start of a large blob again and again costs a
    /// chunk each time, not the whole blob. Not verified here: the fetching
    /// side verifies the whole against its id (and counts a corrupted blob
    /// against the server).
    pub fn read_chunk(&self, id: &ContentId, offset: u64, len: u32) -> Result<Option<(Vec<u8>, u64)>, BlobError> {
        use std::io::{Read, Seek, SeekFrom};
        let path = self.path(id);
        let mut f = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(BlobError::Io { path, source }),
        };
        let total = f.metadata().map_err(io(&path))?.len();
        let start = offset.min(total);
        let n = (total - start).min(u64::from(len));
        f.seek(SeekFrom::Start(start)).map_err(io(&path))?;
        let mut buf = vec![0; n as usize];
        f.read_exact(&mut buf).map_err(io(&path))?;
        Ok(Some((buf, total)))
    }

    /// Deletes a blob (absent is fine).
    pub fn remove(&self, id: &ContentId) -> Result<(), BlobError> {
        let path = self.path(id);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(BlobError::Io { path, source: e }),
            _ => Ok(()),
        }
    }

    /// Deletes blobs last written more than `age` ago; returns how many.
    pub fn remove_older_than(&self, age: std::time::Duration) -> usize {
        let Ok(entries) = fs::read_dir(&self.dir) else { return 0 };
        let mut n = 0;
        for e in entries.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|el| el > age);
            if old && fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
        n
    }

    /// Marks the blob as used now (its file's modification time), so the
    /// least recently used go first when the store is shrunk.
    pub fn touch(&self, id: &ContentId) {
        if let Ok(f) = fs::File::options().write(true).open(self.path(id)) {
            let _ = f.set_modified(std::time::SystemTime::now());
        }
    }

    /// Deletes the least recently used blobs, except those in `keep`,
    /// until the store holds at most `max_total` bytes; returns how many
    /// went and the bytes left. A bounded cache for the inputs a provider
    /// fetches.
    pub fn shrink_to(&self, max_total: u64, keep: &std::collections::HashSet<ContentId>) -> (usize, u64) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return (0, 0);
        };
        let mut files: Vec<(std::time::SystemTime, u64, PathBuf, bool)> = entries
            .flatten()
            .filter_map(|e| {
                // Blobs only: a temporary file being written is not one.
                let id = e.file_name().to_str()?.parse::<ContentId>().ok()?;
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path(), keep.contains(&id)))
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort_by_key(|f| f.0);
        let mut removed = 0;
        for (_, len, path, kept) in files {
            if total <= max_total {
                break;
            }
            if !kept && fs::remove_file(&path).is_ok() {
                total -= len;
                removed += 1;
            }
        }
        (removed, total)
    }

    /// The size of a held blob (not verified).
    pub fn len(&self, id: &ContentId) -> Option<u64> {
        fs::metadata(self.path(id)).ok().map(|m| m.len())
    }

    /// Whether the blob is held (not verified: use [`BlobStore::get`] to read).
    pub fn has(&self, id: &ContentId) -> bool {
        self.path(id).exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinking_drops_the_least_recently_used_and_keeps_what_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path(), 1 << 20).unwrap();
        let ids: Vec<ContentId> = (0..4u8).map(|i| store.put(&[i; 1000]).unwrap()).collect();
        // Oldest first by use: 0, 1, 2, 3; then 0 is used again.
        for (i, id) in ids.iter().enumerate() {
            let f = fs::File::options().write(true).open(store.path(id)).unwrap();
            f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i as u64))
                .unwrap();
        }
        store.touch(&ids[0]);
        let keep = std::collections::HashSet::from([ids[1]]);
        assert_eq!(store.shrink_to(2000, &keep), (2, 2000));
        assert!(
            store.has(&ids[0]) && store.has(&ids[1]),
            "the recently used and the kept stay"
        );
        assert!(!store.has(&ids[2]) && !store.has(&ids[3]));
    }

    #[test]
    fn a_chunk_read_reads_only_its_range() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("blobs"), 1 << 40).unwrap();
        // A 1 TiB blob file (sparse): a chunk at its start is served from
        // that range alone, never by reading or hashing the whole.
        let id = ContentId::of(b"a large blob");
        let path = store.path(&id);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::File::create(&path).unwrap().set_len(1 << 40).unwrap();
        let (chunk, total) = store.read_chunk(&id, 0, 4096).unwrap().unwrap();
        assert_eq!((chunk.len(), total), (4096, 1 << 40));
        let (tail, _) = store.read_chunk(&id, (1 << 40) - 10, 4096).unwrap().unwrap();
        assert_eq!(tail.len(), 10);
        assert!(path.exists());
    }

    #[test]
    fn blobs_are_stored_by_hash_and_verified_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().join("blobs"), 1000).unwrap();
        let id = store.put(b"hello").unwrap();
        assert_eq!(id, ContentId::of(b"hello"));
        assert_eq!(store.put(b"hello").unwrap(), id);
        assert_eq!(store.get(&id).unwrap().unwrap(), b"hello");
        assert!(store.has(&id));
        assert_eq!(store.get(&ContentId::of(b"other")).unwrap(), None);
        assert!(matches!(
            store.put(&[0u8; 1001]),
            Err(BlobError::TooLarge { len: 1001, max: 1000 })
        ));
        // Corruption on disk: never served, removed.
        fs::write(dir.path().join("blobs").join(id.to_hex()), b"jello").unwrap();
        assert_eq!(store.get(&id).unwrap(), None);
        assert!(!store.has(&id));
        // No temporary files left behind.
        assert_eq!(fs::read_dir(dir.path().join("blobs")).unwrap().count(), 0);
    }

    #[test]
    fn chunks_are_served_and_blobs_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path(), 1 << 20).unwrap();
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let id = store.put(&data).unwrap();
        assert_eq!(
            store.read_chunk(&id, 0, 100).unwrap().unwrap(),
            (data[..100].to_vec(), 1000)
        );
        assert_eq!(
            store.read_chunk(&id, 950, 100).unwrap().unwrap(),
            (data[950..].to_vec(), 1000)
        );
        assert_eq!(store.read_chunk(&id, 5000, 100).unwrap().unwrap(), (vec![], 1000));
        // A corrupted file is served as it is: the fetcher verifies the
        // whole against the id (BlobFetch), and `get` deletes it here.
        fs::write(dir.path().join(id.to_hex()), b"x").unwrap();
        assert_eq!(store.read_chunk(&id, 0, 100).unwrap(), Some((b"x".to_vec(), 1)));
        assert_eq!(store.get(&id).unwrap(), None);
        let id = store.put(b"keep").unwrap();
        assert_eq!(store.remove_older_than(std::time::Duration::from_secs(3600)), 0);
        store.remove(&id).unwrap();
        store.remove(&id).unwrap();
        assert!(!store.has(&id));
    }
}
