//! Tests of segments: writing, reading file records in place, damage to every record byte
//! and table, and format-1 segments.

use super::v1::MetaV1;
use super::*;

use turboprop_types::{ContentHash, FileRecord};

use crate::directory::{join_name, Directory, FsDirectory, MemDirectory};
use crate::document::encode_document_version;
use crate::error::{Result, StorageError};
use crate::header::HEADER_LEN;
use crate::mmap::ReadMode;
use crate::table::{Table, TableKind, TableWriter};

pub(super) const SEG: &str = "seg-00000001";

/// A file's (term, count) pairs.
type Terms = &'static [(u32, u32)];

pub(super) fn record(path: &str, size: u64) -> FileRecord {
    FileRecord::new(path, size, -7, ContentHash::of(path.as_bytes())).expect("record")
}

/// The symbol and kind of chunk `i` of a file in the segments [`write`] writes.
pub(super) fn symbol_of(i: u32) -> (Option<&'static str>, Option<&'static str>) {
    match i % 3 {
        0 => (Some("Täble::deal"), Some("method")),
        1 => (None, None),
        _ => (Some("fn_2"), None),
    }
}

/// A segment of 5 files (one empty, one with a non-ASCII path), 2 dimensions, format 4
/// with the symbols of [`symbol_of`].
pub(super) fn write(dir: &dyn Directory) {
    write_in_format(dir, true);
}

/// [`write`] in format 4 (`symbols`) or in format 2 as written before format 4.
pub(super) fn write_in_format(dir: &dyn Directory, symbols: bool) {
    static V: [f32; 2] = [0.6, 0.8];
    let row = |i: u32| NewRow {
        line_start: i + 1,
        line_end: i + 2,
        byte_start: u64::from(i),
        byte_end: u64::from(i) + 1,
        hash: ContentHash::of(&[i as u8]),
        vector: &V,
        symbol: symbol_of(i).0.filter(|_| symbols),
        kind: symbol_of(i).1.filter(|_| symbols),
        lexical: None,
    };
    let mut w = if symbols {
        SegmentWriter::create(dir, SEG, 2)
    } else {
        SegmentWriter::create_without_symbols(dir, SEG, 2, &[])
    }
    .expect("create");
    let files: [(&str, u32, Terms); 5] = [
        ("a/one.rs", 2, &[(1, 2), (3, 1)]),
        ("a/twö.rs", 1, &[(2, 1)]),
        ("empty.txt", 0, &[]),
        ("ab/c.rs", 3, &[(1, 3)]),
        ("z.py", 1, &[(9, 1)]),
    ];
    for (path, rows, terms) in files {
        w.add_file(
            record(path, u64::from(rows) * 10),
            (0..rows).map(row),
            terms,
        )
        .expect("add");
    }
    let summary = w.finish().expect("finish");
    assert_eq!((summary.files, summary.rows), (5, 7));
}

pub(super) fn open(dir: &dyn Directory) -> Result<SegmentReader> {
    SegmentReader::open(dir, SEG, ReadMode::Mmap)
}

pub(super) fn name(file: &str) -> String {
    join_name(SEG, file)
}

/// Rewrites table `file` of the segment with `edit` applied to its payload and a valid
/// header, so only the checks of the records themselves can catch the damage.
pub(super) fn rewrite(
    dir: &dyn Directory,
    file: &str,
    kind: TableKind,
    edit: impl FnOnce(&mut Vec<u8>),
) {
    let t = Table::open(dir, &name(file), kind, ReadMode::Heap).expect("open");
    let extra = t.header().extra;
    let mut payload = t.payload().to_vec();
    drop(t);
    edit(&mut payload);
    dir.remove(&name(file)).expect("remove");
    let mut w = TableWriter::create(dir, &name(file), kind, 0).expect("create");
    w.push_records(&payload).expect("push");
    w.finish(extra).expect("finish");
}

/// Replaces file `file` of the segment with its bytes as `edit` leaves them, header and all
/// (unlike [`rewrite`], nothing is made valid again).
pub(super) fn edit_bytes(dir: &dyn Directory, file: &str, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = dir
        .read(&name(file), ReadMode::Heap)
        .expect("read")
        .bytes()
        .to_vec();
    edit(&mut bytes);
    dir.remove(&name(file)).expect("remove");
    dir.write_new(&name(file), &bytes).expect("write");
}

/// A segment whose file `file` lost its last byte, then one without that file, fail to open
/// with an error naming it.
pub(super) fn cut_and_missing_are_named(file: &str) {
    cut_and_missing_are_named_in(file, write);
}

/// [`cut_and_missing_are_named`] for the segment `write` writes as [`SEG`].
pub(super) fn cut_and_missing_are_named_in(file: &str, write: fn(&dyn Directory)) {
    let dir = MemDirectory::new();
    write(&dir);
    edit_bytes(&dir, file, |b| {
        b.pop();
    });
    let err = open(&dir).expect_err("truncated");
    assert!(names(&err, &dir, file), "{err}");
    dir.remove(&name(file)).expect("remove");
    let err = open(&dir).expect_err("missing");
    assert!(err.is_missing() && names(&err, &dir, file), "{err}");
}

/// Calls every accessor on every file and row; returns the errors (none may panic).
pub(super) fn exercise(r: &SegmentReader) -> Vec<StorageError> {
    let mut errors = Vec::new();
    for i in 0..r.file_count() + 1 {
        errors.extend(r.file_rows(i).err());
        errors.extend(r.file_path(i).err());
        errors.extend(r.file(i).err());
        errors.extend(r.file_terms(i).err());
        errors.extend(r.verify_file_rows(i).err());
    }
    for row in 0..r.rows() + 1 {
        errors.extend(r.chunk(row).err());
        errors.extend(r.chunk_symbol(row).err());
    }
    errors.extend(r.files().err());
    errors
}

pub(super) fn names(err: &StorageError, dir: &dyn Directory, file: &str) -> bool {
    err.to_string()
        .contains(&*dir.location(&name(file)).to_string_lossy())
}

#[test]
fn file_records_round_trip_without_materializing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fs = FsDirectory::new(tmp.path());
    let mem = MemDirectory::new();
    for dir in [&fs as &dyn Directory, &mem] {
        write(dir);
        for mode in [ReadMode::Mmap, ReadMode::Heap] {
            let r = SegmentReader::open(dir, SEG, mode).expect("open");
            assert_eq!(r.format_version(), SYMBOLS_FORMAT_VERSION);
            assert_eq!(r.file_count(), 5);
            assert_eq!(r.file_path(1).expect("path"), "a/twö.rs");
            assert_eq!(r.file_rows(3).expect("rows"), 3..6);
            assert_eq!(r.file_rows(2).expect("rows"), 3..3);
            assert_eq!(r.file(4).expect("file").record, record("z.py", 10));
            assert_eq!(r.file_terms(0).expect("terms"), [(1, 2), (3, 1)]);
            assert_eq!(r.chunk(6).expect("chunk").file, 4);
            assert!(r.file_path(5).is_err());
            assert!(!r.is_materialized());
            let files = r.files().expect("files").to_vec();
            assert!(r.is_materialized());
            assert_eq!(files.len(), 5);
            for (i, f) in files.iter().enumerate() {
                assert_eq!(r.file(i).expect("file"), *f);
                assert_eq!(r.file_path(i).expect("path"), f.record.path());
                r.verify_file_rows(i).expect("rows intact");
            }
            assert_eq!(files[1].record.mtime_ns(), -7);
            r.verify().expect("intact");
            assert!(exercise(&r).len() >= 6, "only file 5 and row 7 are missing");
        }
    }
}

#[test]
fn an_empty_segment_opens() {
    let dir = MemDirectory::new();
    SegmentWriter::create(&dir, SEG, 3)
        .expect("create")
        .finish()
        .expect("finish");
    let r = open(&dir).expect("open");
    assert_eq!((r.file_count(), r.rows()), (0, 0));
    assert!(r.files().expect("files").is_empty());
    r.verify().expect("intact");
}

#[test]
fn a_path_out_of_bounds_is_an_error_naming_files_bin() {
    let dir = MemDirectory::new();
    write(&dir);
    rewrite(&dir, FILES_FILE, TableKind::Files, |p| {
        // File 4's path starts 1000 bytes later.
        let at = 4 * FILE_RECORD_LEN + 32;
        p[at..at + 8].copy_from_slice(&1000u64.to_le_bytes());
    });
    let r = open(&dir).expect("open checks no record");
    r.file_path(2).expect("file 2 is intact");
    assert!(
        r.file_path(3).is_err(),
        "file 3's path no longer meets file 4's"
    );
    for err in [
        r.file_path(4).expect_err("offset"),
        r.file(4).expect_err("offset"),
        r.files().expect_err("offset"),
        r.verify().expect_err("offset"),
    ] {
        assert!(err.is_damage());
        assert!(names(&err, &dir, FILES_FILE), "{err}");
    }
    assert!(!exercise(&r).is_empty());
}

#[test]
fn a_path_that_is_not_utf8_or_not_relative_is_an_error_naming_paths_bin() {
    for (edit, what) in [(&b"\xff"[..], "not UTF-8"), (&b"../"[..], "climbs out")] {
        let dir = MemDirectory::new();
        write(&dir);
        rewrite(&dir, PATHS_FILE, TableKind::Paths, |p| {
            // "ab/c.rs" is file 3's path.
            let at = p.windows(7).position(|w| w == b"ab/c.rs").expect("path");
            p[at..at + edit.len()].copy_from_slice(edit);
        });
        let r = open(&dir).expect("open checks no path");
        r.file_path(2).expect("file 2 is intact");
        for err in [
            r.file_path(3).expect_err(what),
            r.file(3).expect_err(what),
            r.files().expect_err(what),
            r.verify().expect_err(what),
        ] {
            assert!(err.is_damage());
            assert!(names(&err, &dir, PATHS_FILE), "{what}: {err}");
        }
    }
}

#[test]
fn broken_row_ranges_are_errors_not_panics() {
    let dir = MemDirectory::new();
    write(&dir);
    rewrite(&dir, FILES_FILE, TableKind::Files, |p| {
        // File 3's rows: 3 → u64::MAX - 1 (would overflow and run past the segment).
        let at = 3 * FILE_RECORD_LEN + 8;
        p[at..at + 8].copy_from_slice(&(u64::MAX - 1).to_le_bytes());
    });
    let r = open(&dir).expect("open");
    let err = r.file_rows(3).expect_err("rows");
    assert!(names(&err, &dir, FILES_FILE), "{err}");
    // Its neighbour no longer meets it either.
    assert!(r.file_rows(4).is_err());
    let err = r.chunk(4).expect_err("row 4 is file 3's");
    assert!(names(&err, &dir, FILES_FILE), "{err}");
    assert!(r.files().is_err());
    r.file_rows(0).expect("file 0 is intact");
}

#[test]
fn reserved_bytes_must_be_zero() {
    let dir = MemDirectory::new();
    write(&dir);
    rewrite(&dir, FILES_FILE, TableKind::Files, |p| {
        p[FILE_RECORD_LEN + 44] = 1;
    });
    let r = open(&dir).expect("open");
    let err = r.file_path(1).expect_err("reserved");
    assert!(names(&err, &dir, FILES_FILE), "{err}");
}

#[test]
fn every_damaged_record_byte_is_an_error_or_harmless_never_a_panic() {
    let dir = MemDirectory::new();
    write(&dir);
    let pristine = open(&dir).expect("open").files().expect("files").to_vec();
    let len = 5 * FILE_RECORD_LEN;
    for at in 0..len {
        let dir = MemDirectory::new();
        write(&dir);
        rewrite(&dir, FILES_FILE, TableKind::Files, |p| p[at] ^= 0x10);
        let r = open(&dir).expect("open");
        for err in exercise(&r) {
            assert!(err.is_damage(), "byte {at}: {err}");
        }
        let field = at % FILE_RECORD_LEN;
        match r.files() {
            // Sizes, times and hashes are not checked against anything here.
            Ok(files) => assert!(
                field >= 48 && files != pristine.as_slice(),
                "byte {at} (field offset {field}) went unnoticed"
            ),
            Err(e) => assert!(names(&e, &dir, FILES_FILE) || names(&e, &dir, PATHS_FILE)),
        }
    }
    // A flip under an intact header is what verify's payload checksum catches.
    let dir = MemDirectory::new();
    write(&dir);
    edit_bytes(&dir, FILES_FILE, |b| b[HEADER_LEN + 3] ^= 1);
    let r = open(&dir).expect("open");
    let err = r.verify().expect_err("checksum");
    assert!(matches!(err, StorageError::PayloadChecksum { .. }), "{err}");
    // So does building the list that writers copy from: damage is never carried forward.
    let err = r.files().expect_err("checksum");
    assert!(matches!(err, StorageError::PayloadChecksum { .. }), "{err}");
    assert!(names(&err, &dir, FILES_FILE), "{err}");
}

#[test]
fn truncated_or_missing_file_tables_fail_to_open_naming_the_file() {
    for file in [FILES_FILE, PATHS_FILE] {
        let kind = if file == FILES_FILE {
            TableKind::Files
        } else {
            TableKind::Paths
        };
        // Cut under a valid header: one record fewer than the metadata says.
        let dir = MemDirectory::new();
        write(&dir);
        rewrite(&dir, file, kind, |p| {
            p.truncate(p.len() - kind.record_len(0) as usize)
        });
        let r = open(&dir);
        if file == FILES_FILE {
            let err = r.expect_err("one file short");
            assert!(names(&err, &dir, file), "{err}");
        } else {
            // The last path is one byte short: its file's range runs past the table.
            let r = r.expect("open");
            let err = r.file_path(4).expect_err("short path");
            assert!(names(&err, &dir, FILES_FILE), "{err}");
        }
        // Cut bytes off the file itself.
        cut_and_missing_are_named(file);
    }
}

#[test]
fn format_1_segments_with_the_list_in_metadata_json_still_open() {
    let dir = MemDirectory::new();
    write_in_format(&dir, false);
    let files = open(&dir).expect("open").files().expect("files").to_vec();
    // Turn the segment into format 1: the list in metadata.json, no file tables.
    for f in [FILES_FILE, PATHS_FILE, METADATA_FILE] {
        dir.remove(&name(f)).expect("remove");
    }
    let meta = MetaV1 {
        dimensions: 2,
        rows: 7,
        files: files.clone(),
    };
    let path = dir.location(&name(METADATA_FILE));
    let doc = encode_document_version(&path, "metadata", 1, &meta).expect("encode");
    dir.write_new(&name(METADATA_FILE), &doc).expect("write");
    let r = open(&dir).expect("format 1 opens");
    assert_eq!(r.format_version(), 1);
    assert!(r.is_materialized(), "format 1 is parsed on open");
    assert_eq!(r.files().expect("files"), files.as_slice());
    assert_eq!(r.file_path(1).expect("path"), "a/twö.rs");
    assert_eq!(r.file_rows(3).expect("rows"), 3..6);
    assert_eq!(r.chunk(6).expect("chunk").file, 4);
    assert!(r.file_path(5).is_err());
    r.verify().expect("intact");
    // A format this build does not know is refused, naming the file.
    dir.remove(&name(METADATA_FILE)).expect("remove");
    let doc = encode_document_version(&path, "metadata", 6, &meta).expect("encode");
    dir.write_new(&name(METADATA_FILE), &doc).expect("write");
    let err = open(&dir).expect_err("format 6");
    assert!(matches!(
        err,
        StorageError::UnsupportedVersion {
            found: 6,
            supported: 5,
            ..
        }
    ));
}
