//! Format 5's exact lexical space: an inverted index of the rows' exact terms.
//!
//! Each row of a format-5 segment carries its distinct exact terms with their frequencies
//! ([`LexicalRow`]) and a length for length normalisation. The writer gathers the postings in
//! memory and writes them sorted by term bytes at `finish`: `lexicon.bin` (one 16-byte record
//! per term: where its text is in `lextext.bin` and its postings in `postings.bin`),
//! `lextext.bin` (the terms back to back), `postings.bin` ((row u32, tf f32) pairs, rows
//! increasing within a term) and `lengths.bin` (one f32 per row). The reader
//! ([`LexicalPostings`]) looks a term up by binary search over the lexicon, checking every
//! record it reads, inverts the postings back into each row's terms ([`LexicalForward`]) for
//! writers copying rows, and verifies every record. The rows' terms and lengths are hashed by
//! content into the per-file rows hash (see [`hash_count`]).
//!
//! This module holds the row type, the records, the hashing and the writer; `postings` the
//! reader.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{LENGTHS_FILE, LEXICON_FILE, LEXTEXT_FILE, POSTINGS_FILE};
use crate::directory::{join_name, Directory};
use crate::error::{Result, StorageError};
use crate::table::{TableKind, TableWriter};

mod interner;
mod inversion;
mod postings;

pub use interner::TermInterner;
use inversion::Inversion;
pub use postings::{LexicalForward, LexicalPostings, PostingList};

/// The longest exact term a lexical space holds, in bytes of UTF-8.
pub const MAX_TERM_BYTES: usize = 255;

/// Bytes of one `lexicon.bin` record.
const LEXICON_RECORD_LEN: usize = 16;

/// Bytes of one `postings.bin` record.
const POSTING_LEN: usize = 8;

/// The exact lexical terms of one row, for a segment with a lexical space (format 5).
///
/// ```
/// use turboprop_storage::LexicalRow;
///
/// let terms = [("deal", 2.0), ("table", 1.0)];
/// let row = LexicalRow { terms: &terms, length: 3.0 };
/// assert_eq!(row.terms.len(), 2);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct LexicalRow<'a> {
    /// Distinct terms, sorted by their bytes (strictly increasing), each 1..=[`MAX_TERM_BYTES`]
    /// bytes of UTF-8, with a term frequency that is finite and > 0.
    pub terms: &'a [(&'a str, f32)],
    /// The row's length for length normalisation (finite, >= 0).
    pub length: f32,
}

/// The `lexical` object of a format-5 `metadata.json`: the lexical space's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(super) struct LexicalMeta {
    /// Distinct terms: the count of `lexicon.bin`.
    pub(super) terms: u64,
    /// Postings: the count of `postings.bin`.
    pub(super) postings: u64,
    /// The sum of the rows' lengths, in f64, in row order.
    pub(super) total_length: f64,
}

/// One `lexicon.bin` record as stored (see docs/format.md), before any check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LexiconRecord {
    /// Where the term starts in `lextext.bin`.
    text_start: u32,
    /// Bytes of the term.
    text_len: u16,
    /// Zero.
    reserved: u16,
    /// Its first record in `postings.bin`.
    postings_start: u32,
    /// Its number of postings.
    df: u32,
}

impl LexiconRecord {
    fn encode(&self) -> [u8; LEXICON_RECORD_LEN] {
        let mut b = [0u8; LEXICON_RECORD_LEN];
        b[0..4].copy_from_slice(&self.text_start.to_le_bytes());
        b[4..6].copy_from_slice(&self.text_len.to_le_bytes());
        b[6..8].copy_from_slice(&self.reserved.to_le_bytes());
        b[8..12].copy_from_slice(&self.postings_start.to_le_bytes());
        b[12..16].copy_from_slice(&self.df.to_le_bytes());
        b
    }

    fn decode(b: &[u8; LEXICON_RECORD_LEN]) -> LexiconRecord {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        LexiconRecord {
            text_start: u32_at(0),
            text_len: u16::from_le_bytes([b[4], b[5]]),
            reserved: u16::from_le_bytes([b[6], b[7]]),
            postings_start: u32_at(8),
            df: u32_at(12),
        }
    }
}

/// Decodes one (row, tf) posting of 8 bytes (shorter input decodes as zeros).
fn posting(b: &[u8]) -> (u32, f32) {
    let mut row = [0u8; 4];
    let mut tf = [0u8; 4];
    for (d, s) in row.iter_mut().chain(tf.iter_mut()).zip(b) {
        *d = *s;
    }
    (u32::from_le_bytes(row), f32::from_le_bytes(tf))
}

/// Starts one row's part of the rows hash of its file, in `buf` (the bytes hashed for the
/// row, one hasher update per row): its number of terms (u32 LE). The terms follow
/// ([`hash_term`]), then its length ([`hash_length`]).
pub(super) fn hash_count(buf: &mut Vec<u8>, terms: u32) {
    buf.extend_from_slice(&terms.to_le_bytes());
}

/// Adds one term of a row to the bytes hashed: its length (u16 LE), its bytes and the bits
/// of its frequency (u32 LE).
pub(super) fn hash_term(buf: &mut Vec<u8>, term: &[u8], tf: f32) {
    // Terms are at most MAX_TERM_BYTES long (checked before hashing).
    buf.extend_from_slice(&u16::try_from(term.len()).unwrap_or(u16::MAX).to_le_bytes());
    buf.extend_from_slice(term);
    buf.extend_from_slice(&tf.to_bits().to_le_bytes());
}

/// Ends one row's part of the bytes hashed: the bits of its length (u32 LE).
pub(super) fn hash_length(buf: &mut Vec<u8>, length: f32) {
    buf.extend_from_slice(&length.to_bits().to_le_bytes());
}

/// Checks the lexical terms of chunk `chunk` of `file`, to be written into the segment
/// folder `dir` (an error names its `lexicon.bin` and `file`).
pub(super) fn check_row(dir: &Path, file: &str, chunk: u64, row: &LexicalRow<'_>) -> Result<()> {
    let bad = |why: String| {
        StorageError::corrupt(
            dir.join(LEXICON_FILE),
            format!("lexical terms of chunk {chunk} of {file}: {why}"),
        )
    };
    if !(row.length.is_finite() && row.length >= 0.0) {
        return Err(bad(format!(
            "length {} is not a finite number >= 0",
            row.length
        )));
    }
    if u32::try_from(row.terms.len()).is_err() {
        return Err(bad("more than 2^32 - 1 terms in one row".to_owned()));
    }
    let mut previous: Option<&str> = None;
    for (i, &(term, tf)) in row.terms.iter().enumerate() {
        if term.is_empty() || term.len() > MAX_TERM_BYTES {
            return Err(bad(format!(
                "term {i} is {} bytes: 1 to {MAX_TERM_BYTES}",
                term.len()
            )));
        }
        if !(tf.is_finite() && tf > 0.0) {
            return Err(bad(format!(
                "term {i} ({term:?}) has frequency {tf}: finite and > 0"
            )));
        }
        if let Some(p) = previous.filter(|p| p.as_bytes() >= term.as_bytes()) {
            return Err(bad(format!(
                "terms are not sorted by bytes and distinct: {term:?} after {p:?}"
            )));
        }
        previous = Some(term);
    }
    Ok(())
}

/// Writes `lexicon.bin`, `lextext.bin`, `postings.bin` and `lengths.bin` of a new segment.
#[derive(Debug)]
pub(super) struct LexicalWriter<'a> {
    /// The segment folder, for errors.
    dir: PathBuf,
    lexicon: TableWriter<'a>,
    text: TableWriter<'a>,
    postings: TableWriter<'a>,
    lengths: TableWriter<'a>,
    /// The postings so far.
    inversion: Inversion,
    /// The bytes of one row's part of the rows hash.
    hashed: Vec<u8>,
    /// Postings so far.
    count: u64,
    /// The sum of the rows' lengths so far, in row order.
    total_length: f64,
}

impl<'a> LexicalWriter<'a> {
    /// Creates the four tables in the segment folder `segment` of `store`.
    pub(super) fn create(store: &'a dyn Directory, segment: &str) -> Result<LexicalWriter<'a>> {
        let table = |file: &str, kind: TableKind| {
            TableWriter::create(store, &join_name(segment, file), kind, 0)
        };
        Ok(LexicalWriter {
            dir: store.location(segment),
            lexicon: table(LEXICON_FILE, TableKind::Lexicon)?,
            text: table(LEXTEXT_FILE, TableKind::LexText)?,
            postings: table(POSTINGS_FILE, TableKind::Postings)?,
            lengths: table(LENGTHS_FILE, TableKind::Lengths)?,
            inversion: Inversion::new(),
            hashed: Vec::new(),
            count: 0,
            total_length: 0.0,
        })
    }

    /// Adds the terms and length of segment row `row` (already checked by [`check_row`])
    /// and hashes them into `h`.
    pub(super) fn push(
        &mut self,
        row: u64,
        lexical: &LexicalRow<'_>,
        h: &mut blake3::Hasher,
    ) -> Result<()> {
        let row = u32::try_from(row).map_err(|_| {
            StorageError::corrupt(
                self.dir.join(POSTINGS_FILE),
                "more than 2^32 rows in a segment with a lexical space",
            )
        })?;
        let count = self.count + lexical.terms.len() as u64;
        if count > u64::from(u32::MAX) {
            return Err(StorageError::corrupt(
                self.dir.join(POSTINGS_FILE),
                "more than 2^32 - 1 postings in one segment",
            ));
        }
        self.count = count;
        let hashed = &mut self.hashed;
        hashed.clear();
        hash_count(
            hashed,
            u32::try_from(lexical.terms.len()).unwrap_or(u32::MAX),
        );
        for &(term, tf) in lexical.terms {
            self.inversion.push(term, row, tf);
            hash_term(hashed, term.as_bytes(), tf);
        }
        hash_length(hashed, lexical.length);
        h.update(hashed);
        self.lengths.push(&lexical.length.to_le_bytes())?;
        self.total_length += f64::from(lexical.length);
        Ok(())
    }

    /// Writes the terms sorted by their bytes and finishes the four tables of a segment of
    /// `rows` rows; returns the `lexical` object of `metadata.json`.
    pub(super) fn finish(self, rows: u64) -> Result<LexicalMeta> {
        let LexicalWriter {
            dir,
            mut lexicon,
            mut text,
            mut postings,
            lengths,
            inversion,
            count,
            total_length,
            ..
        } = self;
        let mut records = Vec::new();
        let mut terms = 0u64;
        let full = || {
            StorageError::corrupt(
                dir.join(LEXTEXT_FILE),
                "more than 2^32 bytes of terms in one segment",
            )
        };
        inversion.drain(full, |term, list| {
            let too_big = |what: &str| {
                StorageError::corrupt(dir.join(LEXICON_FILE), format!("more than 2^32 {what}"))
            };
            let record = LexiconRecord {
                text_start: u32::try_from(text.count()).map_err(|_| too_big("bytes of terms"))?,
                text_len: u16::try_from(term.len()).map_err(|_| too_big("bytes in a term"))?,
                reserved: 0,
                postings_start: u32::try_from(postings.count()).map_err(|_| too_big("postings"))?,
                df: u32::try_from(list.len()).map_err(|_| too_big("postings of a term"))?,
            };
            text.push_records(term.as_bytes())?;
            records.clear();
            for &(row, tf) in list {
                records.extend_from_slice(&row.to_le_bytes());
                records.extend_from_slice(&tf.to_le_bytes());
            }
            postings.push_records(&records)?;
            lexicon.push(&record.encode())?;
            terms += 1;
            Ok::<(), StorageError>(())
        })?;
        let meta = LexicalMeta {
            terms,
            postings: count,
            total_length,
        };
        let text_len = text.count();
        lexicon.finish(text_len)?;
        text.finish(meta.terms)?;
        postings.finish(rows)?;
        lengths.finish(0)?;
        Ok(meta)
    }
}
