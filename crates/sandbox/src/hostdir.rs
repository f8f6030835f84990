//! Moving task files between the host filesystem and a task: loading a
//! directory as `/in`, saving `/out` into a directory. Used by the CLI and
//! (later) the provider agent; the sandbox itself never touches host files
//! during a run.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sharegrid_core::{OutFile, validate_out_path};

/// Why a directory could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum HostDirError {
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Something other than a regular file or directory.
    #[error("{}: only regular files and directories can be task inputs (symlinks and devices cannot)", .0.display())]
    NotRegular(PathBuf),
    /// A name that is not UTF-8 or not a clean path.
    #[error("{}: file names must be UTF-8 without NUL or backslash", .0.display())]
    BadName(PathBuf),
    /// Too much data.
    #[error("{}: inputs exceed {limit} bytes", dir.display())]
    TooLarge {
        /// The input directory.
        dir: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// Too many files.
    #[error("{}: more than {limit} input files", dir.display())]
    TooMany {
        /// The input directory.
        dir: PathBuf,
        /// The limit.
        limit: usize,
    },
    /// An output path that would escape the output directory.
    #[error("refusing output file: {0}")]
    BadOutputPath(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HostDirError + '_ {
    move |source| HostDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Loads every regular file under `dir` as a task input, keyed by its path
/// relative to `dir`. Stops early, before reading more, once `max_bytes` or
/// `max_files` would be exceeded.
pub fn load_inputs(dir: &Path, max_bytes: u64, max_files: usize) -> Result<BTreeMap<String, Arc<[u8]>>, HostDirError> {
    let mut out = BTreeMap::new();
    let mut total = 0u64;
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, rel)) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(&path)
            .map_err(io(&path))?
            .collect::<Result<_, _>>()
            .map_err(io(&path))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let name = e
                .file_name()
                .into_string()
                .map_err(|_| HostDirError::BadName(p.clone()))?;
            let rel = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            validate_out_path(&rel).map_err(|_| HostDirError::BadName(p.clone()))?;
            let ft = e.file_type().map_err(io(&p))?;
            if ft.is_dir() {
                stack.push((p, rel));
            } else if ft.is_file() {
                let len = e.metadata().map_err(io(&p))?.len();
                total += len;
                if total > max_bytes {
                    return Err(HostDirError::TooLarge {
                        dir: dir.to_path_buf(),
                        limit: max_bytes,
                    });
                }
                if out.len() >= max_files {
                    return Err(HostDirError::TooMany {
                        dir: dir.to_path_buf(),
                        limit: max_files,
                    });
                }
                let data = fs::read(&p).map_err(io(&p))?;
                out.insert(rel, Arc::from(data));
            } else {
                return Err(HostDirError::NotRegular(p));
            }
        }
    }
    Ok(out)
}

/// Writes output files under `dir` (created if missing). Every path is
/// validated first, so nothing is written outside `dir`.
pub fn save_outputs(dir: &Path, files: &[OutFile]) -> Result<Vec<PathBuf>, HostDirError> {
    for f in files {
        validate_out_path(&f.path).map_err(|e| HostDirError::BadOutputPath(e.to_string()))?;
    }
    let mut written = Vec::new();
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        fs::write(&path, &f.data).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}
