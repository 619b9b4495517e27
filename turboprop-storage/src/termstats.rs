//! Term counts: sorted (term, count) pairs read in place. A segment's `df.bin` says in how many
//! of its chunks each term occurs; a delete set holds the counts its deleted files took away.
//! Queries look up their few terms by binary search in the mapped bytes, without parsing.

use std::collections::BTreeMap;
use std::path::Path;

use turboprop_types::TermId;

use crate::directory::Directory;
use crate::error::Result;
use crate::mmap::ReadMode;
use crate::table::{Table, TableKind, TableWriter};

/// Appends `counts` (sorted by term, zero counts skipped) as 8-byte (term, count) records.
pub(crate) fn push_counts(w: &mut TableWriter<'_>, counts: &BTreeMap<TermId, u32>) -> Result<()> {
    for (&term, &count) in counts {
        if count > 0 {
            w.push(&pair(term, count))?;
        }
    }
    Ok(())
}

/// The 8-byte little-endian record of a pair.
pub(crate) fn pair(a: u32, b: u32) -> [u8; 8] {
    let mut rec = [0u8; 8];
    rec[..4].copy_from_slice(&a.to_le_bytes());
    rec[4..].copy_from_slice(&b.to_le_bytes());
    rec
}

/// Sorted 8-byte (u32, u32) pairs viewed in place.
#[derive(Debug, Clone, Copy)]
pub struct Pairs<'a> {
    bytes: &'a [u8],
}

impl<'a> Pairs<'a> {
    /// Views `bytes` (a multiple of 8) as pairs.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Pairs { bytes }
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.bytes.len() / 8
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pair `i`.
    pub fn get(&self, i: usize) -> (u32, u32) {
        let p = &self.bytes[i * 8..i * 8 + 8];
        (
            u32::from_le_bytes([p[0], p[1], p[2], p[3]]),
            u32::from_le_bytes([p[4], p[5], p[6], p[7]]),
        )
    }

    /// Every pair, in order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32)> + 'a {
        let this = *self;
        (0..this.len()).map(move |i| this.get(i))
    }

    /// The count of `term` by binary search (pairs sorted by term), 0 if absent.
    pub fn lookup(&self, term: TermId) -> u32 {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (t, c) = self.get(mid);
            match t.cmp(&term) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return c,
            }
        }
        0
    }

    /// Whether the terms are strictly increasing.
    pub(crate) fn is_sorted(&self) -> bool {
        (1..self.len()).all(|i| self.get(i - 1).0 < self.get(i).0)
    }
}

/// Writes the document-frequency table `name` of `dir` over `documents` chunks.
pub fn write_doc_freq(
    dir: &dyn Directory,
    name: &str,
    documents: u64,
    df: &BTreeMap<TermId, u32>,
) -> Result<()> {
    let mut w = TableWriter::create(dir, name, TableKind::DocFreq, 0)?;
    push_counts(&mut w, df)?;
    w.finish(documents)?;
    Ok(())
}

/// A document-frequency table opened for lookups.
#[derive(Debug)]
pub struct DocFreqTable {
    table: Table,
}

impl DocFreqTable {
    /// Opens the `df.bin` `name` of `dir`, checking header and size.
    pub fn open(dir: &dyn Directory, name: &str, mode: ReadMode) -> Result<DocFreqTable> {
        let table = Table::open(dir, name, TableKind::DocFreq, mode)?;
        Ok(DocFreqTable { table })
    }

    /// The (term, frequency) pairs.
    pub fn pairs(&self) -> Pairs<'_> {
        Pairs::new(self.table.payload())
    }

    /// Number of chunks counted.
    pub fn documents(&self) -> u64 {
        self.table.header().extra
    }

    /// Chunks containing `term`.
    pub fn frequency(&self, term: TermId) -> u64 {
        u64::from(self.pairs().lookup(term))
    }

    /// Checks the payload checksum and the order of the terms.
    pub fn verify(&self) -> Result<()> {
        self.table.verify()?;
        if !self.pairs().is_sorted() {
            return Err(crate::StorageError::corrupt(
                self.table.path(),
                "terms are not sorted",
            ));
        }
        Ok(())
    }

    /// The file's location.
    pub fn path(&self) -> &Path {
        self.table.path()
    }

    /// Fails with [`crate::StorageError::ChangedUnderReader`] if the file shrank under its
    /// mapping since it was opened.
    pub fn check_intact(&self) -> Result<()> {
        self.table.check_intact()
    }

    /// Bytes of the whole file.
    pub fn file_len(&self) -> u64 {
        self.table.file_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_match_the_map() {
        let dir = crate::MemDirectory::new();
        let df: BTreeMap<u32, u32> = (0..500u32).map(|i| (i * 7919, i % 13 + 1)).collect();
        write_doc_freq(&dir, "df.bin", 1000, &df).expect("write");
        let t = DocFreqTable::open(&dir, "df.bin", ReadMode::Mmap).expect("open");
        assert_eq!(t.documents(), 1000);
        for (&term, &count) in &df {
            assert_eq!(t.frequency(term), u64::from(count));
        }
        assert_eq!(t.frequency(1), 0);
        assert_eq!(t.pairs().iter().count(), df.len());
        t.verify().expect("intact");
    }
}
