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

use std::cmp::Ordering;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::{LENGTHS_FILE, LEXICON_FILE, LEXTEXT_FILE, POSTINGS_FILE};
use crate::directory::{join_name, Directory};
use crate::error::{Result, StorageError};
use crate::mmap::{bytes_as_f32, ReadMode};
use crate::table::{Table, TableKind, TableWriter};

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

/// Starts one row's part of the rows hash of its file: its number of terms (u32 LE). The
/// terms follow ([`hash_term`]), then its length ([`hash_length`]).
pub(super) fn hash_count(h: &mut blake3::Hasher, terms: u32) {
    h.update(&terms.to_le_bytes());
}

/// Adds one term of a row to the rows hash: its length (u16 LE), its bytes and the bits of
/// its frequency (u32 LE).
pub(super) fn hash_term(h: &mut blake3::Hasher, term: &[u8], tf: f32) {
    // Terms are at most MAX_TERM_BYTES long (checked before hashing).
    h.update(&u16::try_from(term.len()).unwrap_or(u16::MAX).to_le_bytes());
    h.update(term);
    h.update(&tf.to_bits().to_le_bytes());
}

/// Ends one row's part of the rows hash: the bits of its length (u32 LE).
pub(super) fn hash_length(h: &mut blake3::Hasher, length: f32) {
    h.update(&length.to_bits().to_le_bytes());
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
    /// Each term's (row, tf) postings so far, rows increasing.
    terms: HashMap<Box<str>, Vec<(u32, f32)>>,
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
            terms: HashMap::new(),
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
        hash_count(h, u32::try_from(lexical.terms.len()).unwrap_or(u32::MAX));
        for &(term, tf) in lexical.terms {
            match self.terms.get_mut(term) {
                Some(list) => list.push((row, tf)),
                None => {
                    self.terms.insert(term.into(), vec![(row, tf)]);
                }
            }
            hash_term(h, term.as_bytes(), tf);
        }
        hash_length(h, lexical.length);
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
            terms,
            count,
            total_length,
        } = self;
        let mut terms: Vec<_> = terms.into_iter().collect();
        terms.sort_unstable_by(|(a, _), (b, _): &(Box<str>, _)| a.as_bytes().cmp(b.as_bytes()));
        let mut records = Vec::new();
        for (term, list) in &terms {
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
        }
        let meta = LexicalMeta {
            terms: terms.len() as u64,
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

/// The exact lexical space of a format-5 segment: its lexicon, postings and row lengths,
/// read in place. Opening checks the four tables' headers against `metadata.json` and each
/// other; a record is checked when it is read.
///
/// ```
/// use turboprop_storage::{LexicalRow, MemDirectory, NewRow, ReadMode, SegmentReader,
///                         SegmentWriter};
/// use turboprop_types::{ContentHash, FileRecord};
///
/// let dir = MemDirectory::new();
/// let mut w = SegmentWriter::create_lexical(&dir, "seg-00000001", 1, &[])?;
/// let row = |terms, length| NewRow {
///     line_start: 1, line_end: 3, byte_start: 0, byte_end: 10,
///     hash: ContentHash::of(b"x"), vector: &[1.0], symbol: None, kind: None,
///     lexical: Some(LexicalRow { terms, length }),
/// };
/// let rows = [row(&[("deal", 2.0), ("table", 1.0)], 3.0), row(&[("deal", 1.0)], 1.0)];
/// w.add_file(FileRecord::new("a.rs", 10, 0, ContentHash::of(b"a"))?, rows, &[])?;
/// w.finish()?;
///
/// let r = SegmentReader::open(&dir, "seg-00000001", ReadMode::Mmap)?;
/// let lexical = r.lexical().expect("format 5");
/// assert_eq!((lexical.terms(), lexical.postings_len(), lexical.total_length()), (2, 3, 4.0));
/// let deal = lexical.lookup("deal")?.expect("a term of the segment");
/// assert_eq!(deal.iter().collect::<Vec<_>>(), [(0, 2.0), (1, 1.0)]);
/// assert!(lexical.lookup("pot")?.is_none());
/// assert_eq!(lexical.length(0), Some(3.0));
/// let forward = lexical.forward()?;
/// assert_eq!(forward.terms_of(0), [("deal", 2.0), ("table", 1.0)]);
/// lexical.verify()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct LexicalPostings {
    lexicon: Table,
    text: Table,
    postings: Table,
    lengths: Table,
    /// Rows of the segment.
    rows: u64,
    meta: LexicalMeta,
    /// The postings inverted into each row's terms, built on first need and kept.
    inverted: OnceLock<Inverted>,
}

/// The postings inverted: row `r`'s (term ordinal, tf) pairs are
/// `entries[offsets[r]..offsets[r + 1]]`, in term order.
#[derive(Debug)]
struct Inverted {
    offsets: Vec<usize>,
    entries: Vec<(u32, f32)>,
}

impl Inverted {
    /// Row `row`'s (term ordinal, tf) pairs; empty past the end.
    fn row(&self, row: usize) -> &[(u32, f32)] {
        let range = self
            .offsets
            .get(row)
            .zip(row.checked_add(1).and_then(|r| self.offsets.get(r)));
        range
            .and_then(|(&start, &end)| self.entries.get(start..end))
            .unwrap_or(&[])
    }
}

/// The postings of one term: (row, tf) pairs, rows increasing, decoded from the mapped
/// bytes.
///
/// Decoding checks nothing: a caller checks each row against the segment's rows and each
/// frequency for being finite before using them ([`LexicalPostings::verify`] checks them
/// all).
#[derive(Debug, Clone, Copy)]
pub struct PostingList<'a> {
    bytes: &'a [u8],
}

impl<'a> PostingList<'a> {
    /// Number of postings (the term's document frequency in the segment).
    pub fn len(&self) -> usize {
        self.bytes.len() / POSTING_LEN
    }

    /// Whether the list is empty (never, for a list of an intact lexicon).
    pub fn is_empty(&self) -> bool {
        self.bytes.len() < POSTING_LEN
    }

    /// Posting `i`: (row, tf), unchecked; `None` past the end.
    pub fn get(&self, i: usize) -> Option<(u32, f32)> {
        let start = i.checked_mul(POSTING_LEN)?;
        self.bytes
            .get(start..start.checked_add(POSTING_LEN)?)
            .map(posting)
    }

    /// The (row, tf) postings in order, unchecked.
    pub fn iter(&self) -> impl Iterator<Item = (u32, f32)> + 'a {
        self.bytes.chunks_exact(POSTING_LEN).map(posting)
    }
}

/// The rows' exact terms, inverted from the postings of a [`LexicalPostings`] by
/// [`LexicalPostings::forward`], every record checked: for copying rows into a new segment.
#[derive(Debug)]
pub struct LexicalForward<'a> {
    inverted: &'a Inverted,
    /// Term texts by ordinal (lexicon order).
    terms: Vec<&'a str>,
    lengths: &'a [f32],
}

impl<'a> LexicalForward<'a> {
    /// Rows of the segment.
    pub fn rows(&self) -> usize {
        self.lengths.len()
    }

    /// Row `row`'s (term, tf) pairs, sorted by the terms' bytes; empty for a row without
    /// terms or past the end.
    pub fn row(&self, row: usize) -> impl Iterator<Item = (&'a str, f32)> + '_ {
        self.inverted
            .row(row)
            .iter()
            .filter_map(|&(ordinal, tf)| Some((*self.terms.get(ordinal as usize)?, tf)))
    }

    /// Row `row`'s (term, tf) pairs collected, ready for a [`LexicalRow`]'s `terms`.
    pub fn terms_of(&self, row: usize) -> Vec<(&'a str, f32)> {
        self.row(row).collect()
    }

    /// Row `row`'s length (checked finite and >= 0); `None` past the end.
    pub fn length(&self, row: usize) -> Option<f32> {
        self.lengths.get(row).copied()
    }
}

impl LexicalPostings {
    /// Opens the four tables of the segment folder `segment` and checks their headers
    /// against the segment's `rows`, the `lexical` object `meta` of its `metadata.json`
    /// (`meta_path`) and each other: O(1).
    pub(super) fn open(
        store: &dyn Directory,
        segment: &str,
        mode: ReadMode,
        rows: u64,
        meta: LexicalMeta,
        meta_path: &Path,
    ) -> Result<LexicalPostings> {
        let table =
            |file: &str, kind: TableKind| Table::open(store, &join_name(segment, file), kind, mode);
        let lexical = LexicalPostings {
            lexicon: table(LEXICON_FILE, TableKind::Lexicon)?,
            text: table(LEXTEXT_FILE, TableKind::LexText)?,
            postings: table(POSTINGS_FILE, TableKind::Postings)?,
            lengths: table(LENGTHS_FILE, TableKind::Lengths)?,
            rows,
            meta,
            inverted: OnceLock::new(),
        };
        lexical.check_shape(meta_path)?;
        Ok(lexical)
    }

    fn check_shape(&self, meta_path: &Path) -> Result<()> {
        let LexicalMeta {
            terms,
            postings,
            total_length,
        } = self.meta;
        let rows = self.rows;
        let (lexicon, text) = (self.lexicon.header(), self.text.header());
        if terms > postings
            || (terms == 0 && postings != 0)
            || postings > u64::from(u32::MAX)
            || rows > 1 << 32
            || !(total_length.is_finite() && total_length >= 0.0)
        {
            return Err(StorageError::corrupt(
                meta_path,
                format!(
                    "a lexical space of {terms} terms, {postings} postings and a total \
                     length of {total_length} over {rows} rows"
                ),
            ));
        }
        let text_fits = text.count >= terms
            && terms
                .checked_mul(MAX_TERM_BYTES as u64)
                .is_some_and(|most| text.count <= most);
        if lexicon.count != terms || lexicon.extra != text.count || !text_fits {
            return Err(StorageError::corrupt(
                self.lexicon.path(),
                format!(
                    "{} terms of {} bytes but metadata.json says {terms} terms and {} has {} bytes",
                    lexicon.count,
                    lexicon.extra,
                    self.text.path().display(),
                    text.count
                ),
            ));
        }
        if text.extra != terms {
            return Err(StorageError::corrupt(
                self.text.path(),
                format!(
                    "text of {} terms but metadata.json says {terms}",
                    text.extra
                ),
            ));
        }
        let p = self.postings.header();
        if p.count != postings || p.extra != rows {
            return Err(StorageError::corrupt(
                self.postings.path(),
                format!(
                    "{} postings over {} rows but metadata.json says {postings} over {rows}",
                    p.count, p.extra
                ),
            ));
        }
        if self.lengths.header().count != rows {
            return Err(StorageError::corrupt(
                self.lengths.path(),
                format!(
                    "{} lengths but the segment has {rows} rows",
                    self.lengths.header().count
                ),
            ));
        }
        if bytes_as_f32(self.lengths.payload()).is_none() {
            return Err(StorageError::corrupt(
                self.lengths.path(),
                "misaligned lengths",
            ));
        }
        Ok(())
    }

    /// The four tables.
    pub(super) fn tables(&self) -> [&Table; 4] {
        [&self.lexicon, &self.text, &self.postings, &self.lengths]
    }

    /// Number of distinct terms.
    pub fn terms(&self) -> usize {
        self.lexicon.len()
    }

    /// Number of postings (of all terms).
    pub fn postings_len(&self) -> u64 {
        self.meta.postings
    }

    /// The sum of the rows' lengths (from `metadata.json`; [`Self::verify`] checks it).
    pub fn total_length(&self) -> f64 {
        self.meta.total_length
    }

    /// Every row's length, indexed by row: raw values (a caller checks that the one it uses
    /// is finite and >= 0; [`Self::verify`] checks them all).
    pub fn lengths(&self) -> &[f32] {
        // Alignment and length were checked on open.
        bytes_as_f32(self.lengths.payload()).unwrap_or(&[])
    }

    /// Row `row`'s length, raw (see [`Self::lengths`]); `None` past the end.
    pub fn length(&self, row: usize) -> Option<f32> {
        self.lengths().get(row).copied()
    }

    /// Lexicon record `ordinal`, its reserved bytes checked.
    fn record(&self, ordinal: usize) -> Result<LexiconRecord> {
        let bytes = self
            .lexicon
            .record(ordinal)
            .and_then(|b| <&[u8; LEXICON_RECORD_LEN]>::try_from(b).ok())
            .ok_or_else(|| {
                StorageError::corrupt(self.lexicon.path(), format!("no term {ordinal}"))
            })?;
        let rec = LexiconRecord::decode(bytes);
        if rec.reserved != 0 {
            return Err(StorageError::corrupt(
                self.lexicon.path(),
                format!("reserved bytes of term {ordinal} are not zero"),
            ));
        }
        Ok(rec)
    }

    /// The bytes of term `ordinal` (record `rec`): 1 to [`MAX_TERM_BYTES`], inside
    /// `lextext.bin`.
    fn text_of(&self, ordinal: usize, rec: &LexiconRecord) -> Result<&[u8]> {
        let len = usize::from(rec.text_len);
        let start = rec.text_start as usize;
        (1..=MAX_TERM_BYTES)
            .contains(&len)
            .then(|| self.text.payload().get(start..start.checked_add(len)?))
            .flatten()
            .ok_or_else(|| {
                StorageError::corrupt(
                    self.lexicon.path(),
                    format!(
                        "text of term {ordinal} at {start} ({len} bytes) is empty, longer than \
                         {MAX_TERM_BYTES} bytes or out of the bounds of {}",
                        self.text.path().display()
                    ),
                )
            })
    }

    /// The postings of term `ordinal` (record `rec`): at least one, inside `postings.bin`.
    fn postings_of(&self, ordinal: usize, rec: &LexiconRecord) -> Result<PostingList<'_>> {
        let range = Range {
            start: u64::from(rec.postings_start),
            end: u64::from(rec.postings_start) + u64::from(rec.df),
        };
        let bytes = (rec.df > 0 && range.end <= self.postings.header().count)
            .then(|| {
                let start = usize::try_from(range.start)
                    .ok()?
                    .checked_mul(POSTING_LEN)?;
                let end = usize::try_from(range.end).ok()?.checked_mul(POSTING_LEN)?;
                self.postings.payload().get(start..end)
            })
            .flatten()
            .ok_or_else(|| {
                StorageError::corrupt(
                    self.lexicon.path(),
                    format!(
                        "postings {}..{} of term {ordinal} are empty or out of the bounds of {}",
                        range.start,
                        range.end,
                        self.postings.path().display()
                    ),
                )
            })?;
        Ok(PostingList { bytes })
    }

    /// Term `ordinal` (in the lexicon's order, sorted by bytes), checked: its record, its
    /// bounds and its UTF-8.
    pub fn term(&self, ordinal: usize) -> Result<&str> {
        let rec = self.record(ordinal)?;
        let bytes = self.text_of(ordinal, &rec)?;
        std::str::from_utf8(bytes).map_err(|_| {
            StorageError::corrupt(self.text.path(), format!("term {ordinal} is not UTF-8"))
        })
    }

    /// The postings of `term`, or `None` if no row of the segment has it: a binary search
    /// over the lexicon, each record it reads checked (its text and postings inside their
    /// tables) before it is used. The postings themselves are not checked (see
    /// [`PostingList`]).
    pub fn lookup(&self, term: &str) -> Result<Option<PostingList<'_>>> {
        let key = term.as_bytes();
        if key.is_empty() || key.len() > MAX_TERM_BYTES {
            return Ok(None);
        }
        let (mut low, mut high) = (0, self.terms());
        while low < high {
            let mid = low + (high - low) / 2;
            let rec = self.record(mid)?;
            match self.text_of(mid, &rec)?.cmp(key) {
                Ordering::Less => low = mid + 1,
                Ordering::Greater => high = mid,
                Ordering::Equal => return self.postings_of(mid, &rec).map(Some),
            }
        }
        Ok(None)
    }

    /// Walks every term in lexicon order and every posting, checking them all (texts UTF-8
    /// of 1 to 255 bytes, strictly increasing, tiling `lextext.bin`; postings ranges tiling
    /// `postings.bin`; rows strictly increasing within a term and inside the segment; tfs
    /// finite and > 0) and calling `f(ordinal, row, tf)` on each posting.
    fn walk(&self, mut f: impl FnMut(u32, u32, f32) -> Result<()>) -> Result<()> {
        let lexicon = self.lexicon.path();
        let mut next = [0u64; 2];
        let mut previous: Option<&[u8]> = None;
        for ordinal in 0..self.terms() {
            let rec = self.record(ordinal)?;
            let text = self.text_of(ordinal, &rec)?;
            let starts = [u64::from(rec.text_start), u64::from(rec.postings_start)];
            if starts != next {
                return Err(StorageError::corrupt(
                    lexicon,
                    format!(
                        "text or postings of term {ordinal} start at {starts:?}, not where \
                         the term before ends ({next:?})"
                    ),
                ));
            }
            if previous.is_some_and(|p| p >= text) {
                return Err(StorageError::corrupt(
                    lexicon,
                    format!(
                        "term {ordinal} is not after term {} in byte order",
                        ordinal - 1
                    ),
                ));
            }
            if std::str::from_utf8(text).is_err() {
                return Err(StorageError::corrupt(
                    self.text.path(),
                    format!("term {ordinal} is not UTF-8"),
                ));
            }
            let list = self.postings_of(ordinal, &rec)?;
            let ordinal_u32 = u32::try_from(ordinal)
                .map_err(|_| StorageError::corrupt(lexicon, "more than 2^32 terms"))?;
            let mut last_row = None;
            for (i, (row, tf)) in list.iter().enumerate() {
                if u64::from(row) >= self.rows
                    || last_row.is_some_and(|l| l >= row)
                    || !(tf.is_finite() && tf > 0.0)
                {
                    return Err(StorageError::corrupt(
                        self.postings.path(),
                        format!(
                            "posting {i} of term {ordinal} is row {row} with frequency {tf}: \
                             rows increase and are below {}, frequencies are finite and > 0",
                            self.rows
                        ),
                    ));
                }
                last_row = Some(row);
                f(ordinal_u32, row, tf)?;
            }
            next = [
                starts[0] + u64::from(rec.text_len),
                starts[1] + u64::from(rec.df),
            ];
            previous = Some(text);
        }
        let ends = [self.text.header().count, self.postings.header().count];
        if next != ends {
            return Err(StorageError::corrupt(
                lexicon,
                format!("terms cover {next:?} of the text and postings, not {ends:?}"),
            ));
        }
        Ok(())
    }

    /// Checks every row's length (finite and >= 0) and returns their sum, in row order.
    fn checked_total_length(&self) -> Result<f64> {
        let lengths = self.lengths();
        if lengths.len() as u64 != self.rows {
            return Err(StorageError::corrupt(
                self.lengths.path(),
                "lengths out of bounds",
            ));
        }
        let mut total = 0.0f64;
        for (row, &length) in lengths.iter().enumerate() {
            if !(length.is_finite() && length >= 0.0) {
                return Err(StorageError::corrupt(
                    self.lengths.path(),
                    format!("length of row {row} is {length}: finite and >= 0"),
                ));
            }
            total += f64::from(length);
        }
        Ok(total)
    }

    /// The postings inverted into each row's terms, every record checked; built once.
    fn inverted(&self) -> Result<&Inverted> {
        if let Some(inverted) = self.inverted.get() {
            return Ok(inverted);
        }
        let built = self.invert()?;
        Ok(self.inverted.get_or_init(|| built))
    }

    fn invert(&self) -> Result<Inverted> {
        self.checked_total_length()?;
        let changed = || StorageError::corrupt(self.postings.path(), "postings changed");
        let rows = usize::try_from(self.rows).map_err(|_| changed())?;
        let mut offsets = vec![0usize; rows + 1];
        self.walk(|_, row, _| {
            let count = offsets.get_mut(row as usize + 1).ok_or_else(changed)?;
            *count += 1;
            Ok(())
        })?;
        for r in 1..offsets.len() {
            offsets[r] += offsets[r - 1];
        }
        let total = offsets.last().copied().unwrap_or(0);
        let mut entries = vec![(0u32, 0.0f32); total];
        let mut fill = offsets.clone();
        self.walk(|ordinal, row, tf| {
            let at = fill.get_mut(row as usize).ok_or_else(changed)?;
            *entries.get_mut(*at).ok_or_else(changed)? = (ordinal, tf);
            *at += 1;
            Ok(())
        })?;
        Ok(Inverted { offsets, entries })
    }

    /// Inverts the postings into each row's terms (in term order), checking every record as
    /// it goes (see [`Self::verify`]; the payload checksums excepted). The inversion is
    /// built on the first call and kept with the segment (8 bytes per posting and per row);
    /// the per-file rows hash uses it too.
    pub fn forward(&self) -> Result<LexicalForward<'_>> {
        let inverted = self.inverted()?;
        let terms = (0..self.terms())
            .map(|ordinal| self.term(ordinal))
            .collect::<Result<Vec<_>>>()?;
        Ok(LexicalForward {
            inverted,
            terms,
            lengths: self.lengths(),
        })
    }

    /// Adds rows `rows` of the segment to the rows hash `h` of their file, by content (see
    /// [`hash_count`]), from the inverted postings (built on first need).
    pub(super) fn hash_rows(&self, rows: Range<usize>, h: &mut blake3::Hasher) -> Result<()> {
        let inverted = self.inverted()?;
        for row in rows {
            let entries = inverted.row(row);
            let count = u32::try_from(entries.len()).map_err(|_| {
                StorageError::corrupt(self.postings.path(), "too many terms in one row")
            })?;
            hash_count(h, count);
            for &(ordinal, tf) in entries {
                let ordinal = ordinal as usize;
                hash_term(h, self.text_of(ordinal, &self.record(ordinal)?)?, tf);
            }
            let length = self.length(row).ok_or_else(|| {
                StorageError::corrupt(self.lengths.path(), format!("no length for row {row}"))
            })?;
            hash_length(h, length);
        }
        Ok(())
    }

    /// Checks the four tables' payloads against their checksums, then every record: the
    /// lexicon strictly sorted by bytes, each term 1 to 255 bytes of UTF-8, the texts and
    /// postings ranges tiling their tables in order, rows strictly increasing within a term
    /// and inside the segment, frequencies finite and > 0, lengths finite and >= 0 and their
    /// f64 sum in row order exactly the `total_length` of `metadata.json`.
    pub fn verify(&self) -> Result<()> {
        for table in self.tables() {
            table.verify()?;
        }
        self.walk(|_, _, _| Ok(()))?;
        let total = self.checked_total_length()?;
        if total != self.meta.total_length {
            return Err(StorageError::corrupt(
                self.lengths.path(),
                format!(
                    "lengths sum to {total} but metadata.json says {}",
                    self.meta.total_length
                ),
            ));
        }
        Ok(())
    }
}
