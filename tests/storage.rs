//! The storage guarantees of `tp` (DESIGN.md "On disk", issue 3), tested with the real binary
//! in real processes, each test in its own temporary folder:
//!
//! - a `tp index` killed with SIGKILL at a random moment leaves the previous commit or the new
//!   one, never a mix, and the next `tp index` cleans up after it;
//! - readers searching while a writer commits see only committed generations, without errors;
//! - a second writer waits for the lock (or fails at once with `--no-wait`) and never corrupts;
//! - every file of the index, damaged in every way, gives a one-line error naming it (or is
//!   optional), `tp verify` names it, nothing panics, and `tp index --rebuild` recovers without
//!   touching the source files;
//! - an index written in today's format (`tests/fixtures/compat/v1/`) still opens.
//!
//! Every run of `tp` is bounded by [`RUN_TIMEOUT`], and every spawned process is killed and
//! reaped when its test ends, passes or fails. Randomness is seeded: a failure names its seed
//! and trial, and replays the same file changes.

// Tests fail loudly; `unwrap` on a test's own set-up is the clearest way to say so.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, UNIX_EPOCH};

mod common;
use common::{copy_dir, Rng, Run, Sandbox, RUN_TIMEOUT};

// ---------------------------------------------------------------------------------------------
// Running tp (the harness is tests/common)
// ---------------------------------------------------------------------------------------------

/// `tp search QUERY --output json --limit 20` in `repo`, which must succeed, as an [`Answer`].
fn answer(sb: &Sandbox, repo: &Path, query: &str) -> Answer {
    let out = sb
        .tp_at(
            repo,
            &["search", query, "--output", "json", "--limit", "20"],
        )
        .ok();
    answer_of(&out)
}

/// A search's hits, comparable across copies of a repository: (score rounded to 3 decimals,
/// negated so the best sorts first; file; first line; last line), sorted. Sorting makes hits
/// of equal rounded score compare as a set (ties are broken by storage order, which differs
/// between copies that committed the same content in different steps).
type Answer = Vec<(i64, String, u64, u64)>;

fn answer_of(out: &Run) -> Answer {
    let mut hits: Answer = out
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: bad JSON line {l:?}: {e}", out.args));
            let score = v["score"].as_f64().unwrap();
            (
                -((score * 1000.0).round() as i64),
                v["file"].as_str().unwrap().to_owned(),
                v["line_start"].as_u64().unwrap(),
                v["line_end"].as_u64().unwrap(),
            )
        })
        .collect();
    hits.sort();
    hits
}

// ---------------------------------------------------------------------------------------------
// Generated repositories
// ---------------------------------------------------------------------------------------------

/// The seed of a randomized test: `default`, or `TP_STORAGE_SEED` (decimal or 0x-hex) to
/// explore other sequences; failures print the seed they ran with.
fn seed(default: u64) -> u64 {
    match std::env::var("TP_STORAGE_SEED") {
        Ok(s) => s
            .strip_prefix("0x")
            .map_or_else(|| s.parse(), |h| u64::from_str_radix(h, 16))
            .unwrap_or_else(|e| panic!("TP_STORAGE_SEED={s:?}: {e}")),
        Err(_) => default,
    }
}

/// A generated repository of text files made of invented words (with a skewed frequency, like
/// identifiers in code), mirrored into one or more identical copies. Every write sets the
/// file's modification time from a logical clock, so each change is visible to `tp index`'s
/// stat check however fast the test runs.
struct Corpus {
    vocab: Vec<String>,
    files: Vec<String>,
    next_file: usize,
    clock: u64,
}

impl Corpus {
    fn new(rng: &mut Rng) -> Corpus {
        const SYLLABLES: [&str; 24] = [
            "ka", "lo", "mi", "nu", "ra", "se", "ti", "vo", "za", "pe", "qui", "bor", "dan", "fel",
            "gom", "hix", "jun", "kel", "mox", "nav", "pry", "sul", "tev", "wyn",
        ];
        let mut seen = HashSet::new();
        let mut vocab = Vec::new();
        while vocab.len() < 600 {
            let parts = rng.range(2, 3);
            let word: String = (0..parts)
                .map(|_| SYLLABLES[rng.range(0, SYLLABLES.len() - 1)])
                .collect();
            if seen.insert(word.clone()) {
                vocab.push(word);
            }
        }
        Corpus {
            vocab,
            files: Vec::new(),
            next_file: 0,
            clock: 1_600_000_000,
        }
    }

    /// A query of three words of decreasing frequency.
    fn query(&self) -> String {
        format!("{} {} {}", self.vocab[3], self.vocab[25], self.vocab[90])
    }

    fn word(&self, rng: &mut Rng) -> &str {
        // Skewed: low indices are common, high ones rare.
        let i = (self.vocab.len() as f64 * rng.unit().powi(3)) as usize;
        &self.vocab[i.min(self.vocab.len() - 1)]
    }

    fn line(&self, rng: &mut Rng) -> String {
        match rng.range(0, 9) {
            0 => String::new(),
            1 | 2 => format!(
                "fn {}_{}({}: {}) -> {} {{",
                self.word(rng),
                self.word(rng),
                self.word(rng),
                self.word(rng),
                self.word(rng)
            ),
            3 => format!(
                "    let {} = {}.{}({});",
                self.word(rng),
                self.word(rng),
                self.word(rng),
                self.word(rng)
            ),
            _ => {
                let n = rng.range(3, 9);
                let words: Vec<&str> = (0..n).map(|_| self.word(rng)).collect();
                format!("// {}", words.join(" "))
            }
        }
    }

    fn text(&self, rng: &mut Rng, lines: usize) -> String {
        let mut s = String::new();
        for _ in 0..lines {
            s.push_str(&self.line(rng));
            s.push('\n');
        }
        s
    }

    /// Writes `rel` with `text` into every copy, all with the same new modification time.
    fn write(&mut self, roots: &[&Path], rel: &str, text: &str) {
        self.clock += 1;
        let mtime = UNIX_EPOCH + Duration::from_secs(self.clock);
        for root in roots {
            let p = root.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, text).unwrap();
            fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(mtime)
                .unwrap();
        }
    }

    fn add(&mut self, roots: &[&Path], rng: &mut Rng, lines: (usize, usize)) {
        let rel = format!("d{}/f{:05}.rs", self.next_file % 8, self.next_file);
        self.next_file += 1;
        let n = rng.range(lines.0, lines.1);
        let text = self.text(rng, n);
        self.write(roots, &rel, &text);
        self.files.push(rel);
    }

    /// Replaces a few lines of a file (and sometimes appends some).
    fn edit(&mut self, roots: &[&Path], rng: &mut Rng) {
        let rel = self.files[rng.range(0, self.files.len() - 1)].clone();
        let old = fs::read_to_string(roots[0].join(&rel)).unwrap();
        let mut lines: Vec<String> = old.lines().map(str::to_owned).collect();
        for _ in 0..rng.range(1, 4) {
            let i = rng.range(0, lines.len() - 1);
            lines[i] = self.line(rng);
        }
        if rng.range(0, 2) == 0 {
            for _ in 0..rng.range(1, 30) {
                lines.push(self.line(rng));
            }
        }
        let mut text = lines.join("\n");
        text.push('\n');
        self.write(roots, &rel, &text);
    }

    fn delete(&mut self, roots: &[&Path], rng: &mut Rng) {
        let rel = self.files.swap_remove(rng.range(0, self.files.len() - 1));
        for root in roots {
            fs::remove_file(root.join(&rel)).unwrap();
        }
    }

    /// `files` new files of `lines` lines each.
    fn populate(&mut self, roots: &[&Path], rng: &mut Rng, files: usize, lines: (usize, usize)) {
        for _ in 0..files {
            self.add(roots, rng, lines);
        }
    }

    /// A random change: some edits, sometimes a few new and deleted files; every
    /// `big_every`-th change edits many files.
    fn change(&mut self, roots: &[&Path], rng: &mut Rng, step: usize, big_every: usize) {
        let edits = if step % big_every == big_every - 1 {
            rng.range(15, 30)
        } else {
            rng.range(1, 8)
        };
        for _ in 0..edits {
            self.edit(roots, rng);
        }
        for _ in 0..rng.range(0, 2) {
            self.add(roots, rng, (20, 150));
        }
        for _ in 0..rng.range(0, 2) {
            if self.files.len() > 10 {
                self.delete(roots, rng);
            }
        }
    }
}

/// The body of `manifest.json` (after its one-line header), parsed.
fn manifest(repo: &Path) -> serde_json::Value {
    let text = fs::read_to_string(index_dir(repo).join("manifest.json")).unwrap();
    let (_, body) = text.split_once('\n').unwrap();
    serde_json::from_str(body).unwrap()
}

fn index_dir(repo: &Path) -> PathBuf {
    repo.join(".turboprop/index")
}

/// Asserts that the index folder holds exactly the fixed files and what the manifest names:
/// no temp file, no uncommitted or collected segment left behind. `config.yaml` and
/// `writer.lock` are optional (a writer killed during its first run may not have written the
/// config; missing means the defaults).
fn assert_no_leftovers(repo: &Path, context: &str) {
    let m = manifest(repo);
    let mut expected: BTreeSet<String> = ["version.txt", "manifest.json"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    for seg in m["segments"].as_array().unwrap() {
        expected.insert(seg["name"].as_str().unwrap().to_owned());
        if let Some(d) = seg["deletes"]["name"].as_str() {
            expected.insert(d.to_owned());
        }
    }
    let found: BTreeSet<String> = fs::read_dir(index_dir(repo))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "writer.lock" && n != "config.yaml")
        .collect();
    assert_eq!(found, expected, "{context}: index folder has leftovers");
}

// ---------------------------------------------------------------------------------------------
// Kill test
// ---------------------------------------------------------------------------------------------

/// DESIGN.md guarantee 1: a `tp index` killed with SIGKILL at any instant leaves the last
/// committed index readable and correct. Two identical copies A and B of a generated repo of
/// a few thousand chunks receive the same random changes; B is indexed to completion (the
/// "new" answer, and the time an update takes), A's `tp index` is killed after a random delay
/// within that time. A must then verify, and answer a search exactly as before the change or
/// exactly as B does; a full `tp index` in A then reaches B's answer and removes every
/// leftover of the killed run. Trials 12 and 37 kill a `tp index --rebuild` (a full rewrite)
/// instead, within the time a full index takes.
#[test]
fn sigkill_during_tp_index_leaves_the_previous_or_the_new_commit() {
    sigkill_trials(50, seed(0x7e57_0003), false);
}

/// The same kills on an index with two vector spaces (issue 6): the built-in lexical vectors
/// and a model's (a tiny random BERT in the sandbox's user cache of models, used by
/// `tp index` and by the hybrid `tp search` by themselves).
#[test]
fn sigkill_during_tp_index_of_a_two_space_index_leaves_the_previous_or_the_new_commit() {
    sigkill_trials(20, seed(0x7e57_0006), true);
}

fn sigkill_trials(trials: usize, seed: u64, with_model: bool) {
    let sb = Sandbox::empty();
    let (a, b) = (sb.dir("a"), sb.dir("b"));
    if with_model {
        // In the user cache (a repository's own models are used only with --repo-model).
        turboprop_embed::write_tiny_bert(&sb.cache.join("models/tiny-bert"), 13).unwrap();
    }
    let mut rng = Rng(seed);
    let mut corpus = Corpus::new(&mut rng);
    corpus.populate(&[&a, &b], &mut rng, 200, (160, 360));
    let query = corpus.query();
    let started = Instant::now();
    sb.tp_at(&a, &["index"]).ok();
    let full = started.elapsed();
    // B's files have A's sizes and modification times, so A's index is B's too.
    copy_dir(&a.join(".turboprop"), &b.join(".turboprop"));
    if with_model {
        assert_eq!(manifest(&a)["spaces"][0]["model"]["id"], "tiny-bert");
    }
    // All segments: on a loaded machine the ~10 s commit batching may split the first index.
    let chunks: u64 = manifest(&a)["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rows"].as_u64().unwrap())
        .sum();
    assert!(
        chunks >= 1500,
        "the generated repo has only {chunks} chunks"
    );

    let mut old = answer(&sb, &a, &query);
    assert_eq!(
        old,
        answer(&sb, &b, &query),
        "identical copies answer differently"
    );
    assert!(old.len() >= 10, "the query finds too little: {old:?}");
    for trial in 0..trials {
        let context = format!("seed {seed:#x}, trial {trial}");
        corpus.change(&[&a, &b], &mut rng, trial, 10);
        let started = Instant::now();
        sb.tp_at(&b, &["index"]).ok();
        let incremental = started.elapsed();
        let new = answer(&sb, &b, &query);
        let (args, typical): (&[&str], _) = if trial % 25 == 12 {
            (&["index", "--rebuild"], full)
        } else {
            (&["index"], incremental)
        };

        // Half the kills anywhere in the run, half in its second half, where the segment is
        // written, the manifest replaced and old files collected.
        let at = if rng.unit() < 0.5 {
            rng.unit() * 1.1
        } else {
            0.5 + rng.unit() * 0.6
        };
        let delay = typical.mul_f64(at);
        let writer = sb.spawn_at(&a, args);
        thread::sleep(delay);
        writer.kill().no_panic();
        let context = format!(
            "{context}, tp {} killed after {delay:?} of {typical:?}",
            args.join(" ")
        );

        let verify = sb.tp_at(&a, &["verify"]);
        verify.no_panic();
        assert_eq!(
            verify.code,
            Some(0),
            "{context}: tp verify fails after the kill: {}",
            verify.stderr
        );
        let got = answer(&sb, &a, &query);
        assert!(
            got == old || got == new,
            "{context}: the search answers neither the previous commit nor the new one\n\
             previous: {old:?}\nnew: {new:?}\ngot: {got:?}"
        );

        sb.tp_at(&a, &["index"]).ok();
        assert_eq!(
            answer(&sb, &a, &query),
            new,
            "{context}: tp index after the kill does not reach the new state"
        );
        assert_no_leftovers(&a, &context);
        old = new;
    }
}

/// The first `tp index` of a repository creates the index folder, writes `version.txt` and
/// `config.yaml` (each through a temp file) and commits generation 1; killed at any moment of
/// that, it must leave no index or a whole one, and never a folder the next `tp index` refuses.
/// Kills are seeded and spread over a complete first run, half of them in its first quarter,
/// where the folder is created.
#[test]
fn sigkill_during_the_first_tp_index_never_blocks_the_next_one() {
    const TRIALS: usize = 25;
    let seed = seed(0x7e57_0008);
    let sb = Sandbox::empty();
    let mut rng = Rng(seed);
    let mut corpus = Corpus::new(&mut rng);
    let template = sb.dir("template");
    corpus.populate(&[&template], &mut rng, 20, (20, 120));
    let query = corpus.query();
    let fresh = |name: &str| {
        let repo = sb.dir(name);
        for f in sources(&template).keys() {
            fs::create_dir_all(repo.join(f).parent().unwrap()).unwrap();
            fs::copy(template.join(f), repo.join(f)).unwrap();
        }
        repo
    };
    let started = Instant::now();
    sb.tp_at(&template, &["index"]).ok();
    let full = started.elapsed();
    let expected = answer(&sb, &template, &query);

    for trial in 0..TRIALS {
        let repo = fresh(&format!("trial-{trial}"));
        let at = if rng.unit() < 0.5 {
            rng.unit() * 0.25
        } else {
            rng.unit() * 1.1
        };
        let delay = full.mul_f64(at);
        let writer = sb.spawn_at(&repo, &["index"]);
        thread::sleep(delay);
        writer.kill().no_panic();
        let context = format!("seed {seed:#x}, trial {trial}, killed after {delay:?} of {full:?}");
        let left: Vec<String> = fs::read_dir(index_dir(&repo))
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();

        let search = sb.tp_at(
            &repo,
            &["search", &query, "--output", "json", "--limit", "20"],
        );
        search.no_panic();
        match search.code {
            Some(0) => assert_eq!(answer_of(&search), expected, "{context}: a partial index"),
            Some(2) => assert_eq!(
                search.stderr.trim_end().lines().count(),
                1,
                "{context}: {}",
                search.stderr
            ),
            code => panic!("{context}: search exited {code:?}: {}", search.stderr),
        }
        let index = sb.tp_at(&repo, &["index"]);
        index.no_panic();
        assert_eq!(
            index.code,
            Some(0),
            "{context}: the killed first run left {left:?}, and tp index then fails: {}",
            index.stderr
        );
        sb.tp_at(&repo, &["verify"]).ok();
        assert_eq!(answer(&sb, &repo, &query), expected, "{context}");
        assert_no_leftovers(&repo, &context);
        fs::remove_dir_all(&repo).unwrap();
    }
}

/// "Leftover temp files from a crash are cleaned on the next write" (issue 3): what a killed
/// writer can leave (a temp file of an atomic write, an uncommitted segment folder, a delete
/// set no manifest names) is ignored by searches and removed by the next `tp index`, also
/// when the killed writer was the first one and left nothing but a temp file of
/// `version.txt` in a new index folder.
#[test]
fn leftovers_of_a_killed_writer_are_ignored_and_cleaned_by_the_next_tp_index() {
    let sb = Sandbox::empty();
    let mut rng = Rng(0x7e57_0009);
    let mut corpus = Corpus::new(&mut rng);
    let (repo, first) = (sb.dir("repo"), sb.dir("first"));
    corpus.populate(&[&repo, &first], &mut rng, 10, (20, 120));
    let query = corpus.query();
    sb.tp_at(&repo, &["index"]).ok();
    let expected = answer(&sb, &repo, &query);

    let index = index_dir(&repo);
    fs::write(
        index.join(".tp-tmp-999999-0-manifest.json"),
        "turboprop manif",
    )
    .unwrap();
    fs::create_dir_all(index.join("seg-00000099")).unwrap();
    fs::write(index.join("seg-00000099/vectors.bin"), b"TPVECTOR").unwrap();
    fs::write(index.join("seg-00000099/.tp-tmp-999999-1-chunks.bin"), b"").unwrap();
    fs::write(index.join("del-00000001-00000099.bin"), b"TPDELETE").unwrap();
    assert_eq!(
        answer(&sb, &repo, &query),
        expected,
        "leftovers change a search"
    );
    sb.tp_at(&repo, &["verify"]).ok();
    sb.tp_at(&repo, &["index"]).ok();
    assert_no_leftovers(&repo, "after a tp index");
    assert_eq!(answer(&sb, &repo, &query), expected);

    // A first writer killed while writing version.txt through its temp file.
    let index = index_dir(&first);
    fs::create_dir_all(&index).unwrap();
    fs::write(index.join(".tp-tmp-999999-0-version.txt"), "turboprop-in").unwrap();
    let out = sb.tp_at(&first, &["index"]);
    out.no_panic();
    assert_eq!(
        out.code,
        Some(0),
        "tp index refuses the folder a killed first writer left: {}",
        out.stderr
    );
    sb.tp_at(&first, &["verify"]).ok();
    assert_no_leftovers(&first, "after the first complete tp index");
    assert_eq!(answer(&sb, &first, &query), expected);
}

// ---------------------------------------------------------------------------------------------
// Readers during writes
// ---------------------------------------------------------------------------------------------

/// Threads that each run a search in a loop until stopped, keeping every output. Stopped
/// (and joined) when dropped too, so a failing test leaves no reader running.
struct Readers {
    done: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Run>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Readers {
    /// `n` threads; thread `i` runs `make(i)` over and over (at least once).
    fn start<F>(n: usize, mut make: impl FnMut(usize) -> F) -> Readers
    where
        F: FnMut() -> Run + Send + 'static,
    {
        let done = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..n)
            .map(|i| {
                let (done, seen, mut search) = (Arc::clone(&done), Arc::clone(&seen), make(i));
                thread::spawn(move || loop {
                    let stop = done.load(Ordering::SeqCst);
                    let out = search();
                    seen.lock().unwrap().push(out);
                    if stop {
                        break;
                    }
                })
            })
            .collect();
        Readers {
            done,
            seen,
            threads,
        }
    }

    /// Stops the readers and returns what they saw.
    fn stop(mut self) -> Vec<Run> {
        assert!(
            self.join(),
            "a reader thread panicked (see its message above)"
        );
        std::mem::take(&mut *self.seen.lock().unwrap())
    }

    /// Stops and joins the threads; false if one of them panicked.
    fn join(&mut self) -> bool {
        self.done.store(true, Ordering::SeqCst);
        let mut all_ok = true;
        for t in self.threads.drain(..) {
            all_ok &= t.join().is_ok();
        }
        all_ok
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

/// DESIGN.md guarantee 2: readers take no lock and see a whole committed generation while a
/// writer commits (and collects old segments) under them. Three readers search in a loop while
/// the writer commits 20 times; every search must succeed, print no error, and answer exactly
/// as one of the committed generations does.
#[test]
fn searches_during_commits_succeed_and_see_only_committed_generations() {
    const COMMITS: usize = 20;
    const READERS: usize = 3;
    let seed = seed(0x7e57_0004);
    let sb = Sandbox::empty();
    let repo = sb.dir("repo");
    let mut rng = Rng(seed);
    let mut corpus = Corpus::new(&mut rng);
    corpus.populate(&[&repo], &mut rng, 200, (40, 160));
    let query = corpus.query();
    sb.tp_at(&repo, &["index"]).ok();

    // The answer of every committed generation, recorded right after its commit (before the
    // next change), so by the end it holds every answer a reader may have seen.
    let mut generations: HashSet<Answer> = HashSet::new();
    generations.insert(answer(&sb, &repo, &query));

    let sb = Arc::new(sb);
    let readers = Readers::start(READERS, |_| {
        let (sb, repo, query) = (Arc::clone(&sb), repo.clone(), query.clone());
        move || {
            sb.tp_at(
                &repo,
                &["search", &query, "--output", "json", "--limit", "20"],
            )
        }
    });

    for step in 0..COMMITS {
        corpus.change(&[&repo], &mut rng, step, 5);
        let out = sb.tp_at(&repo, &["index"]).ok();
        assert!(
            out.stderr.contains("indexed"),
            "commit {step} wrote nothing: {}",
            out.stderr
        );
        generations.insert(answer(&sb, &repo, &query));
    }
    let seen = readers.stop();

    assert!(seen.len() >= READERS);
    assert!(
        generations.len() > 1,
        "the commits never changed the answer"
    );
    for out in seen.iter() {
        out.no_panic();
        assert_eq!(
            out.code,
            Some(0),
            "seed {seed:#x}: a search during commits failed: {}",
            out.stderr
        );
        assert!(
            !out.stderr.to_lowercase().contains("error"),
            "seed {seed:#x}: a search during commits reported an error: {}",
            out.stderr
        );
        let answer = answer_of(out);
        assert!(
            generations.contains(&answer),
            "seed {seed:#x}: a search during commits saw no committed generation: {answer:?}"
        );
    }
    sb.tp_at(&repo, &["verify"]).ok();
}

// ---------------------------------------------------------------------------------------------
// Two writers
// ---------------------------------------------------------------------------------------------

/// DESIGN.md guarantee 2: one writer at a time. While the writer lock is held (by this test,
/// through the same flock(2) lock `tp index` takes), `tp index` says it is waiting and does not
/// run; `tp index --no-wait` fails at once with exit 2 and a one-line message; once the lock
/// is released the waiting writer commits, and the index verifies.
#[test]
fn second_writer_waits_for_the_lock_or_fails_at_once_with_no_wait() {
    let sb = Sandbox::empty();
    let repo = sb.dir("repo");
    let mut rng = Rng(0x7e57_0005);
    let mut corpus = Corpus::new(&mut rng);
    corpus.populate(&[&repo], &mut rng, 20, (20, 80));
    sb.tp_at(&repo, &["index"]).ok();
    let generation = manifest(&repo)["generation"].as_u64().unwrap();
    corpus.change(&[&repo], &mut rng, 0, 100);

    let lock_path = index_dir(&repo).join("writer.lock");
    let lock = fs::File::options()
        .read(true)
        .write(true)
        .open(&lock_path)
        .unwrap();
    lock.try_lock().unwrap();

    let mut waiting = sb.spawn_at(&repo, &["index"]);
    let line = waiting
        .wait_for_stderr("waiting for another tp index", RUN_TIMEOUT)
        .unwrap_or_else(|| panic!("tp index never said it was waiting"));
    assert!(
        line.contains(&index_dir(&repo).display().to_string()),
        "the waiting message does not name the index: {line}"
    );

    let busy = sb.tp_at(&repo, &["index", "--no-wait"]);
    busy.no_panic();
    assert_eq!(busy.code, Some(2), "tp index --no-wait: {}", busy.stderr);
    assert_eq!(
        busy.stderr.trim_end().lines().count(),
        1,
        "not one line: {}",
        busy.stderr
    );
    assert!(
        busy.stderr.starts_with("error:") && busy.stderr.contains("another tp index"),
        "tp index --no-wait: {}",
        busy.stderr
    );

    // Still blocked: the lock is held, whatever the timing.
    assert!(waiting.is_running(), "tp index ran while the lock was held");
    assert_eq!(manifest(&repo)["generation"].as_u64(), Some(generation));

    lock.unlock().unwrap();
    drop(lock);
    waiting.wait().ok();
    assert_eq!(
        manifest(&repo)["generation"].as_u64(),
        Some(generation + 1),
        "the waiting writer did not commit once the lock was free"
    );
    sb.tp_at(&repo, &["verify"]).ok();
    let again = sb.tp_at(&repo, &["index", "--no-wait"]).ok();
    assert!(
        again.stderr.contains("up to date"),
        "the waiting writer missed changes: {}",
        again.stderr
    );
}

/// DESIGN.md guarantee 2, with real writers racing: two `tp index` (and a `--no-wait` one)
/// started together, first on a repository never indexed (they race to create the index
/// folder), then on changes. Whoever wins, both default writers succeed, a `--no-wait` writer
/// either succeeds or fails with the one-line "another tp index" message, and the result
/// verifies and answers exactly like a fresh index of the same files.
#[test]
fn concurrent_tp_index_runs_never_corrupt_the_index() {
    let sb = Sandbox::empty();
    let (repo, fresh) = (sb.dir("repo"), sb.dir("fresh"));
    let mut rng = Rng(0x7e57_0006);
    let mut corpus = Corpus::new(&mut rng);
    corpus.populate(&[&repo, &fresh], &mut rng, 300, (40, 160));
    let query = corpus.query();

    for round in 0..4 {
        if round > 0 {
            corpus.change(&[&repo, &fresh], &mut rng, round, 2);
        }
        let first = sb.spawn_at(&repo, &["index"]);
        let second = sb.spawn_at(&repo, &["index"]);
        let impatient = sb.spawn_at(&repo, &["index", "--no-wait"]);
        first.wait().ok();
        second.wait().ok();
        let impatient = impatient.wait();
        impatient.no_panic();
        if impatient.code != Some(0) {
            assert_eq!(
                impatient.code,
                Some(2),
                "round {round}: {}",
                impatient.stderr
            );
            // One error line (a first run may print a note about the model before it).
            let errors: Vec<&str> = impatient
                .stderr
                .lines()
                .filter(|l| l.starts_with("error:"))
                .collect();
            assert!(
                errors.len() == 1 && errors[0].contains("another tp index"),
                "round {round}: tp index --no-wait: {}",
                impatient.stderr
            );
        }
        sb.tp_at(&repo, &["verify"]).ok();
        assert_no_leftovers(&repo, &format!("round {round}"));

        let _ = fs::remove_dir_all(fresh.join(".turboprop"));
        sb.tp_at(&fresh, &["index"]).ok();
        assert_eq!(
            answer(&sb, &repo, &query),
            answer(&sb, &fresh, &query),
            "round {round}: racing writers give another index than a fresh one"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Corruption matrix
// ---------------------------------------------------------------------------------------------

/// How a file is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Damage {
    TruncateToHalf,
    TruncateToZero,
    /// One bit flipped in the header: the 64-byte header of a binary table, the first line of
    /// a text file.
    FlipHeaderBit,
    /// One bit flipped in the middle of the payload (after the header).
    FlipPayloadBit,
    Delete,
}

const DAMAGES: [Damage; 5] = [
    Damage::TruncateToHalf,
    Damage::TruncateToZero,
    Damage::FlipHeaderBit,
    Damage::FlipPayloadBit,
    Damage::Delete,
];

/// The files of an index, by how `tp` must treat their damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// `version.txt`, `manifest.json`, `metadata.json`: read and checked whole by every
    /// search; any damage is an error naming the file.
    Checked,
    /// A binary table (`vectors.bin`, `chunks.bin`, `terms.bin`, `df.bin`, `del-*.bin`):
    /// header and size are checked by every search, so those damages are errors naming the
    /// file; the payload is read in place without hashing, so a payload flip may go unseen by
    /// a search (or be caught by a record check) but `tp verify` must name the file.
    Table,
    /// `config.yaml`: only `tp index` and `tp verify` read it, and a missing or empty one means
    /// the defaults. It has no checksum by design (people edit it), so a damaged one is either
    /// still a valid config or refused by `tp verify` naming it; a search never needs it.
    Config,
    /// `writer.lock`: empty, only its fs2 lock matters; re-created by the next writer.
    Lock,
}

fn role_of(rel: &str) -> Role {
    let name = rel.rsplit('/').next().unwrap();
    match name {
        "version.txt" | "manifest.json" | "metadata.json" => Role::Checked,
        "config.yaml" => Role::Config,
        "writer.lock" => Role::Lock,
        n if n.ends_with(".bin") => Role::Table,
        n => panic!("unknown file in the index: {n} (add it to the corruption matrix)"),
    }
}

/// Every file under `dir`, relative to it, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = format!("{prefix}{}", e.file_name().to_string_lossy());
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), &format!("{name}/"), out);
            } else {
                out.push(name);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out);
    out.sort();
    out
}

/// Every file of the repository outside `.turboprop/`, with its bytes.
fn sources(repo: &Path) -> BTreeMap<String, Vec<u8>> {
    files_under(repo)
        .into_iter()
        .filter(|f| !f.starts_with(".turboprop/"))
        .map(|f| {
            let bytes = fs::read(repo.join(&f)).unwrap();
            (f, bytes)
        })
        .collect()
}

/// Applies `damage` to `path`; returns false when it does not apply (nothing to flip).
fn damage_file(path: &Path, rel: &str, damage: Damage) -> bool {
    let mut bytes = fs::read(path).unwrap();
    let binary = rel.ends_with(".bin");
    // Where the header ends: 64 bytes for a table, the first line for a text file.
    let header_end = if binary {
        64.min(bytes.len())
    } else {
        bytes
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| i + 1)
    };
    let flip = |bytes: &mut Vec<u8>, at: usize| bytes[at] ^= 0x01;
    match damage {
        Damage::TruncateToHalf | Damage::TruncateToZero if bytes.is_empty() => return false,
        Damage::TruncateToHalf => bytes.truncate(bytes.len() / 2),
        Damage::TruncateToZero => bytes.clear(),
        Damage::FlipHeaderBit => {
            if header_end == 0 {
                return false;
            }
            // Spread over the header fields from file to file: magic, version, width, count,
            // length, payload checksum, extra, header check.
            let at = if binary {
                const FIELDS: [usize; 8] = [0, 8, 12, 16, 24, 32, 48, 56];
                let h = rel
                    .bytes()
                    .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
                FIELDS[h % FIELDS.len()] + h % 4
            } else {
                // Inside the line, before its newline.
                (header_end - 1) / 2
            };
            flip(&mut bytes, at.min(header_end - 1));
        }
        Damage::FlipPayloadBit => {
            if bytes.len() <= header_end {
                return false;
            }
            let at = header_end + (bytes.len() - header_end) / 2;
            flip(&mut bytes, at);
        }
        Damage::Delete => {
            fs::remove_file(path).unwrap();
            return true;
        }
    }
    fs::write(path, bytes).unwrap();
    true
}

/// DESIGN.md guarantee 4: every file of a committed index (two segments and a delete set),
/// truncated to half and to nothing, with a bit flipped in its header and in its payload, and
/// deleted. After each: `tp search` fails with one line naming the file (or succeeds, where
/// the file is optional or the damage is in a payload searches do not hash), `tp verify`
/// names it (or passes, for optional files), nothing panics, and `tp index --rebuild`
/// recovers the pristine answers without touching a source file.
#[test]
fn every_damaged_index_file_is_named_and_rebuild_recovers() {
    corruption_matrix(false);
}

/// The same matrix on an index with two vector spaces (issue 6): the built-in lexical
/// vectors and a model's (a tiny random BERT in the sandbox's user cache of models, which
/// `tp index` and the hybrid `tp search` pick up by themselves), whose `vectors.<key>.bin`,
/// `codes.<key>.bin` and `center.<key>.bin` are damaged like every other file.
#[test]
fn every_damaged_file_of_a_two_space_index_is_named_and_rebuild_recovers() {
    corruption_matrix(true);
}

fn corruption_matrix(with_model: bool) {
    let sb = Sandbox::empty();
    let repo = sb.dir("repo");
    if with_model {
        // In the user cache (a repository's own models are used only with --repo-model).
        turboprop_embed::write_tiny_bert(&sb.cache.join("models/tiny-bert"), 11).unwrap();
    }
    let mut rng = Rng(0x7e57_0007);
    let mut corpus = Corpus::new(&mut rng);
    corpus.populate(&[&repo], &mut rng, 6, (30, 90));
    let query = corpus.query();
    sb.tp_at(&repo, &["index"]).ok();
    corpus.edit(&[&repo], &mut rng);
    sb.tp_at(&repo, &["index"]).ok();

    let index = index_dir(&repo);
    let pristine = sb.dir("pristine");
    copy_dir(&index, &pristine);
    let files = files_under(&pristine);
    let m = manifest(&repo);
    let segments = m["segments"].as_array().unwrap();
    assert!(segments.len() >= 2, "want two segments: {m}");
    assert!(
        files.iter().any(|f| f.starts_with("del-")),
        "want a delete set: {files:?}"
    );
    for fixed in ["version.txt", "config.yaml", "manifest.json", "writer.lock"] {
        assert!(files.iter().any(|f| f == fixed), "no {fixed}: {files:?}");
    }
    // Every file of a segment, including the file records read in place and the int8 codes.
    // (The built-in embedder's sparse vectors get int8 codes, no 1-bit codes; damaged
    // `codes.bin`/`center.bin` are covered in turboprop-index/tests/index.rs. The model's
    // dense vectors get 1-bit codes.)
    let mut kinds = vec![
        "codes8.bin",
        "vectors.bin",
        "chunks.bin",
        "terms.bin",
        "df.bin",
        "files.bin",
        "paths.bin",
        "metadata.json",
    ];
    if with_model {
        kinds.extend([
            "vectors.tiny-bert.bin",
            "codes.tiny-bert.bin",
            "planes.tiny-bert.bin",
            "center.tiny-bert.bin",
        ]);
        assert_eq!(m["spaces"][0]["model"]["id"], "tiny-bert", "{m}");
    }
    for kind in kinds {
        assert!(
            files
                .iter()
                .any(|f| f.starts_with("seg-") && f.ends_with(&format!("/{kind}"))),
            "no segment file {kind}: {files:?}"
        );
    }
    let expected = answer(&sb, &repo, &query);
    assert!(!expected.is_empty());
    let before = sources(&repo);

    let mut cases = 0;
    let mut failures = Vec::new();
    for rel in &files {
        for damage in DAMAGES {
            let _ = fs::remove_dir_all(&index);
            copy_dir(&pristine, &index);
            if !damage_file(&index.join(rel), rel, damage) {
                continue;
            }
            cases += 1;
            let case = DamageCase {
                sb: &sb,
                repo: &repo,
                rel,
                damage,
                query: &query,
                expected: &expected,
            };
            for why in case.check() {
                failures.push(format!("{rel} {damage:?}: {why}"));
            }
            if sources(&repo) != before {
                failures.push(format!("{rel} {damage:?}: source files changed"));
            }
        }
    }
    assert!(cases >= 60, "only {cases} damage cases ran");
    assert!(
        failures.is_empty(),
        "{} broken promises in {cases} damage cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// One file of the index, damaged one way.
struct DamageCase<'a> {
    sb: &'a Sandbox,
    repo: &'a Path,
    /// The file, relative to the index folder.
    rel: &'a str,
    damage: Damage,
    query: &'a str,
    /// The answer of the intact index.
    expected: &'a Answer,
}

impl DamageCase<'_> {
    /// Runs search, verify and rebuild on the damaged index; returns every broken promise.
    fn check(&self) -> Vec<String> {
        let (sb, repo, damage) = (self.sb, self.repo, self.damage);
        let role = role_of(self.rel);
        let named = format!(".turboprop/index/{}", self.rel);
        let mut broken = Vec::new();
        // A segment's file is named with its folder (`seg-00000001/vectors.bin`); a file at the
        // top of the index folder may be named alone (`no version.txt`).
        let names = |stderr: &str| {
            stderr.contains(&named) || (!self.rel.contains('/') && stderr.contains(self.rel))
        };

        let search = sb.tp_at(
            repo,
            &["search", self.query, "--output", "json", "--limit", "20"],
        );
        search.no_panic();
        let may_succeed = match role {
            Role::Checked => false,
            Role::Table => damage == Damage::FlipPayloadBit,
            Role::Config | Role::Lock => true,
        };
        let must_succeed = matches!(role, Role::Config | Role::Lock);
        match search.code {
            Some(0) if may_succeed => {
                if must_succeed && answer_of(&search) != *self.expected {
                    broken.push("search answers differently".to_owned());
                }
            }
            Some(2) if !must_succeed => {
                let one_line = search.stderr.trim_end().lines().count() == 1;
                if !one_line
                    || !search.stderr.starts_with("error:")
                    || !names(&search.stderr)
                    || !search.stderr.contains("run tp index")
                {
                    broken.push(format!(
                        "search error is not one line naming {named} with the way out: {}",
                        search.stderr.trim_end()
                    ));
                }
            }
            code => broken.push(format!(
                "search exited {code:?}: {}",
                search.stderr.trim_end()
            )),
        }

        let verify = sb.tp_at(repo, &["verify"]);
        verify.no_panic();
        let may_pass = matches!(role, Role::Config | Role::Lock);
        let must_pass = role == Role::Lock
            || (role == Role::Config && matches!(damage, Damage::Delete | Damage::TruncateToZero));
        match verify.code {
            Some(0) if may_pass => {}
            Some(2) if !must_pass => {
                if !names(&verify.stderr) {
                    broken.push(format!(
                        "tp verify does not name {named}: {}",
                        verify.stderr.trim_end()
                    ));
                }
            }
            code => broken.push(format!(
                "tp verify exited {code:?}: {}",
                verify.stderr.trim_end()
            )),
        }

        let rebuild = sb.tp_at(repo, &["index", "--rebuild"]);
        rebuild.no_panic();
        if rebuild.code != Some(0) {
            broken.push(format!(
                "tp index --rebuild failed: {}",
                rebuild.stderr.trim_end()
            ));
            return broken;
        }
        let verify = sb.tp_at(repo, &["verify"]);
        verify.no_panic();
        if verify.code != Some(0) {
            broken.push(format!(
                "tp verify fails after the rebuild: {}",
                verify.stderr.trim_end()
            ));
        } else if answer(sb, repo, self.query) != *self.expected {
            broken.push("the rebuilt index answers differently".to_owned());
        }
        broken
    }
}

// ---------------------------------------------------------------------------------------------
// Format compatibility
// ---------------------------------------------------------------------------------------------

/// An index written by layout 1 of the format (docs/format.md) is committed in
/// `tests/fixtures/compat/v1/` beside the repository it indexes: two commits, so it holds every
/// kind of file (two segments, a delete set, a `config.yaml` edited by hand to
/// `max_deleted_ratio: 0.5` so the first segment was kept). Every later build must still open
/// it: search it (finding the known files, and only the live version of the changed one),
/// verify it, and update it in place.
#[test]
fn index_in_format_v1_still_opens() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compat/v1");
    assert!(
        fixture.join(".turboprop/index/manifest.json").is_file(),
        "the fixture index is missing (it lives under .turboprop/, which .gitignore hides: \
         git add -f tests/fixtures/compat/v1/.turboprop)"
    );
    let index_files = files_under(&fixture.join(".turboprop/index"));
    for kind in [
        "version.txt",
        "config.yaml",
        "manifest.json",
        "seg-00000001/vectors.bin",
        "seg-00000001/chunks.bin",
        "seg-00000001/terms.bin",
        "seg-00000001/df.bin",
        "seg-00000001/metadata.json",
        "seg-00000002/vectors.bin",
        "del-00000001-00000002.bin",
    ] {
        assert!(
            index_files.iter().any(|f| f == kind),
            "the fixture has no {kind}: {index_files:?}"
        );
    }
    let sb = Sandbox::empty();
    let repo = sb.dir("repo");
    copy_dir(&fixture, &repo);

    let search = |query: &str| {
        let out = sb
            .tp_at(
                &repo,
                &["search", query, "--output", "json", "--limit", "5"],
            )
            .ok();
        assert!(
            !out.stderr.contains("changed since") && !out.stderr.contains("warning"),
            "the fixture's sources and index disagree: {}",
            out.stderr
        );
        out.stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let hits = search("settle the invoice and refund the customer");
    assert_eq!(hits[0]["file"], "billing/invoice.py", "{hits:?}");
    assert_eq!(hits[0]["line_start"], 1);
    assert_eq!(hits[0]["line_end"], 26);
    // web/cart.ts changed in the second commit: its first version (lines 1-11, in the first
    // segment, deleted) must not be found, its second (lines 1-15, second segment) must.
    let hits = search("remove an item from the cart");
    assert_eq!(hits[0]["file"], "web/cart.ts", "{hits:?}");
    assert_eq!(hits[0]["line_end"], 15, "{hits:?}");
    assert_eq!(
        hits.iter().filter(|h| h["file"] == "web/cart.ts").count(),
        1,
        "a deleted row is found: {hits:?}"
    );
    let verify = sb.tp_at(&repo, &["verify"]).ok();
    assert!(
        verify
            .stdout
            .starts_with("ok: 3 files, 3 chunks, generation 2"),
        "{}",
        verify.stdout
    );

    // A writer of today updates it in place: the copy has new modification times, so files
    // are re-hashed (not re-embedded), and one new file is added.
    fs::write(
        repo.join("notes.txt"),
        "meeting notes about the quarterly report\n",
    )
    .unwrap();
    sb.tp_at(&repo, &["index"]).ok();
    sb.tp_at(&repo, &["verify"]).ok();
    let hits = answer(&sb, &repo, "quarterly report meeting");
    assert_eq!(hits.first().map(|h| h.1.as_str()), Some("notes.txt"));
    let hits = search("settle the invoice and refund the customer");
    assert_eq!(hits[0]["file"], "billing/invoice.py", "{hits:?}");
}
