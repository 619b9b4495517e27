//! Tests of format 5's exact lexical space: round trips on disk and in memory, the writer's
//! refusals, the metadata's `lexical` object, damage to `lexicon.bin`, `lextext.bin`,
//! `postings.bin` and `lengths.bin` (an error naming the file, never a panic), and property
//! tests of both.

use std::collections::BTreeMap;
use std::ops::Range;

use proptest::prelude::*;

use super::lexical::LexicalMeta;
use super::records::MetaV2;
use super::tests::{
    cut_and_missing_are_named_in, edit_bytes, name, names, open, record, rewrite, SEG,
};
use super::*;

use crate::directory::{Directory, FsDirectory, MemDirectory};
use crate::document::encode_document_version;
use crate::error::{Result, StorageError};
use crate::header::HEADER_LEN;
use crate::mmap::ReadMode;
use crate::table::TableKind;

/// A row's terms and length, owned.
type Row = (Vec<(String, f32)>, f32);

/// Files of a segment: each one's path and rows.
type Files = Vec<(String, Range<usize>)>;

/// The lexical files and their kinds.
const TABLES: [(&str, TableKind); 4] = [
    (LEXICON_FILE, TableKind::Lexicon),
    (LEXTEXT_FILE, TableKind::LexText),
    (POSTINGS_FILE, TableKind::Postings),
    (LENGTHS_FILE, TableKind::Lengths),
];

/// The rows of the segment [`write`] writes: terms sorted by bytes (`Zürich` before `deal`),
/// a row without terms, a term of the greatest length.
fn fixture() -> Vec<Row> {
    let t = |terms: &[(&str, f32)]| terms.iter().map(|&(s, f)| (s.to_owned(), f)).collect();
    vec![
        (t(&[("deal", 2.0), ("table", 1.0)]), 3.0),
        (t(&[("Zürich", 1.0), ("deal", 0.5)]), 1.5),
        (vec![], 0.0),
        (
            vec![("x".repeat(MAX_TERM_BYTES), 1.0), ("y".to_owned(), 7.0)],
            8.0,
        ),
        (t(&[("deal", 1.0), ("pot", 3.0), ("table", 2.0)]), 6.0),
        (t(&[("pot", 1.0)]), 0.25),
    ]
}

/// The files of that segment and their rows.
fn fixture_files() -> Files {
    [
        ("a.rs", 0..2),
        ("b.rs", 2..5),
        ("c.rs", 5..6),
        ("empty.rs", 6..6),
    ]
    .into_iter()
    .map(|(p, r)| (p.to_owned(), r))
    .collect()
}

/// A row of one dimension with `lexical` (the symbols' tests' row, without a symbol).
fn new_row(lexical: Option<LexicalRow<'_>>) -> NewRow<'_> {
    NewRow {
        lexical,
        ..super::tests_symbols::row(None, None)
    }
}

/// Writes a format-5 segment `seg` of `rows`, split into `files` (path, rows).
fn write_rows(
    dir: &dyn Directory,
    seg: &str,
    rows: &[Row],
    files: &[(String, Range<usize>)],
) -> Result<SegmentSummary> {
    let borrowed: Vec<Vec<(&str, f32)>> = rows
        .iter()
        .map(|(terms, _)| terms.iter().map(|(s, f)| (s.as_str(), *f)).collect())
        .collect();
    let mut w = SegmentWriter::create_lexical(dir, seg, 1, &[])?;
    for (path, range) in files {
        let rows = range.clone().map(|i| {
            new_row(Some(LexicalRow {
                terms: &borrowed[i],
                length: rows[i].1,
            }))
        });
        w.add_file(record(path, 10), rows, &[])?;
    }
    w.finish()
}

/// The segment of [`fixture`] as [`SEG`].
fn write(dir: &dyn Directory) {
    write_rows(dir, SEG, &fixture(), &fixture_files()).expect("write");
}

/// Each term's postings, sorted by term bytes.
fn postings_of(rows: &[Row]) -> BTreeMap<&str, Vec<(u32, f32)>> {
    let mut out: BTreeMap<&str, Vec<(u32, f32)>> = BTreeMap::new();
    for (row, (terms, _)) in rows.iter().enumerate() {
        for (term, tf) in terms {
            out.entry(term.as_str())
                .or_default()
                .push((row as u32, *tf));
        }
    }
    out
}

/// Checks that `r` holds exactly `rows`, every lookup, term, length and inverted row, and
/// that it verifies.
fn check_round_trip(r: &SegmentReader, rows: &[Row]) {
    assert_eq!(r.format_version(), LEXICAL_FORMAT_VERSION);
    let lexical = r.lexical().expect("format 5");
    let expected = postings_of(rows);
    assert_eq!(lexical.terms(), expected.len());
    let postings: usize = expected.values().map(Vec::len).sum();
    assert_eq!(lexical.postings_len(), postings as u64);
    let total: f64 = rows.iter().map(|(_, l)| f64::from(*l)).sum();
    assert_eq!(lexical.total_length(), total);
    for (ordinal, (term, list)) in expected.iter().enumerate() {
        assert_eq!(lexical.term(ordinal).expect("term"), *term);
        let got = lexical.lookup(term).expect("lookup").expect("present");
        assert_eq!((got.len(), got.is_empty()), (list.len(), false));
        assert_eq!(got.iter().collect::<Vec<_>>(), *list);
        assert_eq!(got.get(0), list.first().copied());
        assert_eq!(got.get(list.len()), None);
    }
    assert!(lexical.term(expected.len()).is_err());
    let lengths: Vec<f32> = rows.iter().map(|(_, l)| *l).collect();
    assert_eq!(lexical.lengths(), lengths.as_slice());
    assert_eq!(lexical.length(rows.len()), None);
    let forward = lexical.forward().expect("forward");
    assert_eq!(forward.rows(), rows.len());
    for (i, (terms, length)) in rows.iter().enumerate() {
        let want: Vec<(&str, f32)> = terms.iter().map(|(s, f)| (s.as_str(), *f)).collect();
        assert_eq!(forward.terms_of(i), want, "row {i}");
        assert_eq!(forward.row(i).count(), terms.len());
        assert_eq!(forward.length(i), Some(*length));
    }
    assert!(forward.terms_of(rows.len()).is_empty());
    assert_eq!(forward.length(rows.len()), None);
    lexical.verify().expect("lexical space intact");
    r.verify().expect("segment intact");
    for f in 0..r.file_count() {
        r.verify_file_rows(f).expect("rows intact");
    }
}

/// Reads everything of the lexical space of `r` in range (lookups of `terms`, every term,
/// the inversion, every file's rows hash, verify) and returns the errors; none may panic.
fn exercise(r: &SegmentReader, terms: &[&str]) -> Vec<StorageError> {
    let mut errors = Vec::new();
    let Some(lexical) = r.lexical() else {
        return errors;
    };
    for term in terms {
        match lexical.lookup(term) {
            Ok(Some(list)) => {
                let _ = (list.iter().count(), list.get(0), list.get(list.len()));
            }
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    for ordinal in 0..lexical.terms() {
        errors.extend(lexical.term(ordinal).err());
    }
    match lexical.forward() {
        Ok(forward) => {
            for row in 0..=forward.rows() {
                let _ = (forward.terms_of(row), forward.length(row));
            }
        }
        Err(e) => errors.push(e),
    }
    let _ = lexical.lengths().iter().sum::<f32>();
    errors.extend(lexical.verify().err());
    for f in 0..r.file_count() {
        errors.extend(r.verify_file_rows(f).err());
    }
    errors.extend(r.verify().err());
    errors
}

/// The terms of [`fixture`], and one that is absent.
fn fixture_terms() -> Vec<String> {
    let mut terms: Vec<String> = postings_of(&fixture())
        .keys()
        .map(|t| (*t).to_owned())
        .collect();
    terms.push("nope".to_owned());
    terms
}

#[test]
fn a_lexical_space_round_trips_on_disk_and_in_memory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fs = FsDirectory::new(tmp.path());
    let mem = MemDirectory::new();
    for dir in [&fs as &dyn Directory, &mem] {
        let summary = write_rows(dir, SEG, &fixture(), &fixture_files()).expect("write");
        assert_eq!((summary.rows, summary.files), (6, 4));
        let files = dir.list(SEG).expect("list");
        for file in LEXICAL_FILES.iter().chain(&SYMBOL_FILES) {
            assert!(files.iter().any(|f| f == file), "{file} in {files:?}");
        }
        let on_disk: u64 = files
            .iter()
            .map(|f| dir.file_len(&name(f)).expect("len"))
            .sum();
        assert_eq!(summary.bytes, on_disk);
        for mode in [ReadMode::Mmap, ReadMode::Heap] {
            let r = SegmentReader::open(dir, SEG, mode).expect("open");
            check_round_trip(&r, &fixture());
            let lexical = r.lexical().expect("lexical");
            let long = "x".repeat(MAX_TERM_BYTES + 1);
            for absent in ["", "dea", "deals", "Deal", "a", "zzz", &long] {
                assert!(
                    lexical.lookup(absent).expect("lookup").is_none(),
                    "{absent}"
                );
            }
            let deal = lexical.lookup("deal").expect("lookup").expect("deal");
            assert_eq!(
                deal.iter().collect::<Vec<_>>(),
                [(0, 2.0), (1, 0.5), (4, 1.0)]
            );
            assert_eq!(lexical.term(0).expect("first"), "Zürich");
            assert_eq!(lexical.total_length(), 18.75);
            assert!(r.verify_file_rows(4).is_err(), "no file 4");
            assert_eq!(r.bytes_on_disk(), on_disk);
            r.check_intact().expect("intact");
            assert_eq!(r.chunk_symbol(0).expect("symbol"), (None, None));
        }
    }
}

#[test]
fn segments_with_no_terms_open_and_verify() {
    let cases: [(Vec<Row>, Files); 2] = [
        (vec![], vec![]),
        (
            vec![(vec![], 0.0), (vec![], 2.5)],
            vec![("a.rs".to_owned(), 0..2)],
        ),
    ];
    for (rows, files) in cases {
        let dir = MemDirectory::new();
        write_rows(&dir, SEG, &rows, &files).expect("write");
        let r = open(&dir).expect("open");
        check_round_trip(&r, &rows);
        let lexical = r.lexical().expect("lexical");
        assert_eq!((lexical.terms(), lexical.postings_len()), (0, 0));
        assert!(lexical.lookup("a").expect("lookup").is_none());
    }
}

#[test]
fn formats_before_5_have_no_lexical_space_and_refuse_lexical_rows() {
    let dir = MemDirectory::new();
    super::tests::write(&dir);
    let r = open(&dir).expect("format 4");
    assert_eq!(r.format_version(), SYMBOLS_FORMAT_VERSION);
    assert!(r.lexical().is_none());
    r.verify().expect("format 4 verifies");
    let terms = [("a", 1.0)];
    let lexical = LexicalRow {
        terms: &terms,
        length: 1.0,
    };
    let writers = [
        SegmentWriter::create(&dir, "seg-00000002", 1),
        SegmentWriter::create_without_symbols(&dir, "seg-00000003", 1, &[]),
    ];
    for w in writers {
        let err = w
            .expect("create")
            .add_file(record("src/a.rs", 1), [new_row(Some(lexical))], &[])
            .expect_err("no lexical space");
        assert!(err.is_damage(), "{err}");
        assert!(err.to_string().contains("src/a.rs"), "{err}");
    }
}

#[test]
fn the_writer_refuses_bad_lexical_rows_naming_the_file() {
    let long = "é".repeat(MAX_TERM_BYTES.div_ceil(2));
    type Case<'a> = (&'a str, Vec<(&'a str, f32)>, f32);
    let cases: Vec<Case<'_>> = vec![
        ("unsorted", vec![("b", 1.0), ("a", 1.0)], 1.0),
        ("duplicate", vec![("a", 1.0), ("a", 2.0)], 1.0),
        ("an empty term", vec![("", 1.0)], 1.0),
        ("a term of 256 bytes", vec![("a", 1.0), (&long, 1.0)], 1.0),
        ("tf 0", vec![("a", 0.0)], 1.0),
        ("tf < 0", vec![("a", -1.0)], 1.0),
        ("tf NaN", vec![("a", f32::NAN)], 1.0),
        ("tf infinite", vec![("a", f32::INFINITY)], 1.0),
        ("length NaN", vec![("a", 1.0)], f32::NAN),
        ("length < 0", vec![("a", 1.0)], -1.0),
        ("length infinite", vec![], f32::INFINITY),
    ];
    let ok = [("ok", 1.0)];
    for (what, terms, length) in cases {
        let dir = MemDirectory::new();
        let mut w = SegmentWriter::create_lexical(&dir, SEG, 1, &[]).expect("create");
        let rows = [
            new_row(Some(LexicalRow {
                terms: &ok,
                length: 1.0,
            })),
            new_row(Some(LexicalRow {
                terms: &terms,
                length,
            })),
        ];
        let err = w
            .add_file(record("src/bad.rs", 2), rows, &[])
            .expect_err(what);
        assert!(err.is_damage(), "{what}: {err}");
        assert!(names(&err, &dir, LEXICON_FILE), "{what}: {err}");
        assert!(err.to_string().contains("src/bad.rs"), "{what}: {err}");
    }
    let dir = MemDirectory::new();
    let mut w = SegmentWriter::create_lexical(&dir, SEG, 1, &[]).expect("create");
    let err = w
        .add_file(record("src/none.rs", 1), [new_row(None)], &[])
        .expect_err("a row without terms in a lexical segment");
    assert!(names(&err, &dir, LEXICON_FILE), "{err}");
    assert!(err.to_string().contains("src/none.rs"), "{err}");
    // The edges are accepted.
    let dir = MemDirectory::new();
    let longest = "é".repeat(MAX_TERM_BYTES / 2) + "a";
    let rows = vec![(
        vec![("A".to_owned(), f32::MIN_POSITIVE), (longest, f32::MAX)],
        0.0,
    )];
    write_rows(&dir, SEG, &rows, &[("a.rs".to_owned(), 0..1)]).expect("edges");
    check_round_trip(&open(&dir).expect("open"), &rows);
}

/// Replaces the segment's `metadata.json` with one of segment format `format` and
/// `lexical`, the rest as [`write`] writes it.
fn put_metadata(dir: &dyn Directory, format: u32, lexical: Option<LexicalMeta>) {
    let meta = MetaV2 {
        dimensions: 1,
        rows: 6,
        file_count: 4,
        spaces: Vec::new(),
        lexical,
    };
    let path = dir.location(&name(METADATA_FILE));
    let doc = encode_document_version(&path, "metadata", format, &meta).expect("encode");
    dir.remove(&name(METADATA_FILE)).expect("remove");
    dir.write_new(&name(METADATA_FILE), &doc).expect("write");
}

#[test]
fn the_metadata_lexical_object_must_match_the_format_and_the_tables() {
    let intact = LexicalMeta {
        terms: 6,
        postings: 10,
        total_length: 18.75,
    };
    let dir = MemDirectory::new();
    write(&dir);
    put_metadata(&dir, LEXICAL_FORMAT_VERSION, Some(intact));
    open(&dir)
        .expect("the same metadata")
        .verify()
        .expect("intact");
    let cases = [
        (LEXICAL_FORMAT_VERSION, None, METADATA_FILE),
        (SYMBOLS_FORMAT_VERSION, Some(intact), METADATA_FILE),
        (
            LEXICAL_FORMAT_VERSION,
            Some(LexicalMeta { terms: 7, ..intact }),
            LEXICON_FILE,
        ),
        (
            LEXICAL_FORMAT_VERSION,
            Some(LexicalMeta {
                postings: 11,
                ..intact
            }),
            POSTINGS_FILE,
        ),
        (
            LEXICAL_FORMAT_VERSION,
            Some(LexicalMeta {
                total_length: -1.0,
                ..intact
            }),
            METADATA_FILE,
        ),
        (
            LEXICAL_FORMAT_VERSION,
            Some(LexicalMeta {
                terms: 11,
                ..intact
            }),
            METADATA_FILE,
        ),
    ];
    for (format, lexical, file) in cases {
        put_metadata(&dir, format, lexical);
        let err = open(&dir).expect_err("metadata and tables disagree");
        assert!(err.is_damage() && names(&err, &dir, file), "{err}");
    }
    // A total length off by the least amount opens (nothing is scanned) but fails verify.
    put_metadata(
        &dir,
        LEXICAL_FORMAT_VERSION,
        Some(LexicalMeta {
            total_length: f64::from_bits(18.75f64.to_bits() + 1),
            ..intact
        }),
    );
    let r = open(&dir).expect("open");
    let err = r.verify().expect_err("total length");
    assert!(names(&err, &dir, LENGTHS_FILE), "{err}");
}

#[test]
fn a_flipped_byte_in_any_lexical_file_is_caught_by_verify() {
    let terms = fixture_terms();
    let terms: Vec<&str> = terms.iter().map(String::as_str).collect();
    for file in LEXICAL_FILES {
        let dir = MemDirectory::new();
        write(&dir);
        edit_bytes(&dir, file, |b| b[HEADER_LEN + 1] ^= 1);
        let r = open(&dir).expect("open reads no record");
        let err = r.verify().expect_err("checksum");
        assert!(matches!(err, StorageError::PayloadChecksum { .. }), "{err}");
        assert!(names(&err, &dir, file), "{err}");
        assert!(
            (0..r.file_count()).any(|f| r.verify_file_rows(f).is_err()),
            "{file}: the rows hash or the records catch it"
        );
        for err in exercise(&r, &terms) {
            assert!(err.is_damage(), "{file}: {err}");
        }
    }
}

#[test]
fn short_truncated_or_missing_lexical_files_fail_to_open_naming_the_file() {
    for (file, kind) in TABLES {
        // One record short under a valid header.
        let dir = MemDirectory::new();
        write(&dir);
        rewrite(&dir, file, kind, |p| {
            p.truncate(p.len() - kind.record_len(0) as usize)
        });
        let err = open(&dir).expect_err("one record short");
        assert!(err.is_damage() && names(&err, &dir, file), "{file}: {err}");
        // Bytes cut off the file itself, then the file gone.
        cut_and_missing_are_named_in(file, write);
    }
}

/// Sets bytes `at..` of record `record` (of `len` bytes) of a payload to `bytes`.
fn set(p: &mut [u8], len: usize, record: usize, at: usize, bytes: &[u8]) {
    let at = record * len + at;
    p[at..at + bytes.len()].copy_from_slice(bytes);
}

#[test]
fn a_damaged_lexicon_record_is_an_error_on_lookup_forward_and_verify() {
    // Term 3 ("table") is the first a binary search over the 6 terms reads.
    type Edit = fn(&mut Vec<u8>);
    let cases: [(&str, Edit); 7] = [
        ("text past the end", |p| {
            set(p, 16, 3, 0, &u32::MAX.to_le_bytes())
        }),
        ("an empty text", |p| set(p, 16, 3, 4, &0u16.to_le_bytes())),
        ("a text of 300 bytes", |p| {
            set(p, 16, 3, 4, &300u16.to_le_bytes())
        }),
        ("reserved bytes", |p| set(p, 16, 3, 6, &[1])),
        ("postings past the end", |p| {
            set(p, 16, 3, 8, &1000u32.to_le_bytes())
        }),
        ("no postings", |p| set(p, 16, 3, 12, &0u32.to_le_bytes())),
        ("too many postings", |p| {
            set(p, 16, 3, 12, &u32::MAX.to_le_bytes())
        }),
    ];
    for (what, edit) in cases {
        let dir = MemDirectory::new();
        write(&dir);
        rewrite(&dir, LEXICON_FILE, TableKind::Lexicon, edit);
        let r = open(&dir).expect("open reads no record");
        let lexical = r.lexical().expect("lexical");
        for err in [
            lexical.lookup("table").expect_err(what),
            lexical.forward().expect_err(what),
            lexical.verify().expect_err(what),
            r.verify().expect_err(what),
            r.verify_file_rows(0).expect_err(what),
        ] {
            assert!(err.is_damage(), "{what}: {err}");
            assert!(names(&err, &dir, LEXICON_FILE), "{what}: {err}");
        }
    }
}

#[test]
fn damaged_postings_texts_and_lengths_are_caught_by_forward_and_verify() {
    // Postings: "Zürich" (row 1), then "deal" (rows 0, 1, 4) from posting 1.
    type Edit = fn(&mut Vec<u8>);
    let cases: [(&str, &str, TableKind, Edit, &str); 11] = [
        (
            "a row past the segment",
            POSTINGS_FILE,
            TableKind::Postings,
            |p| set(p, 8, 1, 0, &6u32.to_le_bytes()),
            POSTINGS_FILE,
        ),
        (
            "rows out of order",
            POSTINGS_FILE,
            TableKind::Postings,
            |p| set(p, 8, 2, 0, &0u32.to_le_bytes()),
            POSTINGS_FILE,
        ),
        (
            "tf 0",
            POSTINGS_FILE,
            TableKind::Postings,
            |p| set(p, 8, 0, 4, &0f32.to_le_bytes()),
            POSTINGS_FILE,
        ),
        (
            "tf < 0",
            POSTINGS_FILE,
            TableKind::Postings,
            |p| set(p, 8, 0, 4, &(-1f32).to_le_bytes()),
            POSTINGS_FILE,
        ),
        (
            "tf NaN",
            POSTINGS_FILE,
            TableKind::Postings,
            |p| set(p, 8, 0, 4, &f32::NAN.to_le_bytes()),
            POSTINGS_FILE,
        ),
        (
            "tf infinite",
            POSTINGS_FILE,
            TableKind::Postings,
            |p| set(p, 8, 0, 4, &f32::INFINITY.to_le_bytes()),
            POSTINGS_FILE,
        ),
        (
            "a length NaN",
            LENGTHS_FILE,
            TableKind::Lengths,
            |p| set(p, 4, 2, 0, &f32::NAN.to_le_bytes()),
            LENGTHS_FILE,
        ),
        (
            "a length < 0",
            LENGTHS_FILE,
            TableKind::Lengths,
            |p| set(p, 4, 2, 0, &(-1f32).to_le_bytes()),
            LENGTHS_FILE,
        ),
        (
            "a term not UTF-8",
            LEXTEXT_FILE,
            TableKind::LexText,
            |p| p[1] = 0xff,
            LEXTEXT_FILE,
        ),
        (
            "terms out of order",
            LEXTEXT_FILE,
            TableKind::LexText,
            |p| {
                // "deal" becomes "zeal", after "pot".
                let at = p.windows(4).position(|w| w == b"deal").expect("deal");
                p[at] = b'z';
            },
            LEXICON_FILE,
        ),
        (
            "reserved bytes of term 0",
            LEXICON_FILE,
            TableKind::Lexicon,
            |p| set(p, 16, 0, 6, &[0, 1]),
            LEXICON_FILE,
        ),
    ];
    for (what, file, kind, edit, named) in cases {
        let dir = MemDirectory::new();
        write(&dir);
        rewrite(&dir, file, kind, edit);
        let r = open(&dir).expect("open reads no record");
        let lexical = r.lexical().expect("lexical");
        for err in [
            lexical.forward().expect_err(what),
            lexical.verify().expect_err(what),
            r.verify().expect_err(what),
        ] {
            assert!(err.is_damage(), "{what}: {err}");
            assert!(names(&err, &dir, named), "{what}: {err}");
        }
        assert!(
            (0..r.file_count()).any(|f| r.verify_file_rows(f).is_err()),
            "{what}"
        );
    }
    // A lookup does not check the postings it returns: the caller does.
    let dir = MemDirectory::new();
    write(&dir);
    rewrite(&dir, POSTINGS_FILE, TableKind::Postings, |p| {
        set(p, 8, 1, 0, &6u32.to_le_bytes())
    });
    let r = open(&dir).expect("open");
    let deal = r
        .lexical()
        .expect("lexical")
        .lookup("deal")
        .expect("lookup");
    assert_eq!(deal.and_then(|d| d.get(0)), Some((6, 2.0)));
}

#[test]
fn a_changed_frequency_or_length_under_valid_checksums_is_caught_by_the_rows_hash() {
    // The tf of "pot" (postings 4 and 5: rows 4 and 5) in row 4, of b.rs, from 3 to 4.
    let dir = MemDirectory::new();
    write(&dir);
    rewrite(&dir, POSTINGS_FILE, TableKind::Postings, |p| {
        assert_eq!(&p[4 * 8..4 * 8 + 8], &[4, 0, 0, 0, 0, 0, 0x40, 0x40]);
        set(p, 8, 4, 4, &4f32.to_le_bytes())
    });
    let r = open(&dir).expect("open");
    r.verify()
        .expect("every record is valid and the checksums hold");
    let err = r
        .verify_file_rows(1)
        .expect_err("the rows hash covers frequencies");
    assert!(err.is_damage(), "{err}");
    for f in [0, 2, 3] {
        r.verify_file_rows(f).expect("other files are intact");
    }
    // Row 5's length (c.rs) from 0.25 to 0.5: verify's total and the rows hash both see it.
    let dir = MemDirectory::new();
    write(&dir);
    rewrite(&dir, LENGTHS_FILE, TableKind::Lengths, |p| {
        set(p, 4, 5, 0, &0.5f32.to_le_bytes())
    });
    let r = open(&dir).expect("open");
    let err = r.verify().expect_err("total length");
    assert!(names(&err, &dir, LENGTHS_FILE), "{err}");
    assert!(
        r.verify_file_rows(2).is_err(),
        "the rows hash covers lengths"
    );
    r.verify_file_rows(0).expect("a.rs is intact");
}

#[test]
fn every_flipped_lexical_payload_byte_is_caught_never_a_panic() {
    let terms = fixture_terms();
    let terms: Vec<&str> = terms.iter().map(String::as_str).collect();
    for (file, kind) in TABLES {
        let len = {
            let dir = MemDirectory::new();
            write(&dir);
            dir.file_len(&name(file)).expect("len") as usize - HEADER_LEN
        };
        for at in 0..len {
            for bit in [0x01, 0x80] {
                let dir = MemDirectory::new();
                write(&dir);
                rewrite(&dir, file, kind, |p| p[at] ^= bit);
                let r = open(&dir).expect("open reads no record");
                let errors = exercise(&r, &terms);
                assert!(
                    !errors.is_empty(),
                    "{file} byte {at} bit {bit:#x} went unnoticed"
                );
                for err in errors {
                    assert!(err.is_damage(), "{file} byte {at}: {err}");
                }
            }
        }
    }
}

/// Rows of random terms (a few letters, some non-ASCII), frequencies and lengths, in up
/// to 4 files of up to 4 rows.
fn files_strategy() -> impl Strategy<Value = Vec<Vec<Row>>> {
    let terms = prop::collection::btree_map("[a-cé_]{1,4}", 0.001f32..1000.0, 0..5);
    let row = (terms, 0.0f32..500.0).prop_map(|(t, l)| (t.into_iter().collect(), l));
    prop::collection::vec(prop::collection::vec(row, 0..5), 0..5)
}

/// Flattens `files` into rows and (path, rows) ranges.
fn flatten(files: Vec<Vec<Row>>) -> (Vec<Row>, Files) {
    let mut rows = Vec::new();
    let mut ranges = Vec::new();
    for (i, file) in files.into_iter().enumerate() {
        let start = rows.len();
        rows.extend(file);
        ranges.push((format!("f{i}.rs"), start..rows.len()));
    }
    (rows, ranges)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_rows_round_trip_and_verify(files in files_strategy()) {
        let (rows, files) = flatten(files);
        let dir = MemDirectory::new();
        write_rows(&dir, SEG, &rows, &files).expect("write");
        check_round_trip(&open(&dir).expect("open"), &rows);
    }

    #[test]
    fn random_flips_in_lexical_files_are_errors_never_panics(
        files in files_strategy(),
        file in 0..4usize,
        at in any::<prop::sample::Index>(),
        bit in 0..8u32,
        valid_checksum in any::<bool>(),
    ) {
        let (rows, files) = flatten(files);
        let dir = MemDirectory::new();
        write_rows(&dir, SEG, &rows, &files).expect("write");
        let (file, kind) = TABLES[file];
        let flip = |b: &mut Vec<u8>| {
            if !b.is_empty() {
                let i = at.index(b.len());
                b[i] ^= 1 << bit;
            }
        };
        if valid_checksum {
            rewrite(&dir, file, kind, flip);
        } else {
            edit_bytes(&dir, file, flip);
        }
        let mut terms: Vec<&str> = postings_of(&rows).into_keys().collect();
        terms.push("zzz");
        match open(&dir) {
            Err(err) => prop_assert!(err.is_damage(), "{}", err),
            Ok(r) => {
                for err in exercise(&r, &terms) {
                    prop_assert!(err.is_damage(), "{}", err);
                }
            }
        }
    }
}
