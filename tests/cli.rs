//! End-to-end tests of the `tp` binary: the real executable, run in a temporary copy of the
//! poker fixture (`tests/fixtures/poker/`, see its `EXPECTED.md`) for every test.
//!
//! What is pinned here is the contract of `docs/DESIGN.md` as a user or a script sees it:
//! output formats (insta snapshots), search quality on the fixture, filters applied before
//! top-k, incremental indexing, exit codes, the writer lock, `tp benchmark` and the fast path.
//! The list of bad inputs is in `tests/bad_input.rs`.
//!
//! Snapshots live in `tests/snapshots/`; after an intended change to an output, re-create them
//! with `INSTA_UPDATE=always cargo test -p turboprop --test cli` and review the diff.

// Tests fail loudly; `unwrap` on a test's own set-up is the clearest way to say so.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Read};

use std::process::Stdio;
use std::time::{Duration, SystemTime};

use serde_json::Value;

mod common;
use common::*;

// ---------------------------------------------------------------------------------------------
// Helpers (the sandbox, runs of tp and output parsers are in tests/common/mod.rs)
// ---------------------------------------------------------------------------------------------

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

/// No two hits of any search overlap in lines (every search output is checked by
/// `parse_hits`; here over random repositories of files from one line to several windows
/// long, and random queries of their words, up to a limit past the number of chunks).
#[test]
fn no_hit_overlaps_another_in_random_repositories() {
    const WORDS: &[&str] = &[
        "split", "pot", "winner", "deck", "shuffle", "card", "river", "blind", "raise", "fold",
        "chip", "stack", "dealer", "table", "seat", "timer",
    ];
    let mut config = proptest::test_runner::Config::with_cases(12);
    config.failure_persistence = None;
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let case = (
        proptest::collection::vec((1usize..160, proptest::prelude::any::<u64>()), 1..6),
        proptest::collection::vec(proptest::collection::vec(0..WORDS.len(), 1..4), 1..4),
        1usize..40,
    );
    runner
        .run(&case, |(files, queries, limit)| {
            let sb = Sandbox::empty();
            for (f, (lines, seed)) in files.iter().enumerate() {
                let mut rng = Rng(*seed);
                let text: String = (0..*lines)
                    .map(|_| format!("{} {}\n", rng.pick(WORDS), rng.pick(WORDS)))
                    .collect();
                sb.write(&format!("src/f{f}.rs"), text);
            }
            sb.tp(&["index"]).ok();
            for words in queries {
                let query: Vec<&str> = words.iter().map(|&w| WORDS[w]).collect();
                // parse_hits asserts that no two hits overlap.
                let hits = sb.search(&query.join(" "), &["--limit", &limit.to_string()]);
                proptest::prop_assert!(hits.len() <= limit);
            }
            Ok(())
        })
        .unwrap();
}

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
    let query = "rank a poker hand";
    assert!(sb.search(query, &["--limit", "1000"]).len() > 10);
    assert_eq!(sb.search(query, &["--limit", "7"]).len(), 7);
    assert_eq!(sb.search(query, &[]).len(), 10, "--limit defaults to 10");
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
    assert!(sb
        .search_files(query, &["--limit", "3"])
        .contains(&"python/poker/side_pots.py".to_owned()));
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
    for i in 0..8000 {
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
