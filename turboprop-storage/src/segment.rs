//! Segments: an immutable folder of rows (vectors, chunk records, per-file term counts) and
//! the metadata of the files they came from.
//!
//! ```text
//! seg-00000007/
//!   vectors.bin    rows of f32, one per chunk              (table, memory-mapped)
//!   chunks.bin     one 64-byte record per chunk            (table, memory-mapped)
//!   terms.bin      (term, chunk count) pairs of each file  (table, read by writers only)
//!   df.bin         chunks of the segment containing each term (table, for query weights)
//!   files.bin      one 128-byte record per file: row, term and path ranges, stat, hashes
//!   paths.bin      the files' UTF-8 paths back to back     (table of 1-byte records)
//!   symbols.bin    one 16-byte record per chunk: its symbol and kind in symtext.bin (format 4)
//!   symtext.bin    the chunks' symbols and kinds back to back (table of 1-byte records)
//!   lexicon.bin    one 16-byte record per distinct exact term, sorted by its bytes (format 5)
//!   lextext.bin    the terms back to back                 (table of 1-byte records)
//!   postings.bin   (row, term frequency) pairs of every term, in lexicon order
//!   lengths.bin    each row's length (f32), for length normalisation
//!   metadata.json  dimensions, rows, file count, spaces, lexicon size (document, format 2 to 5)
//!   vectors.<key>.bin  rows of f32 of an additional vector space (format 3), e.g. a
//!                  transformer model's vectors beside the built-in lexical ones
//! ```
//! A segment may hold more than one vector space: the primary `vectors.bin` and, in format 3,
//! one `vectors.<key>.bin` per additional space listed in `metadata.json`, each with a row
//! per chunk, in the same row order.
//! A file's chunks occupy consecutive rows, so a filter on files is a set of row ranges.
//!
//! Opening a segment reads headers and the small `metadata.json`, never a per-file record:
//! a search reads only the records of the files it returns. Segments of format 1 (written
//! before `files.bin` existed) keep their file list inside `metadata.json`; it is parsed
//! whole when they are opened, and compaction rewrites them in the current format.
//!
//! Segments of format 4 (what this build writes) add `symbols.bin` and `symtext.bin`: the
//! optional symbol (`Table::deal`) and kind (`method`) of each row; format 2 and 3 segments
//! still open, with no symbols.
//!
//! Segments of format 5 ([`SegmentWriter::create_lexical`]) are format 4 plus an exact
//! lexical space: an inverted index of each row's exact terms and their frequencies
//! (`lexicon.bin`, `lextext.bin`, `postings.bin`) and each row's length (`lengths.bin`), read
//! through [`SegmentReader::lexical`].
//!
//! This module holds the file names, format versions and space keys; `records` the
//! on-disk records, `writer` and `reader` the two sides, `symbols` and `lexical` the tables
//! of formats 4 and 5, and `v1` what only format 1 needs.

use serde::{Deserialize, Serialize};

mod lexical;
mod reader;
mod records;
mod symbols;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_lexical;
#[cfg(test)]
mod tests_symbols;
mod v1;
mod writer;

pub use lexical::{
    LexicalForward, LexicalPostings, LexicalRow, PostingList, TermInterner, MAX_TERM_BYTES,
};
pub use reader::SegmentReader;
pub use records::{ChunkRecord, SegmentFile, FILE_RECORD_LEN};
pub use writer::{NewRow, SegmentSummary, SegmentWriter};

/// File names inside a segment folder.
pub const VECTORS_FILE: &str = "vectors.bin";
/// Chunk records.
pub const CHUNKS_FILE: &str = "chunks.bin";
/// Per-file term counts.
pub const TERMS_FILE: &str = "terms.bin";
/// Document frequencies of the segment's terms.
pub const DF_FILE: &str = "df.bin";
/// The segment's constant-size facts (dimensions, rows, file count).
pub const METADATA_FILE: &str = "metadata.json";
/// One fixed-size record per file (segment format 2).
pub const FILES_FILE: &str = "files.bin";
/// The files' paths back to back (segment format 2).
pub const PATHS_FILE: &str = "paths.bin";

/// The symbols of the rows (segment format 4).
pub const SYMBOLS_FILE: &str = "symbols.bin";
/// The symbols' and kinds' text back to back (segment format 4).
pub const SYMTEXT_FILE: &str = "symtext.bin";

/// The distinct exact terms of the rows, sorted by their bytes (segment format 5).
pub const LEXICON_FILE: &str = "lexicon.bin";
/// The exact terms' text back to back (segment format 5).
pub const LEXTEXT_FILE: &str = "lextext.bin";
/// The (row, term frequency) postings of every exact term (segment format 5).
pub const POSTINGS_FILE: &str = "postings.bin";
/// Each row's length, for length normalisation (segment format 5).
pub const LENGTHS_FILE: &str = "lengths.bin";

/// The segment format of files in `files.bin` and `paths.bin`, read in place (still read;
/// format 1 kept them as a JSON list inside `metadata.json`, parsed whole on open). Carried,
/// like every format, by the header line of `metadata.json`.
pub const SEGMENT_FORMAT_VERSION: u32 = 2;

/// The segment format of segments with additional vector spaces: format 2 plus the spaces
/// listed in `metadata.json` (written before format 4; still read).
pub const SPACES_FORMAT_VERSION: u32 = 3;

/// The segment format this build writes without a lexical space: format 3 (additional
/// spaces optional) plus each row's symbol and kind in `symbols.bin` and `symtext.bin`, and
/// the rows hash covering them.
pub const SYMBOLS_FORMAT_VERSION: u32 = 4;

/// The segment format of segments with an exact lexical space: format 4 plus the inverted
/// index of the rows' exact terms (`lexicon.bin`, `lextext.bin`, `postings.bin`), the rows'
/// lengths (`lengths.bin`), their totals in `metadata.json`, and the rows hash covering the
/// terms.
pub const LEXICAL_FORMAT_VERSION: u32 = 5;

/// Segment formats this build reads.
const READABLE_FORMATS: [u32; 5] = [
    1,
    SEGMENT_FORMAT_VERSION,
    SPACES_FORMAT_VERSION,
    SYMBOLS_FORMAT_VERSION,
    LEXICAL_FORMAT_VERSION,
];

/// An additional vector space of a segment: the vectors of the same rows made by another
/// model, in `vectors.<key>.bin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceMeta {
    /// The space's key: part of its file names (see [`check_space_key`]).
    pub key: String,
    /// Vector dimensions.
    pub dimensions: u32,
}

/// The name of a segment file of space `key`: `vectors.bin` becomes `vectors.<key>.bin`;
/// `None` is the primary space (the name unchanged).
///
/// ```
/// assert_eq!(turboprop_storage::space_file("vectors.bin", Some("minilm")), "vectors.minilm.bin");
/// assert_eq!(turboprop_storage::space_file("codes.bin", None), "codes.bin");
/// ```
pub fn space_file(file: &str, key: Option<&str>) -> String {
    match (key, file.rsplit_once('.')) {
        (Some(k), Some((stem, ext))) => format!("{stem}.{k}.{ext}"),
        (Some(k), None) => format!("{file}.{k}"),
        (None, _) => file.to_owned(),
    }
}

/// Checks that `key` can name a space: 1 to 64 characters of `a-z`, `0-9`, `-` and `_`.
///
/// ```
/// assert!(turboprop_storage::check_space_key("all-minilm-l6-v2").is_ok());
/// assert!(turboprop_storage::check_space_key("../x").is_err());
/// ```
pub fn check_space_key(key: &str) -> std::result::Result<(), String> {
    let ok = !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "space key {key:?} must be 1 to 64 characters of a-z, 0-9, - and _"
        ))
    }
}

/// The space key for a model id: lowercased, every other character than `a-z`, `0-9`, `-`
/// and `_` replaced by `_`, at most 64 characters.
///
/// ```
/// assert_eq!(turboprop_storage::space_key("sentence-transformers/all-MiniLM-L6-v2"),
///            "sentence-transformers_all-minilm-l6-v2");
/// ```
pub fn space_key(model_id: &str) -> String {
    let key: String = model_id
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if key.is_empty() {
        "_".to_owned()
    } else {
        key
    }
}

const ALL_FILES: [&str; 7] = [
    VECTORS_FILE,
    CHUNKS_FILE,
    TERMS_FILE,
    DF_FILE,
    FILES_FILE,
    PATHS_FILE,
    METADATA_FILE,
];

/// The files format 4 adds to [`ALL_FILES`].
const SYMBOL_FILES: [&str; 2] = [SYMBOLS_FILE, SYMTEXT_FILE];

/// The files format 5 adds to those of format 4.
const LEXICAL_FILES: [&str; 4] = [LEXICON_FILE, LEXTEXT_FILE, POSTINGS_FILE, LENGTHS_FILE];
