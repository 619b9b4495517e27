//! End-to-end tests of the `tp` binary: the real executable, run in a temporary copy of the
//! poker fixture (`tests/fixtures/poker/`, see its `EXPECTED.md`) for every test.
//!
//! What is pinned here is the contract of `docs/DESIGN.md` as a user or a script sees it:
//! output formats (insta snapshots), search quality on the fixture, filters applied before
//! top-k, incremental indexing, exit codes, one-line errors, and the list of bad inputs, none
//! of which may panic.
//!
//! Snapshots live in `tests/snapshots/`; after an intended change to an output, re-create them
//! with `INSTA_UPDATE=always cargo test -p turboprop --test cli` and review the diff.

// Tests fail loudly; `unwrap` on a test's own set-up is the clearest way to say so.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::Value;

mod common;
use common::*;

// ---------------------------------------------------------------------------------------------
// Helpers (the sandbox, runs of tp and output parsers are in tests/common/mod.rs)
// ---------------------------------------------------------------------------------------------

/// Files of the fixture that are indexed (EXPECTED.md: "26 files").
const FIXTURE_FILES: u64 = 26;

/// Files of the fixture the indexer must skip (EXPECTED.md, "Files the indexer must skip").
const NEVER_INDEXED: &[&str] = &[
    "web/assets/chip.png",
    "web/package-lock.json",
    "rust/Cargo.lock",
    "build/generated_tables.rs",
    "debug.log",
    "EXPECTED.md",
    ".cache/embeddings-manifest.txt",
    ".gitignore",
    "web/.prettierrc",
];

/// EXPECTED.md's queries and the file each must find.
const EXPECTED_QUERIES: &[(&str, &str)] = &[
    ("rank a poker hand", "rust/src/hand.rs"),
    ("split the pot between tied winners", "python/poker/pot.py"),
    ("shuffle the deck", "rust/src/deck.rs"),
    (
        "who wins when two players have the same cards",
        "rust/src/tiebreak.rs",
    ),
    ("side pot for all-in player", "python/poker/side_pots.py"),
    ("blinds move to next player", "python/poker/blinds.py"),
    ("time bank runs out", "web/src/timer.ts"),
    ("minimum raise rules", "python/poker/betting.py"),
    ("check call raise fold", "python/poker/betting.py"),
    ("format chip stack", "web/src/chips.ts"),
    (
        "table state machine transition from flop to turn",
        "web/src/tableMachine.ts",
    ),
    ("best five cards out of seven", "rust/src/evaluator.rs"),
    ("parse card notation", "rust/src/cards.rs"),
    ("auto fold when the clock expires", "web/src/timer.ts"),
];

// ---------------------------------------------------------------------------------------------
// Snapshots of the output formats
// ---------------------------------------------------------------------------------------------

/// Filters for values that change from run to run: timestamps, sizes, durations.
fn volatile_filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (r#""updated_at":"[^"]*""#, r#""updated_at":"[DATE]""#),
        (r#""bytes_on_disk":\d+"#, r#""bytes_on_disk":"[BYTES]""#),
        (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "[DATE]"),
        (r"(size\s+)\d+(\.\d+)? (B|KiB|MiB|GiB)", "${1}[SIZE]"),
        (r" in \d+(\.\d+)?(ms|s|m\d+s)\b", " in [TIME]"),
    ]
}

#[test]
fn search_json_output_format_is_stable() {
    let sb = Sandbox::indexed_poker();
    let out = sb
        .tp(&[
            "search",
            "split the pot between tied winners",
            "--output",
            "json",
            "--limit",
            "3",
        ])
        .ok();
    assert!(out.stderr.is_empty(), "json mode is quiet: {}", out.stderr);
    parse_hits(&out.stdout);
    // The exact bytes: field order, number formatting, content as the file holds it.
    insta::assert_snapshot!("search_json_split_the_pot_top3", sb.redact(&out.stdout));
}

#[test]
fn search_json_ranking_is_stable() {
    let sb = Sandbox::indexed_poker();
    for (name, query) in [
        ("time_bank_runs_out", "time bank runs out"),
        ("who_wins_same_cards", EXPECTED_QUERIES[3].0),
    ] {
        let hits: Vec<Value> = sb
            .search(query, &["--limit", "5"])
            .into_iter()
            .map(|mut h| {
                // Readable: the ranking without the chunk texts.
                h.as_object_mut().unwrap().remove("content");
                h
            })
            .collect();
        insta::assert_json_snapshot!(format!("search_json_ranking_{name}"), hits);
    }
}

#[test]
fn search_text_output_format_is_stable() {
    let sb = Sandbox::indexed_poker();
    let out = sb
        .tp(&[
            "search",
            "split the pot between tied winners",
            "--limit",
            "3",
        ])
        .ok();
    assert!(
        !out.stdout.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    insta::assert_snapshot!("search_text_split_the_pot_top3", sb.redact(&out.stdout));
}

#[test]
fn status_json_output_format_is_stable() {
    let sb = Sandbox::indexed_poker();
    let out = sb.tp(&["status", "--output", "json"]).ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    for key in [
        "files",
        "chunks",
        "model",
        "dimensions",
        "bytes_on_disk",
        "generation",
        "updated_at",
    ] {
        assert!(v.get(key).is_some(), "status lacks {key}: {v}");
    }
    assert!(v["bytes_on_disk"].as_u64().unwrap() > 0);
    assert_eq!(out.stdout.lines().count(), 1, "one JSON object");
    insta::with_settings!({ filters => volatile_filters() }, {
        insta::assert_snapshot!("status_json", sb.redact(&out.stdout));
    });
}

#[test]
fn status_text_output_format_is_stable() {
    let sb = Sandbox::indexed_poker();
    let out = sb.tp(&["status"]).ok();
    insta::with_settings!({ filters => volatile_filters() }, {
        insta::assert_snapshot!("status_text", sb.redact(&out.stdout));
    });
}

#[test]
fn index_summary_text_is_stable() {
    let sb = Sandbox::poker();
    let first = sb.tp(&["index"]).ok();
    assert!(first.stdout.is_empty(), "tp index reports on stderr only");
    let second = sb.tp(&["index"]).ok();
    insta::with_settings!({ filters => volatile_filters() }, {
        insta::assert_snapshot!("index_first_run_stderr", sb.redact(&first.stderr));
        insta::assert_snapshot!("index_second_run_stderr", sb.redact(&second.stderr));
    });
}

// ---------------------------------------------------------------------------------------------
// Search quality and the JSON contract
// ---------------------------------------------------------------------------------------------

#[test]
fn expected_queries_find_their_file_in_the_top_3() {
    let sb = Sandbox::indexed_poker();
    let mut failures = Vec::new();
    for &(query, expected) in EXPECTED_QUERIES {
        let top = sb.search_files(query, &["--limit", "3"]);
        if !top.iter().any(|f| f == expected) {
            failures.push(format!(
                "{query:?}: expected {expected} in the top 3, got {top:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn json_hit_content_is_the_indexed_lines_of_the_file() {
    let sb = Sandbox::indexed_poker();
    for &(query, _) in &EXPECTED_QUERIES[..4] {
        for h in sb.search(query, &["--limit", "5"]) {
            let text = fs::read_to_string(sb.path(h["file"].as_str().unwrap())).unwrap();
            let (start, end) = (
                h["line_start"].as_u64().unwrap() as usize,
                h["line_end"].as_u64().unwrap() as usize,
            );
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            assert!(end <= lines.len(), "{h} is past the end of the file");
            assert_eq!(
                h["content"].as_str().unwrap(),
                lines[start - 1..end].concat()
            );
        }
    }
}

#[test]
fn ignored_and_binary_fixture_files_are_never_indexed() {
    let sb = Sandbox::indexed_poker();
    assert_eq!(sb.status()["files"].as_u64(), Some(FIXTURE_FILES));
    // debug.log and build/generated_tables.rs hold the query texts verbatim: if they were
    // indexed they would come first.
    let mut seen = BTreeSet::new();
    for &(query, _) in EXPECTED_QUERIES {
        seen.extend(sb.search_files(query, &["--limit", "1000"]));
    }
    for never in NEVER_INDEXED {
        assert!(!seen.contains(*never), "{never} was indexed");
    }
    assert!(seen.len() > 15, "queries should reach most files: {seen:?}");
}

#[test]
fn zero_hits_is_success_with_empty_output() {
    let sb = Sandbox::indexed_poker();
    let json = sb
        .tp(&["search", "xylophone quasar", "--output", "json"])
        .ok();
    assert_eq!(json.stdout, "");
    assert_eq!(json.stderr, "", "json mode prints nothing at all");
    let text = sb.tp(&["search", "xylophone quasar"]).ok();
    assert_eq!(text.stdout, "");
    let high = sb
        .tp(&["search", "rank a poker hand", "--threshold", "0.99"])
        .ok();
    assert_eq!(high.stdout, "");
}

#[test]
fn threshold_drops_hits_below_it() {
    let sb = Sandbox::indexed_poker();
    let all = sb.search("rank a poker hand", &["--limit", "1000"]);
    let some = sb.search(
        "rank a poker hand",
        &["--limit", "1000", "--threshold", "0.2"],
    );
    assert!(!some.is_empty() && some.len() < all.len());
    assert!(some.iter().all(|h| h["score"].as_f64().unwrap() >= 0.2));
}

#[test]
fn limit_caps_the_number_of_hits() {
    let sb = Sandbox::indexed_poker();
    assert_eq!(sb.search("poker", &["--limit", "7"]).len(), 7);
    assert_eq!(sb.search("poker", &[]).len(), 10, "--limit defaults to 10");
}

// ---------------------------------------------------------------------------------------------
// Filters restrict candidates before top-k
// ---------------------------------------------------------------------------------------------

#[test]
fn filetype_filter_applies_before_top_k() {
    let sb = Sandbox::indexed_poker();
    let query = "rank a poker hand";
    // Without a filter the best hits are Rust: filtering after top-k would leave few or none.
    let unfiltered = sb.search_files(query, &["--limit", "8"]);
    assert!(
        unfiltered.iter().filter(|f| f.ends_with(".py")).count() < 8,
        "the query must rank other files first for this test to mean something: {unfiltered:?}"
    );
    let py = sb.search_files(query, &["--limit", "8", "--filetype", ".py"]);
    assert_eq!(
        py.len(),
        8,
        "a filtered search still returns --limit hits: {py:?}"
    );
    assert!(py.iter().all(|f| f.ends_with(".py")), "{py:?}");
    // Without the dot, and several at once.
    assert_eq!(
        sb.search_files(query, &["--limit", "8", "--filetype", "py"]),
        py
    );
    let py_ts = sb.search_files(query, &["--limit", "50", "--filetype", ".py,.ts"]);
    assert!(py_ts
        .iter()
        .all(|f| f.ends_with(".py") || f.ends_with(".ts")));
    assert!(py_ts.iter().any(|f| f.ends_with(".py")) && py_ts.iter().any(|f| f.ends_with(".ts")));
}

#[test]
fn glob_filter_applies_before_top_k() {
    let sb = Sandbox::indexed_poker();
    let web = sb.search_files("rank a poker hand", &["--limit", "5", "--filter", "web/**"]);
    assert_eq!(web.len(), 5, "{web:?}");
    assert!(web.iter().all(|f| f.starts_with("web/")), "{web:?}");
    // A glob without '/' matches the file name at any depth.
    let ts = sb.search_files("chips table", &["--limit", "50", "--filter", "*.ts"]);
    assert!(
        !ts.is_empty() && ts.iter().all(|f| f.ends_with(".ts")),
        "{ts:?}"
    );
    // Nothing matches: no hits, success.
    assert!(sb
        .search_files("poker", &["--filter", "nowhere/**"])
        .is_empty());
}

// ---------------------------------------------------------------------------------------------
// Incremental indexing
// ---------------------------------------------------------------------------------------------

#[test]
fn reindex_without_changes_embeds_nothing() {
    let sb = Sandbox::indexed_poker();
    let before = sb.status();
    let again = sb.tp(&["index"]).ok();
    assert!(
        again.stderr.contains("nothing re-embedded"),
        "{}",
        again.stderr
    );
    let after = sb.status();
    assert_eq!(
        after["generation"], before["generation"],
        "no new generation"
    );
    assert_eq!(after["chunks"], before["chunks"]);
}

#[test]
fn changed_file_alone_is_reembedded_and_searchable() {
    let sb = Sandbox::indexed_poker();
    let gen = sb.status()["generation"].as_u64().unwrap();
    let mut pot = fs::read_to_string(sb.path("python/poker/pot.py")).unwrap();
    pot.push_str("\n\ndef quokka_dividend_ledger():\n    \"\"\"Quokka dividend ledger.\"\"\"\n    return 0\n");
    sb.write("python/poker/pot.py", pot);
    let run = sb.tp(&["index"]).ok();
    assert!(
        run.stderr.contains("from 1 files") && run.stderr.contains("1 changed"),
        "only pot.py is re-embedded: {}",
        run.stderr
    );
    assert!(!run.stderr.contains("embedded 0 chunks"), "{}", run.stderr);
    assert_eq!(sb.status()["generation"].as_u64(), Some(gen + 1));
    let hits = sb.search("quokka dividend ledger", &["--limit", "1"]);
    assert_eq!(files(&hits), ["python/poker/pot.py"]);
    assert!(hits[0]["content"]
        .as_str()
        .unwrap()
        .contains("quokka_dividend_ledger"));
}

#[test]
fn added_file_alone_is_embedded() {
    let sb = Sandbox::indexed_poker();
    sb.write(
        "rust/src/rake.rs",
        "/// Take the house rake from a pot, capped per hand.\npub fn take_rake(pot: u64) -> u64 {\n    (pot / 20).min(300)\n}\n",
    );
    let run = sb.tp(&["index"]).ok();
    assert!(
        run.stderr.contains("1 new") && run.stderr.contains("embedded 1 chunks from 1 files"),
        "{}",
        run.stderr
    );
    assert_eq!(sb.status()["files"].as_u64(), Some(FIXTURE_FILES + 1));
    assert_eq!(
        sb.search_files("house rake capped per hand", &["--limit", "1"]),
        ["rust/src/rake.rs"]
    );
}

#[test]
fn touched_file_with_same_content_is_not_reembedded() {
    let sb = Sandbox::indexed_poker();
    let before = sb.search("split the pot between tied winners", &[]);
    set_mtime(
        &sb.path("python/poker/pot.py"),
        SystemTime::now() + Duration::from_secs(3600),
    );
    let run = sb.tp(&["index"]).ok();
    assert!(
        run.stderr.contains("nothing re-embedded")
            || run.stderr.contains("embedded 0 chunks from 0 files"),
        "a touched file must not be re-embedded: {}",
        run.stderr
    );
    // The new mtime is recorded: the next run has nothing to do at all.
    let again = sb.tp(&["index"]).ok();
    assert!(
        again.stderr.contains("nothing re-embedded"),
        "{}",
        again.stderr
    );
    assert_eq!(sb.search("split the pot between tied winners", &[]), before);
}

#[test]
fn deleted_file_disappears_from_results() {
    let sb = Sandbox::indexed_poker();
    let query = "side pot for all-in player";
    assert_eq!(
        sb.search_files(query, &["--limit", "1"]),
        ["python/poker/side_pots.py"]
    );
    fs::remove_file(sb.path("python/poker/side_pots.py")).unwrap();
    let run = sb.tp(&["index"]).ok();
    assert!(run.stderr.contains("1 removed"), "{}", run.stderr);
    let all = sb.search_files(query, &["--limit", "1000"]);
    assert!(!all.is_empty());
    assert!(
        !all.iter().any(|f| f == "python/poker/side_pots.py"),
        "deleted file still found: {all:?}"
    );
    assert_eq!(sb.status()["files"].as_u64(), Some(FIXTURE_FILES - 1));
}

#[test]
fn search_of_a_file_changed_since_indexing_warns_and_succeeds() {
    let sb = Sandbox::indexed_poker();
    // Shrink hand.rs to one line: the indexed line ranges now point past its end.
    sb.write("rust/src/hand.rs", "// gone\n");
    let run = sb
        .tp(&["search", "rank a poker hand", "--output", "json"])
        .ok();
    parse_hits(&run.stdout);
    assert!(
        run.stderr
            .contains("rust/src/hand.rs changed since it was indexed"),
        "{}",
        run.stderr
    );
    let text = sb.tp(&["search", "rank a poker hand"]).ok();
    assert!(
        text.stdout.contains("(changed since indexed)"),
        "{}",
        text.stdout
    );
    // And deleted without re-indexing.
    fs::remove_file(sb.path("rust/src/hand.rs")).unwrap();
    let gone = sb.tp(&["search", "rank a poker hand"]).ok();
    assert!(
        gone.stderr.contains("is gone since it was indexed"),
        "{}",
        gone.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// Persistence and determinism
// ---------------------------------------------------------------------------------------------

#[test]
fn index_reopened_by_new_processes_gives_identical_results() {
    let sb = Sandbox::indexed_poker();
    let args = [
        "search",
        "who wins when two players have the same cards",
        "--output",
        "json",
        "--limit",
        "20",
    ];
    let first = sb.tp(&args).ok().stdout;
    let second = sb.tp(&args).ok().stdout;
    assert!(!first.is_empty());
    assert_eq!(first, second, "two processes, same index, same answer");
    // A second copy indexed from scratch gives the same answer: indexing is deterministic.
    let other = Sandbox::indexed_poker();
    assert_eq!(other.tp(&args).ok().stdout, first);
}

#[test]
fn repo_flag_works_from_another_folder() {
    let sb = Sandbox::poker();
    let repo = sb.root.display().to_string();
    sb.tp_in(&sb.home, &["index", "--repo", &repo]).ok();
    let away = sb.tp_in(
        &sb.home,
        &[
            "search",
            "shuffle the deck",
            "--repo",
            &repo,
            "--output",
            "json",
        ],
    );
    let hits = parse_hits(&away.ok().stdout);
    assert_eq!(hits[0]["file"], "rust/src/deck.rs");
    assert!(
        !sb.home.join(".turboprop").exists(),
        "the index belongs in the repo"
    );
    assert!(sb.index_dir().join("version.txt").is_file());
}

// ---------------------------------------------------------------------------------------------
// Exit codes and closed pipes
// ---------------------------------------------------------------------------------------------

#[test]
fn usage_errors_exit_2() {
    let sb = Sandbox::indexed_poker();
    for args in [
        &["bogus"][..],
        &["search"],
        &["search", "x", "--limit", "ten"],
        &["search", "x", "--limit", "-1"],
        &["search", "x", "--threshold", "high"],
        &["search", "x", "--output", "xml"],
        &["status", "--output", "yaml"],
        &["index", "--no-such-flag"],
    ] {
        sb.tp(args).usage_err();
    }
    // No subcommand at all: clap prints the help, to stderr, and exits 2.
    let bare = sb.tp(&[]);
    assert_eq!(bare.code, Some(2), "{}", bare.describe());
    assert!(bare.stdout.is_empty() && bare.stderr.contains("Usage:"));
}

#[test]
fn help_and_version_exit_0() {
    let sb = Sandbox::empty();
    for args in [&["--help"][..], &["--version"], &["search", "--help"]] {
        let out = sb.tp(args).ok();
        assert!(!out.stdout.is_empty());
    }
}

/// Spawns `tp ARGS` with stdout piped, reads one line, closes the pipe, and returns the
/// finished run: the `tp search ... | head -1` case.
fn read_one_line_then_close(sb: &Sandbox, args: &[&str]) -> (String, Run) {
    let mut child = sb
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    {
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        reader.read_line(&mut first).unwrap();
        // Dropping the reader closes the read end while tp is still writing.
    }
    let out = child.wait_with_output().unwrap();
    (first, Run::from_output(args, out).contract())
}

#[test]
fn closed_stdout_pipe_is_not_an_error() {
    let sb = Sandbox::poker();
    // Far more output than a pipe buffers (64 KiB), so tp is still writing when the pipe
    // closes.
    let mut big = String::new();
    for i in 0..4000 {
        big.push_str(&format!(
            "// rank a poker hand, line {i}, with padding to make it long\n"
        ));
    }
    sb.write("notes/hands.rs", &big);
    sb.tp(&["index"]).ok();
    let all = sb.tp(&[
        "search",
        "rank a poker hand",
        "--limit",
        "1000",
        "--output",
        "json",
    ]);
    assert!(
        all.ok().stdout.len() > 256 * 1024,
        "output must overflow the pipe"
    );

    for output in ["json", "text"] {
        let args = [
            "search",
            "rank a poker hand",
            "--limit",
            "1000",
            "--output",
            output,
        ];
        let (line, run) = read_one_line_then_close(&sb, &args);
        assert!(!line.is_empty());
        let run = run.ok();
        assert!(
            !run.stderr.contains("error"),
            "a closed pipe is not an error: {}",
            run.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input: source files
// ---------------------------------------------------------------------------------------------

#[test]
fn binary_files_are_skipped_with_a_warning() {
    let sb = Sandbox::poker();
    // Source-looking name, binary content: caught by the NUL sniff, not the extension.
    let mut blob = b"fn ostrich_marker() {}\n".to_vec();
    blob.extend_from_slice(&[0, 1, 2, 3, 0xff, 0]);
    blob.extend_from_slice(b"ostrich ostrich ostrich\n");
    sb.write("rust/src/blob.rs", &blob);
    let run = sb.tp(&["index"]).ok();
    assert!(
        run.stderr
            .contains("skipped rust/src/blob.rs: binary content"),
        "{}",
        run.stderr
    );
    assert_eq!(sb.status()["files"].as_u64(), Some(FIXTURE_FILES));
    let hits = sb.search_files("ostrich marker", &["--limit", "1000"]);
    assert!(!hits.iter().any(|f| f == "rust/src/blob.rs"), "{hits:?}");
}

#[test]
fn invalid_utf8_content_is_indexed_without_crashing() {
    let sb = Sandbox::poker();
    // Latin-1 bytes and stray 0xff/0xfe: not UTF-8, but text.
    sb.write(
        "python/poker/legacy.py",
        b"def caf\xe9_zebrafish_payout():\n    return \"gr\xfc\xdfe zebrafish\"\n\xff\xfe\n",
    );
    sb.tp(&["index"]).ok();
    assert_eq!(sb.status()["files"].as_u64(), Some(FIXTURE_FILES + 1));
    let out = sb
        .tp(&[
            "search",
            "zebrafish payout",
            "--output",
            "json",
            "--limit",
            "1",
        ])
        .ok();
    let hits = parse_hits(&out.stdout);
    assert_eq!(files(&hits), ["python/poker/legacy.py"]);
    let content = hits[0]["content"].as_str().unwrap();
    assert!(content.contains("zebrafish"), "{content}");
    // Text output too.
    let text = sb.tp(&["search", "zebrafish payout", "--limit", "1"]).ok();
    assert!(
        text.stdout.contains("python/poker/legacy.py:1-3"),
        "{}",
        text.stdout
    );
}

#[test]
fn files_over_max_filesize_are_skipped_with_a_warning_naming_them() {
    let sb = Sandbox::poker();
    let mut big = String::new();
    while big.len() < 100 * 1024 {
        big.push_str("the albatross ledger records every albatross payout\n");
    }
    sb.write("notes/albatross.txt", &big);
    let run = sb.tp(&["index", "--max-filesize", "64kb"]).ok();
    let warning = run
        .stderr
        .lines()
        .find(|l| l.contains("notes/albatross.txt"))
        .unwrap_or_else(|| panic!("no warning names the file: {}", run.stderr));
    assert!(
        warning.starts_with("warning:") && warning.contains("--max-filesize"),
        "{warning}"
    );
    assert_eq!(sb.status()["files"].as_u64(), Some(FIXTURE_FILES));
    assert!(!sb
        .search_files("albatross ledger", &["--limit", "1000"])
        .iter()
        .any(|f| f == "notes/albatross.txt"));
    // Under a higher limit it is indexed.
    sb.tp(&["index", "--max-filesize", "1mb"]).ok();
    assert_eq!(
        sb.search_files("albatross ledger", &["--limit", "1"]),
        ["notes/albatross.txt"]
    );
}

#[test]
fn empty_files_are_indexed_without_hits() {
    let sb = Sandbox::poker();
    sb.write("rust/src/empty.rs", "");
    sb.write("python/poker/blank.py", "\n\n   \n");
    sb.tp(&["index"]).ok();
    sb.tp(&["verify"]).ok();
    let status = sb.status();
    assert!(
        status["files"].as_u64().unwrap() >= FIXTURE_FILES,
        "{status}"
    );
    let hits = sb.search_files("rank a poker hand", &["--limit", "1000"]);
    assert!(!hits.iter().any(|f| f == "rust/src/empty.rs"));
    // Re-indexing an empty file is a no-op like any other.
    let again = sb.tp(&["index"]).ok();
    assert!(
        again.stderr.contains("nothing re-embedded"),
        "{}",
        again.stderr
    );
}

#[test]
fn empty_repository_indexes_and_searches_to_nothing() {
    let sb = Sandbox::empty();
    sb.tp(&["index"]).ok();
    let status = sb.status();
    assert_eq!(status["files"].as_u64(), Some(0));
    assert_eq!(status["chunks"].as_u64(), Some(0));
    let out = sb
        .tp(&["search", "anything at all", "--output", "json"])
        .ok();
    assert_eq!(out.stdout, "");
    sb.tp(&["verify"]).ok();
}

#[cfg(unix)]
#[test]
fn symlink_loops_are_not_followed() {
    use std::os::unix::fs::symlink;
    let sb = Sandbox::poker();
    fs::create_dir_all(sb.path("links")).unwrap();
    symlink("loop_b", sb.path("links/loop_a")).unwrap();
    symlink("loop_a", sb.path("links/loop_b")).unwrap();
    symlink("..", sb.path("links/parent")).unwrap(); // a directory cycle
    symlink("../rust/src/hand.rs", sb.path("links/hand_alias.rs")).unwrap();
    symlink("missing.rs", sb.path("links/dangling.rs")).unwrap();
    let run = sb.tp(&["index"]).ok();
    assert!(run.stderr.contains("symlinks"), "{}", run.stderr);
    assert_eq!(sb.status()["files"].as_u64(), Some(FIXTURE_FILES));
    let hits = sb.search_files("rank a poker hand", &["--limit", "1000"]);
    assert!(!hits.iter().any(|f| f.starts_with("links/")), "{hits:?}");
}

/// A file and a folder `tp` may not read are skipped with a warning naming them. Root reads
/// mode-000 files (CAP_DAC_OVERRIDE): run as root, as in CI, `tp` is run by `setpriv` without
/// the two capabilities that bypass file permissions, so the test checks the same thing
/// everywhere instead of skipping.
#[cfg(unix)]
#[test]
fn unreadable_files_and_folders_are_skipped_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::poker();
    sb.write("rust/src/locked.rs", "// walrus treasury\n");
    sb.write("secret/inner.rs", "// walrus vault\n");
    let set_mode = |rel: &str, mode: u32| {
        fs::set_permissions(sb.path(rel), fs::Permissions::from_mode(mode)).unwrap();
    };
    set_mode("rust/src/locked.rs", 0o000);
    set_mode("secret", 0o000);
    let privileged = fs::read(sb.path("rust/src/locked.rs")).is_ok();
    let run = if privileged {
        let mut cmd = sb.command(&["index"]);
        let unprivileged = Command::new("setpriv")
            .args(["--bounding-set", "-dac_override,-dac_read_search", "true"])
            .status();
        assert!(
            unprivileged.is_ok_and(|s| s.success()),
            "this test runs as a user who reads mode-000 files and needs setpriv(1) (util-linux) to drop that privilege"
        );
        let mut priv_cmd = Command::new("setpriv");
        priv_cmd
            .args([
                "--bounding-set",
                "-dac_override,-dac_read_search",
                TP,
                "index",
            ])
            .current_dir(&sb.root)
            .stdin(Stdio::null());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => priv_cmd.env(k, v),
                None => priv_cmd.env_remove(k),
            };
        }
        cmd = priv_cmd;
        Running::run(cmd, "setpriv ... tp index".into()).contract()
    } else {
        sb.tp(&["index"])
    };
    set_mode("rust/src/locked.rs", 0o644);
    set_mode("secret", 0o755);
    let run = run.ok();
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("warning:") && l.contains("rust/src/locked.rs")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.lines().any(|l| l.contains("secret")),
        "{}",
        run.stderr
    );
    assert_eq!(sb.status()["files"].as_u64(), Some(FIXTURE_FILES));
}

// ---------------------------------------------------------------------------------------------
// Bad input: the index folder
// ---------------------------------------------------------------------------------------------

#[test]
fn search_before_index_says_run_tp_index() {
    let sb = Sandbox::poker();
    for args in [
        &["search", "rank a poker hand"][..],
        &["status"],
        &["verify"],
    ] {
        let line = sb.tp(args).only_err();
        assert!(line.contains("run tp index"), "{line}");
        assert!(line.contains(".turboprop"), "names the folder: {line}");
    }
    assert!(
        !sb.root.join(".turboprop").exists(),
        "reading commands must not create the index folder"
    );
}

#[test]
fn turboprop_path_that_is_a_file_is_a_clear_error() {
    let sb = Sandbox::poker();
    sb.write(".turboprop", "my own notes\n");
    for args in [
        &["index"][..],
        &["search", "rank a poker hand"],
        &["status"],
    ] {
        let line = sb.tp(args).only_err();
        assert!(line.contains(".turboprop"), "{line}");
    }
    assert_eq!(
        fs::read_to_string(sb.path(".turboprop")).unwrap(),
        "my own notes\n",
        "never touched"
    );
}

#[test]
fn foreign_index_folder_is_refused_and_left_alone() {
    let sb = Sandbox::poker();
    sb.write(".turboprop/index/notes.txt", "not an index\n");
    for args in [
        &["index"][..],
        &["index", "--rebuild"],
        &["search", "rank a poker hand"],
        &["status"],
        &["verify"],
    ] {
        let line = sb.tp(args).only_err();
        assert!(line.contains("not a turboprop index"), "{line}");
    }
    assert_eq!(
        fs::read_dir(sb.index_dir()).unwrap().count(),
        1,
        "nothing added or removed"
    );
    assert_eq!(
        fs::read_to_string(sb.path(".turboprop/index/notes.txt")).unwrap(),
        "not an index\n"
    );
}

#[test]
fn index_path_that_is_a_file_is_a_clear_error() {
    let sb = Sandbox::poker();
    sb.write(".turboprop/index", "a file where the index folder goes\n");
    for args in [
        &["index"][..],
        &["search", "rank a poker hand"],
        &["status"],
    ] {
        let line = sb.tp(args).only_err();
        assert!(line.contains(".turboprop/index"), "{line}");
    }
}

#[test]
fn unknown_index_version_is_refused() {
    let sb = Sandbox::indexed_poker();
    fs::write(sb.index_dir().join("version.txt"), "turboprop-index 99\n").unwrap();
    let line = sb.tp(&["search", "rank a poker hand"]).only_err();
    assert!(line.contains("version.txt"), "{line}");
    sb.tp(&["index"]).err();
    sb.tp(&["index", "--rebuild"]).ok();
    sb.tp(&["verify"]).ok();
}

/// Damages one index file, checks the damage is reported everywhere with the file's name and
/// the way out, then checks `tp index --rebuild` recovers without touching any source file.
fn damage_then_rebuild(damage: impl FnOnce(&Sandbox) -> String) {
    let sb = Sandbox::indexed_poker();
    let query = ["search", "rank a poker hand", "--output", "json"];
    let good = sb.tp(&query).ok().stdout;
    let sources = sb.sources();
    let damaged = damage(&sb);

    let search = sb.tp(&query).only_err();
    assert!(
        search.contains(&damaged),
        "search must name {damaged}: {search}"
    );
    assert!(search.contains("tp index --rebuild"), "{search}");
    let verify = sb.tp(&["verify"]).err();
    assert!(
        verify.contains(&damaged),
        "verify must name {damaged}: {verify}"
    );
    let status = sb.tp(&["status"]).only_err();
    assert!(status.contains(&damaged), "{status}");

    let rebuild = sb.tp(&["index", "--rebuild"]).ok();
    assert!(rebuild.stderr.contains("rebuilding"), "{}", rebuild.stderr);
    sb.tp(&["verify"]).ok();
    assert_eq!(
        sb.tp(&query).ok().stdout,
        good,
        "same answers after the rebuild"
    );
    assert!(sb.sources() == sources, "source files must not be touched");
}

#[test]
fn truncated_vectors_file_is_reported_and_rebuilt() {
    damage_then_rebuild(|sb| {
        let path = only_segment(sb).join("vectors.bin");
        let len = fs::metadata(&path).unwrap().len();
        let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len / 2).unwrap();
        "vectors.bin".to_owned()
    });
}

#[test]
fn bit_flipped_manifest_is_reported_and_rebuilt() {
    damage_then_rebuild(|sb| {
        let path = sb.index_dir().join("manifest.json");
        let text = fs::read(&path).unwrap();
        let at = text
            .windows(12)
            .position(|w| w == b"\"generation\"")
            .expect("manifest names its generation");
        flip_byte(&path, at + 3, 0x01);
        "manifest.json".to_owned()
    });
}

#[test]
fn bit_flipped_metadata_is_reported_and_rebuilt() {
    damage_then_rebuild(|sb| {
        let path = only_segment(sb).join("metadata.json");
        let len = fs::metadata(&path).unwrap().len() as usize;
        flip_byte(&path, len / 2, 0x04);
        "metadata.json".to_owned()
    });
}

#[test]
fn emptied_manifest_is_reported_and_rebuilt() {
    damage_then_rebuild(|sb| {
        fs::write(sb.index_dir().join("manifest.json"), "").unwrap();
        "manifest.json".to_owned()
    });
}

#[test]
fn bit_flipped_vector_payload_is_named_by_verify() {
    // Searches read vectors in place without hashing them (docs/format.md); `tp verify` is
    // what checks every payload byte.
    let sb = Sandbox::indexed_poker();
    let sources = sb.sources();
    let path = only_segment(&sb).join("vectors.bin");
    flip_byte(&path, 64 + 3, 0x40); // the exponent of row 0's first component
    let line = sb.tp(&["verify"]).err();
    assert!(line.contains("vectors.bin"), "{line}");
    assert!(line.contains("tp index --rebuild"), "{line}");
    sb.tp(&["index", "--rebuild"]).ok();
    sb.tp(&["verify"]).ok();
    assert!(sb.sources() == sources);
}

/// Damage to a segment's vectors must not survive an ordinary `tp index` under a fresh
/// checksum. `tp index` checks its base before copying rows from it: it says which segment is
/// damaged, re-indexes that segment's files from the sources, and the new generation is intact
/// and answers exactly like the undamaged index. (Copying the damaged row into a new, freshly
/// checksummed segment would hide the damage from `tp verify` for good.)
#[test]
fn index_update_does_not_launder_a_damaged_vector_payload() {
    let sb = Sandbox::indexed_poker();
    // Row 0 is the first chunk of the first file in path order: README.md's table.
    let query = [
        "search",
        "rust python typescript go bash directory language",
        "--output",
        "json",
        "--limit",
        "5",
    ];
    let good = sb.tp(&query).ok().stdout;
    assert!(
        parse_hits(&good)
            .iter()
            .any(|h| h["file"] == "README.md" && h["line_start"] == 1),
        "the query must find row 0 for this test to mean something: {good}"
    );
    // Zero row 0 (all zeros is a valid-looking vector: only the checksum can tell).
    let segment = only_segment(&sb);
    let path = segment.join("vectors.bin");
    let mut bytes = fs::read(&path).unwrap();
    let dims = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    bytes[64..64 + 4 * dims].fill(0);
    fs::write(&path, bytes).unwrap();
    assert!(sb.tp(&["verify"]).err().contains("vectors.bin"));
    // Same content, new mtimes everywhere: without the check, tp index would write a new
    // generation copying every row of the old segment, the damaged one included.
    let later = SystemTime::now() + Duration::from_secs(3600);
    for rel in sb.sources().keys() {
        set_mtime(&sb.path(rel), later);
    }
    let run = sb.tp(&["index"]).ok();
    let name = segment.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("warning: dropping the damaged segment") && l.contains(&name)),
        "tp index must say which segment it found damaged\n{}",
        run.describe()
    );
    sb.tp(&["verify"]).ok();
    assert_ne!(only_segment(&sb), segment, "the damaged segment is gone");
    assert_eq!(
        summary(&sb.tp(&query).ok().stdout),
        summary(&good),
        "the repaired index answers like the undamaged one"
    );
}

/// `tp verify`'s way out for a broken `config.yaml` must work.
#[test]
fn verify_advice_for_a_broken_config_yaml_works() {
    let sb = Sandbox::indexed_poker();
    fs::write(sb.index_dir().join("config.yaml"), "model: [\n").unwrap();
    let line = sb.tp(&["verify"]).err();
    assert!(line.contains("config.yaml"), "{line}");
    let index = sb.tp(&["index"]).err();
    assert!(index.contains("config.yaml"), "{index}");
    if line.contains("tp index --rebuild") {
        let rebuild = sb.tp(&["index", "--rebuild"]);
        assert_eq!(
            rebuild.code,
            Some(0),
            "tp verify said {line:?}, but following it fails:\n{}",
            rebuild.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input: arguments
// ---------------------------------------------------------------------------------------------

#[test]
fn empty_query_is_an_error() {
    let sb = Sandbox::indexed_poker();
    for q in ["", "   ", "\t\n"] {
        let line = sb.tp(&["search", q]).only_err();
        assert!(line.contains("query is empty"), "{line}");
    }
}

#[test]
fn limit_zero_prints_nothing_and_succeeds() {
    let sb = Sandbox::indexed_poker();
    let json = sb
        .tp(&[
            "search",
            "rank a poker hand",
            "--limit",
            "0",
            "--output",
            "json",
        ])
        .ok();
    assert_eq!(json.stdout, "");
    let text = sb.tp(&["search", "rank a poker hand", "--limit", "0"]).ok();
    assert_eq!(text.stdout, "");
}

#[test]
fn nonexistent_repo_is_an_error_naming_it() {
    let sb = Sandbox::empty();
    let missing = sb.home.join("no-such-repo");
    let missing = missing.to_str().unwrap();
    for args in [
        &["index", "--repo", missing][..],
        &["search", "x", "--repo", missing],
        &["status", "--repo", missing],
        &["verify", "--repo", missing],
    ] {
        let line = sb.tp(args).only_err();
        assert!(line.contains(missing) && line.contains("--repo"), "{line}");
    }
    assert!(!Path::new(missing).exists(), "nothing created");
    // A file is not a repository either.
    sb.write("file.txt", "x");
    let file = sb.path("file.txt");
    let line = sb
        .tp(&["index", "--repo", file.to_str().unwrap()])
        .only_err();
    assert!(line.contains("file.txt"), "{line}");
}

#[test]
fn invalid_threshold_is_an_error_naming_it() {
    let sb = Sandbox::indexed_poker();
    for t in ["1.5", "-0.5", "NaN", "inf"] {
        let flag = format!("--threshold={t}");
        let line = sb.tp(&["search", "rank a poker hand", &flag]).only_err();
        assert!(line.contains("--threshold"), "{line}");
    }
    for t in ["0", "1", "0.5"] {
        sb.tp(&["search", "rank a poker hand", "--threshold", t])
            .ok();
    }
}

#[test]
fn invalid_max_filesize_is_an_error_naming_it() {
    let sb = Sandbox::poker();
    for size in ["lots", "0", "-1mb", "12 parsecs", ""] {
        let flag = format!("--max-filesize={size}");
        let line = sb.tp(&["index", &flag]).only_err();
        assert!(line.contains("--max-filesize"), "{line}");
        assert!(
            line.contains(&format!("{size:?}")),
            "names the value: {line}"
        );
    }
    assert!(
        !sb.index_dir().join("manifest.json").exists(),
        "nothing indexed on a bad flag"
    );
}

#[test]
fn invalid_glob_filter_is_an_error_naming_it() {
    let sb = Sandbox::indexed_poker();
    for glob in ["[abc", "src/{a,b", "**/[z-a]"] {
        let line = sb
            .tp(&["search", "rank a poker hand", "--filter", glob])
            .only_err();
        assert!(line.contains(glob), "names the glob: {line}");
    }
}

#[test]
fn unknown_model_is_an_error_naming_it() {
    let sb = Sandbox::poker();
    let line = sb.tp(&["index", "--model", "no-such-model-xyz"]).only_err();
    assert!(line.contains("no-such-model-xyz"), "{line}");
}

// ---------------------------------------------------------------------------------------------
// The writer lock, held by the test process itself (std takes the same flock(2) lock as tp)
// ---------------------------------------------------------------------------------------------

/// Takes the index's writer lock as another `tp index` would, until it is released.
fn hold_writer_lock(sb: &Sandbox) -> fs::File {
    let lock = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(sb.index_dir().join("writer.lock"))
        .unwrap();
    lock.try_lock().expect("no other writer holds the lock");
    lock
}

fn release_writer_lock(holder: fs::File) {
    holder.unlock().unwrap();
}

#[cfg(unix)]
#[test]
fn index_no_wait_fails_while_another_writer_holds_the_lock() {
    let sb = Sandbox::indexed_poker();
    let holder = hold_writer_lock(&sb);
    let busy = sb.tp(&["index", "--no-wait"]);
    // Readers are lock-free: search works while a writer holds the lock.
    let search = sb.tp(&["search", "rank a poker hand", "--limit", "1"]);
    release_writer_lock(holder);
    let line = busy.only_err();
    assert!(line.contains("another tp index"), "{line}");
    assert!(line.contains("writer.lock"), "{line}");
    search.ok();
    sb.tp(&["index", "--no-wait"]).ok();
}

#[cfg(unix)]
#[test]
fn index_waits_for_another_writer_by_default() {
    let sb = Sandbox::indexed_poker();
    sb.write("rust/src/rake.rs", "pub fn rake() {}\n");
    let holder = hold_writer_lock(&sb);
    let mut waiting = sb
        .command(&["index"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(waiting.stderr.take().unwrap());
    // Read up to the waiting notice (notes about the model may come first).
    let mut first = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        first.push_str(&line);
        if line.starts_with("waiting for another tp index") {
            break;
        }
    }
    assert!(
        first.contains("waiting for another tp index"),
        "tp index must say it waits: {first}"
    );
    release_writer_lock(holder);
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let status = waiting.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{first}{rest}");
    assert!(!rest.contains("panicked"), "{rest}");
    assert!(rest.contains("1 new"), "{rest}");
}

// ---------------------------------------------------------------------------------------------
// tp benchmark and --exact
// ---------------------------------------------------------------------------------------------

#[test]
fn benchmark_json_reports_every_field_and_cleans_up() {
    let sb = Sandbox::empty();
    let dir = sb.root.to_string_lossy().into_owned();
    let out = sb
        .tp(&[
            "benchmark",
            "--vectors",
            "3000",
            "--dim",
            "64",
            "--queries",
            "12",
            "--dir",
            &dir,
            "--output",
            "json",
        ])
        .ok();
    let report: Value = serde_json::from_str(out.stdout.trim()).expect("one JSON object");
    for key in [
        "vectors",
        "dim",
        "build_s",
        "bytes_on_disk",
        "open_ms",
        "exact_p50_ms",
        "exact_p95_ms",
        "fast_p50_ms",
        "fast_p95_ms",
        "recall_at_10",
        "bandwidth_gbps",
        "exact_vs_bandwidth",
    ] {
        assert!(
            report[key].is_number(),
            "{key} missing or not a number: {report}"
        );
    }
    assert_eq!(report["vectors"], 3000);
    assert_eq!(report["dim"], 64);
    // The vectors alone are 3000 × 64 × 4 bytes.
    assert!(report["bytes_on_disk"].as_u64().unwrap() > 3000 * 64 * 4);
    let recall = report["recall_at_10"].as_f64().unwrap();
    // The fast path re-ranks 500 of the 3,000 clustered vectors: it finds nearly every true
    // top-10 hit (a broken code scan or re-rank would not).
    assert!((0.95..=1.0).contains(&recall), "recall@10 {recall}");
    assert!(report["exact_p50_ms"].as_f64().unwrap() <= report["exact_p95_ms"].as_f64().unwrap());
    // Nothing left behind in the folder it built in.
    assert_eq!(fs::read_dir(&sb.root).unwrap().count(), 0);
}

#[test]
fn benchmark_bad_input_is_a_one_line_error() {
    let sb = Sandbox::empty();
    for args in [
        &["benchmark", "--vectors", "0"][..],
        &["benchmark", "--dim", "0"],
        &["benchmark", "--queries", "0"],
        &[
            "benchmark",
            "--vectors",
            "100",
            "--dir",
            "/nonexistent/tp-bench",
        ],
    ] {
        let err = sb.tp(args).only_err();
        assert!(!err.contains('\n'), "{err}");
    }
    sb.tp(&["benchmark", "--vectors", "many"]).usage_err();
}

/// The fast path answers like `--exact`. The default search takes it from
/// `FAST_MIN_ROWS` chunks on; a test repository is far smaller, so the test build's
/// `TURBOPROP_TEST_FAST_PATH=1` forces it, on a repository of several times more chunks than it
/// re-ranks (200 for the built-in lexical vectors' int8 codes at this limit): the hits come
/// from its code scan, not from scoring every row.
#[test]
fn exact_search_agrees_with_the_default_search() {
    const WORDS: &[&str] = &[
        "upload", "retry", "socket", "ledger", "parser", "token", "window", "cache", "shard",
        "vector", "stream", "buffer", "cursor", "render", "commit", "branch", "bucket", "signal",
        "thread", "lock", "queue", "frame", "header", "budget", "invoice", "tariff", "glacier",
        "harbor", "lantern", "meadow", "orchid", "pebble", "quartz", "saddle", "timber", "velvet",
    ];
    let sb = Sandbox::empty();
    generate_functions(&sb.root, 300, 100, WORDS, 0x7e57_0018);
    sb.tp(&["index"]).ok();
    let chunks = sb.status()["chunks"].as_u64().unwrap();
    assert!(chunks >= 800, "only {chunks} chunks");
    for query in [
        "retry the upload",
        "socket buffer",
        "ledger invoice tariff",
        "glacier meadow",
        "render the frame header",
        "lock the queue before the thread",
    ] {
        let args = ["search", query, "--output", "json", "--limit", "10"];
        let fast = sb.tp_env(&args, &[("TURBOPROP_TEST_FAST_PATH", "1")]).ok();
        let exact = sb
            .tp(&[
                "search", query, "--output", "json", "--limit", "10", "--exact",
            ])
            .ok();
        assert_eq!(parse_hits(&fast.stdout).len(), 10, "{query}");
        assert_eq!(summary(&fast.stdout), summary(&exact.stdout), "{query}");
    }
}
