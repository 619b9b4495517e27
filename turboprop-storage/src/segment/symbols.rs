//! Format 4's symbols: the optional symbol (`Table::deal`) and kind (`method`) of each row.
//! They are written into `symbols.bin` (one 16-byte record per row: where the texts start
//! in `symtext.bin` and their lengths) and `symtext.bin` (the texts back to back), read back
//! one row at a time with every field checked, and hashed by content (never by offset, which
//! changes when rows are copied into another segment) into the per-file rows hash.

use std::path::Path;

use turboprop_types::{check_kind, check_symbol, MAX_KIND_BYTES, MAX_SYMBOL_BYTES};

use super::{SYMBOLS_FILE, SYMTEXT_FILE};
use crate::directory::{join_name, Directory};
use crate::error::{Result, StorageError};
use crate::mmap::ReadMode;
use crate::table::{Table, TableKind, TableWriter};

/// Bytes of one `symbols.bin` record.
const SYMBOL_RECORD_LEN: usize = 16;

/// One `symbols.bin` record as stored (see docs/format.md), before any check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SymbolRecord {
    /// Where the symbol starts in `symtext.bin`; the kind follows it.
    text_start: u64,
    /// Bytes of the symbol; 0: none.
    symbol_len: u16,
    /// Bytes of the kind; 0: none.
    kind_len: u8,
    /// Zero.
    reserved: [u8; 5],
}

impl SymbolRecord {
    fn encode(&self) -> [u8; SYMBOL_RECORD_LEN] {
        let mut b = [0u8; SYMBOL_RECORD_LEN];
        b[0..8].copy_from_slice(&self.text_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.symbol_len.to_le_bytes());
        b[10] = self.kind_len;
        b[11..16].copy_from_slice(&self.reserved);
        b
    }

    fn decode(b: &[u8; SYMBOL_RECORD_LEN]) -> SymbolRecord {
        let mut start = [0u8; 8];
        start.copy_from_slice(&b[0..8]);
        let mut reserved = [0u8; 5];
        reserved.copy_from_slice(&b[11..16]);
        SymbolRecord {
            text_start: u64::from_le_bytes(start),
            symbol_len: u16::from_le_bytes([b[8], b[9]]),
            kind_len: b[10],
            reserved,
        }
    }
}

/// Adds one row's symbol and kind to the rows hash of its file, by content: the symbol's
/// length (u16 LE) and bytes, then the kind's length (u8) and bytes; none is length 0.
pub(super) fn hash_row(h: &mut blake3::Hasher, symbol: Option<&str>, kind: Option<&str>) {
    let (symbol, kind) = (symbol.unwrap_or(""), kind.unwrap_or(""));
    // Both were checked against their caps, so the lengths fit.
    h.update(&(symbol.len() as u16).to_le_bytes());
    h.update(symbol.as_bytes());
    h.update(&[kind.len() as u8]);
    h.update(kind.as_bytes());
}

/// Writes `symbols.bin` and `symtext.bin` of a new segment.
#[derive(Debug)]
pub(super) struct SymbolWriter<'a> {
    records: TableWriter<'a>,
    text: TableWriter<'a>,
}

impl<'a> SymbolWriter<'a> {
    /// Creates both tables in the segment folder `segment` of `store`.
    pub(super) fn create(store: &'a dyn Directory, segment: &str) -> Result<SymbolWriter<'a>> {
        Ok(SymbolWriter {
            records: TableWriter::create(
                store,
                &join_name(segment, SYMBOLS_FILE),
                TableKind::Symbols,
                0,
            )?,
            text: TableWriter::create(
                store,
                &join_name(segment, SYMTEXT_FILE),
                TableKind::SymbolText,
                0,
            )?,
        })
    }

    /// Appends the record of the next row (its symbol and kind already checked by
    /// [`check_row`]) and hashes them into `h`.
    pub(super) fn push(
        &mut self,
        symbol: Option<&str>,
        kind: Option<&str>,
        h: &mut blake3::Hasher,
    ) -> Result<()> {
        let (s, k) = (symbol.unwrap_or(""), kind.unwrap_or(""));
        let record = SymbolRecord {
            text_start: self.text.count(),
            symbol_len: u16::try_from(s.len()).unwrap_or(u16::MAX),
            kind_len: u8::try_from(k.len()).unwrap_or(u8::MAX),
            reserved: [0; 5],
        };
        self.text.push_records(s.as_bytes())?;
        self.text.push_records(k.as_bytes())?;
        self.records.push(&record.encode())?;
        hash_row(h, symbol, kind);
        Ok(())
    }

    /// Finishes both tables for a segment of `rows` rows: the header of `symbols.bin`
    /// carries the bytes of `symtext.bin` in `extra`, and that of `symtext.bin` the rows.
    pub(super) fn finish(self, rows: u64) -> Result<()> {
        let text_len = self.text.count();
        self.records.finish(text_len)?;
        self.text.finish(rows)?;
        Ok(())
    }
}

/// Checks the symbol and kind of chunk `chunk` of `file`, to be written into the segment
/// folder `dir` (an error names its `symbols.bin`).
pub(super) fn check_row(
    dir: &Path,
    file: &str,
    chunk: u64,
    symbol: Option<&str>,
    kind: Option<&str>,
) -> Result<()> {
    let checked = symbol
        .map_or(Ok(()), check_symbol)
        .and_then(|()| kind.map_or(Ok(()), check_kind));
    checked.map_err(|e| {
        StorageError::corrupt(
            dir.join(SYMBOLS_FILE),
            format!("chunk {chunk} of {file}: {e}"),
        )
    })
}

/// `symbols.bin` and `symtext.bin` of an open segment.
#[derive(Debug)]
pub(super) struct SymbolTables {
    records: Table,
    text: Table,
}

impl SymbolTables {
    /// Opens both tables of the segment folder `segment` (headers and sizes checked).
    pub(super) fn open(
        store: &dyn Directory,
        segment: &str,
        mode: ReadMode,
    ) -> Result<SymbolTables> {
        Ok(SymbolTables {
            records: Table::open(
                store,
                &join_name(segment, SYMBOLS_FILE),
                TableKind::Symbols,
                mode,
            )?,
            text: Table::open(
                store,
                &join_name(segment, SYMTEXT_FILE),
                TableKind::SymbolText,
                mode,
            )?,
        })
    }

    /// Checks the headers against the segment's `rows` and each other: O(1).
    pub(super) fn check_shape(&self, rows: u64) -> Result<()> {
        let (records, text) = (self.records.header(), self.text.header());
        if records.count != rows || records.extra != text.count {
            return Err(StorageError::corrupt(
                self.records.path(),
                format!(
                    "{} rows and {} bytes of text but the segment has {rows} rows and {} has {} bytes",
                    records.count,
                    records.extra,
                    self.text.path().display(),
                    text.count
                ),
            ));
        }
        if text.extra != rows {
            return Err(StorageError::corrupt(
                self.text.path(),
                format!("text of {} rows but the segment has {rows}", text.extra),
            ));
        }
        Ok(())
    }

    /// Both tables.
    pub(super) fn tables(&self) -> [&Table; 2] {
        [&self.records, &self.text]
    }

    /// The symbol and kind of row `row`, checked: the record's reserved bytes zero, the
    /// lengths within their caps, the texts inside `symtext.bin`, the symbol UTF-8 and the
    /// kind of `a-z`, `0-9`, `_` and `-`. Any violation is damage naming `symbols.bin`.
    pub(super) fn get(&self, row: usize) -> Result<(Option<&str>, Option<&str>)> {
        let damaged = |why: String| {
            StorageError::corrupt(self.records.path(), format!("symbol of row {row} {why}"))
        };
        let bytes = self
            .records
            .record(row)
            .and_then(|b| <&[u8; SYMBOL_RECORD_LEN]>::try_from(b).ok())
            .ok_or_else(|| damaged("has no record".to_owned()))?;
        let rec = SymbolRecord::decode(bytes);
        if rec.reserved != [0; 5] {
            return Err(damaged("has reserved bytes that are not zero".to_owned()));
        }
        let (symbol_len, kind_len) = (usize::from(rec.symbol_len), usize::from(rec.kind_len));
        if symbol_len > MAX_SYMBOL_BYTES || kind_len > MAX_KIND_BYTES {
            return Err(damaged(format!(
                "is {symbol_len} bytes with a kind of {kind_len}: at most \
                 {MAX_SYMBOL_BYTES} and {MAX_KIND_BYTES}"
            )));
        }
        let text = usize::try_from(rec.text_start)
            .ok()
            .and_then(|start| {
                self.text
                    .payload()
                    .get(start..start.checked_add(symbol_len + kind_len)?)
            })
            .ok_or_else(|| {
                damaged(format!(
                    "at {} ({} bytes) is out of the bounds of {}",
                    rec.text_start,
                    symbol_len + kind_len,
                    self.text.path().display()
                ))
            })?;
        let (symbol, kind) = text.split_at(symbol_len);
        let symbol =
            match symbol {
                [] => None,
                s => Some(std::str::from_utf8(s).map_err(|_| {
                    damaged(format!("in {} is not UTF-8", self.text.path().display()))
                })?),
            };
        let kind = match kind {
            [] => None,
            k => {
                let k = std::str::from_utf8(k)
                    .ok()
                    .filter(|k| check_kind(k).is_ok());
                Some(k.ok_or_else(|| {
                    damaged(format!(
                        "has a kind in {} of other characters than a-z, 0-9, _ and -",
                        self.text.path().display()
                    ))
                })?)
            }
        };
        Ok((symbol, kind))
    }
}
