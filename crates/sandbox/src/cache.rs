//! The compiled-module cache on disk: a provider compiles each module once.
//!
//! Entries are keyed by the module's BLAKE3 hash, a fingerprint of the
//! engine settings (wasmtime's precompile compatibility hash) and the
//! metering strategy, so a module
//! compiled for `native` is never loaded for `portable`, nor across wasmtime
//! versions. Each entry carries a BLAKE3 checksum of the compiled artifact,
//! checked before the artifact is loaded; a corrupt or truncated entry is
//! deleted and the module recompiled. The cache is bounded in bytes; the least
//! recently used entries go first.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use std::time::SystemTime;

use sharegrid_core::ContentId;
use wasmtime::{Engine, Module};

use crate::metering::Metering;

const MAGIC: &[u8; 8] = b"SGCWASM1";

/// A `Hasher` over BLAKE3, so the engine fingerprint is stable across Rust
/// versions (unlike `DefaultHasher`).
struct Blake3Hasher(blake3::Hasher);

impl Hasher for Blake3Hasher {
    fn finish(&self) -> u64 {
        let h = self.0.finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&h.as_bytes()[..8]);
        u64::from_le_bytes(b)
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// A short stable fingerprint of everything in `engine` that affects
/// compiled code.
pub(crate) fn engine_fingerprint(engine: &Engine) -> String {
    let mut h = Blake3Hasher(blake3::Hasher::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Compiled modules on disk, bounded in total size.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: PathBuf,
    max_bytes: u64,
}

impl ModuleCache {
    /// Opens (creating if needed) a cache in `dir` holding at most
    /// `max_bytes` of compiled code.
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> std::io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(ModuleCache { dir, max_bytes })
    }

    /// The directory entries live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, engine: &Engine, metering: Metering, module: &ContentId) -> PathBuf {
        let name = format!(
            "{}-{}-{}.cwasm",
            module.to_hex(),
            engine_fingerprint(engine),
            metering.cache_tag()
        );
        self.dir.join(name)
    }

    /// The compiled module, if a valid entry exists.
    pub(crate) fn load(&self, engine: &Engine, metering: Metering, module: &ContentId) -> Option<Module> {
        let path = self.path(engine, metering, module);
        let bytes = fs::read(&path).ok()?;
        let artifact = match bytes.split_at_checked(MAGIC.len() + 32) {
            Some((head, artifact))
                if &head[..MAGIC.len()] == MAGIC && head[MAGIC.len()..] == *blake3::hash(artifact).as_bytes() =>
            {
                artifact
            }
            _ => {
                tracing::warn!(path = %path.display(), "corrupt module cache entry; recompiling");
                let _ = fs::remove_file(&path);
                return None;
            }
        };
        // SAFETY: `Module::deserialize` trusts its input to be an artifact
        // produced by `Module::serialize` with a compatible engine. The entry
        // was written by `store` below from `Module::serialize` on this
        // machine, its checksum was verified just above (so it is complete and
        // unaltered since), and the file name binds it to this engine's
        // compatibility fingerprint; wasmtime re-checks the version header.
        #[allow(unsafe_code)]
        let loaded = unsafe { Module::deserialize(engine, artifact) };
        match loaded {
            Ok(m) => {
                // Mark as recently used for eviction; failure only skews LRU.
                if let Ok(f) = fs::File::options().append(true).open(&path) {
                    let _ = f.set_modified(SystemTime::now());
                }
                Some(m)
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unloadable module cache entry; recompiling");
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// Saves a compiled module. Written to a temporary file and renamed, so a
    /// crash never leaves a half-written entry under the real name.
    pub(crate) fn store(&self, engine: &Engine, metering: Metering, module_id: &ContentId, module: &Module) {
        let result = (|| -> std::io::Result<()> {
            let artifact = module.serialize().map_err(std::io::Error::other)?;
            if artifact.len() as u64 > self.max_bytes {
                return Ok(());
            }
            let path = self.path(engine, metering, module_id);
            let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
            tmp.write_all(MAGIC)?;
            tmp.write_all(blake3::hash(&artifact).as_bytes())?;
            tmp.write_all(&artifact)?;
            tmp.as_file().sync_all()?;
            tmp.persist(&path).map_err(|e| e.error)?;
            self.evict()
        })();
        if let Err(e) = result {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not write module cache entry");
        }
    }

    /// Deletes least recently used entries until the cache fits its bound.
    fn evict(&self) -> std::io::Result<()> {
        let mut entries = Vec::new();
        let mut total = 0u64;
        for e in fs::read_dir(&self.dir)? {
            let e = e?;
            let meta = e.metadata()?;
            if meta.is_file() && e.path().extension().is_some_and(|x| x == "cwasm") {
                total += meta.len();
                entries.push((meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len(), e.path()));
            }
        }
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            fs::remove_file(&path)?;
            total -= len;
        }
        Ok(())
    }
}
