//! The document-frequency table (`df.bin`): for each term, how many chunks contain it.
//! Sorted by term so a query looks up its few terms by binary search in the mapped file,
//! without parsing the table.

use std::collections::BTreeMap;
use std::path::Path;

use turboprop_types::{TermId, TermStatistics};

use crate::error::Result;
use crate::mmap::ReadMode;
use crate::table::{Table, TableKind, TableWriter};

/// Writes a document-frequency table of `documents` chunks.
pub fn write_doc_freq(path: &Path, documents: u64, df: &BTreeMap<TermId, u32>) -> Result<()> {
    let mut w = TableWriter::create(path, TableKind::DocFreq, 0)?;
    for (&term, &count) in df {
        if count == 0 {
            continue;
        }
        let mut pair = [0u8; 8];
        pair[..4].copy_from_slice(&term.to_le_bytes());
        pair[4..].copy_from_slice(&count.to_le_bytes());
        w.push(&pair)?;
    }
    w.finish(documents)?;
    Ok(())
}

/// A document-frequency table opened for lookups.
#[derive(Debug)]
pub struct DocFreqTable {
    table: Table,
}

impl DocFreqTable {
    /// Opens `df.bin`, checking header and size.
    pub fn open(path: &Path, mode: ReadMode) -> Result<DocFreqTable> {
        Ok(DocFreqTable {
            table: Table::open(path, TableKind::DocFreq, mode)?,
        })
    }

    fn pair(&self, i: usize) -> (u32, u32) {
        let p = &self.table.payload()[i * 8..i * 8 + 8];
        (
            u32::from_le_bytes([p[0], p[1], p[2], p[3]]),
            u32::from_le_bytes([p[4], p[5], p[6], p[7]]),
        )
    }

    /// Number of distinct terms.
    pub fn terms(&self) -> usize {
        self.table.len()
    }

    /// Every (term, frequency) pair, in term order.
    pub fn iter(&self) -> impl Iterator<Item = (TermId, u32)> + '_ {
        (0..self.table.len()).map(|i| self.pair(i))
    }

    /// Checks the payload checksum.
    pub fn verify(&self) -> Result<()> {
        self.table.verify()
    }
}

impl TermStatistics for DocFreqTable {
    fn documents(&self) -> u64 {
        self.table.header().extra
    }

    fn document_frequency(&self, term: TermId) -> u64 {
        let (mut lo, mut hi) = (0usize, self.table.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let (t, c) = self.pair(mid);
            match t.cmp(&term) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return u64::from(c),
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_match_the_map() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("df.bin");
        let df: BTreeMap<u32, u32> = (0..500u32).map(|i| (i * 7919, i % 13 + 1)).collect();
        write_doc_freq(&path, 1000, &df).expect("write");
        let t = DocFreqTable::open(&path, ReadMode::Mmap).expect("open");
        assert_eq!(t.documents(), 1000);
        for (&term, &count) in &df {
            assert_eq!(t.document_frequency(term), u64::from(count));
        }
        assert_eq!(t.document_frequency(1), 0);
        assert_eq!(t.iter().count(), df.len());
    }
}
