//! No death by signal (issue 13, finding 8): index files truncated or rewritten in place while
//! `tp` reads them (a sync tool, `rsync --inplace`, `cp` over `.turboprop/`) give a one-line
//! error naming the file and exit 2, never a SIGBUS.
//!
//! One loop, with the real binary in a temporary folder: a generated repository of a few
//! thousand chunks is indexed, then many `tp search` (and some `tp status`, `tp verify` and
//! `tp index`) run a few at a time while another thread truncates and rewrites in place the
//! live segment's `vectors.bin`, `chunks.bin` and `files.bin`, without pause. The loop is
//! bounded by the number of commands, not by time; every command's outcome is checked, and
//! the counts are printed (run with `--nocapture` to see them).

// Tests fail loudly; `unwrap` on a test's own set-up is the clearest way to say so.
#![allow(clippy::unwrap_used)]

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};

use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

mod common;
use common::{generate_functions, Run, Running, Sandbox};

/// Commands run while the files change under them.
const COMMANDS: usize = 150;
/// How many run at once.
const AT_ONCE: usize = 3;
/// How long the changer leaves a file short before writing it back, and whole before the
/// next change: readers must both open the files whole and meet them short.
const SHORT_FOR: Duration = Duration::from_millis(2);
const WHOLE_FOR: Duration = Duration::from_millis(20);
/// The files changed under the readers.
const TARGETS: [&str; 3] = ["vectors.bin", "chunks.bin", "files.bin"];

/// The words of the generated repository's function names.
const WORDS: [&str; 16] = [
    "pot", "split", "card", "river", "flop", "turn", "blind", "stack", "fold", "raise", "dealer",
    "chip", "bet", "showdown", "kicker", "suit",
];

/// `tp ARGS --repo REPO`, run to the end, unchecked (the test sorts the outcomes).
fn tp(sb: &Sandbox, args: &[&str]) -> Run {
    Running::run(
        sb.command_at(&sb.root, args),
        format!("tp {}", args.join(" ")),
    )
}

/// The live segment's [`TARGETS`] and their bytes, as the manifest names it now; `None` while
/// that cannot be read (a `tp index` is replacing the segment).
fn live_targets(repo: &Path) -> Option<Vec<(PathBuf, Vec<u8>)>> {
    let index = repo.join(".turboprop/index");
    let manifest = fs::read_to_string(index.join("manifest.json")).ok()?;
    // A checksummed header line, then the JSON.
    let (_, body) = manifest.split_once('\n')?;
    let manifest: serde_json::Value = serde_json::from_str(body).ok()?;
    let segments = manifest["segments"].as_array()?;
    let [segment] = &segments[..] else {
        return None;
    };
    let segment = index.join(segment["name"].as_str()?);
    TARGETS
        .iter()
        .map(|name| {
            let path = segment.join(name);
            let bytes = fs::read(&path).ok()?;
            Some((path, bytes))
        })
        .collect()
}

/// Shortens `path` in one of three ways, leaves it short for a while, then writes `original`
/// back as `cp` does (O_TRUNC, then the bytes in pieces).
fn change_in_place(path: &Path, original: &[u8], how: usize) -> std::io::Result<()> {
    let open = || OpenOptions::new().write(true).open(path);
    match how % 3 {
        0 => open()?.set_len(original.len() as u64 / 2)?,
        1 => open()?.set_len(0)?,
        _ => drop(OpenOptions::new().write(true).truncate(true).open(path)?),
    }
    // Short for a while, so that readers meet the file short (no outcome depends on it:
    // every outcome is checked, whichever happens).
    thread::sleep(SHORT_FOR);
    let mut f = OpenOptions::new().write(true).truncate(true).open(path)?;
    for piece in original.chunks(64 * 1024) {
        f.write_all(piece)?;
    }
    thread::sleep(WHOLE_FOR);
    Ok(())
}

#[test]
fn files_truncated_and_rewritten_under_searches_never_kill_them() {
    let sb = Sandbox::empty();
    // 400 files of 300 lines: about ten chunks each.
    generate_functions(&sb.root, 400, 300, &WORDS, 0x2545_f491_4f6c_dd1d);
    tp(&sb, &["index"]).ok();
    let targets = live_targets(&sb.root).unwrap();
    let chunks = targets[1].1.len() / 64;
    assert!(
        chunks > 3000,
        "{chunks} chunks: enough for searches to read real pages"
    );

    // Changes the files, without pause, until every command has run.
    let done = Arc::new(AtomicBool::new(false));
    let changes = Arc::new(AtomicUsize::new(0));
    let changer = {
        let (done, changes) = (done.clone(), changes.clone());
        let repo = sb.root.clone();
        thread::spawn(move || {
            let mut targets = Some(targets);
            let mut i = 0;
            while !done.load(Ordering::SeqCst) {
                // A `tp index` that found a file short rebuilds the index into a new
                // segment: follow the manifest to it.
                let Some(live) = targets.take().or_else(|| live_targets(&repo)) else {
                    thread::yield_now();
                    continue;
                };
                let (path, original) = &live[i % live.len()];
                match change_in_place(path, original, i / live.len()) {
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    other => other.unwrap(),
                }
                changes.fetch_add(1, Ordering::SeqCst);
                i += 1;
                targets = Some(live);
            }
        })
    };

    let sb = &sb;
    let (mut ok, mut changed, mut other) = (0, 0, Vec::new());
    let mut failures = Vec::new();
    for round in 0..COMMANDS / AT_ONCE {
        let outputs: Vec<(Vec<&str>, Run)> = thread::scope(|s| {
            let runs: Vec<_> = (0..AT_ONCE)
                .map(|k| {
                    let n = round * AT_ONCE + k;
                    let args: Vec<&str> = match n % 10 {
                        3 => vec!["status"],
                        6 => vec!["verify"],
                        9 => vec!["index"],
                        _ => vec![
                            "search",
                            "split the pot",
                            "--output",
                            "json",
                            "--limit",
                            "20",
                        ],
                    };
                    s.spawn(move || {
                        let out = tp(sb, &args);
                        (args, out)
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        for (args, out) in outputs {
            let stderr = out.stderr.clone();
            let what = out.args.clone();
            if let Some(signal) = out.signal {
                failures.push(format!("{what} died by signal {signal}: {stderr}"));
                continue;
            }
            match out.code {
                Some(0) => ok += 1,
                Some(2) => {
                    // One error line, last; `tp index` may print progress and warnings
                    // before it, the readers nothing.
                    let lines: Vec<&str> = stderr.lines().collect();
                    let errors = lines.iter().filter(|l| l.starts_with("error: ")).count();
                    let last = lines.last().copied().unwrap_or("");
                    let quiet = args[0] == "index" || lines.len() == 1;
                    if errors != 1 || !last.starts_with("error: ") || !quiet {
                        failures.push(format!("{what}: exit 2 without one error line: {stderr:?}"));
                    } else if !last.contains("/.turboprop/") {
                        failures.push(format!("{what}: the error names no file: {last}"));
                    } else if last.contains("changed while tp was reading it") {
                        changed += 1;
                    } else {
                        other.push(last.to_owned());
                    }
                }
                code => failures.push(format!("{what}: exit {code:?}: {stderr}")),
            }
        }
    }
    done.store(true, Ordering::SeqCst);
    changer.join().unwrap();

    eprintln!(
        "{} commands during {} in-place changes: {ok} exit 0, {changed} exit 2 \
         \"changed while tp was reading it\", {} exit 2 otherwise (a file seen short or \
         damaged at open), {} failures",
        COMMANDS / AT_ONCE * AT_ONCE,
        changes.load(Ordering::SeqCst),
        other.len(),
        failures.len()
    );
    for line in other.iter().take(5) {
        eprintln!("  e.g. {line}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The index is whole again: it searches.
    tp(sb, &["search", "split the pot", "--output", "json"]).ok();
}
