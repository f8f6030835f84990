//! The state of one task's WASI world and the preview 1 calls over it, as
//! plain methods on guest memory ([`Mem`]). Nothing here touches the host:
//! no clock, no entropy, no file, no socket, no environment.
//!
//! Determinism rules (also in `docs/sandbox.md`):
//! - `argv[0]` is always `task`; the environment is the task's own (empty
//!   unless its launch sets variables);
//! - clocks start at [`EPOCH_NS`] (2000-01-01T00:00:00Z) and advance by
//!   [`CLOCK_STEP_NS`] on every read, so a busy-wait loop still terminates; a
//!   `poll_oneoff` sleep advances them by the requested time at once;
//! - `random_get` is the BLAKE3 XOF of the task id (derive-key context
//!   `sharegrid random_get v1`), read in order;
//! - files carry the epoch as every timestamp and their allocation index as
//!   inode number; directories list in byte order of names.

use std::sync::Arc;

use sharegrid_core::{Outcome, TaskResult};

use super::abi::*;
use crate::task::Task;
use crate::vfs::{IN_ROOT, Ino, NodeKind, OUT_ROOT, OutputBudget, Vfs};

/// The fixed wall-clock start of every task: 2000-01-01T00:00:00Z.
pub(crate) const EPOCH_NS: u64 = 946_684_800_000_000_000;
/// How far the clocks move on each read: 1 µs.
pub(crate) const CLOCK_STEP_NS: u64 = 1_000;
/// Most file descriptors a task may hold open.
const MAX_FDS: usize = 1024;

/// Why a call stops the guest instead of returning an errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// `proc_exit(code)`.
    Exit(i32),
    /// A write went past the output limit.
    OutputLimit,
    /// The host could not allocate output the limits allowed: the run is
    /// the provider's failure, not a result.
    HostMemory,
}

/// A failed call: an errno for the guest, or the end of the run.
#[derive(Debug)]
pub(crate) enum Fail {
    Errno(Errno),
    End(End),
}

impl From<Errno> for Fail {
    fn from(e: Errno) -> Self {
        Fail::Errno(e)
    }
}

/// A call's result: how many bytes it moved (charged as fuel), or a failure.
pub(crate) type Call = Result<u64, Fail>;

#[derive(Debug)]
enum Fd {
    Stdin,
    Stdout,
    Stderr,
    Dir {
        ino: Ino,
        preopen: Option<Arc<str>>,
    },
    File {
        ino: Ino,
        pos: u64,
        read: bool,
        write: bool,
        append: bool,
    },
}

pub(crate) struct WasiCtx {
    /// `argv`, `task` first.
    pub(super) args: Vec<Vec<u8>>,
    /// The environment, `NAME=value` each.
    pub(super) env: Vec<Vec<u8>>,
    stdin: Arc<[u8]>,
    stdin_pos: usize,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
    pub(crate) vfs: Vfs,
    pub(crate) budget: OutputBudget,
    fds: Vec<Option<Fd>>,
    clock_ns: u64,
    rng: blake3::OutputReader,
}

impl std::fmt::Debug for WasiCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasiCtx")
            .field("args", &self.args.len())
            .field("fds", &self.fds.len())
            .finish()
    }
}

impl WasiCtx {
    /// The world of `task`: its argv, environment, stdin, `/in`, an empty
    /// `/out` and its mounted files' directories, preopened in that order
    /// (fds 3, 4, then one per directory in byte order).
    pub(crate) fn new(task: &Task) -> Self {
        let mut argv = vec![b"task".to_vec()];
        argv.extend(task.args.iter().map(|a| a.as_bytes().to_vec()));
        let env = task
            .launch
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}").into_bytes())
            .collect();
        let mut rng = blake3::Hasher::new_derive_key("sharegrid random_get v1");
        rng.update(task.id.as_bytes());
        let vfs = Vfs::new(&task.inputs, &task.mounts);
        let mut fds = vec![
            Some(Fd::Stdin),
            Some(Fd::Stdout),
            Some(Fd::Stderr),
            Some(Fd::Dir {
                ino: IN_ROOT,
                preopen: Some("/in".into()),
            }),
            Some(Fd::Dir {
                ino: OUT_ROOT,
                preopen: Some("/out".into()),
            }),
        ];
        for (dir, ino) in &vfs.mounts {
            fds.push(Some(Fd::Dir {
                ino: *ino,
                preopen: Some(dir.as_str().into()),
            }));
        }
        WasiCtx {
            args: argv,
            env,
            stdin: task.stdin.clone(),
            stdin_pos: 0,
            stdout: Vec::new(),
            stderr: Vec::new(),
            vfs,
            budget: OutputBudget::new(task.limits.output_bytes),
            fds,
            clock_ns: 0,
            rng: rng.finalize_xof(),
        }
    }

    fn fd(&self, fd: u32) -> Result<&Fd, Errno> {
        self.fds.get(fd as usize).and_then(Option::as_ref).ok_or(Errno::Badf)
    }

    fn fd_mut(&mut self, fd: u32) -> Result<&mut Fd, Errno> {
        self.fds
            .get_mut(fd as usize)
            .and_then(Option::as_mut)
            .ok_or(Errno::Badf)
    }

    fn dir(&self, fd: u32) -> Result<Ino, Errno> {
        match self.fd(fd)? {
            Fd::Dir { ino, .. } => Ok(*ino),
            _ => Err(Errno::Notdir),
        }
    }

    fn alloc_fd(&mut self, entry: Fd) -> Result<u32, Errno> {
        if let Some(i) = self.fds.iter().position(Option::is_none) {
            self.fds[i] = Some(entry);
            return Ok(i as u32);
        }
        if self.fds.len() >= MAX_FDS {
            return Err(Errno::Mfile);
        }
        self.fds.push(Some(entry));
        Ok((self.fds.len() - 1) as u32)
    }

    /// Charges output bytes; past the limit the run ends.
    fn charge_output(&mut self, n: u64) -> Result<(), Fail> {
        self.budget.charge(n).map_err(|_| Fail::End(End::OutputLimit))
    }

    /// Maps a vfs error to the call's failure: running out of output budget
    /// ends the run, anything else is an errno for the guest.
    fn vfs_err(&self, e: Errno) -> Fail {
        if self.budget.host_full {
            Fail::End(End::HostMemory)
        } else if self.budget.exceeded {
            Fail::End(End::OutputLimit)
        } else {
            Fail::Errno(e)
        }
    }

    // ---- clocks and randomness ----

    fn tick(&mut self) -> u64 {
        self.clock_ns = self.clock_ns.saturating_add(CLOCK_STEP_NS);
        self.clock_ns
    }

    pub(crate) fn clock_res_get(&self, m: &mut Mem, id: u32, out: u32) -> Call {
        if id > CLOCK_THREAD_CPUTIME {
            return Err(Errno::Inval.into());
        }
        m.put_u64(out, CLOCK_STEP_NS)?;
        Ok(0)
    }

    pub(crate) fn clock_time_get(&mut self, m: &mut Mem, id: u32, out: u32) -> Call {
        let now = match id {
            CLOCK_REALTIME => EPOCH_NS.saturating_add(self.tick()),
            CLOCK_MONOTONIC | CLOCK_PROCESS_CPUTIME | CLOCK_THREAD_CPUTIME => self.tick(),
            _ => return Err(Errno::Inval.into()),
        };
        m.put_u64(out, now)?;
        Ok(0)
    }

    pub(crate) fn random_get(&mut self, m: &mut Mem, buf: u32, len: u32) -> Call {
        self.rng.fill(m.slice_mut(buf, len)?);
        Ok(u64::from(len))
    }

    pub(crate) fn poll_oneoff(&mut self, m: &mut Mem, subs: u32, events: u32, n: u32, nevents: u32) -> Call {
        if n == 0 {
            return Err(Errno::Inval.into());
        }
        if n > 4096 {
            return Err(Errno::Inval.into());
        }
        // Every subscription fires at once: sleeps complete instantly (the
        // virtual clock jumps past them), stdin is always ready, writes too.
        let mut advance = 0u64;
        for i in 0..n {
            let s = subs.checked_add(i * 48).ok_or(Errno::Fault)?;
            // The whole 48-byte subscription is in memory, so the field
            // offsets below cannot overflow.
            m.slice(s, 48)?;
            let userdata = m.u64(s)?;
            let tag = m.u8(s + 8)?;
            let mut ev = [0u8; 32];
            ev[0..8].copy_from_slice(&userdata.to_le_bytes());
            ev[10] = tag;
            match tag {
                EVENTTYPE_CLOCK => {
                    let clock = m.u32(s + 16)?;
                    let timeout = m.u64(s + 24)?;
                    let flags = m.u16(s + 40)?;
                    let wait = if flags & SUBCLOCKFLAGS_ABSTIME != 0 {
                        // An absolute realtime deadline counts from the epoch.
                        let now = if clock == CLOCK_REALTIME {
                            EPOCH_NS.saturating_add(self.clock_ns)
                        } else {
                            self.clock_ns
                        };
                        timeout.saturating_sub(now)
                    } else {
                        timeout
                    };
                    advance = advance.max(wait);
                }
                EVENTTYPE_FD_READ | EVENTTYPE_FD_WRITE => {
                    let fd = m.u32(s + 16)?;
                    let nbytes = match self.fd(fd) {
                        Ok(Fd::Stdin) => (self.stdin.len() - self.stdin_pos) as u64,
                        Ok(_) => 0,
                        Err(e) => {
                            ev[8..10].copy_from_slice(&(e as u16).to_le_bytes());
                            0
                        }
                    };
                    ev[16..24].copy_from_slice(&nbytes.to_le_bytes());
                }
                _ => return Err(Errno::Inval.into()),
            }
            m.put(events.checked_add(i * 32).ok_or(Errno::Fault)?, &ev)?;
        }
        self.clock_ns = self.clock_ns.saturating_add(advance);
        m.put_u32(nevents, n)?;
        Ok(0)
    }

    // ---- file descriptors ----

    pub(crate) fn fd_close(&mut self, fd: u32) -> Call {
        self.fd(fd)?;
        self.fds[fd as usize] = None;
        Ok(0)
    }

    pub(crate) fn fd_renumber(&mut self, from: u32, to: u32) -> Call {
        self.fd(from)?;
        self.fd(to)?;
        if from != to {
            self.fds[to as usize] = self.fds[from as usize].take();
        }
        Ok(0)
    }

    pub(crate) fn fd_fdstat_get(&self, m: &mut Mem, fd: u32, out: u32) -> Call {
        let (filetype, flags, base, inheriting) = match self.fd(fd)? {
            Fd::Stdin => (FILETYPE_UNKNOWN, 0, RIGHT_FD_READ, 0),
            Fd::Stdout | Fd::Stderr => (FILETYPE_UNKNOWN, FDFLAGS_APPEND, RIGHT_FD_WRITE, 0),
            Fd::Dir { ino, .. } => {
                let rights = if self.vfs.node(*ino).writable {
                    RIGHTS_ALL
                } else {
                    RIGHTS_ALL & !RIGHTS_MUTATING
                };
                (FILETYPE_DIRECTORY, 0, rights, RIGHTS_ALL)
            }
            Fd::File { ino, append, .. } => {
                let rights = if self.vfs.node(*ino).writable {
                    RIGHTS_ALL
                } else {
                    RIGHTS_ALL & !RIGHTS_MUTATING
                };
                (
                    FILETYPE_REGULAR_FILE,
                    if *append { FDFLAGS_APPEND } else { 0 },
                    rights,
                    0,
                )
            }
        };
        let mut b = [0u8; 24];
        b[0] = filetype;
        b[2..4].copy_from_slice(&flags.to_le_bytes());
        b[8..16].copy_from_slice(&base.to_le_bytes());
        b[16..24].copy_from_slice(&inheriting.to_le_bytes());
        m.put(out, &b)?;
        Ok(0)
    }

    pub(crate) fn fd_fdstat_set_flags(&mut self, fd: u32, flags: u16) -> Call {
        match self.fd_mut(fd)? {
            Fd::File { append, .. } => {
                *append = flags & FDFLAGS_APPEND != 0;
                Ok(0)
            }
            _ => Ok(0),
        }
    }

    pub(crate) fn fd_prestat_get(&self, m: &mut Mem, fd: u32, out: u32) -> Call {
        match self.fd(fd)? {
            Fd::Dir {
                preopen: Some(name), ..
            } => {
                let mut b = [0u8; 8];
                b[4..8].copy_from_slice(&(name.len() as u32).to_le_bytes());
                m.put(out, &b)?;
                Ok(0)
            }
            _ => Err(Errno::Badf.into()),
        }
    }

    pub(crate) fn fd_prestat_dir_name(&self, m: &mut Mem, fd: u32, buf: u32, len: u32) -> Call {
        match self.fd(fd)? {
            Fd::Dir {
                preopen: Some(name), ..
            } => {
                if (len as usize) < name.len() {
                    return Err(Errno::Nametoolong.into());
                }
                m.put(buf, name.as_bytes())?;
                Ok(0)
            }
            _ => Err(Errno::Badf.into()),
        }
    }

    fn filestat(&self, ino: Ino) -> [u8; 64] {
        let node = self.vfs.node(ino);
        let (filetype, size) = match &node.kind {
            NodeKind::Dir(_) => (FILETYPE_DIRECTORY, 0),
            NodeKind::File(d) => (FILETYPE_REGULAR_FILE, d.bytes().len() as u64),
        };
        let mut b = [0u8; 64];
        b[8..16].copy_from_slice(&(ino as u64 + 1).to_le_bytes());
        b[16] = filetype;
        b[24..32].copy_from_slice(&1u64.to_le_bytes());
        b[32..40].copy_from_slice(&size.to_le_bytes());
        for t in [40, 48, 56] {
            b[t..t + 8].copy_from_slice(&EPOCH_NS.to_le_bytes());
        }
        b
    }

    pub(crate) fn fd_filestat_get(&self, m: &mut Mem, fd: u32, out: u32) -> Call {
        let b = match self.fd(fd)? {
            Fd::Dir { ino, .. } | Fd::File { ino, .. } => self.filestat(*ino),
            Fd::Stdin | Fd::Stdout | Fd::Stderr => [0u8; 64],
        };
        m.put(out, &b)?;
        Ok(0)
    }

    pub(crate) fn fd_filestat_set_size(&mut self, fd: u32, size: u64) -> Call {
        match self.fd(fd)? {
            Fd::File { ino, write: true, .. } => {
                let ino = *ino;
                self.vfs
                    .set_len(ino, size, &mut self.budget)
                    .map_err(|e| self.vfs_err(e))?;
                Ok(0)
            }
            Fd::File { .. } => Err(Errno::Badf.into()),
            _ => Err(Errno::Inval.into()),
        }
    }

    /// Timestamps are fixed; setting them is accepted (and ignored) where the
    /// file is writable.
    pub(crate) fn fd_filestat_set_times(&self, fd: u32) -> Call {
        match self.fd(fd)? {
            Fd::Dir { ino, .. } | Fd::File { ino, .. } if !self.vfs.node(*ino).writable => Err(Errno::Rofs.into()),
            _ => Ok(0),
        }
    }

    pub(crate) fn fd_allocate(&mut self, fd: u32, offset: u64, len: u64) -> Call {
        let Fd::File { ino, write: true, .. } = *self.fd(fd)? else {
            return Err(Errno::Badf.into());
        };
        let end = offset.checked_add(len).ok_or(Errno::Fbig)?;
        if end > self.vfs.file_len(ino)? {
            self.vfs
                .set_len(ino, end, &mut self.budget)
                .map_err(|e| self.vfs_err(e))?;
        }
        Ok(0)
    }

    pub(crate) fn fd_sync(&self, fd: u32) -> Call {
        self.fd(fd)?;
        Ok(0)
    }

    pub(crate) fn fd_seek(&mut self, m: &mut Mem, fd: u32, offset: i64, whence: u8, out: u32) -> Call {
        let (ino, pos) = match self.fd(fd)? {
            Fd::File { ino, pos, .. } => (*ino, *pos),
            Fd::Dir { .. } => return Err(Errno::Isdir.into()),
            _ => return Err(Errno::Spipe.into()),
        };
        let base = match whence {
            WHENCE_SET => 0i128,
            WHENCE_CUR => i128::from(pos),
            WHENCE_END => i128::from(self.vfs.file_len(ino)?),
            _ => return Err(Errno::Inval.into()),
        };
        let new = base + i128::from(offset);
        let new = u64::try_from(new).map_err(|_| Errno::Inval)?;
        if let Fd::File { pos, .. } = self.fd_mut(fd)? {
            *pos = new;
        }
        m.put_u64(out, new)?;
        Ok(0)
    }

    pub(crate) fn fd_tell(&self, m: &mut Mem, fd: u32, out: u32) -> Call {
        match self.fd(fd)? {
            Fd::File { pos, .. } => {
                m.put_u64(out, *pos)?;
                Ok(0)
            }
            _ => Err(Errno::Spipe.into()),
        }
    }

    /// Copies from `src[at..]` into the guest's iovecs; returns bytes copied.
    fn scatter(m: &mut Mem, iovs: &[(u32, u32)], src: &[u8], at: u64) -> Result<u64, Errno> {
        let mut done = 0u64;
        let mut at = usize::try_from(at).unwrap_or(usize::MAX).min(src.len());
        for &(ptr, len) in iovs {
            let n = (len as usize).min(src.len() - at);
            m.slice_mut(ptr, n as u32)?.copy_from_slice(&src[at..at + n]);
            at += n;
            done += n as u64;
            if at == src.len() {
                break;
            }
        }
        Ok(done)
    }

    /// Checks every iovec lies in guest memory and returns the total length.
    /// Nothing is copied yet: the data goes straight from guest memory to its
    /// destination, one iovec at a time, each charged before it is stored, so
    /// a guest naming the same large region in many iovecs cannot make the
    /// host allocate more than its output budget.
    fn check_iovs(m: &Mem, iovs: &[(u32, u32)]) -> Result<u64, Errno> {
        let mut total = 0u64;
        for &(ptr, len) in iovs {
            m.slice(ptr, len)?;
            total += u64::from(len);
        }
        if total > u64::from(u32::MAX) {
            return Err(Errno::Inval);
        }
        Ok(total)
    }

    fn read_at(&mut self, m: &mut Mem, fd: u32, iovs: &[(u32, u32)], offset: Option<u64>) -> Result<u64, Fail> {
        match *self.fd(fd)? {
            Fd::Stdin => {
                if offset.is_some() {
                    return Err(Errno::Spipe.into());
                }
                let n = Self::scatter(m, iovs, &self.stdin, self.stdin_pos as u64)?;
                self.stdin_pos += n as usize;
                Ok(n)
            }
            Fd::File { ino, pos, read, .. } => {
                if !read {
                    return Err(Errno::Badf.into());
                }
                let NodeKind::File(data) = &self.vfs.node(ino).kind else {
                    return Err(Errno::Isdir.into());
                };
                let n = Self::scatter(m, iovs, data.bytes(), offset.unwrap_or(pos))?;
                if offset.is_none()
                    && let Fd::File { pos, .. } = self.fd_mut(fd)?
                {
                    *pos += n;
                }
                Ok(n)
            }
            Fd::Dir { .. } => Err(Errno::Isdir.into()),
            Fd::Stdout | Fd::Stderr => Err(Errno::Badf.into()),
        }
    }

    pub(crate) fn fd_read(&mut self, m: &mut Mem, fd: u32, iovs: u32, n: u32, nread: u32) -> Call {
        let iovs = m.iovs(iovs, n)?;
        let got = self.read_at(m, fd, &iovs, None)?;
        m.put_u32(nread, got as u32)?;
        Ok(got)
    }

    pub(crate) fn fd_pread(&mut self, m: &mut Mem, fd: u32, iovs: u32, n: u32, offset: u64, nread: u32) -> Call {
        let iovs = m.iovs(iovs, n)?;
        let got = self.read_at(m, fd, &iovs, Some(offset))?;
        m.put_u32(nread, got as u32)?;
        Ok(got)
    }

    fn write_at(&mut self, m: &mut Mem, fd: u32, iovs: &[(u32, u32)], offset: Option<u64>) -> Result<u64, Fail> {
        enum Sink {
            Stdout,
            Stderr,
            File(Ino, u64, bool, bool),
        }
        let sink = match *self.fd(fd)? {
            Fd::Stdout => Sink::Stdout,
            Fd::Stderr => Sink::Stderr,
            Fd::File {
                ino,
                pos,
                write,
                append,
                ..
            } => Sink::File(ino, pos, write, append),
            Fd::Dir { .. } => return Err(Errno::Isdir.into()),
            Fd::Stdin => return Err(Errno::Badf.into()),
        };
        let n = Self::check_iovs(m, iovs)?;
        match sink {
            Sink::Stdout | Sink::Stderr => {
                for &(ptr, len) in iovs {
                    self.charge_output(u64::from(len))?;
                    let out = if matches!(sink, Sink::Stdout) {
                        &mut self.stdout
                    } else {
                        &mut self.stderr
                    };
                    out.try_reserve(len as usize).map_err(|_| Fail::End(End::HostMemory))?;
                    out.extend_from_slice(m.slice(ptr, len)?);
                }
            }
            Sink::File(ino, pos, write, append) => {
                if !write {
                    return Err(Errno::Badf.into());
                }
                let start = match offset {
                    Some(o) => o,
                    None if append => self.vfs.file_len(ino)?,
                    None => pos,
                };
                let mut at = start;
                for &(ptr, len) in iovs {
                    self.vfs
                        .write_at(ino, at, m.slice(ptr, len)?, &mut self.budget)
                        .map_err(|e| self.vfs_err(e))?;
                    at += u64::from(len);
                }
                if offset.is_none()
                    && let Fd::File { pos, .. } = self.fd_mut(fd)?
                {
                    *pos = start + n;
                }
            }
        }
        Ok(n)
    }

    pub(crate) fn fd_write(&mut self, m: &mut Mem, fd: u32, iovs: u32, n: u32, nwritten: u32) -> Call {
        let iovs = m.iovs(iovs, n)?;
        let done = self.write_at(m, fd, &iovs, None)?;
        m.put_u32(nwritten, done as u32)?;
        Ok(done)
    }

    pub(crate) fn fd_pwrite(&mut self, m: &mut Mem, fd: u32, iovs: u32, n: u32, offset: u64, nw: u32) -> Call {
        let iovs = m.iovs(iovs, n)?;
        let done = self.write_at(m, fd, &iovs, Some(offset))?;
        m.put_u32(nw, done as u32)?;
        Ok(done)
    }

    pub(crate) fn fd_readdir(&self, m: &mut Mem, fd: u32, buf: u32, len: u32, cookie: u64, used: u32) -> Call {
        let ino = match self.fd(fd)? {
            Fd::Dir { ino, .. } => *ino,
            _ => return Err(Errno::Notdir.into()),
        };
        let NodeKind::Dir(entries) = &self.vfs.node(ino).kind else {
            return Err(Errno::Notdir.into());
        };
        let parent = self.vfs.node(ino).parent;
        let listing = [(".", ino), ("..", parent)]
            .into_iter()
            .chain(entries.iter().map(|(k, v)| (k.as_str(), *v)));
        // Entries are written back to back; the last one may be cut short,
        // which tells the guest to call again with a larger buffer.
        let mut out = Vec::new();
        for (i, (name, child)) in listing.enumerate().skip(usize::try_from(cookie).unwrap_or(usize::MAX)) {
            if out.len() >= len as usize {
                break;
            }
            let filetype = match self.vfs.node(child).kind {
                NodeKind::Dir(_) => FILETYPE_DIRECTORY,
                NodeKind::File(_) => FILETYPE_REGULAR_FILE,
            };
            let mut d = [0u8; 24];
            d[0..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
            d[8..16].copy_from_slice(&(child as u64 + 1).to_le_bytes());
            d[16..20].copy_from_slice(&(name.len() as u32).to_le_bytes());
            d[20] = filetype;
            out.extend_from_slice(&d);
            out.extend_from_slice(name.as_bytes());
        }
        out.truncate(len as usize);
        m.put(buf, &out)?;
        m.put_u32(used, out.len() as u32)?;
        Ok(out.len() as u64)
    }

    // ---- paths ----

    #[allow(clippy::too_many_arguments)] // mirrors the WASI signature
    pub(crate) fn path_open(
        &mut self,
        m: &mut Mem,
        dirfd: u32,
        path: (u32, u32),
        oflags: u16,
        rights: u64,
        fdflags: u16,
        out: u32,
    ) -> Call {
        let dir = self.dir(dirfd)?;
        let path = m.str(path.0, path.1)?;
        let ino = if oflags & OFLAGS_CREAT != 0 {
            let (parent, name) = self.vfs.resolve_parent(dir, path)?;
            match self.vfs.resolve(parent, name) {
                Ok(_) if oflags & OFLAGS_EXCL != 0 => return Err(Errno::Exist.into()),
                Ok(ino) => ino,
                Err(Errno::Noent) => self
                    .vfs
                    .create(parent, name, false, &mut self.budget)
                    .map_err(|e| self.vfs_err(e))?,
                Err(e) => return Err(e.into()),
            }
        } else {
            self.vfs.resolve(dir, path)?
        };
        let node = self.vfs.node(ino);
        let want_write = rights & RIGHT_FD_WRITE != 0 || oflags & OFLAGS_TRUNC != 0 || fdflags & FDFLAGS_APPEND != 0;
        let entry = match &node.kind {
            NodeKind::Dir(_) => {
                if want_write && oflags & OFLAGS_TRUNC != 0 {
                    return Err(Errno::Isdir.into());
                }
                Fd::Dir { ino, preopen: None }
            }
            NodeKind::File(_) => {
                if oflags & OFLAGS_DIRECTORY != 0 {
                    return Err(Errno::Notdir.into());
                }
                if want_write && !node.writable {
                    return Err(Errno::Rofs.into());
                }
                if oflags & OFLAGS_TRUNC != 0 {
                    self.vfs
                        .set_len(ino, 0, &mut self.budget)
                        .map_err(|e| self.vfs_err(e))?;
                }
                Fd::File {
                    ino,
                    pos: 0,
                    read: rights & RIGHT_FD_READ != 0,
                    write: want_write,
                    append: fdflags & FDFLAGS_APPEND != 0,
                }
            }
        };
        let fd = self.alloc_fd(entry)?;
        m.put_u32(out, fd)?;
        Ok(0)
    }

    pub(crate) fn path_filestat_get(&self, m: &mut Mem, dirfd: u32, path: (u32, u32), out: u32) -> Call {
        let dir = self.dir(dirfd)?;
        let ino = self.vfs.resolve(dir, m.str(path.0, path.1)?)?;
        m.put(out, &self.filestat(ino))?;
        Ok(0)
    }

    pub(crate) fn path_filestat_set_times(&self, m: &mut Mem, dirfd: u32, path: (u32, u32)) -> Call {
        let dir = self.dir(dirfd)?;
        let ino = self.vfs.resolve(dir, m.str(path.0, path.1)?)?;
        if !self.vfs.node(ino).writable {
            return Err(Errno::Rofs.into());
        }
        Ok(0)
    }

    pub(crate) fn path_create_directory(&mut self, m: &mut Mem, dirfd: u32, path: (u32, u32)) -> Call {
        let dir = self.dir(dirfd)?;
        let (parent, name) = self.vfs.resolve_parent(dir, m.str(path.0, path.1)?)?;
        self.vfs
            .create(parent, name, true, &mut self.budget)
            .map_err(|e| self.vfs_err(e))?;
        Ok(0)
    }

    pub(crate) fn path_remove(&mut self, m: &mut Mem, dirfd: u32, path: (u32, u32), want_dir: bool) -> Call {
        let dir = self.dir(dirfd)?;
        let (parent, name) = self.vfs.resolve_parent(dir, m.str(path.0, path.1)?)?;
        self.vfs.remove(parent, name, want_dir)?;
        Ok(0)
    }

    pub(crate) fn path_rename(&mut self, m: &mut Mem, fd: u32, old: (u32, u32), new_fd: u32, new: (u32, u32)) -> Call {
        let (from_dir, to_dir) = (self.dir(fd)?, self.dir(new_fd)?);
        let (fp, fname) = self.vfs.resolve_parent(from_dir, m.str(old.0, old.1)?)?;
        let (tp, tname) = self.vfs.resolve_parent(to_dir, m.str(new.0, new.1)?)?;
        let writable = (self.vfs.node(fp).writable, self.vfs.node(tp).writable);
        if writable.0 != writable.1 {
            return Err(Errno::Xdev.into());
        }
        self.vfs.rename(fp, fname, tp, tname)?;
        Ok(0)
    }

    /// There are no symbolic links: `readlink` of anything that exists is
    /// `EINVAL`, as POSIX says for a path that is not a link.
    pub(crate) fn path_readlink(&self, m: &mut Mem, dirfd: u32, path: (u32, u32)) -> Call {
        let dir = self.dir(dirfd)?;
        self.vfs.resolve(dir, m.str(path.0, path.1)?)?;
        Err(Errno::Inval.into())
    }

    /// Moves a finished run's outputs out of the context into its result.
    pub(crate) fn take_result(&mut self, outcome: Outcome) -> TaskResult {
        TaskResult {
            outcome,
            stdout: std::mem::take(&mut self.stdout),
            stderr: std::mem::take(&mut self.stderr),
            files: self.vfs.take_outputs(),
        }
    }
}
