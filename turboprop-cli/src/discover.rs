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
        hash: ContentHash::of(&bytes),
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
mod tests;
