//! Chunk and file metadata: what turboprop remembers about each indexed piece of source.
//!
//! Paths are relative to the repository root and always use `/` as the separator, so an index
//! built on one machine reads the same on another.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::ContentHash;

/// Metadata that breaks an invariant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// The path is empty, absolute, uses `\`, or climbs out with `..`.
    #[error("invalid repository-relative path {0:?}: expected a/b/c with no '..', no leading '/'")]
    BadPath(String),
    /// Line numbers are 1-based and `line_start <= line_end`.
    #[error("invalid line range {start}..={end}: lines are 1-based and start <= end")]
    BadLines {
        /// First line.
        start: u32,
        /// Last line.
        end: u32,
    },
    /// The byte range runs backwards.
    #[error("invalid byte range {start}..{end}")]
    BadBytes {
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
    },
}

/// Checks that `path` is a normalized repository-relative path: not empty, no leading `/`,
/// no `\` or NUL, no empty, `.` or `..` parts.
///
/// ```
/// use turboprop_types::check_path;
/// assert!(check_path("src/pot.py").is_ok());
/// assert!(check_path("../etc/passwd").is_err());
/// ```
pub fn check_path(path: &str) -> Result<(), MetaError> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path.contains('\0')
        || path
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        Err(MetaError::BadPath(path.to_owned()))
    } else {
        Ok(())
    }
}

/// One chunk of a source file: where it is and what it contained when indexed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkMeta {
    file: String,
    line_start: u32,
    line_end: u32,
    byte_start: u64,
    byte_end: u64,
    hash: ContentHash,
}

impl ChunkMeta {
    /// A chunk of `file` covering lines `line_start..=line_end` (1-based) and `bytes`.
    pub fn new(
        file: impl Into<String>,
        line_start: u32,
        line_end: u32,
        bytes: Range<u64>,
        hash: ContentHash,
    ) -> Result<Self, MetaError> {
        let file = file.into();
        check_path(&file)?;
        if line_start == 0 || line_end < line_start {
            return Err(MetaError::BadLines {
                start: line_start,
                end: line_end,
            });
        }
        if bytes.end < bytes.start {
            return Err(MetaError::BadBytes {
                start: bytes.start,
                end: bytes.end,
            });
        }
        Ok(ChunkMeta {
            file,
            line_start,
            line_end,
            byte_start: bytes.start,
            byte_end: bytes.end,
            hash,
        })
    }

    /// The file, relative to the repository root, with `/` separators.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// First line, 1-based.
    pub fn line_start(&self) -> u32 {
        self.line_start
    }

    /// Last line, 1-based and inclusive.
    pub fn line_end(&self) -> u32 {
        self.line_end
    }

    /// Number of lines covered.
    pub fn line_count(&self) -> u32 {
        self.line_end - self.line_start + 1
    }

    /// The byte range of the chunk in its file.
    pub fn bytes(&self) -> Range<u64> {
        self.byte_start..self.byte_end
    }

    /// Digest of the chunk's bytes when it was indexed.
    pub fn hash(&self) -> ContentHash {
        self.hash
    }
}

/// What turboprop remembers about one indexed file, to tell later whether it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    path: String,
    size: u64,
    mtime_ns: i64,
    hash: ContentHash,
}

impl FileRecord {
    /// A record of `path` (repository-relative, `/`-separated) as it was when indexed.
    pub fn new(
        path: impl Into<String>,
        size: u64,
        mtime_ns: i64,
        hash: ContentHash,
    ) -> Result<Self, MetaError> {
        let path = path.into();
        check_path(&path)?;
        Ok(FileRecord {
            path,
            size,
            mtime_ns,
            hash,
        })
    }

    /// The path, relative to the repository root.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Size in bytes when indexed.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Modification time when indexed, in nanoseconds since the Unix epoch.
    pub fn mtime_ns(&self) -> i64 {
        self.mtime_ns
    }

    /// Digest of the whole file when indexed.
    pub fn hash(&self) -> ContentHash {
        self.hash
    }

    /// Whether size and modification time still match: the cheap "unchanged" check.
    pub fn same_stat(&self, size: u64, mtime_ns: i64) -> bool {
        self.size == size && self.mtime_ns == mtime_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        for bad in ["", "/etc/passwd", "a/../b", "a\\b", "a//b", "./a"] {
            assert!(check_path(bad).is_err(), "{bad:?} should be rejected");
        }
        for good in ["a", "src/hand.rs", ".github/ci.yml", "a b/c"] {
            assert!(check_path(good).is_ok(), "{good:?} should be accepted");
        }
    }

    #[test]
    fn lines_are_one_based_and_ordered() {
        let h = ContentHash::default();
        assert!(ChunkMeta::new("a.rs", 0, 3, 0..1, h).is_err());
        assert!(ChunkMeta::new("a.rs", 4, 3, 0..1, h).is_err());
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = 5..1;
        assert!(ChunkMeta::new("a.rs", 3, 3, backwards, h).is_err());
        let c = ChunkMeta::new("a.rs", 3, 3, 0..0, h).expect("valid");
        assert_eq!(c.line_count(), 1);
    }

    #[test]
    fn file_record_json_is_pinned() {
        let r = FileRecord::new(
            "src/pot.py",
            120,
            1_700_000_000_000_000_000,
            ContentHash::of(b"x"),
        )
        .expect("valid");
        insta::assert_json_snapshot!(r);
    }
}
