//! Delete sets (`del-<segment>-<generation>.bin`): which files of an immutable segment are no
//! longer live, and the term counts they took away. A commit that replaces or removes a file
//! writes a new delete set for that file's segment instead of rewriting the segment.
//!
//! The table's `width` is the number of deleted files and `extra` their total rows; its first
//! `width` records are (file index, rows), sorted by file index, and the rest are
//! (term, chunk count) pairs, sorted by term, summed over the deleted files.

use std::collections::BTreeMap;
use std::path::Path;

use turboprop_types::TermId;

use crate::directory::Directory;
use crate::error::{Result, StorageError};
use crate::mmap::ReadMode;
use crate::table::{Table, TableKind, TableWriter};
use crate::termstats::{pair, push_counts, Pairs};

/// Writes the delete set `name` of `dir`: `files` maps each deleted file index to its rows;
/// `removed` holds the term counts of those files.
pub fn write_delete_set(
    dir: &dyn Directory,
    name: &str,
    files: &BTreeMap<u32, u32>,
    removed: &BTreeMap<TermId, u32>,
) -> Result<()> {
    let path = dir.location(name);
    let width = u32::try_from(files.len())
        .map_err(|_| StorageError::corrupt(&path, "more than 2^32 deleted files"))?;
    crate::failpoint::check("deletes:write", &path)?;
    let mut w = TableWriter::create(dir, name, TableKind::Deletes, width)?;
    let mut rows = 0u64;
    for (&file, &n) in files {
        w.push(&pair(file, n))?;
        rows += u64::from(n);
    }
    push_counts(&mut w, removed)?;
    w.finish(rows)?;
    Ok(())
}

/// A delete set opened for reading.
#[derive(Debug)]
pub struct DeleteSet {
    table: Table,
}

impl DeleteSet {
    /// Opens and checks the delete set `name` of `dir`.
    pub fn open(dir: &dyn Directory, name: &str, mode: ReadMode) -> Result<DeleteSet> {
        let table = Table::open(dir, name, TableKind::Deletes, mode)?;
        if u64::from(table.header().width) > table.header().count {
            return Err(StorageError::corrupt(
                table.path(),
                "more deleted files than records",
            ));
        }
        Ok(DeleteSet { table })
    }

    fn split(&self) -> (Pairs<'_>, Pairs<'_>) {
        let at = self.table.header().width as usize * 8;
        let payload = self.table.payload();
        (Pairs::new(&payload[..at]), Pairs::new(&payload[at..]))
    }

    /// The deleted files as (file index, rows), sorted by file index.
    pub fn files(&self) -> Pairs<'_> {
        self.split().0
    }

    /// Total rows of the deleted files.
    pub fn rows(&self) -> u64 {
        self.table.header().extra
    }

    /// The term counts the deleted files took away.
    pub fn removed_terms(&self) -> Pairs<'_> {
        self.split().1
    }

    /// Checks the payload checksum and the order of both parts.
    pub fn verify(&self) -> Result<()> {
        self.table.verify()?;
        let (files, terms) = self.split();
        let rows: u64 = files.iter().map(|(_, n)| u64::from(n)).sum();
        if !files.is_sorted() || !terms.is_sorted() || rows != self.rows() {
            return Err(StorageError::corrupt(
                self.table.path(),
                "delete set is out of order or miscounted",
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
    fn round_trip() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = crate::FsDirectory::new(tmp.path());
        let files: BTreeMap<u32, u32> = [(3, 10), (7, 0), (9, 2)].into_iter().collect();
        let removed: BTreeMap<u32, u32> = [(5, 2), (100, 12)].into_iter().collect();
        write_delete_set(&dir, "del.bin", &files, &removed).expect("write");
        let d = DeleteSet::open(&dir, "del.bin", ReadMode::Mmap).expect("open");
        assert_eq!(
            d.files().iter().collect::<Vec<_>>(),
            vec![(3, 10), (7, 0), (9, 2)]
        );
        assert_eq!(d.rows(), 12);
        assert_eq!(d.removed_terms().lookup(100), 12);
        assert_eq!(d.removed_terms().lookup(6), 0);
        d.verify().expect("intact");
    }
}
