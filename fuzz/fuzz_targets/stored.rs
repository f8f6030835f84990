//! What a node reads back from its own disk and its HTTP API, should a
//! file be damaged or a local client hostile. The first byte picks:
//! - 0: the ledger's stored state (CBOR in `ledger.db`);
//! - 1: a stored block (CBOR);
//! - 2: a job's stored submission (JSON in `node.db`);
//! - 3: an HTTP API body: a job request (JSON, its job file's text parsed
//!   as the node parses it) or a stake action;
//! - 4: `config.toml`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sharegrid_core::decode_capped;
use sharegrid_ledger::{Block, MAX_BLOCK_BYTES, State};
use sharegrid_node::{JobRequest, JobSubmission, NodeConfig, StakeAction};

fuzz_target!(init: sharegrid_fuzz::seeds::write_if_asked("stored"), |data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else { return };
    match kind % 5 {
        0 => {
            if let Ok(s) = decode_capped::<State>(rest, 64 << 20) {
                let _ = s.root();
                let _ = s.supply();
            }
        }
        1 => {
            if let Ok(b) = decode_capped::<Block>(rest, MAX_BLOCK_BYTES) {
                let _ = b.hash();
            }
        }
        2 => {
            if let Ok(job) = serde_json::from_slice::<JobSubmission>(rest) {
                let _ = job.check();
                let _ = job.program();
                let _ = job.escrow_budget();
            }
        }
        3 => {
            if let Ok(r) = serde_json::from_slice::<JobRequest>(rest) {
                let _ = sharegrid_core::job::JobFile::parse("job", &r.job);
            }
            let _ = serde_json::from_slice::<StakeAction>(rest);
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                let _ = toml::from_str::<NodeConfig>(text);
            }
        }
    }
});
