//! Tests of format 4's symbols: a round trip, segments of formats 2 and 3 without them, the
//! writer's checks, and damage to `symbols.bin` and `symtext.bin` (an error naming the file,
//! never a panic).

use super::tests::{
    cut_and_missing_are_named, edit_bytes, exercise, name, names, open, record, rewrite, symbol_of,
    write, write_in_format, SEG,
};
use super::*;

use turboprop_types::{ContentHash, MAX_SYMBOL_BYTES};

use crate::directory::{Directory, FsDirectory, MemDirectory};
use crate::error::StorageError;
use crate::header::HEADER_LEN;
use crate::mmap::ReadMode;
use crate::table::TableKind;

/// The chunk (within its file) of each row of the segment [`write`] writes.
const ROW_CHUNKS: [u32; 7] = [0, 1, 0, 0, 1, 2, 0];

/// The file of each row of that segment.
const ROW_FILES: [usize; 7] = [0, 0, 1, 3, 3, 3, 4];

/// A row of one dimension with `symbol` and `kind`.
pub(super) fn row<'a>(symbol: Option<&'a str>, kind: Option<&'a str>) -> NewRow<'a> {
    NewRow {
        line_start: 1,
        line_end: 1,
        byte_start: 0,
        byte_end: 1,
        hash: ContentHash::of(b"x"),
        vector: &[1.0],
        symbol,
        kind,
        lexical: None,
    }
}

#[test]
fn symbols_and_kinds_round_trip() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fs = FsDirectory::new(tmp.path());
    let mem = MemDirectory::new();
    for dir in [&fs as &dyn Directory, &mem] {
        write(dir);
        for mode in [ReadMode::Mmap, ReadMode::Heap] {
            let r = SegmentReader::open(dir, SEG, mode).expect("open");
            assert_eq!(r.format_version(), SYMBOLS_FORMAT_VERSION);
            for (row, chunk) in ROW_CHUNKS.iter().enumerate() {
                assert_eq!(r.chunk_symbol(row).expect("symbol"), symbol_of(*chunk));
            }
            assert_eq!(
                r.chunk_symbol(0).expect("symbol"),
                (Some("Täble::deal"), Some("method"))
            );
            assert!(r.chunk_symbol(7).is_err());
            r.verify().expect("intact");
            for f in 0..r.file_count() {
                r.verify_file_rows(f).expect("rows intact");
            }
            let on_disk: u64 = dir
                .list(SEG)
                .expect("list")
                .iter()
                .map(|f| dir.file_len(&name(f)).expect("len"))
                .sum();
            assert_eq!(r.bytes_on_disk(), on_disk);
            r.check_intact().expect("intact");
        }
    }
}

#[test]
fn segments_of_formats_2_and_3_open_without_symbols_and_verify() {
    let dir = MemDirectory::new();
    write_in_format(&dir, false);
    assert!(!dir.exists(&name(SYMBOLS_FILE)).expect("exists"));
    let r = open(&dir).expect("format 2 opens");
    assert_eq!(r.format_version(), SEGMENT_FORMAT_VERSION);
    for row in 0..r.rows() {
        assert_eq!(r.chunk_symbol(row).expect("none"), (None, None));
    }
    assert!(r.chunk_symbol(r.rows()).is_err());
    r.verify().expect("intact");
    for f in 0..r.file_count() {
        r.verify_file_rows(f).expect("the rows hash of format 2");
    }

    let dir = MemDirectory::new();
    let spaces = [SpaceMeta {
        key: "m".into(),
        dimensions: 1,
    }];
    let mut w = SegmentWriter::create_without_symbols(&dir, SEG, 1, &spaces).expect("create");
    assert!(
        w.add_file(record("b.rs", 1), [row(Some("f"), None)], &[])
            .is_err(),
        "no symbols before format 4"
    );
    drop(w);
    let mut w =
        SegmentWriter::create_without_symbols(&dir, "seg-00000002", 1, &spaces).expect("create");
    w.add_file_with_spaces(record("a.rs", 1), [row(None, None)], &[], &[&[1.0]])
        .expect("add");
    w.finish().expect("finish");
    let r = SegmentReader::open(&dir, "seg-00000002", ReadMode::Mmap).expect("format 3 opens");
    assert_eq!(r.format_version(), SPACES_FORMAT_VERSION);
    assert_eq!(r.chunk_symbol(0).expect("none"), (None, None));
    r.verify_file_rows(0).expect("the rows hash of format 3");
    r.verify().expect("intact");
}

#[test]
fn the_writer_refuses_bad_symbols_and_kinds_naming_symbols_bin() {
    let longest = "é".repeat(MAX_SYMBOL_BYTES / 2);
    let too_long = "x".repeat(MAX_SYMBOL_BYTES + 1);
    let (k32, k33) = ("k".repeat(32), "k".repeat(33));
    let cases: [(Option<&str>, Option<&str>, bool); 7] = [
        (Some(&longest), Some(&k32), true),
        (None, Some("trait_impl-2"), true),
        (Some(&too_long), None, false),
        (Some(""), None, false),
        (None, Some("Method"), false),
        (None, Some(&k33), false),
        (None, Some("a b"), false),
    ];
    for (symbol, kind, ok) in cases {
        let dir = MemDirectory::new();
        let mut w = SegmentWriter::create(&dir, SEG, 1).expect("create");
        let added = w.add_file(record("a.rs", 1), [row(symbol, kind)], &[]);
        if ok {
            added.expect("valid");
            w.finish().expect("finish");
            let r = open(&dir).expect("open");
            assert_eq!(r.chunk_symbol(0).expect("symbol"), (symbol, kind));
            r.verify_file_rows(0).expect("rows");
        } else {
            let err = added.expect_err("invalid");
            assert!(
                names(&err, &dir, SYMBOLS_FILE),
                "{symbol:?} {kind:?}: {err}"
            );
        }
    }
}

/// Sets field bytes `at..` of the `symbols.bin` record of `row` to `bytes`.
fn set(p: &mut [u8], row: usize, at: usize, bytes: &[u8]) {
    let at = row * 16 + at;
    p[at..at + bytes.len()].copy_from_slice(bytes);
}

#[test]
fn damaged_symbols_are_errors_naming_symbols_bin() {
    type Edit = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, TableKind, usize, Edit)> = vec![
        (
            "a length past the text",
            TableKind::Symbols,
            6,
            Box::new(|p| set(p, 6, 8, &100u16.to_le_bytes())),
        ),
        (
            "a start past the text",
            TableKind::Symbols,
            3,
            Box::new(|p| set(p, 3, 0, &u64::MAX.to_le_bytes())),
        ),
        (
            "a symbol longer than the cap",
            TableKind::Symbols,
            0,
            Box::new(|p| set(p, 0, 8, &2000u16.to_le_bytes())),
        ),
        (
            "a kind longer than the cap",
            TableKind::Symbols,
            0,
            Box::new(|p| set(p, 0, 10, &[33])),
        ),
        (
            "a kind running into the next symbol",
            TableKind::Symbols,
            0,
            Box::new(|p| set(p, 0, 10, &[7])),
        ),
        (
            "reserved bytes",
            TableKind::Symbols,
            2,
            Box::new(|p| set(p, 2, 12, &[1])),
        ),
        (
            "a symbol that is not UTF-8",
            TableKind::SymbolText,
            0,
            Box::new(|p| p[1] = 0xff),
        ),
        (
            "a kind of capitals",
            TableKind::SymbolText,
            0,
            Box::new(|p| p[12] = b'M'),
        ),
    ];
    for (what, kind, bad_row, edit) in cases {
        let dir = MemDirectory::new();
        write(&dir);
        let file = if kind == TableKind::Symbols {
            SYMBOLS_FILE
        } else {
            SYMTEXT_FILE
        };
        rewrite(&dir, file, kind, |p| edit(p));
        let r = open(&dir).expect("open reads no symbol");
        let err = r.chunk_symbol(bad_row).expect_err(what);
        assert!(err.is_damage(), "{what}: {err}");
        assert!(names(&err, &dir, SYMBOLS_FILE), "{what}: {err}");
        let err = r
            .verify_file_rows(ROW_FILES[bad_row])
            .expect_err("rows hash");
        assert!(err.is_damage(), "{what}: {err}");
        for err in exercise(&r) {
            assert!(err.is_damage(), "{what}: {err}");
        }
        // Rows of other files are intact.
        r.chunk_symbol(if bad_row == 1 { 0 } else { 1 })
            .expect("another row");
    }
}

#[test]
fn every_damaged_symbol_record_byte_is_caught_or_harmless_never_a_panic() {
    let dir = MemDirectory::new();
    write(&dir);
    let r = open(&dir).expect("open");
    let pristine: Vec<_> = (0..7)
        .map(|row| {
            r.chunk_symbol(row)
                .map(|(s, k)| (s.map(str::to_owned), k.map(str::to_owned)))
        })
        .collect::<std::result::Result<_, _>>()
        .expect("symbols");
    for at in 0..7 * 16 {
        let dir = MemDirectory::new();
        write(&dir);
        rewrite(&dir, SYMBOLS_FILE, TableKind::Symbols, |p| p[at] ^= 0x10);
        let r = open(&dir).expect("open");
        let errors = exercise(&r);
        for err in &errors {
            assert!(err.is_damage(), "byte {at}: {err}");
        }
        if errors.len() <= 2 {
            // Only the row and file past the end: the change must be one of offsets alone.
            let now: Vec<_> = (0..7)
                .map(|row| {
                    r.chunk_symbol(row)
                        .map(|(s, k)| (s.map(str::to_owned), k.map(str::to_owned)))
                })
                .collect::<std::result::Result<_, _>>()
                .expect("symbols");
            assert_eq!(now, pristine, "byte {at} went unnoticed");
        }
    }
}

#[test]
fn verify_catches_a_flipped_symbol_byte() {
    for (file, at) in [(SYMTEXT_FILE, 5), (SYMBOLS_FILE, 6 * 16 + 8)] {
        let dir = MemDirectory::new();
        write(&dir);
        edit_bytes(&dir, file, |b| b[HEADER_LEN + at] ^= 1);
        let r = open(&dir).expect("open");
        let err = r.verify().expect_err("checksum");
        assert!(matches!(err, StorageError::PayloadChecksum { .. }), "{err}");
        assert!(names(&err, &dir, file), "{err}");
        let row = if file == SYMTEXT_FILE { 0 } else { 6 };
        let err = r.verify_file_rows(ROW_FILES[row]).expect_err("rows hash");
        assert!(names(&err, &dir, file), "{err}");
    }
    // A text rewritten under a valid checksum: only the rows hash can tell.
    let dir = MemDirectory::new();
    write(&dir);
    rewrite(&dir, SYMTEXT_FILE, TableKind::SymbolText, |p| p[8] = b'D');
    let r = open(&dir).expect("open");
    assert_eq!(r.chunk_symbol(0).expect("valid").0, Some("Täble::Deal"));
    r.verify().expect("checksums hold");
    assert!(
        r.verify_file_rows(0).is_err(),
        "the rows hash covers symbols"
    );
    r.verify_file_rows(1).expect("file 1 is intact");
}

#[test]
fn truncated_short_or_missing_symbol_tables_fail_to_open_naming_the_file() {
    for (file, kind) in [
        (SYMBOLS_FILE, TableKind::Symbols),
        (SYMTEXT_FILE, TableKind::SymbolText),
    ] {
        // One record short under a valid header.
        let dir = MemDirectory::new();
        write(&dir);
        rewrite(&dir, file, kind, |p| {
            p.truncate(p.len() - kind.record_len(0) as usize)
        });
        let err = open(&dir).expect_err("one record short");
        assert!(err.is_damage() && names(&err, &dir, file), "{err}");
        // Bytes cut off the file itself.
        cut_and_missing_are_named(file);
    }
}
