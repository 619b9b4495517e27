//! [`LexicalPostings`]: the exact lexical space of an open format-5 segment, read in place.
//! Lookups by binary search over the lexicon, each record checked before use; the postings
//! inverted into each row's terms ([`LexicalForward`]) for writers copying rows, and for the
//! per-file rows hash; a full check of every record.

use std::cmp::Ordering;
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use super::{
    hash_count, hash_length, hash_term, posting, LexicalMeta, LexiconRecord, LEXICON_RECORD_LEN,
    MAX_TERM_BYTES, POSTING_LEN,
};
use crate::directory::{join_name, Directory};
use crate::error::{Result, StorageError};
use crate::mmap::{bytes_as_f32, ReadMode};
use crate::segment::{LENGTHS_FILE, LEXICON_FILE, LEXTEXT_FILE, POSTINGS_FILE};
use crate::table::{Table, TableKind};

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

    /// Row `row`'s (term, tf) pairs collected, ready for the `terms` of a
    /// [`LexicalRow`](super::LexicalRow).
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
    pub(in crate::segment) fn open(
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
    pub(in crate::segment) fn tables(&self) -> [&Table; 4] {
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
    pub(in crate::segment) fn hash_rows(
        &self,
        rows: Range<usize>,
        h: &mut blake3::Hasher,
    ) -> Result<()> {
        let inverted = self.inverted()?;
        let mut hashed = Vec::new();
        for row in rows {
            let entries = inverted.row(row);
            let count = u32::try_from(entries.len()).map_err(|_| {
                StorageError::corrupt(self.postings.path(), "too many terms in one row")
            })?;
            hashed.clear();
            hash_count(&mut hashed, count);
            for &(ordinal, tf) in entries {
                let ordinal = ordinal as usize;
                hash_term(
                    &mut hashed,
                    self.text_of(ordinal, &self.record(ordinal)?)?,
                    tf,
                );
            }
            let length = self.length(row).ok_or_else(|| {
                StorageError::corrupt(self.lengths.path(), format!("no length for row {row}"))
            })?;
            hash_length(&mut hashed, length);
            h.update(&hashed);
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
