//! `argv` and the environment: the task's arguments after `task`, and the
//! variables its launch sets (`NAME=value`), copied out as C strings.

use super::abi::{Errno, Mem};
use super::ctx::{Call, WasiCtx};

/// Writes the count and total size (each string plus its NUL) of `list`.
fn sizes(list: &[Vec<u8>], m: &mut Mem, count: u32, size: u32) -> Call {
    m.put_u32(count, list.len() as u32)?;
    let total: usize = list.iter().map(|a| a.len() + 1).sum();
    m.put_u32(size, total as u32)?;
    Ok(0)
}

/// Writes `list` as NUL-terminated strings at `buf` and their addresses at
/// `ptrs`; returns the bytes written.
fn strings(list: &[Vec<u8>], m: &mut Mem, ptrs: u32, buf: u32) -> Call {
    let mut at = buf;
    for (i, a) in list.iter().enumerate() {
        m.put_u32(ptrs.checked_add(4 * i as u32).ok_or(Errno::Fault)?, at)?;
        m.put(at, a)?;
        m.put(at.checked_add(a.len() as u32).ok_or(Errno::Fault)?, &[0])?;
        at = at.checked_add(a.len() as u32 + 1).ok_or(Errno::Fault)?;
    }
    Ok(u64::from(at - buf))
}

impl WasiCtx {
    pub(crate) fn args_sizes_get(&self, m: &mut Mem, argc: u32, size: u32) -> Call {
        sizes(&self.args, m, argc, size)
    }

    pub(crate) fn args_get(&self, m: &mut Mem, argv: u32, buf: u32) -> Call {
        strings(&self.args, m, argv, buf)
    }

    pub(crate) fn environ_sizes_get(&self, m: &mut Mem, count: u32, size: u32) -> Call {
        sizes(&self.env, m, count, size)
    }

    pub(crate) fn environ_get(&self, m: &mut Mem, environ: u32, buf: u32) -> Call {
        strings(&self.env, m, environ, buf)
    }
}
