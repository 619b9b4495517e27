//! Binary tables: a [`Header`] followed by `count` fixed-size records. Vectors, chunk records
//! and term tables are all tables of different kinds ([`TableKind`]).
//!
//! Tables are written once through a [`Directory`], streamed through a hasher, synced, then
//! read back and checked against their checksum before anyone can publish them.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::directory::{Directory, WriteFile};
use crate::error::{Result, StorageError};
use crate::header::{Header, BINARY_FORMAT_VERSION, HEADER_LEN};
use crate::mmap::{FileBytes, ReadMode};

/// The kinds of binary table, each with its own magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// `vectors.bin`: rows of `width` little-endian f32.
    Vectors,
    /// `chunks.bin`: 64-byte chunk records.
    Chunks,
    /// `terms.bin`: (term u32, count u32) pairs of each file.
    Terms,
    /// `df.bin`: sorted (term u32, document frequency u32) pairs.
    DocFreq,
    /// `del-*.bin`: a segment's deleted files, then the term counts they took away.
    Deletes,
    /// `codes.bin`: 1-bit codes of a segment's vectors, `width` bits per row padded to
    /// whole 64-bit words.
    Codes,
    /// `codes8.bin`: int8 codes of a segment's (sparse) vectors, dimension-major: a
    /// per-row f32 scale for each row, then one column of `count / (width + 4)` signed bytes
    /// per dimension; one-byte records, `width` = dimensions.
    Codes8,
    /// `planes.bin`: the same 1-bit codes as `codes.bin`, dimension-major: one bit plane
    /// of `⌈rows / 64⌉` 64-bit words per dimension; 8-byte records (one word each),
    /// `width` = dimensions.
    Planes,
    /// `files.bin`: one 128-byte record per file of a segment (row, term and path ranges,
    /// size, mtime, hashes).
    Files,
    /// `paths.bin`: the UTF-8 paths of a segment's files back to back, one byte per record.
    Paths,
    /// `symbols.bin`: one 16-byte record per row of a segment (format 4): where the row's
    /// symbol and kind are in `symtext.bin` and their lengths.
    Symbols,
    /// `symtext.bin`: the symbols and kinds of a segment's rows back to back, one byte per
    /// record.
    SymbolText,
    /// `lexicon.bin`: one 16-byte record per distinct exact term of a segment (format 5),
    /// sorted by the term's bytes: where its text is in `lextext.bin` and its postings in
    /// `postings.bin`.
    Lexicon,
    /// `lextext.bin`: the exact terms of a segment back to back, one byte per record.
    LexText,
    /// `postings.bin`: (row u32, term frequency f32) pairs of every term in lexicon order,
    /// rows increasing within a term.
    Postings,
    /// `lengths.bin`: one f32 per row of a segment, its length for length normalisation.
    Lengths,
}

impl TableKind {
    /// The magic bytes of this kind.
    pub fn magic(self) -> &'static [u8; 8] {
        match self {
            TableKind::Vectors => b"TPVECTOR",
            TableKind::Chunks => b"TPCHUNKS",
            TableKind::Terms => b"TPTERMS\0",
            TableKind::DocFreq => b"TPDOCFRQ",
            TableKind::Deletes => b"TPDELETE",
            TableKind::Codes => b"TPCODES1",
            TableKind::Codes8 => b"TPCODES8",
            TableKind::Planes => b"TPPLANES",
            TableKind::Files => b"TPFILES\0",
            TableKind::Paths => b"TPPATHS\0",
            TableKind::Symbols => b"TPSYMBOL",
            TableKind::SymbolText => b"TPSYMTXT",
            TableKind::Lexicon => b"TPLEXICN",
            TableKind::LexText => b"TPLEXTXT",
            TableKind::Postings => b"TPPOSTNG",
            TableKind::Lengths => b"TPLENGTH",
        }
    }

    /// A human name of this kind, for errors.
    pub fn name(self) -> &'static str {
        match self {
            TableKind::Vectors => "vectors",
            TableKind::Chunks => "chunk records",
            TableKind::Terms => "terms",
            TableKind::DocFreq => "document frequency",
            TableKind::Deletes => "delete set",
            TableKind::Codes => "vector codes",
            TableKind::Codes8 => "int8 vector codes",
            TableKind::Planes => "vector code planes",
            TableKind::Files => "file records",
            TableKind::Paths => "file paths",
            TableKind::Symbols => "symbol records",
            TableKind::SymbolText => "symbol text",
            TableKind::Lexicon => "lexicon",
            TableKind::LexText => "lexicon text",
            TableKind::Postings => "postings",
            TableKind::Lengths => "row lengths",
        }
    }

    /// Bytes per record for a table of this kind with the given `width`.
    pub fn record_len(self, width: u32) -> u64 {
        match self {
            TableKind::Vectors => u64::from(width) * 4,
            TableKind::Chunks => 64,
            TableKind::Terms
            | TableKind::DocFreq
            | TableKind::Deletes
            | TableKind::Planes
            | TableKind::Postings => 8,
            TableKind::Codes => u64::from(width).div_ceil(64) * 8,
            TableKind::Files => 128,
            TableKind::Symbols | TableKind::Lexicon => 16,
            TableKind::Lengths => 4,
            TableKind::Paths | TableKind::Codes8 | TableKind::SymbolText | TableKind::LexText => 1,
        }
    }
}

/// Streams records into a new table file.
#[derive(Debug)]
pub struct TableWriter<'a> {
    dir: &'a dyn Directory,
    name: String,
    /// Where the file is, for errors.
    path: PathBuf,
    kind: TableKind,
    width: u32,
    out: Box<dyn WriteFile>,
    hasher: blake3::Hasher,
    count: u64,
    payload_len: u64,
}

impl<'a> TableWriter<'a> {
    /// Creates the table `name` in `dir` (it must not exist yet).
    pub fn create(
        dir: &'a dyn Directory,
        name: &str,
        kind: TableKind,
        width: u32,
    ) -> Result<TableWriter<'a>> {
        let path = dir.location(name);
        let mut out = dir.create(name)?;
        out.write_all(&[0u8; HEADER_LEN])
            .map_err(|e| StorageError::io("write", &path, e))?;
        Ok(TableWriter {
            dir,
            name: name.to_owned(),
            path,
            kind,
            width,
            out,
            hasher: blake3::Hasher::new(),
            count: 0,
            payload_len: 0,
        })
    }

    /// Appends one record; `record` must be exactly one record long.
    pub fn push(&mut self, record: &[u8]) -> Result<()> {
        let expected = self.kind.record_len(self.width);
        if record.len() as u64 != expected {
            return Err(StorageError::corrupt(
                &self.path,
                format!(
                    "record of {} bytes written to a table of {expected}-byte records",
                    record.len()
                ),
            ));
        }
        self.append(record, 1)
    }

    /// Appends whole records back to back; `records` must be a multiple of the record length
    /// long (for tables of small records, such as the one-byte records of `paths.bin`).
    ///
    /// ```
    /// use turboprop_storage::{MemDirectory, ReadMode, Table, TableKind, TableWriter};
    ///
    /// let dir = MemDirectory::new();
    /// let mut w = TableWriter::create(&dir, "paths.bin", TableKind::Paths, 0)?;
    /// w.push_records(b"src/a.rs")?;
    /// w.push_records(b"b.py")?;
    /// assert_eq!(w.count(), 12);
    /// w.finish(2)?;
    /// let t = Table::open(&dir, "paths.bin", TableKind::Paths, ReadMode::Mmap)?;
    /// assert_eq!(t.payload(), b"src/a.rsb.py");
    /// # Ok::<(), turboprop_storage::StorageError>(())
    /// ```
    pub fn push_records(&mut self, records: &[u8]) -> Result<()> {
        let len = self.kind.record_len(self.width);
        let n = (records.len() as u64)
            .checked_div(len)
            .filter(|n| n * len == records.len() as u64);
        let Some(n) = n else {
            return Err(StorageError::corrupt(
                &self.path,
                format!(
                    "{} bytes written to a table of {len}-byte records",
                    records.len()
                ),
            ));
        };
        self.append(records, n)
    }

    /// Writes `n` records held in `bytes`.
    fn append(&mut self, bytes: &[u8], n: u64) -> Result<()> {
        if self.count <= 1 && self.count + n >= 2 {
            crate::failpoint::check("table:write", &self.path)?;
        }
        self.out
            .write_all(bytes)
            .map_err(|e| StorageError::io("write", &self.path, e))?;
        self.hasher.update(bytes);
        self.count += n;
        self.payload_len += bytes.len() as u64;
        Ok(())
    }

    /// Number of records pushed so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Writes the header, syncs the file, then reads it back and checks its checksum.
    pub fn finish(self, extra: u64) -> Result<Header> {
        let TableWriter {
            dir,
            name,
            path,
            kind,
            width,
            mut out,
            hasher,
            count,
            payload_len,
        } = self;
        let mut payload_hash = [0u8; 16];
        payload_hash.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
        let header = Header {
            magic: *kind.magic(),
            version: BINARY_FORMAT_VERSION,
            width,
            count,
            payload_len,
            payload_hash,
            extra,
        };
        crate::failpoint::check("table:sync", &path)?;
        out.seek(SeekFrom::Start(0))
            .and_then(|_| out.write_all(&header.encode()))
            .map_err(|e| StorageError::io("write", &path, e))?;
        out.finish()?;
        // Read back what the directory now holds and check it before the table can be
        // published.
        let table = Table::open(dir, &name, kind, ReadMode::Mmap)?;
        table.verify()?;
        crate::failpoint::check("table:verify", &path)?;
        Ok(header)
    }
}

/// A table opened for reading; its header and size are checked on open.
#[derive(Debug)]
pub struct Table {
    bytes: FileBytes,
    header: Header,
    kind: TableKind,
}

impl Table {
    /// Opens the table `name` of `dir` and checks the header and size of a table of `kind`.
    pub fn open(dir: &dyn Directory, name: &str, kind: TableKind, mode: ReadMode) -> Result<Table> {
        let bytes = dir.read(name, mode)?;
        // A file truncated before (or while) it was mapped reads zeros past its new end: its
        // header then fails to decode, but the reason is the change, not damage.
        let header = Table::check_header(&bytes, kind);
        bytes.check_intact()?;
        Ok(Table {
            header: header?,
            bytes,
            kind,
        })
    }

    /// Checks the header and size of `bytes`, a table of `kind`.
    fn check_header(bytes: &FileBytes, kind: TableKind) -> Result<Header> {
        let path = bytes.path().to_path_buf();
        let path = path.as_path();
        let header = Header::decode(path, bytes.bytes(), kind.magic(), kind.name())?;
        let expected = kind
            .record_len(header.width)
            .checked_mul(header.count)
            .ok_or_else(|| StorageError::corrupt(path, "record count overflows"))?;
        if expected != header.payload_len {
            return Err(StorageError::corrupt(
                path,
                format!(
                    "header says {} records of {} bytes but a payload of {} bytes",
                    header.count,
                    kind.record_len(header.width),
                    header.payload_len
                ),
            ));
        }
        Ok(header)
    }

    /// Fails with [`crate::StorageError::ChangedUnderReader`] if the file shrank under its
    /// mapping since it was opened ([`FileBytes::check_intact`]).
    pub fn check_intact(&self) -> Result<()> {
        self.bytes.check_intact()
    }

    /// The checked header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The file's location (its path on disk).
    pub fn path(&self) -> &Path {
        self.bytes.path()
    }

    /// Bytes of the whole file.
    pub fn file_len(&self) -> u64 {
        self.bytes.bytes().len() as u64
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        // The payload is in memory, so the count fits in usize.
        self.header.count as usize
    }

    /// Whether the table has no records.
    pub fn is_empty(&self) -> bool {
        self.header.count == 0
    }

    /// The payload: all records back to back.
    pub fn payload(&self) -> &[u8] {
        &self.bytes.bytes()[HEADER_LEN..]
    }

    /// Record `i`, or `None` past the end.
    pub fn record(&self, i: usize) -> Option<&[u8]> {
        let len = self.kind.record_len(self.header.width) as usize;
        let start = i.checked_mul(len)?;
        self.payload().get(start..start.checked_add(len)?)
    }

    /// Checks the payload against its checksum (reads every byte).
    pub fn verify(&self) -> Result<()> {
        self.header.check_payload(self.path(), self.payload())
    }

    /// Asks the system to map the payload bytes of `range` now rather than page by page as
    /// they are read ([`FileBytes::populate`]); a hint with no effect on what is read.
    pub fn populate(&self, range: std::ops::Range<usize>) {
        self.bytes
            .populate(range.start.saturating_add(HEADER_LEN)..range.end.saturating_add(HEADER_LEN));
    }

    /// Whether the table is memory-mapped.
    pub fn is_mapped(&self) -> bool {
        self.bytes.is_mapped()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::directory::{FsDirectory, MemDirectory};

    #[test]
    fn write_then_read() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for dir in [
            &FsDirectory::new(tmp.path()) as &dyn Directory,
            &MemDirectory::new(),
        ] {
            write_then_read_in(dir);
        }
    }

    fn write_then_read_in(dir: &dyn Directory) {
        let mut w = TableWriter::create(dir, "terms.bin", TableKind::Terms, 0).expect("create");
        for i in 0u32..10 {
            let mut rec = [0u8; 8];
            rec[..4].copy_from_slice(&i.to_le_bytes());
            rec[4..].copy_from_slice(&(i * 2).to_le_bytes());
            w.push(&rec).expect("push");
        }
        assert!(w.push(&[0u8; 3]).is_err());
        w.finish(5).expect("finish");
        let t = Table::open(dir, "terms.bin", TableKind::Terms, ReadMode::Mmap).expect("open");
        assert_eq!(t.len(), 10);
        assert_eq!(t.header().extra, 5);
        assert_eq!(&t.record(3).expect("rec")[4..], &6u32.to_le_bytes());
        assert!(t.record(10).is_none());
        t.verify().expect("intact");
        assert!(Table::open(dir, "terms.bin", TableKind::Chunks, ReadMode::Mmap).is_err());
        assert_eq!(t.file_len(), dir.file_len("terms.bin").expect("len"));
    }

    #[test]
    fn refuses_to_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.bin");
        std::fs::write(&path, b"precious").expect("write");
        let fs = FsDirectory::new(dir.path());
        assert!(TableWriter::create(&fs, "x.bin", TableKind::Terms, 0).is_err());
        assert_eq!(std::fs::read(&path).expect("read"), b"precious");
    }
}
