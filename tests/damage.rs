//! Damage is never reported as health (issue 13, findings 11, 12 and 13), tested with the real
//! `tp` binary in a temporary copy of the poker fixture per test:
//!
//! - `tp index` finds what search and verify would find, says so, and repairs it (the
//!   damaged segment is dropped and its files indexed again), never "index is up to date"
//!   over damage, never carrying damage into the next generation;
//! - a manifest naming a segment twice is damage, not every hit printed twice;
//! - NaN and infinite vectors behind valid checksums are damage, named by `tp verify` and by
//!   search, not a silent empty answer;
//! - every error that means damage names the file and ends with the way out;
//! - text output escapes control characters from file names and content; JSON stays exact.

// Tests fail loudly; `unwrap` on a test's own set-up is the clearest way to say so.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use turboprop::storage::{payload_hash, Header, HEADER_LEN};

mod common;
use common::*;

/// The way out every damage error must end with.
const WAY_OUT: &str =
    "run tp index to repair the index (tp index --rebuild rebuilds all of it; source files are not touched)";

/// A file added after the poker fixture was indexed: the next `tp index` puts it alone in a
/// second segment.
const EXTRA: (&str, &str) = (
    "python/poker/rake.py",
    "def take_rake(pot, percent, cap):\n    \"\"\"The house keeps a percentage of every pot, up to a cap.\"\"\"\n    return min(pot * percent // 100, cap)\n",
);

/// A query whose best hit is [`EXTRA`].
const EXTRA_QUERY: &str = "house keeps a percentage of every pot up to a cap";

/// The poker fixture indexed in two segments: the fixture's, then one holding only
/// [`EXTRA`]. Returns the sandbox and the second segment's folder.
fn two_segments() -> (Sandbox, PathBuf) {
    let sb = Sandbox::indexed_poker();
    let first = only_segment(&sb);
    sb.write(EXTRA.0, EXTRA.1);
    sb.tp(&["index"]).ok();
    let second: Vec<PathBuf> = segments(&sb).into_iter().filter(|s| *s != first).collect();
    assert_eq!(second.len(), 1, "expected a second segment: {second:?}");
    (sb, second.into_iter().next().unwrap())
}

/// The segment folders of the index, in name order.
fn segments(sb: &Sandbox) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = fs::read_dir(sb.index_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.file_name().unwrap().to_string_lossy().starts_with("seg-"))
        .collect();
    segs.sort();
    segs
}

/// Rewrites the payload of the binary file `path` with `change`, then stores the payload's
/// checksum in the header again: damage that only the meaning of the bytes can reveal.
fn rewrite_payload(path: &Path, change: impl FnOnce(&mut [u8])) {
    let mut bytes = fs::read(path).unwrap();
    change(&mut bytes[HEADER_LEN..]);
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
    let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
    let header = Header {
        magic: bytes[0..8].try_into().unwrap(),
        version: u32_at(8),
        width: u32_at(12),
        count: u64_at(16),
        payload_len: u64_at(24),
        payload_hash: payload_hash(&bytes[HEADER_LEN..]),
        extra: u64_at(48),
    };
    bytes[..HEADER_LEN].copy_from_slice(&header.encode());
    fs::write(path, bytes).unwrap();
}

/// Asserts an error line names `file` and ends with the way out.
fn assert_damage_line(line: &str, file: &str) {
    assert!(line.contains(file), "the error must name {file}: {line}");
    assert!(
        line.ends_with(WAY_OUT),
        "the error must end with the way out: {line}"
    );
}

/// Asserts `tp index` found damage naming `file`, repaired it without calling the index up
/// to date, and left an index that `tp verify` calls intact. Returns its stderr.
fn assert_index_repairs(sb: &Sandbox, file: &str) -> String {
    let index = sb.tp(&["index"]).ok();
    let warned = index
        .stderr
        .lines()
        .any(|l| l.starts_with("warning:") && l.contains(file));
    assert!(
        warned,
        "tp index must say what is damaged:\n{}",
        index.stderr
    );
    assert!(
        !index.stderr.contains("up to date"),
        "tp index called a damaged index up to date:\n{}",
        index.stderr
    );
    sb.tp(&["verify"]).ok();
    let again = sb.tp(&["index"]).ok();
    assert!(again.stderr.contains("up to date"), "{}", again.stderr);
    index.stderr
}

/// Finding 11: a damaged chunk record. Search fails naming `chunks.bin` with the way out;
/// `tp index` finds the damage instead of saying "index is up to date", drops only the
/// damaged segment and embeds only its file again; the answers are then those of before.
#[test]
fn index_repairs_a_damaged_chunk_record_instead_of_calling_it_up_to_date() {
    let (sb, second) = two_segments();
    let query = ["search", EXTRA_QUERY, "--output", "json"];
    let good = sb.tp(&query).ok().stdout;
    assert_eq!(files(&parse_hits(&good))[0], EXTRA.0);
    let sources = sb.sources();

    // Row 0 of the second segment (EXTRA's first chunk): line_start 0 breaks the record.
    rewrite_payload(&second.join("chunks.bin"), |p| p[4..8].fill(0));
    assert_damage_line(&sb.tp(&query).only_err(), "chunks.bin");
    assert_damage_line(&sb.tp(&["verify"]).err(), "chunks.bin");

    let stderr = assert_index_repairs(&sb, "chunks.bin");
    // Only the damaged segment's one file was embedded again, not the whole fixture.
    assert!(
        stderr.contains("embedded 1 chunks from 1 files"),
        "only the damaged segment's file is re-indexed:\n{stderr}"
    );
    assert_eq!(summary(&sb.tp(&query).ok().stdout), summary(&good));
    assert!(sb.sources() == sources, "source files must not be touched");
}

/// Finding 11, structural damage: a segment whose `vectors.bin` was truncated does not even
/// open. `tp index` still drops only that segment and embeds only its file again, rather
/// than rebuilding the whole index.
#[test]
fn index_repairs_a_segment_that_does_not_open_by_reindexing_only_its_files() {
    let (sb, second) = two_segments();
    let query = ["search", EXTRA_QUERY, "--output", "json"];
    let good = sb.tp(&query).ok().stdout;
    let vectors = second.join("vectors.bin");
    let len = fs::metadata(&vectors).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&vectors)
        .unwrap()
        .set_len(len - 4)
        .unwrap();
    assert_damage_line(&sb.tp(&query).only_err(), "vectors.bin");

    let stderr = assert_index_repairs(&sb, "vectors.bin");
    assert!(
        stderr.contains("embedded 1 chunks from 1 files") && !stderr.contains("rebuilding"),
        "only the damaged segment's file is re-indexed:\n{stderr}"
    );
    assert_eq!(summary(&sb.tp(&query).ok().stdout), summary(&good));
}

/// Finding 11: a manifest naming a segment twice. Refused as damage everywhere (not every
/// hit printed twice); `tp index` repairs it rather than committing it forward.
#[test]
fn manifest_naming_a_segment_twice_is_damage_that_index_repairs() {
    let sb = Sandbox::indexed_poker();
    let query = [
        "search",
        "split the pot between tied winners",
        "--output",
        "json",
    ];
    let good = sb.tp(&query).ok().stdout;
    rewrite_manifest(&sb, |m| {
        let segs = m["segments"].as_array_mut().unwrap();
        let first = segs[0].clone();
        segs.push(first);
    });

    let search = sb.tp(&query).only_err();
    assert_damage_line(&search, "manifest.json");
    assert!(search.contains("more than once"), "{search}");
    assert_damage_line(&sb.tp(&["verify"]).err(), "manifest.json");
    assert_damage_line(&sb.tp(&["status"]).only_err(), "manifest.json");

    assert_index_repairs(&sb, "manifest.json");
    let hits = summary(&sb.tp(&query).ok().stdout);
    assert_eq!(hits, summary(&good));
    let distinct: std::collections::BTreeSet<_> = hits.iter().collect();
    assert_eq!(distinct.len(), hits.len(), "a hit printed twice: {hits:?}");
}

/// Finding 11: a manifest naming one delete set for two segments is damage too.
#[test]
fn manifest_naming_a_delete_set_twice_is_damage() {
    let (sb, _) = two_segments();
    // Deleting a file of each segment gives each a delete set.
    fs::remove_file(sb.path("python/poker/pot.py")).unwrap();
    fs::remove_file(sb.path(EXTRA.0)).unwrap();
    sb.write(
        "python/poker/odds.py",
        "def pot_odds(call, pot):\n    return call / (pot + call)\n",
    );
    sb.tp(&["index"]).ok();
    let mut shared = None;
    rewrite_manifest(&sb, |m| {
        for seg in m["segments"].as_array_mut().unwrap() {
            match (&shared, seg["deletes"].is_object()) {
                (None, true) => shared = Some(seg["deletes"].clone()),
                (Some(d), _) => seg["deletes"] = d.clone(),
                _ => {}
            }
        }
    });
    assert!(shared.is_some(), "the test needs a delete set");
    let line = sb
        .tp(&["search", "pot odds", "--output", "json"])
        .only_err();
    assert_damage_line(&line, "manifest.json");
    assert!(line.contains("more than once"), "{line}");
    assert_index_repairs(&sb, "manifest.json");
}

/// Finding 12: NaN or infinity in a vector, under valid checksums. `tp verify` names
/// `vectors.bin`; search fails naming it (an empty or partial answer would look like
/// health); `tp index` repairs it.
#[test]
fn non_finite_vectors_behind_valid_checksums_are_damage() {
    for bad in [f32::NAN, f32::INFINITY] {
        let sb = Sandbox::indexed_poker();
        let query = ["search", "rank a poker hand", "--output", "json"];
        let good = sb.tp(&query).ok().stdout;
        let vectors = only_segment(&sb).join("vectors.bin");
        // Every value of row 3.
        let dims = u32::from_le_bytes(fs::read(&vectors).unwrap()[12..16].try_into().unwrap());
        let row = 4 * dims as usize;
        rewrite_payload(&vectors, |p| {
            for v in p[3 * row..4 * row].chunks_mut(4) {
                v.copy_from_slice(&bad.to_le_bytes());
            }
        });

        let verify = sb.tp(&["verify"]).err();
        assert_damage_line(&verify, "vectors.bin");
        assert!(verify.contains("non-finite"), "{verify}");
        // A lexical search reads the postings, not these vectors: its answer is unchanged.
        assert_eq!(summary(&sb.tp(&query).ok().stdout), summary(&good), "{bad}");

        assert_index_repairs(&sb, "vectors.bin");
        assert_eq!(summary(&sb.tp(&query).ok().stdout), summary(&good), "{bad}");
    }
}

/// A term frequency that is not a finite positive number, behind valid checksums, is damage
/// the search itself reports, naming the postings file and the row; `tp verify` names it and
/// `tp index` repairs it.
#[test]
fn non_finite_term_frequencies_behind_valid_checksums_are_damage() {
    for bad in [f32::NAN, f32::INFINITY, -1.0] {
        let sb = Sandbox::indexed_poker();
        let query = ["search", "rank a poker hand", "--output", "json"];
        let good = sb.tp(&query).ok().stdout;
        let segment = only_segment(&sb);
        let postings = segment.join("postings.bin");
        // The first row holding the term `rank` (lexicon.bin: 16-byte records of text start,
        // text length, reserved, first posting, postings; the texts in lextext.bin).
        let lexicon = fs::read(segment.join("lexicon.bin")).unwrap();
        let text = fs::read(segment.join("lextext.bin")).unwrap();
        let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        let first_posting = lexicon[HEADER_LEN..]
            .chunks(16)
            .find(|r| {
                let start = HEADER_LEN + u32_at(r, 0) as usize;
                let len = u16::from_le_bytes([r[4], r[5]]) as usize;
                &text[start..start + len] == b"rank"
            })
            .map(|r| u32_at(r, 8) as usize)
            .expect("the term rank");
        let all = fs::read(&postings).unwrap();
        let row = u32_at(&all, HEADER_LEN + 8 * first_posting);
        // Every posting of that row, of every term.
        rewrite_payload(&postings, |p| {
            for rec in p.chunks_mut(8) {
                if u32::from_le_bytes(rec[0..4].try_into().unwrap()) == row {
                    rec[4..8].copy_from_slice(&bad.to_le_bytes());
                }
            }
        });

        let verify = sb.tp(&["verify"]).err();
        assert_damage_line(&verify, "postings.bin");
        let search = sb.tp(&["search", "rank", "--output", "json"]).only_err();
        assert_damage_line(&search, "postings.bin");
        assert!(search.contains(&format!("row {row} ")), "{search}");

        assert_index_repairs(&sb, "postings.bin");
        assert_eq!(summary(&sb.tp(&query).ok().stdout), summary(&good), "{bad}");
    }
}

/// Finding 13: control characters from file names (and from file content) reach the
/// terminal escaped in text output, warnings and errors; JSON output holds the exact name.
#[test]
fn text_output_escapes_control_characters() {
    let sb = Sandbox::empty();
    let name = "ctrl\x01\x1b[31mred.py";
    sb.write(
        name,
        "def split_the_pot(winners):\n    print(\"\x1b]0;pwned\x07\")\n\treturn winners\n",
    );
    // Over --max-filesize: a warning names it.
    sb.write("big\x1b[2J.py", "x = 1\n".repeat(400));

    let index = sb.tp(&["index", "--max-filesize", "1kb"]).ok();
    assert!(
        index.stderr.contains("big\\u{1b}[2J.py"),
        "{}",
        index.stderr
    );
    let text = sb.tp(&["search", "split the pot"]).ok();
    for (what, out) in [("stdout", &text.stdout), ("index stderr", &index.stderr)] {
        assert!(
            !out.contains(['\x01', '\x07', '\x1b']),
            "raw control characters in {what}: {out:?}"
        );
    }
    insta::assert_snapshot!("search_text_control_characters", text.stdout);

    let json = sb.search("split the pot", &[]);
    assert_eq!(json[0]["file"], name, "JSON output keeps the exact name");

    let missing = sb
        .tp(&["search", "x", "--repo", "no\x1b[31mwhere"])
        .only_err();
    assert!(
        !missing.contains('\x1b') && missing.contains("no\\u{1b}[31mwhere"),
        "{missing:?}"
    );
}
