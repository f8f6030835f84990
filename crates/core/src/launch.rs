//! How a module is started and what it sees besides its arguments, stdin
//! and `/in`: the export called (a WASI command's `_start`, or a reactor's
//! named entry after its `_initialize`), environment variables, the host
//! imports its runtime declares, and read-only files mounted at absolute
//! paths (a runtime's library, such as CPython's standard library zip).
//!
//! All of it is part of the task: it travels in the signed assignment, so
//! the assignment's id (which receipts name) covers it, and two runs that
//! differ in any of it are different tasks.

use serde::{Deserialize, Serialize};

use crate::result::validate_out_path;

/// The host imports a runtime may declare: each is answered by the sandbox
/// with a refusal (`-1`, "no host here"), the answer a guest gets from a
/// host that offers it nothing.
pub const DECLARABLE_IMPORTS: &[&str] = &["host.call"];

/// Most environment variables a task may set.
pub const MAX_ENV_VARS: usize = 256;
/// Most bytes of environment (`NAME=value\0` each) a task may set.
pub const MAX_ENV_BYTES: usize = 64 * 1024;

/// How a module is entered and the environment it runs in. The default is
/// a WASI command with an empty environment, as every task ran before.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Launch {
    /// The export called: `None` calls `_start` (a WASI command); a name
    /// calls that export of a WASI reactor, after `_initialize` when the
    /// module exports one. The export takes nothing and returns nothing or
    /// an `i32` exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// Environment variables, in the order the guest sees them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<(String, String)>,
    /// Host imports the task's runtime declares (`module.name`, from
    /// [`DECLARABLE_IMPORTS`]); any other import outside WASI preview 1
    /// makes the module invalid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<String>,
}

impl Launch {
    /// Whether this is the default launch (a plain WASI command).
    pub fn is_default(&self) -> bool {
        *self == Launch::default()
    }

    /// Checks names and sizes: an entry that is a plausible export name,
    /// variable names without `=` or NUL, values without NUL, bounded
    /// counts and bytes, no variable set twice, and only declarable imports.
    pub fn check(&self) -> Result<(), String> {
        if let Some(e) = &self.entry {
            if e.is_empty() || e.len() > 256 || e.contains('\0') {
                return Err(format!("entry `{}` is not an export name", e.escape_debug()));
            }
            if e == "_initialize" {
                return Err("entry `_initialize` runs by itself before the entry; name the entry export".into());
            }
        }
        if self.env.len() > MAX_ENV_VARS {
            return Err(format!(
                "{} environment variables; at most {MAX_ENV_VARS}",
                self.env.len()
            ));
        }
        let mut bytes = 0usize;
        let mut seen = std::collections::BTreeSet::new();
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err(format!(
                    "environment variable name `{}` is empty or holds `=` or NUL",
                    k.escape_debug()
                ));
            }
            if v.contains('\0') {
                return Err(format!("environment variable `{k}` holds NUL"));
            }
            if !seen.insert(k.as_str()) {
                return Err(format!("environment variable `{k}` is set twice"));
            }
            bytes += k.len() + v.len() + 2;
        }
        if bytes > MAX_ENV_BYTES {
            return Err(format!("{bytes} bytes of environment; at most {MAX_ENV_BYTES}"));
        }
        for i in &self.imports {
            if !DECLARABLE_IMPORTS.contains(&i.as_str()) {
                return Err(format!(
                    "host import `{}` cannot be declared; the network answers only {}",
                    i.escape_debug(),
                    DECLARABLE_IMPORTS.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// Checks the absolute guest path of a mounted read-only file: clean
/// (no `.`, `..`, empty component), with a directory above it that is not
/// `/`, and outside the task's own `/in` and `/out`.
pub fn validate_mount_path(path: &str) -> Result<(), String> {
    let Some(rel) = path.strip_prefix('/') else {
        return Err(format!("mount `{}` is not an absolute path", path.escape_debug()));
    };
    validate_out_path(rel).map_err(|e| format!("mount {e}"))?;
    let first = rel.split('/').next().unwrap_or("");
    if first == "in" || first == "out" {
        return Err(format!("mount `{path}` is inside the task's /in or /out"));
    }
    if !rel.contains('/') {
        return Err(format!(
            "mount `{path}` is not inside a directory (a mount cannot be at /)"
        ));
    }
    Ok(())
}

/// The directory a mounted file is preopened under: its parent.
pub fn mount_dir(path: &str) -> &str {
    path.rsplit_once('/').map_or("/", |(d, _)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_launch_is_refused_with_its_reason() {
        let ok = Launch {
            entry: Some("run".into()),
            env: vec![("PYTHONHOME".into(), "/usr/local".into())],
            imports: vec!["host.call".into()],
        };
        assert_eq!(ok.check(), Ok(()));
        assert!(Launch::default().is_default() && !ok.is_default());
        let bad = |f: &dyn Fn(&mut Launch)| {
            let mut l = ok.clone();
            f(&mut l);
            l.check().unwrap_err()
        };
        assert!(bad(&|l| l.entry = Some(String::new())).contains("not an export name"));
        assert!(bad(&|l| l.entry = Some("_initialize".into())).contains("runs by itself"));
        assert!(bad(&|l| l.env.push(("A=B".into(), "x".into()))).contains("holds `=`"));
        assert!(bad(&|l| l.env.push(("A".into(), "x\0".into()))).contains("NUL"));
        assert!(bad(&|l| l.env.push(("PYTHONHOME".into(), "x".into()))).contains("set twice"));
        assert!(bad(&|l| l.env = (0..300).map(|i| (format!("V{i}"), String::new())).collect()).contains("at most 256"));
        assert!(bad(&|l| l.env = vec![("BIG".into(), "x".repeat(70_000))]).contains("bytes of environment"));
        assert!(bad(&|l| l.imports.push("env.system".into())).contains("`env.system` cannot be declared"));
    }

    #[test]
    fn mount_paths_are_absolute_clean_and_outside_the_tasks_own_folders() {
        assert_eq!(validate_mount_path("/usr/local/lib/python315.zip"), Ok(()));
        assert_eq!(mount_dir("/usr/local/lib/python315.zip"), "/usr/local/lib");
        for bad in [
            "usr/lib/x",
            "/x",
            "/in/x",
            "/out/a/b",
            "/usr/../etc/x",
            "/usr//x",
            "/usr/x/",
        ] {
            assert!(validate_mount_path(bad).is_err(), "{bad}");
        }
    }
}
