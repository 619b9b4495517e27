//! File discovery and reading for `tp index`: which files of a repository get indexed, and
//! reading one of them safely.
//!
//! [`discover`] walks the repository with the `ignore` crate (the walker behind ripgrep) and
//! returns the files worth indexing, sorted by path, plus every file it passed over and why.
//! It never reads file contents. [`read_source`] then reads one [`Candidate`], re-checking
//! what may have changed since the walk, and hashes it.
//!
//! What is skipped, and how:
//! - Ignore rules: `.gitignore` (even outside a git repository, and including the `.gitignore`
//!   files of parent directories, `.git/info/exclude` and the user's global git excludes),
//!   `.ignore`, and turboprop's own `.tpignore`, which has the highest precedence: a `!pattern`
//!   in `.tpignore` re-includes a file that `.gitignore` excludes. Ignored files are left out
//!   silently.
//! - Hidden files and directories (names starting with `.`) are left out silently, and
//!   `.git/` and `.turboprop/` are always left out, at any depth.
//! - Symbolic links are never followed, so a symlink loop cannot hang the walk; each link is
//!   reported as [`SkipReason::Symlink`] (a routine skip, see [`SkipReason::is_routine`]). A
//!   repository root given as a symlink to a directory is followed.
//! - Lockfiles and files with well-known binary extensions are skipped by name, unread.
//! - Files over [`DiscoverOptions::max_filesize`] are skipped, both at discovery and at read
//!   time (a file may grow in between).
//! - Files with a NUL byte in their first 8 KiB are skipped as binary when read.
//! - Invalid UTF-8 *content* is not a reason to skip: chunking works on bytes. A path that is
//!   not valid UTF-8, or that cannot be stored as a repository-relative path (for example one
//!   containing `\` on Unix), is skipped with a warning.
//! - Files that cannot be read or that vanish mid-index are skipped with a reason, never a
//!   panic.

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use ignore::WalkBuilder;
use turboprop_types::{ContentHash, FileRecord, IndexConfig};

/// How many leading bytes [`read_source`] inspects for a NUL byte to detect binary content.
pub const BINARY_SNIFF_LEN: usize = 8 * 1024;

/// The name of turboprop's own ignore file (gitignore syntax, highest precedence).
pub const TPIGNORE: &str = ".tpignore";

/// Directory names that are never walked into, at any depth.
const ALWAYS_SKIPPED_DIRS: &[&str] = &[".git", ".turboprop"];

/// Lockfiles recognised by their full name (in addition to every `*.lock` and `*.lockfile`).
const LOCKFILE_NAMES: &[&str] = &[
    "package-lock.json",
    "npm-shrinkwrap.json",
    "pnpm-lock.yaml",
    "shrinkwrap.yaml",
    "bun.lockb",
    "go.sum",
    "go.work.sum",
    "packages.lock.json",
    "Package.resolved",
];

/// Extensions (lowercase, no dot) that mark a lockfile, such as `Cargo.lock` or `yarn.lock`.
const LOCKFILE_EXTENSIONS: &[&str] = &["lock", "lockfile"];

/// Extensions (lowercase, no dot) of files that are binary by nature; skipped unread.
const BINARY_EXTENSIONS: &[&str] = &[
    // images
    "png",
    "jpg",
    "jpeg",
    "gif",
    "bmp",
    "ico",
    "icns",
    "webp",
    "tif",
    "tiff",
    "psd",
    "heic",
    "avif", // documents
    "pdf",
    "doc",
    "docx",
    "xls",
    "xlsx",
    "ppt",
    "pptx",
    "odt",
    "ods",
    "odp", // archives
    "zip",
    "gz",
    "tgz",
    "bz2",
    "xz",
    "zst",
    "lz4",
    "7z",
    "rar",
    "tar",
    "jar",
    "war",
    "ear",
    "whl",
    "egg",
    "iso",
    "dmg",
    "deb",
    "rpm",
    "apk",
    "ipa",
    "crx",
    "nupkg",
    // compiled code and objects
    "class",
    "so",
    "dylib",
    "dll",
    "exe",
    "o",
    "a",
    "lib",
    "obj",
    "pdb",
    "wasm",
    "pyc",
    "pyo",
    "pyd",
    "beam",
    "rlib",
    "node", // fonts
    "woff",
    "woff2",
    "ttf",
    "otf",
    "eot", // audio and video
    "mp3",
    "mp4",
    "m4a",
    "m4v",
    "wav",
    "ogg",
    "oga",
    "flac",
    "aac",
    "avi",
    "mov",
    "mkv",
    "webm",
    "wmv",
    "flv", // databases and data blobs
    "sqlite",
    "sqlite3",
    "db",
    "bin",
    "dat",
    "parquet",
    "npy",
    "npz",
    "pkl",
    "pickle",
    "pt",
    "pth",
    "onnx",
    "safetensors",
    "gguf",
    "h5",
    "hdf5",
    "tfrecord",
];

/// Settings for [`discover`] and [`read_source`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverOptions {
    /// Files larger than this many bytes are skipped with [`SkipReason::TooLarge`].
    pub max_filesize: u64,
}

impl Default for DiscoverOptions {
    /// The default limit of [`IndexConfig`] (2 MiB).
    fn default() -> Self {
        DiscoverOptions {
            max_filesize: IndexConfig::default().max_filesize,
        }
    }
}

/// A file found by [`discover`] that should be read and indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Path relative to the repository root, `/`-separated; always valid for
    /// [`FileRecord::new`].
    pub rel_path: String,
    /// The path to open: the absolute repository path joined with `rel_path`.
    pub abs_path: PathBuf,
    /// Size in bytes at discovery time.
    pub size: u64,
    /// Modification time at discovery time, in nanoseconds since the Unix epoch (negative
    /// before 1970).
    pub mtime_ns: i64,
}

/// Why a file was not indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The file is larger than `--max-filesize`.
    TooLarge {
        /// The file's size in bytes (at least this large when it grew while being read).
        size: u64,
        /// The configured limit in bytes.
        limit: u64,
    },
    /// The content has a NUL byte in its first [`BINARY_SNIFF_LEN`] bytes.
    Binary,
    /// The extension marks a binary format (images, archives, objects...); not read.
    BinaryExtension(String),
    /// A dependency lockfile (`Cargo.lock`, `package-lock.json`, `*.lock`...); not read.
    Lockfile,
    /// A symbolic link; links are never followed.
    Symlink,
    /// Not a regular file: a FIFO, socket or device, which could block or never end.
    NotRegularFile,
    /// The file (or directory) could not be read; carries the I/O error text.
    Unreadable(String),
    /// The path is not valid UTF-8, so it cannot be recorded in the index.
    NotUtf8Path,
    /// The path is valid UTF-8 but cannot be stored as a repository-relative path (for
    /// example it contains `\`).
    UnsupportedPath,
    /// The file was deleted between being listed and being read.
    Vanished,
}

impl SkipReason {
    /// Whether this skip is expected and uninteresting (lockfiles, binary file types,
    /// symlinks): a front end may summarise these as a count instead of warning about each.
    pub fn is_routine(&self) -> bool {
        matches!(
            self,
            SkipReason::Lockfile | SkipReason::BinaryExtension(_) | SkipReason::Symlink
        )
    }

    /// The skip reason for an I/O error on a file that was listed a moment ago.
    fn from_io(err: &io::Error) -> SkipReason {
        if err.kind() == io::ErrorKind::NotFound {
            SkipReason::Vanished
        } else {
            SkipReason::Unreadable(err.to_string())
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::TooLarge { size, limit } => write!(
                f,
                "file is {} ({size} bytes), over the limit of {} ({limit} bytes); \
                 raise --max-filesize to index it",
                human_bytes(*size),
                human_bytes(*limit)
            ),
            SkipReason::Binary => write!(
                f,
                "binary content (NUL byte in the first {} KiB)",
                BINARY_SNIFF_LEN / 1024
            ),
            SkipReason::BinaryExtension(ext) => write!(f, "binary file type (.{ext})"),
            SkipReason::Lockfile => f.write_str("lockfile"),
            SkipReason::Symlink => f.write_str("symbolic link (links are not followed)"),
            SkipReason::NotRegularFile => {
                f.write_str("not a regular file (FIFO, socket or device)")
            }
            SkipReason::Unreadable(err) => write!(f, "cannot read: {err}"),
            SkipReason::NotUtf8Path => f.write_str("path is not valid UTF-8"),
            SkipReason::UnsupportedPath => {
                f.write_str("path cannot be stored in the index (it contains '\\')")
            }
            SkipReason::Vanished => f.write_str("deleted while indexing"),
        }
    }
}

/// A file (or directory) that was not indexed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Path relative to the repository root, `/`-separated (lossily converted when it is not
    /// valid UTF-8; a path outside the repository is shown in full).
    pub rel_path: String,
    /// Why it was skipped.
    pub reason: SkipReason,
}

impl fmt::Display for Skipped {
    /// One line, for example `skipped assets/logo.png: binary file type (.png)`. Control
    /// characters in the path are escaped so the message stays on one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rel_path.chars().any(char::is_control) {
            write!(f, "skipped {:?}: {}", self.rel_path, self.reason)
        } else {
            write!(f, "skipped {}: {}", self.rel_path, self.reason)
        }
    }
}

/// The result of [`discover`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// Files to index, sorted by `rel_path`.
    pub files: Vec<Candidate>,
    /// Files and directories passed over with a reason, sorted by `rel_path`.
    pub skipped: Vec<Skipped>,
    /// One-line problems that are not about a single file, such as an ignore file with an
    /// invalid pattern (the rest of that file still applies). Print them as warnings.
    pub warnings: Vec<String>,
}

/// A file's contents as read by [`read_source`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The whole file.
    pub bytes: Vec<u8>,
    /// BLAKE3 digest of `bytes`.
    pub hash: ContentHash,
    /// Size in bytes from the open file's metadata, taken just before reading. Record this
    /// (with `mtime_ns`) rather than the [`Candidate`]'s: it is fresher, and since it precedes
    /// the read, a change made during the read still shows up as a stat mismatch next time.
    pub size: u64,
    /// Modification time from the open file's metadata, taken just before reading, in
    /// nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
}

/// The walk of `tp index` over the repository at `root`, with its ignore rules: hidden files,
/// `.gitignore`, `.ignore`, `.tpignore`, git's excludes, never `.git` or `.turboprop`, never
/// through a link. The watcher walks the same folders.
pub fn walker(root: &Path) -> WalkBuilder {
    let mut walk = WalkBuilder::new(root);
    walk.standard_filters(true) // hidden files, .gitignore, .ignore, git excludes, parents
        .require_git(false)
        .add_custom_ignore_filename(TPIGNORE)
        .follow_links(false)
        .filter_entry(|entry| {
            entry.depth() == 0
                || !ALWAYS_SKIPPED_DIRS
                    .iter()
                    .any(|name| entry.file_name() == *name)
        });
    walk
}

/// Lists the files of `repo` worth indexing, sorted by path, and those passed over.
///
/// Never reads file contents; per-file problems (unreadable directories, files vanishing
/// mid-walk, over-large files...) land in [`Discovery::skipped`]. Fails only when `repo` itself
/// is not a readable directory.
pub fn discover(repo: &Path, opts: &DiscoverOptions) -> anyhow::Result<Discovery> {
    let root = std::path::absolute(repo)
        .with_context(|| format!("cannot resolve repository path {}", repo.display()))?;
    let meta = fs::metadata(&root)
        .with_context(|| format!("cannot index {}: no such directory", root.display()))?;
    if !meta.is_dir() {
        bail!(
            "cannot index {}: not a directory (pass --repo DIR)",
            root.display()
        );
    }
    fs::read_dir(&root).with_context(|| format!("cannot index {}", root.display()))?;

    let walk = walker(&root).build();

    let mut out = Discovery::default();
    for item in walk {
        let entry = match item {
            Ok(entry) => entry,
            Err(err) => {
                walk_error(&root, &err, &mut out);
                continue;
            }
        };
        if let Some(err) = entry.error() {
            // A problem with an ignore file in this directory; the rest still applies.
            out.warnings.push(format!("ignore rules: {err}"));
        }
        let Some(file_type) = entry.file_type() else {
            continue; // stdin; never produced for a directory walk
        };
        if file_type.is_dir() {
            continue;
        }
        let rel_path = match relative_path(&root, entry.path()) {
            Ok(rel) => rel,
            Err((shown, reason)) => {
                out.skipped.push(Skipped {
                    rel_path: shown,
                    reason,
                });
                continue;
            }
        };
        let skip = |reason| Skipped {
            rel_path: rel_path.clone(),
            reason,
        };
        if file_type.is_symlink() {
            out.skipped.push(skip(SkipReason::Symlink));
            continue;
        }
        if !file_type.is_file() {
            out.skipped.push(skip(SkipReason::NotRegularFile));
            continue;
        }
        if let Some(reason) = skip_by_name(&entry.file_name().to_string_lossy()) {
            out.skipped.push(skip(reason));
            continue;
        }
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(err) => {
                let reason = match err.io_error() {
                    Some(io_err) => SkipReason::from_io(io_err),
                    None => SkipReason::Unreadable(err.to_string()),
                };
                out.skipped.push(skip(reason));
                continue;
            }
        };
        if meta.len() > opts.max_filesize {
            out.skipped.push(skip(SkipReason::TooLarge {
                size: meta.len(),
                limit: opts.max_filesize,
            }));
            continue;
        }
        let mtime_ns = match meta.modified() {
            Ok(time) => system_time_to_ns(time),
            Err(err) => {
                // Without a modification time, changes could go unnoticed: refuse the file.
                out.skipped
                    .push(skip(SkipReason::Unreadable(err.to_string())));
                continue;
            }
        };
        out.files.push(Candidate {
            abs_path: entry.into_path(),
            rel_path,
            size: meta.len(),
            mtime_ns,
        });
    }
    out.files.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    out.skipped.sort_by(|a, b| a.rel_path.cmp(&b.rel_path));
    Ok(out)
}

/// Reads `c` for indexing: its bytes, their BLAKE3 hash and a fresh stat.
///
/// Re-checks everything that may have changed since [`discover`]: the file may have vanished
/// ([`SkipReason::Vanished`]), become unreadable, been replaced by a symlink or special file,
/// or grown past the limit ([`SkipReason::TooLarge`]; at most `max_filesize + 1` bytes are
/// ever read). Content with a NUL byte in the first [`BINARY_SNIFF_LEN`] bytes is
/// [`SkipReason::Binary`]. Invalid UTF-8 is returned as is.
pub fn read_source(c: &Candidate, opts: &DiscoverOptions) -> Result<Source, SkipReason> {
    let limit = opts.max_filesize;
    // Opened without following a link and without blocking on a FIFO; the opened file itself
    // is then checked, so nothing can be swapped in between a check and the open.
    let (file, len) = turboprop_storage::open_regular(&c.abs_path).map_err(skip_of)?;
    if len > limit {
        return Err(SkipReason::TooLarge { size: len, limit });
    }
    let meta = file.metadata().map_err(|e| SkipReason::from_io(&e))?;
    let mtime_ns = meta
        .modified()
        .map(system_time_to_ns)
        .map_err(|e| SkipReason::Unreadable(e.to_string()))?;
    // The binary check first, on the first few KiB alone: a large binary file costs no
    // more than that. The file may grow while being read: never read more than one byte
    // past the limit.
    let mut reader = file.take(limit.saturating_add(1));
    let capacity = usize::try_from(len).unwrap_or(0);
    let mut bytes = Vec::with_capacity(capacity.min(BINARY_SNIFF_LEN));
    (&mut reader)
        .take(BINARY_SNIFF_LEN as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| SkipReason::from_io(&e))?;
    if is_binary(&bytes) {
        return Err(SkipReason::Binary);
    }
    bytes.reserve(capacity.saturating_sub(bytes.len()));
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| SkipReason::from_io(&e))?;
    let read = bytes.len() as u64;
    if read > limit {
        return Err(SkipReason::TooLarge {
            size: read.max(len),
            limit,
        });
    }
    Ok(Source {
        hash: hash_bytes(&bytes),
        bytes,
        size: len,
        mtime_ns,
    })
}

/// The skip reason for a source file that [`turboprop_storage::open_regular`] refused.
fn skip_of(err: turboprop_storage::StorageError) -> SkipReason {
    use turboprop_storage::StorageError;
    match err {
        StorageError::Missing { .. } => SkipReason::Vanished,
        StorageError::NotRegular { found, .. } => match found {
            turboprop_storage::EntryKind::Symlink => SkipReason::Symlink,
            turboprop_storage::EntryKind::Folder => {
                SkipReason::Unreadable("is a directory".to_owned())
            }
            _ => SkipReason::NotRegularFile,
        },
        StorageError::Io { source, .. } => SkipReason::from_io(&source),
        other => SkipReason::Unreadable(other.to_string()),
    }
}

/// The BLAKE3 digest of `bytes`, as turboprop records it for files and chunks.
pub fn hash_bytes(bytes: &[u8]) -> ContentHash {
    ContentHash::from_bytes(*blake3::hash(bytes).as_bytes())
}

/// Whether `bytes` look binary: a NUL byte in the first [`BINARY_SNIFF_LEN`] bytes.
fn is_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(BINARY_SNIFF_LEN)].contains(&0)
}

/// Skips lockfiles and binary file types by name alone.
fn skip_by_name(file_name: &str) -> Option<SkipReason> {
    if LOCKFILE_NAMES.contains(&file_name) {
        return Some(SkipReason::Lockfile);
    }
    let (stem, ext) = file_name.rsplit_once('.')?;
    if stem.is_empty() {
        return None; // a dotfile such as `.lock` has no extension
    }
    let ext = ext.to_ascii_lowercase();
    if LOCKFILE_EXTENSIONS.contains(&ext.as_str()) {
        Some(SkipReason::Lockfile)
    } else if BINARY_EXTENSIONS.contains(&ext.as_str()) {
        Some(SkipReason::BinaryExtension(ext))
    } else {
        None
    }
}

/// `path` relative to `root`, `/`-separated. On failure, returns the path as it can be shown
/// and the reason it cannot be recorded.
fn relative_path(root: &Path, path: &Path) -> Result<String, (String, SkipReason)> {
    let Ok(rel) = path.strip_prefix(root) else {
        return Err((
            path.display().to_string(),
            SkipReason::Unreadable("outside the repository".to_owned()),
        ));
    };
    let mut parts = Vec::new();
    let mut utf8 = true;
    for comp in rel.components() {
        let os = comp.as_os_str();
        match os.to_str() {
            Some(s) => parts.push(s.to_owned()),
            None => {
                utf8 = false;
                parts.push(os.to_string_lossy().into_owned());
            }
        }
    }
    let joined = parts.join("/");
    if !utf8 {
        return Err((joined, SkipReason::NotUtf8Path));
    }
    // Use the types crate's own rule, so that every candidate can become a FileRecord.
    if FileRecord::new(joined.as_str(), 0, 0, ContentHash::default()).is_err() {
        return Err((joined, SkipReason::UnsupportedPath));
    }
    Ok(joined)
}

/// Records an error the walker reported instead of an entry.
fn walk_error(root: &Path, err: &ignore::Error, out: &mut Discovery) {
    match (error_path(err), err.io_error()) {
        (Some(path), Some(io_err)) => {
            let rel_path = match relative_path(root, path) {
                Ok(rel) => rel,
                Err((shown, _)) => shown,
            };
            out.skipped.push(Skipped {
                rel_path,
                reason: SkipReason::from_io(io_err),
            });
        }
        _ => out.warnings.push(format!("while listing files: {err}")),
    }
}

/// The path an `ignore` error is about, if it names one.
fn error_path(err: &ignore::Error) -> Option<&Path> {
    match err {
        ignore::Error::WithPath { path, .. } => Some(path),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        ignore::Error::Partial(errs) if errs.len() == 1 => error_path(&errs[0]),
        ignore::Error::Loop { child, .. } => Some(child),
        _ => None,
    }
}

/// Nanoseconds since the Unix epoch, negative before 1970, saturating at the `i64` range
/// (about the years 1677 to 2262).
fn system_time_to_ns(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_nanos())
            .map(|ns| -ns)
            .unwrap_or(i64::MIN),
    }
}

/// A size for humans: `512 B`, `1.5 KiB`, `2.0 MiB`.
fn human_bytes(n: u64) -> String {
    const UNITS: &[&str] = &["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    /// Writes `content` to `root/rel`, creating parent directories.
    fn write(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent dirs");
        }
        fs::write(path, content).expect("write file");
    }

    fn opts() -> DiscoverOptions {
        DiscoverOptions::default()
    }

    fn run(root: &Path) -> Discovery {
        discover(root, &opts()).expect("discover")
    }

    fn paths(d: &Discovery) -> Vec<&str> {
        d.files.iter().map(|c| c.rel_path.as_str()).collect()
    }

    fn reason_of<'a>(d: &'a Discovery, rel: &str) -> Option<&'a SkipReason> {
        d.skipped
            .iter()
            .find(|s| s.rel_path == rel)
            .map(|s| &s.reason)
    }

    fn candidate(d: &Discovery, rel: &str) -> Candidate {
        d.files
            .iter()
            .find(|c| c.rel_path == rel)
            .cloned()
            .unwrap_or_else(|| panic!("{rel} should be a candidate; got {:?}", paths(d)))
    }

    #[test]
    fn finds_files_sorted_with_slash_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "src/main.rs", "fn main() {}\n");
        write(dir.path(), "src/a/b.rs", "// b\n");
        write(dir.path(), "README.md", "# hi\n");
        write(dir.path(), "a.rs", "// a\n");
        write(dir.path(), "a b/c d.py", "x = 1\n");
        let d = run(dir.path());
        assert_eq!(
            paths(&d),
            [
                "README.md",
                "a b/c d.py",
                "a.rs",
                "src/a/b.rs",
                "src/main.rs"
            ]
        );
        assert!(d.skipped.is_empty(), "{:?}", d.skipped);
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
        let main = candidate(&d, "src/main.rs");
        assert_eq!(main.size, 13);
        assert!(main.abs_path.is_absolute());
        assert_eq!(
            fs::read(&main.abs_path).expect("read abs_path"),
            b"fn main() {}\n"
        );
        for c in &d.files {
            FileRecord::new(
                c.rel_path.as_str(),
                c.size,
                c.mtime_ns,
                ContentHash::default(),
            )
            .expect("every candidate path is a valid FileRecord path");
        }
    }

    #[test]
    fn discovery_is_deterministic() {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in (0..50).rev() {
            write(
                dir.path(),
                &format!("d{}/f{i}.rs", i % 7),
                format!("// {i}\n"),
            );
        }
        let first = run(dir.path());
        assert_eq!(first.files.len(), 50);
        let mut sorted = paths(&first);
        sorted.sort_unstable();
        assert_eq!(paths(&first), sorted);
        assert_eq!(first, run(dir.path()));
    }

    #[test]
    fn relative_repo_path_gives_absolute_candidates() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "x.rs", "x\n");
        let cwd = std::env::current_dir().expect("cwd");
        // A relative path to the temp dir, without changing the process-wide cwd.
        let rel = pathdiff(dir.path(), &cwd);
        let d = discover(&rel, &opts()).expect("discover");
        assert_eq!(paths(&d), ["x.rs"]);
        assert!(d.files[0].abs_path.is_absolute());
    }

    /// `target` relative to `base`, using `..` as needed (both absolute).
    fn pathdiff(target: &Path, base: &Path) -> PathBuf {
        let t: Vec<_> = target.components().collect();
        let b: Vec<_> = base.components().collect();
        let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
        let mut out = PathBuf::new();
        for _ in common..b.len() {
            out.push("..");
        }
        for c in &t[common..] {
            out.push(c);
        }
        out
    }

    #[test]
    fn respects_gitignore_without_a_git_repo() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        assert!(!root.join(".git").exists());
        write(root, ".gitignore", "*.log\nbuild/\n/top_only.rs\n");
        write(root, "keep.rs", "k\n");
        write(root, "debug.log", "noise\n");
        write(root, "build/out.rs", "generated\n");
        write(root, "top_only.rs", "t\n");
        write(root, "sub/top_only.rs", "kept: anchored pattern\n");
        write(root, "sub/.gitignore", "local.rs\n");
        write(root, "sub/local.rs", "l\n");
        write(root, "sub/other.rs", "o\n");
        let d = run(root);
        assert_eq!(paths(&d), ["keep.rs", "sub/other.rs", "sub/top_only.rs"]);
        // Ignored files are left out silently.
        assert!(d.skipped.is_empty(), "{:?}", d.skipped);
    }

    #[test]
    fn respects_gitignore_in_a_git_repo() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, ".git/HEAD", "ref: refs/heads/main\n");
        write(root, ".git/config", "[core]\n");
        write(root, ".git/info/exclude", "excluded.rs\n");
        write(root, ".gitignore", "target/\n");
        write(root, "target/debug/x.rs", "x\n");
        write(root, "excluded.rs", "e\n");
        write(root, "lib.rs", "l\n");
        let d = run(root);
        assert_eq!(paths(&d), ["lib.rs"]);
    }

    #[test]
    fn respects_ignore_and_tpignore_with_tpignore_winning() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, ".gitignore", "*.gen.rs\n");
        write(root, ".ignore", "vendor/\n");
        write(root, TPIGNORE, "fixtures/\n!wanted.gen.rs\n");
        write(root, "a.gen.rs", "ignored by .gitignore\n");
        write(root, "wanted.gen.rs", "re-included by .tpignore\n");
        write(root, "vendor/dep.rs", "ignored by .ignore\n");
        write(root, "fixtures/big.json", "ignored by .tpignore\n");
        write(
            root,
            "src/fixtures/nested.json",
            "also ignored: unanchored dir\n",
        );
        write(root, "src/lib.rs", "kept\n");
        let d = run(root);
        assert_eq!(paths(&d), ["src/lib.rs", "wanted.gen.rs"]);
    }

    #[test]
    fn skips_hidden_git_and_turboprop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, ".turboprop/index/metadata.json", "{}");
        write(root, ".turboprop/index/config.yaml", "a: 1\n");
        write(root, ".git/objects/ab/cdef", "blob");
        write(root, ".env", "SECRET=1\n");
        write(root, ".hidden/inner.rs", "h\n");
        write(root, "nested/.git/config", "[core]\n");
        write(root, "nested/.turboprop/x.rs", "x\n");
        write(root, "nested/code.rs", "c\n");
        let d = run(root);
        assert_eq!(paths(&d), ["nested/code.rs"]);
        assert!(d.skipped.is_empty(), "{:?}", d.skipped);
    }

    #[test]
    fn hidden_repo_root_is_still_walked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join(".dotted-repo");
        write(&root, "src/a.rs", "a\n");
        let d = run(&root);
        assert_eq!(paths(&d), ["src/a.rs"]);
    }

    #[test]
    fn skips_lockfiles_and_binary_extensions_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let locks = [
            "Cargo.lock",
            "package-lock.json",
            "yarn.lock",
            "pnpm-lock.yaml",
            "poetry.lock",
            "Pipfile.lock",
            "composer.lock",
            "Gemfile.lock",
            "go.sum",
            "bun.lockb",
            "flake.lock",
            "web/package-lock.json",
        ];
        let binaries = [
            ("logo.png", "png"),
            ("photo.JPG", "jpg"),
            ("doc.pdf", "pdf"),
            ("dist/app.tar.gz", "gz"),
            ("lib.so", "so"),
            ("m.wasm", "wasm"),
            ("font.woff2", "woff2"),
            ("data.sqlite", "sqlite"),
            ("__pycache__/m.pyc", "pyc"),
            ("Main.class", "class"),
        ];
        for l in locks {
            write(root, l, "not read\n");
        }
        for (b, _) in binaries {
            write(root, b, "not read either\n");
        }
        write(root, "lock.rs", "a source file about locks\n");
        write(root, "package.json", "{}\n");
        write(root, "image.svg", "<svg/>\n");
        let d = run(root);
        assert_eq!(paths(&d), ["image.svg", "lock.rs", "package.json"]);
        for l in locks {
            assert_eq!(reason_of(&d, l), Some(&SkipReason::Lockfile), "{l}");
        }
        for (b, ext) in binaries {
            assert_eq!(
                reason_of(&d, b),
                Some(&SkipReason::BinaryExtension(ext.to_owned())),
                "{b}"
            );
        }
        assert!(d.skipped.iter().all(|s| s.reason.is_routine()));
    }

    #[test]
    fn skip_by_name_edge_cases() {
        assert_eq!(skip_by_name("Cargo.lock"), Some(SkipReason::Lockfile));
        assert_eq!(skip_by_name("gradle.lockfile"), Some(SkipReason::Lockfile));
        assert_eq!(skip_by_name("LOCK.LOCK"), Some(SkipReason::Lockfile));
        assert_eq!(skip_by_name("lock"), None);
        assert_eq!(skip_by_name(".lock"), None);
        assert_eq!(skip_by_name("Makefile"), None);
        assert_eq!(skip_by_name("main.rs"), None);
        assert_eq!(skip_by_name("archive."), None);
        assert_eq!(
            skip_by_name("a.b.PNG"),
            Some(SkipReason::BinaryExtension("png".to_owned()))
        );
    }

    #[test]
    fn too_large_files_are_skipped_at_discovery() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "small.rs", vec![b'a'; 100]);
        write(root, "exact.rs", vec![b'a'; 101]);
        write(root, "big.rs", vec![b'a'; 102]);
        let o = DiscoverOptions { max_filesize: 101 };
        let d = discover(root, &o).expect("discover");
        assert_eq!(paths(&d), ["exact.rs", "small.rs"]);
        assert_eq!(
            reason_of(&d, "big.rs"),
            Some(&SkipReason::TooLarge {
                size: 102,
                limit: 101
            })
        );
        assert!(!SkipReason::TooLarge { size: 1, limit: 0 }.is_routine());
    }

    #[test]
    fn file_growing_past_the_limit_is_caught_when_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "grow.rs", vec![b'a'; 10]);
        let o = DiscoverOptions { max_filesize: 64 };
        let d = discover(root, &o).expect("discover");
        let c = candidate(&d, "grow.rs");
        write(root, "grow.rs", vec![b'b'; 1000]);
        assert_eq!(
            read_source(&c, &o),
            Err(SkipReason::TooLarge {
                size: 1000,
                limit: 64
            })
        );
    }

    #[test]
    fn reads_and_hashes_with_blake3() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let text = "fn rank_hand() -> u8 { 7 }\n";
        write(root, "hand.rs", text);
        let d = run(root);
        let c = candidate(&d, "hand.rs");
        let s = read_source(&c, &opts()).expect("readable");
        assert_eq!(s.bytes, text.as_bytes());
        assert_eq!(s.hash, hash_bytes(text.as_bytes()));
        assert_eq!(s.hash.as_bytes(), blake3::hash(text.as_bytes()).as_bytes());
        assert_eq!(s.size, c.size);
        assert_eq!(s.mtime_ns, c.mtime_ns);
        // The published BLAKE3 digest of the empty input.
        assert_eq!(
            hash_bytes(b"").to_hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert_ne!(hash_bytes(b"a"), hash_bytes(b"b"));
    }

    #[test]
    fn empty_file_is_a_candidate_with_empty_source() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "empty.rs", "");
        let d = run(dir.path());
        let c = candidate(&d, "empty.rs");
        assert_eq!(c.size, 0);
        let s = read_source(&c, &opts()).expect("empty is fine");
        assert!(s.bytes.is_empty());
        assert_eq!(s.hash, hash_bytes(b""));
        // Even a zero limit admits an empty file.
        let zero = DiscoverOptions { max_filesize: 0 };
        assert_eq!(read_source(&c, &zero).map(|s| s.size), Ok(0));
    }

    #[test]
    fn nul_byte_in_first_8k_means_binary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "early.dat2", b"abc\0def");
        let mut late_in_window = vec![b'x'; BINARY_SNIFF_LEN];
        late_in_window[BINARY_SNIFF_LEN - 1] = 0;
        write(root, "edge.txt", &late_in_window);
        let mut past_window = vec![b'x'; BINARY_SNIFF_LEN + 10];
        past_window[BINARY_SNIFF_LEN] = 0;
        write(root, "late.txt", &past_window);
        write(root, "utf16.txt", [0xFF, 0xFE, b'h', 0, b'i', 0]);
        let d = run(root);
        let read = |rel: &str| read_source(&candidate(&d, rel), &opts());
        assert_eq!(read("early.dat2"), Err(SkipReason::Binary));
        assert_eq!(read("edge.txt"), Err(SkipReason::Binary));
        assert_eq!(read("utf16.txt"), Err(SkipReason::Binary));
        assert_eq!(read("late.txt").map(|s| s.bytes), Ok(past_window));
    }

    #[test]
    fn invalid_utf8_content_is_read_not_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bytes = b"let s = \"caf\xe9\"; // latin-1\n\xff\xfe\xfd\n".to_vec();
        write(dir.path(), "latin1.rs", &bytes);
        let d = run(dir.path());
        let s = read_source(&candidate(&d, "latin1.rs"), &opts()).expect("read");
        assert_eq!(s.bytes, bytes);
    }

    #[test]
    fn file_deleted_after_discovery_has_vanished() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "gone.rs", "bye\n");
        let d = run(dir.path());
        let c = candidate(&d, "gone.rs");
        fs::remove_file(&c.abs_path).expect("remove");
        assert_eq!(read_source(&c, &opts()), Err(SkipReason::Vanished));
    }

    #[test]
    fn file_replaced_by_directory_is_unreadable_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "turncoat.rs", "x\n");
        let d = run(dir.path());
        let c = candidate(&d, "turncoat.rs");
        fs::remove_file(&c.abs_path).expect("remove");
        fs::create_dir(&c.abs_path).expect("mkdir");
        assert!(matches!(
            read_source(&c, &opts()),
            Err(SkipReason::Unreadable(_))
        ));
    }

    #[test]
    fn mtime_is_nanoseconds_since_epoch() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "old.rs", "x\n");
        let when = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        fs::File::options()
            .write(true)
            .open(dir.path().join("old.rs"))
            .expect("open")
            .set_modified(when)
            .expect("set mtime");
        let d = run(dir.path());
        assert_eq!(candidate(&d, "old.rs").mtime_ns, 1_700_000_000_000_000_000);
    }

    #[test]
    fn system_time_conversion_handles_pre_1970_and_overflow() {
        assert_eq!(system_time_to_ns(UNIX_EPOCH), 0);
        assert_eq!(
            system_time_to_ns(UNIX_EPOCH + Duration::new(1, 5)),
            1_000_000_005
        );
        assert_eq!(
            system_time_to_ns(UNIX_EPOCH - Duration::from_nanos(1_500)),
            -1_500
        );
        let far_future = UNIX_EPOCH + Duration::from_secs(400 * 365 * 86_400);
        assert_eq!(system_time_to_ns(far_future), i64::MAX);
        if let Some(far_past) = UNIX_EPOCH.checked_sub(Duration::from_secs(400 * 365 * 86_400)) {
            assert_eq!(system_time_to_ns(far_past), i64::MIN);
        }
    }

    #[test]
    fn missing_or_non_directory_repo_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope");
        let err = discover(&missing, &opts()).expect_err("missing repo");
        assert!(err.to_string().contains("nope"), "{err}");
        write(dir.path(), "file.rs", "x\n");
        let err = discover(&dir.path().join("file.rs"), &opts()).expect_err("file as repo");
        assert!(format!("{err:#}").contains("not a directory"), "{err:#}");
    }

    #[test]
    fn bad_ignore_pattern_is_a_warning_not_a_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), ".gitignore", "ok.log\n{unclosed\n");
        write(dir.path(), "ok.log", "ignored\n");
        write(dir.path(), "a.rs", "a\n");
        let d = run(dir.path());
        assert_eq!(paths(&d), ["a.rs"]);
        assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
        assert!(d.warnings[0].contains("unclosed"), "{:?}", d.warnings);
        assert!(!d.warnings[0].contains('\n'));
    }

    #[test]
    fn display_messages_are_one_line() {
        let cases = [
            (
                SkipReason::TooLarge {
                    size: 3 * 1024 * 1024 + 512 * 1024,
                    limit: 2 * 1024 * 1024,
                },
                "skipped big.rs: file is 3.5 MiB (3670016 bytes), over the limit of 2.0 MiB \
                 (2097152 bytes); raise --max-filesize to index it",
            ),
            (
                SkipReason::Binary,
                "skipped big.rs: binary content (NUL byte in the first 8 KiB)",
            ),
            (
                SkipReason::BinaryExtension("png".to_owned()),
                "skipped big.rs: binary file type (.png)",
            ),
            (SkipReason::Lockfile, "skipped big.rs: lockfile"),
            (
                SkipReason::Symlink,
                "skipped big.rs: symbolic link (links are not followed)",
            ),
            (
                SkipReason::NotRegularFile,
                "skipped big.rs: not a regular file (FIFO, socket or device)",
            ),
            (
                SkipReason::Unreadable("Permission denied (os error 13)".to_owned()),
                "skipped big.rs: cannot read: Permission denied (os error 13)",
            ),
            (
                SkipReason::NotUtf8Path,
                "skipped big.rs: path is not valid UTF-8",
            ),
            (
                SkipReason::UnsupportedPath,
                "skipped big.rs: path cannot be stored in the index (it contains '\\')",
            ),
            (
                SkipReason::Vanished,
                "skipped big.rs: deleted while indexing",
            ),
        ];
        for (reason, want) in cases {
            let s = Skipped {
                rel_path: "big.rs".to_owned(),
                reason,
            };
            assert_eq!(s.to_string(), want);
        }
        let weird = Skipped {
            rel_path: "a\nb.rs".to_owned(),
            reason: SkipReason::Vanished,
        };
        assert_eq!(
            weird.to_string(),
            "skipped \"a\\nb.rs\": deleted while indexing"
        );
    }

    #[test]
    fn human_bytes_formats() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(2 * 1024 * 1024), "2.0 MiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
    }

    #[cfg(unix)]
    mod unix {
        use super::*;

        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::{symlink, PermissionsExt};

        #[test]
        fn symlinks_are_not_followed_and_loops_terminate() {
            let dir = tempfile::tempdir().expect("tempdir");
            let root = dir.path();
            write(root, "real/a.rs", "a\n");
            symlink("..", root.join("real/loop")).expect("symlink loop");
            symlink(root.join("real"), root.join("dirlink")).expect("dir symlink");
            symlink("real/a.rs", root.join("filelink.rs")).expect("file symlink");
            symlink("does/not/exist", root.join("dangling.rs")).expect("dangling symlink");
            symlink("self.rs", root.join("self.rs")).expect("self symlink");
            let d = run(root);
            assert_eq!(paths(&d), ["real/a.rs"]);
            for link in [
                "dangling.rs",
                "dirlink",
                "filelink.rs",
                "real/loop",
                "self.rs",
            ] {
                assert_eq!(reason_of(&d, link), Some(&SkipReason::Symlink), "{link}");
            }
            assert!(d.warnings.is_empty(), "{:?}", d.warnings);
        }

        #[test]
        fn file_replaced_by_symlink_is_not_followed_on_read() {
            let dir = tempfile::tempdir().expect("tempdir");
            write(dir.path(), "a.rs", "a\n");
            write(dir.path(), "secret.txt", "s\n");
            let d = run(dir.path());
            let c = candidate(&d, "a.rs");
            fs::remove_file(&c.abs_path).expect("remove");
            symlink(dir.path().join("secret.txt"), &c.abs_path).expect("symlink");
            assert_eq!(read_source(&c, &opts()), Err(SkipReason::Symlink));
        }

        #[test]
        fn symlinked_repo_root_is_followed() {
            let dir = tempfile::tempdir().expect("tempdir");
            write(dir.path(), "real/src/a.rs", "a\n");
            let link = dir.path().join("link");
            symlink(dir.path().join("real"), &link).expect("symlink");
            let d = run(&link);
            assert_eq!(paths(&d), ["src/a.rs"]);
            let s = read_source(&d.files[0], &opts()).expect("read through root link");
            assert_eq!(s.bytes, b"a\n");
        }

        #[test]
        fn sockets_are_not_regular_files() {
            let dir = tempfile::tempdir().expect("tempdir");
            write(dir.path(), "a.rs", "a\n");
            let sock = dir.path().join("server.sock2");
            let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
            let d = run(dir.path());
            assert_eq!(paths(&d), ["a.rs"]);
            assert_eq!(
                reason_of(&d, "server.sock2"),
                Some(&SkipReason::NotRegularFile)
            );
            // A candidate replaced by a socket after discovery is refused without opening it.
            let mut c = candidate(&d, "a.rs");
            c.abs_path = sock;
            assert_eq!(read_source(&c, &opts()), Err(SkipReason::NotRegularFile));
        }

        #[test]
        fn non_utf8_path_is_skipped_with_a_reason() {
            let dir = tempfile::tempdir().expect("tempdir");
            let name = OsStr::from_bytes(b"caf\xe9.rs");
            if fs::write(dir.path().join(name), "x\n").is_err() {
                return; // a filesystem that insists on UTF-8 names cannot hold one
            }
            write(dir.path(), "ok.rs", "ok\n");
            let d = run(dir.path());
            assert_eq!(paths(&d), ["ok.rs"]);
            assert_eq!(
                reason_of(&d, "caf\u{FFFD}.rs"),
                Some(&SkipReason::NotUtf8Path),
                "{:?}",
                d.skipped
            );
        }

        #[test]
        fn backslash_in_name_is_an_unsupported_path() {
            let dir = tempfile::tempdir().expect("tempdir");
            write(dir.path(), "odd\\name.rs", "x\n");
            write(dir.path(), "ok.rs", "ok\n");
            let d = run(dir.path());
            assert_eq!(paths(&d), ["ok.rs"]);
            assert_eq!(
                reason_of(&d, "odd\\name.rs"),
                Some(&SkipReason::UnsupportedPath)
            );
        }

        /// Whether permission bits are enforced (not when running as root).
        fn permissions_enforced(probe: &Path) -> bool {
            fs::read(probe).is_err()
        }

        #[test]
        fn unreadable_file_is_skipped_on_read() {
            let dir = tempfile::tempdir().expect("tempdir");
            write(dir.path(), "locked.rs", "secret\n");
            let path = dir.path().join("locked.rs");
            fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).expect("chmod");
            let d = run(dir.path());
            let c = candidate(&d, "locked.rs"); // stat works without read permission
            let got = read_source(&c, &opts());
            if permissions_enforced(&path) {
                match got {
                    Err(SkipReason::Unreadable(msg)) => {
                        assert!(msg.to_lowercase().contains("permission"), "{msg}")
                    }
                    other => panic!("expected Unreadable, got {other:?}"),
                }
            } else {
                assert_eq!(got.map(|s| s.bytes), Ok(b"secret\n".to_vec()));
            }
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod back");
        }

        #[test]
        fn unreadable_directory_is_skipped_not_fatal() {
            let dir = tempfile::tempdir().expect("tempdir");
            write(dir.path(), "closed/inner.rs", "x\n");
            write(dir.path(), "open.rs", "y\n");
            let closed = dir.path().join("closed");
            fs::set_permissions(&closed, fs::Permissions::from_mode(0o000)).expect("chmod");
            let enforced = fs::read_dir(&closed).is_err();
            let d = run(dir.path());
            fs::set_permissions(&closed, fs::Permissions::from_mode(0o755)).expect("chmod back");
            if enforced {
                assert_eq!(paths(&d), ["open.rs"]);
                assert!(
                    matches!(reason_of(&d, "closed"), Some(SkipReason::Unreadable(_))),
                    "{:?}",
                    d.skipped
                );
            } else {
                assert_eq!(paths(&d), ["closed/inner.rs", "open.rs"]);
            }
        }
    }
}
