//! Format-1 compatibility: segments written before `files.bin` existed keep their file list
//! inside `metadata.json`. It is parsed whole and checked on open; compaction rewrites such
//! segments in format 2.

use serde::{Deserialize, Serialize};

use super::reader::SegmentReader;
use super::records::SegmentFile;
use super::METADATA_FILE;
use crate::error::{Result, StorageError};

/// `metadata.json` of segment format 1: the file list inside the document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct MetaV1 {
    pub(super) dimensions: u32,
    pub(super) rows: u64,
    pub(super) files: Vec<SegmentFile>,
}

impl SegmentReader {
    /// Checks a format-1 file list: files tile the rows, term ranges are in bounds.
    pub(super) fn check_list(&self, files: &[SegmentFile]) -> Result<()> {
        let mut next_row = 0u64;
        for f in files {
            let terms_end = f.terms_start.checked_add(f.terms_len);
            if f.first_row != next_row
                || terms_end.is_none_or(|end| end > self.terms.header().count)
            {
                return Err(StorageError::corrupt(
                    self.dir.join(METADATA_FILE),
                    format!("row or term ranges of {} do not fit", f.record.path()),
                ));
            }
            next_row = next_row.checked_add(f.rows).ok_or_else(|| {
                StorageError::corrupt(self.dir.join(METADATA_FILE), "row count overflows")
            })?;
        }
        let rows = self.rows() as u64;
        if next_row != rows {
            return Err(StorageError::corrupt(
                self.dir.join(METADATA_FILE),
                format!("files cover {next_row} rows of {rows}"),
            ));
        }
        Ok(())
    }

    /// File `file` of a format-1 list.
    pub(super) fn listed(&self, file: usize) -> Result<&SegmentFile> {
        self.list.get().and_then(|l| l.get(file)).ok_or_else(|| {
            StorageError::corrupt(self.dir.join(METADATA_FILE), format!("no file {file}"))
        })
    }
}
