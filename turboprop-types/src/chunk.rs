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
    /// A chunk's symbol is empty or longer than [`MAX_SYMBOL_BYTES`].
    #[error("invalid symbol of {len} bytes: expected 1 to 1024 bytes of UTF-8")]
    BadSymbol {
        /// Bytes of the symbol.
        len: usize,
    },
    /// A chunk's kind is empty, longer than [`MAX_KIND_BYTES`], or holds other characters
    /// than `a-z`, `0-9`, `_` and `-`.
    #[error("invalid chunk kind {0:?}: expected 1 to 32 characters of a-z, 0-9, _ and -")]
    BadKind(String),
}

/// The longest symbol of a chunk, in bytes of UTF-8 (`Table::deal`).
pub const MAX_SYMBOL_BYTES: usize = 1024;

/// The longest kind of a chunk, in bytes (`method`).
pub const MAX_KIND_BYTES: usize = 32;

/// Checks a chunk's symbol: 1 to [`MAX_SYMBOL_BYTES`] bytes.
///
/// ```
/// use turboprop_types::check_symbol;
/// assert!(check_symbol("Table::deal").is_ok());
/// assert!(check_symbol("").is_err());
/// assert!(check_symbol(&"x".repeat(1025)).is_err());
/// ```
pub fn check_symbol(symbol: &str) -> Result<(), MetaError> {
    if symbol.is_empty() || symbol.len() > MAX_SYMBOL_BYTES {
        Err(MetaError::BadSymbol { len: symbol.len() })
    } else {
        Ok(())
    }
}

/// Checks a chunk's kind: 1 to [`MAX_KIND_BYTES`] characters of `a-z`, `0-9`, `_` and `-`.
///
/// ```
/// use turboprop_types::check_kind;
/// assert!(check_kind("method").is_ok());
/// assert!(check_kind("trait_impl-2").is_ok());
/// assert!(check_kind("Method").is_err());
/// assert!(check_kind("").is_err());
/// ```
pub fn check_kind(kind: &str) -> Result<(), MetaError> {
    let ok = !kind.is_empty()
        && kind.len() <= MAX_KIND_BYTES
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(MetaError::BadKind(kind.to_owned()))
    }
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
    /// The symbol the chunk defines (`Table::deal`), from a syntax-aware chunker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    symbol: Option<String>,
    /// What the symbol is (`method`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
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
            symbol: None,
            kind: None,
        })
    }

    /// This chunk with the symbol it defines and the symbol's kind (each checked by
    /// [`check_symbol`] and [`check_kind`]); `None` for none.
    ///
    /// ```
    /// use turboprop_types::{ChunkMeta, ContentHash};
    /// let c = ChunkMeta::new("src/table.rs", 3, 9, 10..90, ContentHash::of(b"x"))?
    ///     .with_symbol(Some("Table::deal".into()), Some("method".into()))?;
    /// assert_eq!((c.symbol(), c.kind()), (Some("Table::deal"), Some("method")));
    /// # Ok::<(), turboprop_types::MetaError>(())
    /// ```
    pub fn with_symbol(
        mut self,
        symbol: Option<String>,
        kind: Option<String>,
    ) -> Result<Self, MetaError> {
        if let Some(s) = &symbol {
            check_symbol(s)?;
        }
        if let Some(k) = &kind {
            check_kind(k)?;
        }
        self.symbol = symbol;
        self.kind = kind;
        Ok(self)
    }

    /// The symbol the chunk defines, if its chunker knew one.
    pub fn symbol(&self) -> Option<&str> {
        self.symbol.as_deref()
    }

    /// The kind of the chunk's symbol (`function`, `method`), if known.
    pub fn kind(&self) -> Option<&str> {
        self.kind.as_deref()
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
    fn symbols_are_checked() {
        let c = ChunkMeta::new("a.rs", 1, 2, 0..1, ContentHash::default()).expect("valid");
        assert_eq!((c.symbol(), c.kind()), (None, None));
        let json = serde_json::to_string(&c).expect("json");
        assert!(!json.contains("symbol") && !json.contains("kind"), "{json}");
        let back: ChunkMeta = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, c);
        assert!(c.clone().with_symbol(Some(String::new()), None).is_err());
        assert!(c.clone().with_symbol(Some("é".repeat(513)), None).is_err());
        assert!(c.clone().with_symbol(None, Some("Fn".into())).is_err());
        assert!(c.clone().with_symbol(None, Some("x".repeat(33))).is_err());
        let s = c
            .with_symbol(Some("Täble::deal".into()), Some("method".into()))
            .expect("valid");
        assert_eq!(
            (s.symbol(), s.kind()),
            (Some("Täble::deal"), Some("method"))
        );
        let json = serde_json::to_string(&s).expect("json");
        assert_eq!(serde_json::from_str::<ChunkMeta>(&json).expect("parse"), s);
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
