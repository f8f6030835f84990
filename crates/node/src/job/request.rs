//! A job as a program submits it through the HTTP API: the text of a job
//! file (the format `sharegrid submit` reads, with the same defaults and
//! checks) and, for each file it names, the id of a blob uploaded before.
//! A browser or a script thus describes a job exactly as a person does.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sharegrid_core::ContentId;
use sharegrid_core::job::JobFile;

use crate::blobs::BlobStore;
use crate::job::JobSubmission;
use crate::runtime::Runtime;

const WASM_MAGIC: &[u8] = b"\0asm";

/// The WebAssembly module a job file's `module` names: `bytes` as they are
/// (`.wasm`), or compiled from WebAssembly text when `name` ends in `.wat`.
/// Both the CLI (before it uploads) and the node (on what it is given)
/// check it so.
pub fn module_bytes(name: &str, bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    let bytes = if name.ends_with(".wat") && !bytes.starts_with(WASM_MAGIC) {
        wat::parse_bytes(&bytes).map_err(|e| e.to_string())?.into_owned()
    } else {
        bytes
    };
    if !bytes.starts_with(WASM_MAGIC) {
        return Err(format!("{name:?} is not a WebAssembly module (.wasm, or .wat text)"));
    }
    Ok(bytes)
}

/// A job file and the blobs its paths name.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// The job file's text (TOML, as `sharegrid submit` reads it).
    #[schema(
        example = "[job]\nname = \"hello\"\nmodule = \"hello.wasm\"\nargs = [\"{n}\"]\n\n[job.sweep]\nn = [\"1\", \"2\"]\n"
    )]
    pub job: String,
    /// For each path the job file names (`module`, `stdin`, `inputs`'
    /// files, `script`): the blob uploaded with `POST /api/blobs`.
    #[serde(default)]
    pub files: BTreeMap<String, ContentId>,
}

impl JobRequest {
    /// The submission: the job file parsed and checked, each path it names
    /// looked up in `files` and found in `blobs`, a runtime's program
    /// resolved from the node home `home`. Every error names the field.
    pub fn submission(&self, blobs: &BlobStore, home: &Path) -> Result<JobSubmission, String> {
        let job = JobFile::parse("job", &self.job).map_err(|e| e.to_string())?;
        let blob = |path: &str, field: &str| -> Result<ContentId, String> {
            let id = self.files.get(path).ok_or_else(|| {
                format!("job.{field}: {path:?} is not among the request's files (upload it with POST /api/blobs)")
            })?;
            if !blobs.has(id) {
                return Err(format!(
                    "job.{field}: blob {id} for {path:?} is not in the node's blob store"
                ));
            }
            Ok(*id)
        };
        let read = |id: &ContentId| -> Result<Vec<u8>, String> {
            blobs
                .get(id)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("blob {id} is gone from the node's blob store"))
        };
        let module = match (&job.module, &job.module_hash) {
            (Some(m), _) => {
                let id = blob(m, "module")?;
                let bytes = read(&id)?;
                if bytes.starts_with(WASM_MAGIC) {
                    id
                } else {
                    let wasm = module_bytes(m, bytes).map_err(|e| format!("job.module: {e}"))?;
                    blobs.put(&wasm).map_err(|e| e.to_string())?
                }
            }
            (None, Some(h)) => {
                let id: ContentId = h.parse().map_err(|e| format!("job.module_hash: {e}"))?;
                if !blobs.has(&id) {
                    return Err(format!("job.module_hash: {id} is not in this node's blob store"));
                }
                id
            }
            // A runtime brings the module (below).
            (None, None) => blobs.put(b"").map_err(|e| e.to_string())?,
        };
        let stdin = match &job.stdin {
            Some(f) => blob(f, "stdin")?,
            None => blobs.put(b"").map_err(|e| e.to_string())?,
        };
        let mut inputs = Vec::new();
        for (at, file) in &job.inputs {
            inputs.push((at.clone(), blob(file, "inputs")?));
        }
        let sub = JobSubmission::from_job_file(&job, module, stdin, inputs);
        let (Some(runtime), Some(script)) = (&job.runtime, &job.script) else {
            return Ok(sub);
        };
        let rt = Runtime::load(home, runtime).map_err(|e| format!("job.runtime: {e}"))?;
        if let Some(id) = rt.blobs().into_iter().find(|id| !blobs.has(id)) {
            return Err(format!(
                "job.runtime: the {runtime} runtime's blob {id} is missing from this node's blob store: \
                 run `sharegrid runtime add {runtime}` again"
            ));
        }
        let name = Path::new(script)
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("job.script: {script:?} does not name a file"))?;
        let script = blob(script, "script")?;
        Ok(sub.with_runtime(&rt, name, script))
    }
}
