//! The seed corpus: well-formed inputs for every target to mutate from
//! (without them most inputs die at the first byte of CBOR). A target
//! started with `SHAREGRID_FUZZ_SEEDS=DIR` writes its seeds into
//! `DIR/<target>/seed-*` and exits; `fuzz/run` does this before fuzzing.

use std::path::Path;

use sharegrid_core::{
    Amount, Arch, Determinism, GigafuelPerSec, Offer, OutFile, Outcome, PricePerGfuel, Signed, TaskResult,
    WIRE_VERSION, encode,
};
use sharegrid_ledger::{Chain, Op, State};
use sharegrid_net::{BlobRequest, BlobResponse, LedgerRequest, LedgerResponse, TaskRequest, TaskResponse};

use crate::{genesis, keys, ledger_story, sign_tx};

/// With `SHAREGRID_FUZZ_SEEDS` set, writes `target`'s seeds and exits.
pub fn write_if_asked(target: &str) {
    let Some(dir) = std::env::var_os("SHAREGRID_FUZZ_SEEDS") else {
        return;
    };
    let dir = Path::new(&dir).join(target);
    let written = seeds(target).and_then(|seeds| {
        std::fs::create_dir_all(&dir)?;
        for (i, s) in seeds.into_iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), s)?;
        }
        Ok(())
    });
    match written {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("cannot write the seeds of {target} into {}: {e}", dir.display());
            std::process::exit(1)
        }
    }
}

fn tagged(tag: u8, body: Vec<u8>) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend(body);
    v
}

/// Every file under `dir` (relative to this crate), in subdirectories too
/// (`examples/python/`), in path order, each tagged when `tag` is given:
/// read as `sharegrid run --in` reads a directory.
fn files(dir: &str, tag: Option<u8>) -> anyhow::Result<Vec<Vec<u8>>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let files = sharegrid_sandbox::load_inputs(&root, u64::MAX, usize::MAX)?;
    Ok(files
        .into_values()
        .map(|bytes| match tag {
            Some(t) => tagged(t, bytes.to_vec()),
            None => bytes.to_vec(),
        })
        .collect())
}

/// The seeds of `target`.
pub fn seeds(target: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let k = keys();
    let story = ledger_story();
    let Op::Settle { paid, .. } = &story[2].op else {
        anyhow::bail!("the story's third transaction settles");
    };
    let paid = paid[0].clone();
    let offer = Offer {
        version: WIRE_VERSION,
        provider: k[1].id(),
        arch: Arch::X86_64,
        cores: 4,
        memory_bytes: 1 << 30,
        free_slots: 2,
        speed: GigafuelPerSec(1.5),
        price: PricePerGfuel(Amount(3)),
        stake: Amount(0),
        modes: vec![Determinism::Portable, Determinism::Native],
        software: "sharegrid/0.1.0".into(),
        seq: 1,
        expires_at_ms: 60_000,
    };
    let mut chain = Chain::new(&genesis()).map_err(anyhow::Error::msg)?;
    let signed_txs: Vec<Signed> = story.iter().cloned().map(sign_tx).collect();
    let proposal = chain.propose(&k[0], signed_txs.clone(), 5_000)?;
    let block = proposal.block.clone();
    chain.commit(proposal);
    Ok(match target {
        "wire" => vec![
            encode(&Signed::sign(&k[1], &offer)?)?,
            encode(&paid.assignment)?,
            encode(&paid.receipt)?,
            encode(&block.header)?,
            encode(&signed_txs[1])?,
        ],
        "protocol" => vec![
            encode(&TaskRequest {
                assignment: paid.assignment.clone(),
            })?,
            encode(&TaskResponse::Receipt(paid.receipt.clone()))?,
            encode(&TaskResponse::Refused { reason: "busy".into() })?,
            encode(&BlobRequest {
                id: sharegrid_core::ContentId::of(b"x"),
                offset: 0,
                len: 1 << 20,
            })?,
            encode(&BlobResponse::Chunk {
                data: b"bytes".to_vec(),
                total: 5,
            })?,
            encode(&LedgerRequest::Submit(signed_txs[0].clone()))?,
            encode(&LedgerRequest::Blocks { from: 1 })?,
            encode(&LedgerResponse::Blocks(vec![block.clone()]))?,
            encode(&LedgerResponse::Head {
                genesis: genesis().hash(),
                height: 1,
                header: Some(block.header.clone()),
            })?,
        ],
        "ledger" => vec![
            tagged(0, encode(&story)?),
            tagged(1, encode(&block)?),
            tagged(2, genesis().to_toml().into_bytes()),
        ],
        "result" => vec![
            TaskResult {
                outcome: Outcome::Completed { exit_code: 3 },
                stdout: b"out".to_vec(),
                stderr: b"err".to_vec(),
                files: vec![OutFile {
                    path: "tiles/1.ppm".into(),
                    data: vec![1, 2, 3],
                }],
            }
            .encode(),
        ],
        "job_file" => files("../examples", None)?,
        "stored" => vec![
            tagged(0, encode(chain.state())?),
            tagged(0, encode(&State::genesis(&genesis()).map_err(anyhow::Error::msg)?)?),
            tagged(1, encode(&block)?),
            tagged(
                3,
                br#"{"job":"[job]\nmodule = \"m.wasm\"\nargs = [\"{n}\"]\n[job.sweep]\nn = [\"1\", \"2\"]\n","files":{"m.wasm":"0000000000000000000000000000000000000000000000000000000000000000"}}"#.to_vec(),
            ),
            tagged(3, br#"{"bond":"100"}"#.to_vec()),
            tagged(
                4,
                b"[provider]\nslots = 2\nprice_floor = 3\n[network]\nport = 4001\n".to_vec(),
            ),
        ],
        // An empty image, then: path_open(/out, "a.txt", create) and a write.
        "wasi" => vec![vec![
            0, 23, 4, 0, 0, 0, 0, 16, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 20, 1, 0, 0, 0,
        ]],
        // Small modules (inputs are kept under 512 bytes, for speed) with
        // loops, branches, calls, bulk memory and a start function.
        "module" => {
            let mut m: Vec<Vec<u8>> = SMALL_MODULES
                .iter()
                .map(|src| wat::parse_str(src).map(|b| tagged(0, b)))
                .collect::<Result<_, _>>()?;
            m.push(tagged(1, vec![7; 64]));
            m
        }
        other => anyhow::bail!("no target named {other}"),
    })
}

const SMALL_MODULES: &[&str] = &[
    r#"(module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))"#,
    r#"(module (memory 1) (func $f (param i32) (result i32) local.get 0 i32.const 1 i32.add)
        (func (export "_start") (local i32)
          (block (loop (local.set 0 (call $f (local.get 0)))
            (br_if 1 (i32.gt_u (local.get 0) (i32.const 100))) (br 0)))
          (memory.fill (i32.const 0) (i32.const 7) (i32.const 100))
          (memory.copy (i32.const 200) (i32.const 0) (i32.const 50))))"#,
    r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1) (global $g (mut i32) (i32.const 0))
        (table 2 funcref) (elem (i32.const 0) $a $b)
        (func $a (result i32) i32.const 1) (func $b (result i32) i32.const 2)
        (func (export "_start")
          (global.set $g (call_indirect (result i32) (i32.const 1)))
          (block (block (br_table 0 1 (global.get $g))) (call $exit (i32.const 3)))))"#,
    r#"(module (memory 1 2) (data (i32.const 8) "hello")
        (func $start (drop (memory.grow (i32.const 1))))
        (start $start)
        (func (export "_start") (local i64) (local.set 0 (i64.const 5))
          (if (i64.eqz (local.get 0)) (then unreachable) (else nop))))"#,
];
