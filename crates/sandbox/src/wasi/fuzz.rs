//! Drives the WASI calls from fuzzer bytes, without a module: the calls are
//! plain methods on guest memory, so a fuzzer can hand them any pointer,
//! length, descriptor and flag a hostile guest could, tens of thousands of
//! times a second. Built only with the `fuzzing` feature (`fuzz/`).
//!
//! The bytes are read as a memory image and then a list of calls. Each
//! argument is a pointer near the end of memory, a small number, or any
//! 32-bit value, so both the edges and the far-out-of-range are reached.
//! What must hold, whatever the bytes: no panic, no allocation past the
//! output limit, and a result whose outputs stay within that limit.

use std::collections::BTreeMap;
use std::sync::Arc;

use sharegrid_core::{Outcome, TaskId};

use super::abi::Mem;
use super::ctx::{Fail, WasiCtx};
use crate::task::Task;

/// Guest memory the calls see: one wasm page.
const MEMORY: usize = 64 * 1024;
/// Output a run may write; small, so the limit is reached often.
const OUTPUT_LIMIT: u64 = 256 * 1024;

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn raw32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        for x in &mut b {
            *x = self.u8().unwrap_or(0);
        }
        u32::from_le_bytes(b)
    }

    /// A pointer or length: near the end of memory, small, or anything.
    fn arg(&mut self) -> u32 {
        let v = self.raw32();
        match v >> 30 {
            0 => v % 64,
            1 => (MEMORY as u32).wrapping_sub(v % 64),
            2 => v % (MEMORY as u32 + 64),
            _ => v,
        }
    }

    fn arg64(&mut self) -> u64 {
        let hi = self.u8().unwrap_or(0);
        let lo = u64::from(self.arg());
        if hi & 0x80 != 0 {
            (u64::from(self.raw32()) << 32) | lo
        } else {
            lo
        }
    }
}

/// Runs the calls the bytes describe. Panics only if a rule above breaks.
pub fn calls(data: &[u8]) {
    let mut input = Bytes(data);
    let image = usize::from(input.u8().unwrap_or(0)) * 64;
    let (head, rest) = input.0.split_at(image.min(input.0.len()));
    input.0 = rest;
    let mut memory = vec![0u8; MEMORY];
    memory[..head.len()].copy_from_slice(head);
    // Paths the calls may name, written where small pointers land.
    memory[4096..4096 + 11].copy_from_slice(b"a.txtdir/b\0");

    let mut inputs = BTreeMap::new();
    inputs.insert("data.bin".to_string(), Arc::<[u8]>::from(&b"0123456789"[..]));
    inputs.insert("sub/x".to_string(), Arc::<[u8]>::from(&[7u8; 300][..]));
    let mut task = Task::local(
        Arc::<[u8]>::from(&[][..]),
        vec!["one".to_string(), "two".to_string()],
        &b"stdin bytes"[..],
        inputs,
    );
    task.id = TaskId::from_bytes([7; 32]);
    task.limits.output_bytes = OUTPUT_LIMIT;
    task.launch.env = vec![("A".into(), "1".into()), ("PATH".into(), "/bin".into())];
    // A mounted tree: one more preopened, read-only directory (fd 5).
    task.mounts
        .insert("/lib/py/x.py".to_string(), Arc::from(&b"print(1)"[..]));
    task.mounts
        .insert("/lib/py/sub/y".to_string(), Arc::from(&[9u8; 70][..]));
    let mut w = WasiCtx::new(&task);
    let mut m = Mem(&mut memory);
    while let Some(op) = input.u8() {
        let i = &mut input;
        let r = match op % 33 {
            0 => w.args_get(&mut m, i.arg(), i.arg()),
            1 => w.args_sizes_get(&mut m, i.arg(), i.arg()),
            2 => w.environ_sizes_get(&mut m, i.arg(), i.arg()),
            3 => w.clock_res_get(&mut m, i.arg(), i.arg()),
            4 => w.clock_time_get(&mut m, i.arg(), i.arg()),
            5 => w.random_get(&mut m, i.arg(), i.arg()),
            6 => w.poll_oneoff(&mut m, i.arg(), i.arg(), i.arg(), i.arg()),
            7 => w.fd_close(i.arg()),
            8 => w.fd_renumber(i.arg(), i.arg()),
            9 => w.fd_fdstat_get(&mut m, i.arg(), i.arg()),
            10 => w.fd_fdstat_set_flags(i.arg(), i.arg() as u16),
            11 => w.fd_prestat_get(&mut m, i.arg(), i.arg()),
            12 => w.fd_prestat_dir_name(&mut m, i.arg(), i.arg(), i.arg()),
            13 => w.fd_filestat_get(&mut m, i.arg(), i.arg()),
            14 => w.fd_filestat_set_size(i.arg(), i.arg64()),
            15 => w.fd_allocate(i.arg(), i.arg64(), i.arg64()),
            16 => w.fd_seek(&mut m, i.arg(), i.arg64() as i64, i.u8().unwrap_or(0), i.arg()),
            17 => w.fd_tell(&mut m, i.arg(), i.arg()),
            18 => w.fd_read(&mut m, i.arg(), i.arg(), i.arg(), i.arg()),
            19 => w.fd_pread(&mut m, i.arg(), i.arg(), i.arg(), i.arg64(), i.arg()),
            20 => w.fd_write(&mut m, i.arg(), i.arg(), i.arg(), i.arg()),
            21 => w.fd_pwrite(&mut m, i.arg(), i.arg(), i.arg(), i.arg64(), i.arg()),
            22 => w.fd_readdir(&mut m, i.arg(), i.arg(), i.arg(), i.arg64(), i.arg()),
            23 => w.path_open(
                &mut m,
                i.arg(),
                (i.arg(), i.arg()),
                i.arg() as u16,
                i.arg64(),
                i.arg() as u16,
                i.arg(),
            ),
            24 => w.path_filestat_get(&mut m, i.arg(), (i.arg(), i.arg()), i.arg()),
            25 => w.path_create_directory(&mut m, i.arg(), (i.arg(), i.arg())),
            26 => w.path_remove(&mut m, i.arg(), (i.arg(), i.arg()), op & 32 != 0),
            27 => w.path_rename(&mut m, i.arg(), (i.arg(), i.arg()), i.arg(), (i.arg(), i.arg())),
            28 => w.path_readlink(&mut m, i.arg(), (i.arg(), i.arg())),
            29 => w.path_filestat_set_times(&mut m, i.arg(), (i.arg(), i.arg())),
            30 => w.fd_sync(i.arg()),
            31 => w.environ_get(&mut m, i.arg(), i.arg()),
            _ => w.fd_filestat_set_times(i.arg()),
        };
        if let Err(Fail::End(_)) = r {
            break;
        }
    }
    let result = w.take_result(Outcome::Completed { exit_code: 0 });
    let written = result.stdout.len() as u64
        + result.stderr.len() as u64
        + result.files.iter().map(|f| f.data.len() as u64).sum::<u64>();
    assert!(
        written <= OUTPUT_LIMIT,
        "{written} bytes of output past a limit of {OUTPUT_LIMIT}"
    );
}
