//! Resident processes (`tp watch`, `tp mcp`) beside other processes, through the `tp` binary:
//! the writer lock is held only while an update runs, a SIGKILL mid-update leaves the last
//! commit readable, two watchers on one repository never corrupt it, and `tp watch` prints
//! one line per commit. (The MCP protocol itself is tested with a real client in
//! tests/mcp.rs.)
//!
//! Waits are on what the processes print or commit, with generous limits; nothing here
//! depends on how fast the machine is.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use common::Sandbox;

/// A `tp` process whose stderr lines are read as they come; killed when dropped.
struct Resident {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Resident {
    fn spawn(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Resident {
        let mut cmd = sb.command(args);
        cmd.envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Resident {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (up to two minutes) for a stderr line containing `needle`.
    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no stderr line with {needle:?}; stderr so far:\n{}",
            self.seen.join("\n")
        );
    }
}

impl Drop for Resident {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `tp status` (up to two minutes) until `done` holds.
fn wait_status(sb: &Sandbox, what: &str, done: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let run = sb.tp(&["status", "--output", "json"]);
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&run.stdout) {
            if done(&v) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn add_files(sb: &Sandbox, dir: &str, n: usize) {
    for i in 0..n {
        sb.write(
            &format!("{dir}/f{i:03}.rs"),
            format!("fn resident_marker_{i}(table: &Table) -> u32 {{ table.seats() + {i} }}\n"),
        );
    }
}

#[test]
fn a_killed_mcp_server_leaves_the_last_commit_and_holds_the_lock_only_while_updating() {
    let sb = Sandbox::indexed_poker();
    let before = sb.status();
    add_files(&sb, "extra", 6);

    // The server's first update commits file by file and stops after its first commit,
    // holding the writer lock, as if it were slow.
    let mut server = Resident::spawn(
        &sb,
        &["mcp"],
        &[
            ("TURBOPROP_COMMIT_EVERY_FILES", "1"),
            ("TURBOPROP_TEST_PAUSE_AFTER_COMMITS", "1"),
        ],
    );
    server.wait_for("paused after commit 1");

    // Meanwhile: a CLI search answers from the last commit, and an index run that will not
    // wait says why.
    let hits = sb.search("split the pot", &[]);
    assert!(!hits.is_empty());
    let line = sb.tp(&["index", "--no-wait"]).only_err();
    assert!(line.contains("another tp index is writing"), "{line}");

    // SIGKILL mid-update: the first commit is in, intact, and nothing else is.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    sb.tp(&["verify"]).ok();
    let mid = sb.status();
    assert_eq!(mid["files"], before["files"].as_u64().unwrap() + 1);

    // The next writer proceeds and finishes the job.
    sb.tp(&["index", "--no-wait"]).ok();
    let after = sb.status();
    assert_eq!(after["files"], before["files"].as_u64().unwrap() + 6);
    sb.tp(&["verify"]).ok();
}

#[test]
fn an_idle_server_holds_no_lock() {
    let sb = Sandbox::indexed_poker();
    let mut server = Resident::spawn(&sb, &["mcp"], &[]);
    server.wait_for("tp mcp: serving");
    // Its first update finds nothing to do; then the lock is free for the CLI.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let run = sb.tp(&["index", "--no-wait"]);
        if run.code == Some(0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server kept the writer lock: {}",
            run.describe()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Closing its stdin ends it cleanly.
    drop(server.child.stdin.take());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn two_watchers_on_one_repository_never_corrupt_it() {
    let sb = Sandbox::indexed_poker();
    let files = sb.status()["files"].as_u64().unwrap();
    let mut a = Resident::spawn(&sb, &["watch"], &[]);
    let mut b = Resident::spawn(&sb, &["watch"], &[]);
    a.wait_for("watching");
    b.wait_for("watching");
    for round in 0..3 {
        add_files(&sb, &format!("round{round}"), 10);
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_status(&sb, "30 new files indexed", |s| s["files"] == files + 30);
    sb.tp(&["verify"]).ok();
    let hits = sb.search("resident marker", &["--limit", "3"]);
    assert!(hits
        .iter()
        .all(|h| h["file"].as_str().unwrap().starts_with("round")));
}

#[test]
fn tp_watch_prints_one_line_per_commit_and_indexes_edits_adds_and_deletes() {
    let sb = Sandbox::indexed_poker();
    let mut w = Resident::spawn(&sb, &["watch"], &[]);
    w.wait_for("watching");
    sb.write(
        "src_extra/new.rs",
        "fn zebra_unicorn_settles_the_pot() {}\n",
    );
    w.wait_for("1 new, 0 changed, 0 removed");
    let hits = sb.search("zebra unicorn", &["--limit", "1"]);
    assert_eq!(hits[0]["file"], "src_extra/new.rs");

    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(sb.path("src_extra/new.rs"))
        .unwrap();
    writeln!(f, "fn quokka_walrus_deals_cards() {{}}").unwrap();
    drop(f);
    w.wait_for("0 new, 1 changed, 0 removed");
    let hits = sb.search("quokka walrus", &["--limit", "1"]);
    assert_eq!(hits[0]["file"], "src_extra/new.rs");

    std::fs::remove_file(sb.path("src_extra/new.rs")).unwrap();
    w.wait_for("0 new, 0 changed, 1 removed");
    let hits = sb.search("zebra unicorn quokka walrus", &["--limit", "10"]);
    assert!(hits.iter().all(|h| h["file"] != "src_extra/new.rs"));

    // A file ignored by a rule added now changes nothing.
    let mut ignore = std::fs::read_to_string(sb.path(".gitignore")).unwrap_or_default();
    ignore.push_str("\ngenerated_out/\n");
    sb.write(".gitignore", ignore);
    let generation = sb.status()["generation"].clone();
    sb.write("generated_out/out.rs", "fn ignored_output() {}\n");
    sb.write("src_extra/kept.rs", "fn kept_after_ignored() {}\n");
    w.wait_for("1 new, 0 changed, 0 removed");
    let status = sb.status();
    assert_eq!(
        status["generation"].as_u64().unwrap(),
        generation.as_u64().unwrap() + 1
    );
    assert!(sb
        .search("ignored output", &["--limit", "20"])
        .iter()
        .all(|h| h["file"] != "generated_out/out.rs"));
}
