//! The storage guarantees of `tp` under concurrency (DESIGN.md "On disk", issue 3), tested
//! with the real binary in real processes, each test in its own temporary folder:
//!
//! - a `tp index` killed with SIGKILL at a random moment leaves the previous commit or the new
//!   one, never a mix, and the next `tp index` cleans up after it;
//! - readers searching while a writer commits see only committed generations, without errors;
//! - a second writer waits for the lock (or fails at once with `--no-wait`) and never corrupts.
//!
//! Damage to index files and old formats are in `tests/corruption.rs`.
//!
//! Every run of `tp` is bounded by [`RUN_TIMEOUT`], and every spawned process is killed and
//! reaped when its test ends, passes or fails. Randomness is seeded: a failure names its seed
//! and trial, and replays the same file changes.

// Tests fail loudly; `unwrap` on a test's own set-up is the clearest way to say so.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Instant;

mod common;
use common::*;

// ---------------------------------------------------------------------------------------------
// Running tp (the harness is tests/common)
// ---------------------------------------------------------------------------------------------

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
