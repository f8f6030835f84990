//! WASI preview 1 ABI: error numbers, constants and struct layouts from
//! `wasi_snapshot_preview1.witx`, and bounds-checked access to guest memory.
//!
//! Every guest pointer goes through [`Mem`]; an out-of-range pointer becomes
//! `EFAULT` for the guest, never a host panic.

/// WASI error numbers (the subset the sandbox returns).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u16)]
pub(crate) enum Errno {
    Success = 0,
    Badf = 8,
    Exist = 20,
    Fault = 21,
    Fbig = 22,
    Inval = 28,
    Isdir = 31,
    Mfile = 33,
    Nametoolong = 37,
    Noent = 44,
    Notdir = 54,
    Notempty = 55,
    Notsup = 58,
    Rofs = 69,
    Spipe = 70,
    Xdev = 75,
    Notcapable = 76,
}

pub(crate) const FILETYPE_UNKNOWN: u8 = 0;
pub(crate) const FILETYPE_DIRECTORY: u8 = 3;
pub(crate) const FILETYPE_REGULAR_FILE: u8 = 4;

pub(crate) const OFLAGS_CREAT: u16 = 1;
pub(crate) const OFLAGS_DIRECTORY: u16 = 2;
pub(crate) const OFLAGS_EXCL: u16 = 4;
pub(crate) const OFLAGS_TRUNC: u16 = 8;

pub(crate) const FDFLAGS_APPEND: u16 = 1;

pub(crate) const RIGHT_FD_READ: u64 = 1 << 1;
pub(crate) const RIGHT_FD_WRITE: u64 = 1 << 6;
/// All 30 rights defined by preview 1.
pub(crate) const RIGHTS_ALL: u64 = (1 << 30) - 1;
/// Rights that modify something; never granted under `/in`.
pub(crate) const RIGHTS_MUTATING: u64 = RIGHT_FD_WRITE
    | 1 << 0  // fd_datasync
    | 1 << 3  // fd_fdstat_set_flags
    | 1 << 4  // fd_sync
    | 1 << 8  // fd_allocate
    | 1 << 9  // path_create_directory
    | 1 << 10 // path_create_file
    | 1 << 11 // path_link_source
    | 1 << 12 // path_link_target
    | 1 << 16 // path_rename_source
    | 1 << 17 // path_rename_target
    | 1 << 19 // path_filestat_set_size
    | 1 << 20 // path_filestat_set_times
    | 1 << 22 // fd_filestat_set_size
    | 1 << 23 // fd_filestat_set_times
    | 1 << 24 // path_symlink
    | 1 << 25 // path_remove_directory
    | 1 << 26; // path_unlink_file

pub(crate) const WHENCE_SET: u8 = 0;
pub(crate) const WHENCE_CUR: u8 = 1;
pub(crate) const WHENCE_END: u8 = 2;

pub(crate) const CLOCK_REALTIME: u32 = 0;
pub(crate) const CLOCK_MONOTONIC: u32 = 1;
pub(crate) const CLOCK_PROCESS_CPUTIME: u32 = 2;
pub(crate) const CLOCK_THREAD_CPUTIME: u32 = 3;

pub(crate) const EVENTTYPE_CLOCK: u8 = 0;
pub(crate) const EVENTTYPE_FD_READ: u8 = 1;
pub(crate) const EVENTTYPE_FD_WRITE: u8 = 2;
pub(crate) const SUBCLOCKFLAGS_ABSTIME: u16 = 1;

/// Largest iovec array a guest may pass (POSIX `IOV_MAX`).
pub(crate) const MAX_IOVS: u32 = 1024;

/// The guest's linear memory, with checked access. A module without an
/// exported memory gets an empty one, so every pointer it passes faults.
pub(crate) struct Mem<'a>(pub(crate) &'a mut [u8]);

impl Mem<'_> {
    fn range(&self, ptr: u32, len: u32) -> Result<std::ops::Range<usize>, Errno> {
        let start = ptr as usize;
        let end = start.checked_add(len as usize).ok_or(Errno::Fault)?;
        if end > self.0.len() {
            return Err(Errno::Fault);
        }
        Ok(start..end)
    }

    pub(crate) fn slice(&self, ptr: u32, len: u32) -> Result<&[u8], Errno> {
        let r = self.range(ptr, len)?;
        Ok(&self.0[r])
    }

    pub(crate) fn slice_mut(&mut self, ptr: u32, len: u32) -> Result<&mut [u8], Errno> {
        let r = self.range(ptr, len)?;
        Ok(&mut self.0[r])
    }

    pub(crate) fn str(&self, ptr: u32, len: u32) -> Result<&str, Errno> {
        std::str::from_utf8(self.slice(ptr, len)?).map_err(|_| Errno::Inval)
    }

    pub(crate) fn u32(&self, ptr: u32) -> Result<u32, Errno> {
        let s = self.slice(ptr, 4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    pub(crate) fn u64(&self, ptr: u32) -> Result<u64, Errno> {
        let s = self.slice(ptr, 8)?;
        let mut b = [0u8; 8];
        b.copy_from_slice(s);
        Ok(u64::from_le_bytes(b))
    }

    pub(crate) fn u16(&self, ptr: u32) -> Result<u16, Errno> {
        let s = self.slice(ptr, 2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }

    pub(crate) fn u8(&self, ptr: u32) -> Result<u8, Errno> {
        Ok(self.slice(ptr, 1)?[0])
    }

    pub(crate) fn put(&mut self, ptr: u32, bytes: &[u8]) -> Result<(), Errno> {
        self.slice_mut(ptr, bytes.len() as u32)?.copy_from_slice(bytes);
        Ok(())
    }

    pub(crate) fn put_u32(&mut self, ptr: u32, v: u32) -> Result<(), Errno> {
        self.put(ptr, &v.to_le_bytes())
    }

    pub(crate) fn put_u64(&mut self, ptr: u32, v: u64) -> Result<(), Errno> {
        self.put(ptr, &v.to_le_bytes())
    }

    /// Reads an iovec array: (pointer, length) pairs of 8 bytes each.
    pub(crate) fn iovs(&self, ptr: u32, count: u32) -> Result<Vec<(u32, u32)>, Errno> {
        if count > MAX_IOVS {
            return Err(Errno::Inval);
        }
        (0..count)
            .map(|i| {
                let at = ptr.checked_add(i * 8).ok_or(Errno::Fault)?;
                Ok((self.u32(at)?, self.u32(at.checked_add(4).ok_or(Errno::Fault)?)?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_pointers_fault() {
        let mut buf = [0u8; 16];
        let mut m = Mem(&mut buf);
        assert_eq!(m.u64(8), Ok(0));
        assert_eq!(m.u64(9), Err(Errno::Fault));
        assert_eq!(m.slice(u32::MAX, 2).err(), Some(Errno::Fault));
        assert_eq!(m.put_u32(14, 1), Err(Errno::Fault));
        assert_eq!(m.iovs(0, 3).err(), Some(Errno::Fault));
        assert_eq!(m.iovs(0, MAX_IOVS + 1).err(), Some(Errno::Inval));
    }
}
