//! The task's filesystem: two in-memory trees, `/in` (read-only, the task's
//! inputs) and `/out` (writable, collected as the result).
//!
//! It is in memory, not a host directory, for three reasons a host directory
//! (as in `wasmtime-wasi`) cannot meet:
//! - determinism: directory listings come out in byte order of names, inode
//!   numbers are allocation order, and every timestamp is the task's fixed
//!   epoch, so nothing about the provider's disk leaks into a result;
//! - bounds: every byte a guest adds to `/out`, and every file or directory it
//!   creates, is charged to the task's output limit *before* it is made, so a
//!   guest can never fill the provider's memory or disk;
//! - isolation: there is no path from a guest to a host file at all.
//!
//! Input files are shared (`Arc<[u8]>`), so a 100 MB input is never copied.

use std::collections::BTreeMap;
use std::sync::Arc;

use sharegrid_core::OutFile;

use crate::wasi::abi::Errno;

/// Index of a node; also its inode number (plus one) as the guest sees it.
pub(crate) type Ino = usize;

/// The root of `/in`.
pub(crate) const IN_ROOT: Ino = 0;
/// The root of `/out`.
pub(crate) const OUT_ROOT: Ino = 1;

/// Output bytes charged for creating a file or directory (plus its name), so
/// that creating millions of empty files is bounded by the output limit too.
pub(crate) const NODE_CHARGE: u64 = 64;
/// Longest file name component, in bytes.
pub(crate) const MAX_NAME: usize = 255;
/// Longest path a guest may pass, in bytes.
pub(crate) const MAX_PATH: usize = 4096;

#[derive(Debug)]
pub(crate) enum FileData {
    /// An input file, shared with the caller; never written.
    Shared(Arc<[u8]>),
    /// A file the guest wrote.
    Owned(Vec<u8>),
}

impl FileData {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            FileData::Shared(b) => b,
            FileData::Owned(v) => v,
        }
    }
}

#[derive(Debug)]
pub(crate) enum NodeKind {
    File(FileData),
    Dir(BTreeMap<String, Ino>),
}

#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) kind: NodeKind,
    /// The parent directory; a root is its own parent.
    pub(crate) parent: Ino,
    /// False for everything under `/in`.
    pub(crate) writable: bool,
}

/// Bytes still allowed to be written, shared by stdout, stderr and `/out`.
#[derive(Debug)]
pub(crate) struct OutputBudget {
    left: u64,
    /// Set once a write was refused; the run then ends with `OutputLimit`.
    pub(crate) exceeded: bool,
    /// Set when the host could not allocate output the budget allowed; the
    /// run then ends as a host failure, never as the task's result.
    pub(crate) host_full: bool,
}

impl OutputBudget {
    pub(crate) fn new(limit: u64) -> Self {
        OutputBudget {
            left: limit,
            exceeded: false,
            host_full: false,
        }
    }

    /// Takes `n` bytes from the budget, or refuses and remembers it. Budget is
    /// never given back (truncating or deleting does not refund), so the
    /// total host memory a task can claim is bounded by its limit.
    pub(crate) fn charge(&mut self, n: u64) -> Result<(), Errno> {
        if n > self.left {
            self.exceeded = true;
            return Err(Errno::Fbig);
        }
        self.left -= n;
        Ok(())
    }
}

#[derive(Debug)]
pub(crate) struct Vfs {
    nodes: Vec<Node>,
    /// The read-only trees of mounted files: (guest directory, its root).
    pub(crate) mounts: Vec<(String, Ino)>,
}

/// Splits a guest path into components, rejecting what the sandbox never
/// allows: absolute paths (a guest names files relative to a preopened
/// directory) and over-long paths or names.
fn components(path: &str) -> Result<Vec<&str>, Errno> {
    if path.len() > MAX_PATH {
        return Err(Errno::Nametoolong);
    }
    if path.starts_with('/') {
        return Err(Errno::Notcapable);
    }
    if path.is_empty() {
        return Err(Errno::Noent);
    }
    let mut out = Vec::new();
    for c in path.split('/') {
        if c.len() > MAX_NAME {
            return Err(Errno::Nametoolong);
        }
        if c.contains('\0') {
            return Err(Errno::Inval);
        }
        if !c.is_empty() && c != "." {
            out.push(c);
        }
    }
    Ok(out)
}

impl Vfs {
    /// Builds `/in` from `inputs` (relative `/`-separated paths, already
    /// validated), an empty `/out`, and a read-only tree for each directory
    /// that holds mounted files (`mounts`: absolute paths, validated).
    pub(crate) fn new(inputs: &BTreeMap<String, Arc<[u8]>>, mounts: &BTreeMap<String, Arc<[u8]>>) -> Self {
        let root = |writable| Node {
            kind: NodeKind::Dir(BTreeMap::new()),
            parent: 0,
            writable,
        };
        let mut vfs = Vfs {
            nodes: vec![root(false), root(true)],
            mounts: Vec::new(),
        };
        vfs.nodes[OUT_ROOT].parent = OUT_ROOT;
        for (path, data) in inputs {
            vfs.add_file(IN_ROOT, path, data);
        }
        // One preopened tree per outermost directory holding mounted files
        // (a runtime's `/usr/local/lib`, a tool's whole `/share` tree).
        let dirs: std::collections::BTreeSet<&str> = mounts.keys().map(|p| sharegrid_core::mount_dir(p)).collect();
        let inside = |d: &str, o: &str| d.len() > o.len() && d.starts_with(o) && d.as_bytes()[o.len()] == b'/';
        for dir in dirs.iter().filter(|d| !dirs.iter().any(|o| inside(d, o))) {
            let ino = vfs.nodes.len();
            vfs.nodes.push(Node {
                kind: NodeKind::Dir(BTreeMap::new()),
                parent: ino,
                writable: false,
            });
            vfs.mounts.push(((*dir).to_owned(), ino));
        }
        for (path, data) in mounts {
            if let Some((dir, root)) = vfs.mounts.iter().find(|(d, _)| inside(path, d)) {
                let rel = path[dir.len() + 1..].to_owned();
                vfs.add_file(*root, &rel, data);
            }
        }
        vfs
    }

    /// Adds a read-only file at `path` (relative, clean) under `root`,
    /// making the directories above it.
    fn add_file(&mut self, root: Ino, path: &str, data: &Arc<[u8]>) {
        let mut dir = root;
        let parts: Vec<&str> = path.split('/').collect();
        let (last, dirs) = parts.split_last().unwrap_or((&"", &[]));
        for d in dirs {
            dir = match self.child(dir, d) {
                Some(ino) => ino,
                None => self.insert(dir, d, NodeKind::Dir(BTreeMap::new()), false),
            };
        }
        self.insert(dir, last, NodeKind::File(FileData::Shared(data.clone())), false);
    }

    pub(crate) fn node(&self, ino: Ino) -> &Node {
        &self.nodes[ino]
    }

    fn child(&self, dir: Ino, name: &str) -> Option<Ino> {
        match &self.nodes[dir].kind {
            NodeKind::Dir(entries) => entries.get(name).copied(),
            NodeKind::File(_) => None,
        }
    }

    fn insert(&mut self, dir: Ino, name: &str, kind: NodeKind, writable: bool) -> Ino {
        let ino = self.nodes.len();
        self.nodes.push(Node {
            kind,
            parent: dir,
            writable,
        });
        if let NodeKind::Dir(entries) = &mut self.nodes[dir].kind {
            entries.insert(name.to_owned(), ino);
        }
        ino
    }

    /// Walks `path` from directory `dir`. `..` may not climb above the
    /// preopened root the walk started under.
    pub(crate) fn resolve(&self, dir: Ino, path: &str) -> Result<Ino, Errno> {
        let mut at = dir;
        for c in components(path)? {
            at = self.step(at, c)?;
        }
        Ok(at)
    }

    fn step(&self, at: Ino, c: &str) -> Result<Ino, Errno> {
        match &self.nodes[at].kind {
            NodeKind::File(_) => Err(Errno::Notdir),
            NodeKind::Dir(entries) => {
                if c == ".." {
                    let parent = self.nodes[at].parent;
                    if parent == at {
                        return Err(Errno::Notcapable);
                    }
                    Ok(parent)
                } else {
                    entries.get(c).copied().ok_or(Errno::Noent)
                }
            }
        }
    }

    /// Resolves all but the last component of `path`; returns the directory
    /// and the final name, which must be a plain name.
    pub(crate) fn resolve_parent<'p>(&self, dir: Ino, path: &'p str) -> Result<(Ino, &'p str), Errno> {
        let comps = components(path)?;
        let (last, dirs) = comps.split_last().ok_or(Errno::Exist)?;
        if *last == ".." {
            return Err(Errno::Exist);
        }
        let mut at = dir;
        for c in dirs {
            at = self.step(at, c)?;
        }
        match self.nodes[at].kind {
            NodeKind::Dir(_) => Ok((at, last)),
            NodeKind::File(_) => Err(Errno::Notdir),
        }
    }

    /// Creates an empty file or directory named `name` in `dir`, charging the
    /// output budget.
    pub(crate) fn create(
        &mut self,
        dir: Ino,
        name: &str,
        is_dir: bool,
        budget: &mut OutputBudget,
    ) -> Result<Ino, Errno> {
        if !self.nodes[dir].writable {
            return Err(Errno::Rofs);
        }
        if self.child(dir, name).is_some() {
            return Err(Errno::Exist);
        }
        budget.charge(NODE_CHARGE + name.len() as u64)?;
        let kind = if is_dir {
            NodeKind::Dir(BTreeMap::new())
        } else {
            NodeKind::File(FileData::Owned(Vec::new()))
        };
        Ok(self.insert(dir, name, kind, true))
    }

    /// Removes the entry `name` from `dir` (which must be writable). `want_dir`
    /// says whether the caller expects a directory (rmdir) or not (unlink).
    pub(crate) fn remove(&mut self, dir: Ino, name: &str, want_dir: bool) -> Result<(), Errno> {
        if !self.nodes[dir].writable {
            return Err(Errno::Rofs);
        }
        let ino = self.child(dir, name).ok_or(Errno::Noent)?;
        match (&self.nodes[ino].kind, want_dir) {
            (NodeKind::Dir(_), false) => return Err(Errno::Isdir),
            (NodeKind::File(_), true) => return Err(Errno::Notdir),
            (NodeKind::Dir(entries), true) if !entries.is_empty() => return Err(Errno::Notempty),
            _ => {}
        }
        if let NodeKind::Dir(entries) = &mut self.nodes[dir].kind {
            entries.remove(name);
        }
        Ok(())
    }

    /// Moves `from_dir/from` to `to_dir/to`, replacing a file or an empty
    /// directory of the same kind there.
    pub(crate) fn rename(&mut self, from_dir: Ino, from: &str, to_dir: Ino, to: &str) -> Result<(), Errno> {
        if !self.nodes[from_dir].writable || !self.nodes[to_dir].writable {
            return Err(Errno::Rofs);
        }
        let ino = self.child(from_dir, from).ok_or(Errno::Noent)?;
        // A directory may not move into its own subtree.
        let mut at = to_dir;
        loop {
            if at == ino {
                return Err(Errno::Inval);
            }
            let parent = self.nodes[at].parent;
            if parent == at {
                break;
            }
            at = parent;
        }
        if let Some(existing) = self.child(to_dir, to) {
            if existing == ino {
                return Ok(());
            }
            match (&self.nodes[ino].kind, &self.nodes[existing].kind) {
                (NodeKind::File(_), NodeKind::Dir(_)) => return Err(Errno::Isdir),
                (NodeKind::Dir(_), NodeKind::File(_)) => return Err(Errno::Notdir),
                (NodeKind::Dir(_), NodeKind::Dir(e)) if !e.is_empty() => {
                    return Err(Errno::Notempty);
                }
                _ => {}
            }
        }
        if let NodeKind::Dir(entries) = &mut self.nodes[from_dir].kind {
            entries.remove(from);
        }
        if let NodeKind::Dir(entries) = &mut self.nodes[to_dir].kind {
            entries.insert(to.to_owned(), ino);
        }
        self.nodes[ino].parent = to_dir;
        Ok(())
    }

    /// Resizes file `ino` to `len` bytes, charging any growth.
    pub(crate) fn set_len(&mut self, ino: Ino, len: u64, budget: &mut OutputBudget) -> Result<(), Errno> {
        let node = &mut self.nodes[ino];
        if !node.writable {
            return Err(Errno::Rofs);
        }
        let NodeKind::File(FileData::Owned(data)) = &mut node.kind else {
            return Err(Errno::Isdir);
        };
        let len = usize::try_from(len).map_err(|_| Errno::Fbig)?;
        if len > data.len() {
            budget.charge((len - data.len()) as u64)?;
            // An allocation the host cannot make ends the run (see
            // `host_full`) instead of aborting the process.
            if data.try_reserve_exact(len - data.len()).is_err() {
                budget.host_full = true;
                return Err(Errno::Fbig);
            }
        }
        data.resize(len, 0);
        Ok(())
    }

    /// Writes `bytes` into file `ino` at `offset`, growing it as needed and
    /// charging the growth.
    pub(crate) fn write_at(
        &mut self,
        ino: Ino,
        offset: u64,
        bytes: &[u8],
        budget: &mut OutputBudget,
    ) -> Result<(), Errno> {
        let end = offset.checked_add(bytes.len() as u64).ok_or(Errno::Fbig)?;
        let cur = self.file_len(ino)?;
        if end > cur {
            self.set_len(ino, end, budget)?;
        }
        let NodeKind::File(FileData::Owned(data)) = &mut self.nodes[ino].kind else {
            return Err(Errno::Rofs);
        };
        // In range: `end <= data.len()` after the resize above.
        data[offset as usize..end as usize].copy_from_slice(bytes);
        Ok(())
    }

    pub(crate) fn file_len(&self, ino: Ino) -> Result<u64, Errno> {
        match &self.nodes[ino].kind {
            NodeKind::File(d) => Ok(d.bytes().len() as u64),
            NodeKind::Dir(_) => Err(Errno::Isdir),
        }
    }

    /// Every regular file under `/out`, sorted by path (byte order).
    pub(crate) fn take_outputs(&mut self) -> Vec<OutFile> {
        let mut out = Vec::new();
        let mut stack = vec![(OUT_ROOT, String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            let NodeKind::Dir(entries) = &self.nodes[dir].kind else {
                continue;
            };
            let entries: Vec<(String, Ino)> = entries.iter().map(|(k, v)| (k.clone(), *v)).collect();
            for (name, ino) in entries {
                let path = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                match &mut self.nodes[ino].kind {
                    NodeKind::Dir(_) => stack.push((ino, path)),
                    NodeKind::File(FileData::Owned(data)) => out.push(OutFile {
                        path,
                        data: std::mem::take(data),
                    }),
                    NodeKind::File(FileData::Shared(data)) => out.push(OutFile {
                        path,
                        data: data.to_vec(),
                    }),
                }
            }
        }
        out.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vfs_with(inputs: &[(&str, &[u8])]) -> Vfs {
        let map = inputs
            .iter()
            .map(|(p, d)| (p.to_string(), Arc::<[u8]>::from(*d)))
            .collect();
        Vfs::new(&map, &BTreeMap::new())
    }

    #[test]
    fn inputs_are_found_and_read_only() {
        let v = vfs_with(&[("a.txt", b"A"), ("sub/b.txt", b"B")]);
        let b = v.resolve(IN_ROOT, "sub/./b.txt").unwrap();
        assert_eq!(v.file_len(b).unwrap(), 1);
        assert_eq!(
            v.resolve(IN_ROOT, "sub/../a.txt").map(|i| v.file_len(i).unwrap()),
            Ok(1)
        );
        assert_eq!(v.resolve(IN_ROOT, "../etc/passwd"), Err(Errno::Notcapable));
        assert_eq!(v.resolve(IN_ROOT, "/etc/passwd"), Err(Errno::Notcapable));
        assert_eq!(v.resolve(IN_ROOT, "a.txt/x"), Err(Errno::Notdir));
        let mut budget = OutputBudget::new(1 << 20);
        let mut v = v;
        assert_eq!(v.create(IN_ROOT, "new", false, &mut budget), Err(Errno::Rofs));
        assert_eq!(v.remove(IN_ROOT, "a.txt", false), Err(Errno::Rofs));
    }

    #[test]
    fn out_tree_charges_the_budget_and_lists_sorted() {
        let mut v = vfs_with(&[]);
        let mut budget = OutputBudget::new(150);
        let d = v.create(OUT_ROOT, "d", true, &mut budget).unwrap();
        let f = v.create(d, "z", false, &mut budget).unwrap();
        v.write_at(f, 2, b"hi", &mut budget).unwrap();
        let g = v.create(OUT_ROOT, "a", false, &mut budget).unwrap_err();
        assert_eq!(g, Errno::Fbig);
        assert!(budget.exceeded);
        let outs = v.take_outputs();
        assert_eq!(
            outs,
            vec![OutFile {
                path: "d/z".into(),
                data: vec![0, 0, b'h', b'i']
            }]
        );
    }

    #[test]
    fn rename_refuses_cycles_and_nonempty_targets() {
        let mut v = vfs_with(&[]);
        let mut budget = OutputBudget::new(1 << 20);
        let a = v.create(OUT_ROOT, "a", true, &mut budget).unwrap();
        let b = v.create(a, "b", true, &mut budget).unwrap();
        assert_eq!(v.rename(OUT_ROOT, "a", b, "x"), Err(Errno::Inval));
        v.create(OUT_ROOT, "c", true, &mut budget).unwrap();
        v.create(b, "f", false, &mut budget).unwrap();
        assert_eq!(v.rename(OUT_ROOT, "c", a, "b"), Err(Errno::Notempty));
        v.rename(a, "b", OUT_ROOT, "moved").unwrap();
        assert!(v.resolve(OUT_ROOT, "moved/f").is_ok());
    }
}
