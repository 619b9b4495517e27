//! Helpers shared by the integration tests that drive the real `tp` binary: a sandbox per
//! test (a temporary repository, the poker fixture or empty, and an empty `$HOME`), runs of
//! `tp` that assert no panic and an allowed exit code, and parsers of its output.
//!
//! Each test file includes this with `mod common;` and uses what it needs.

// Not every test file uses every helper.
#![allow(dead_code)]
// Tests fail loudly; `unwrap` on a test's own set-up is the clearest way to say so.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::SystemTime;

use serde_json::Value;
use tempfile::TempDir;

/// The `tp` binary under test.
pub const TP: &str = env!("CARGO_BIN_EXE_tp");

pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/poker")
}

/// Copies `src` into `dst` recursively (files and folders; the fixture has no links).
pub fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for entry in fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let ty = entry.file_type().unwrap();
        let to = dst.join(entry.file_name());
        if ty.is_dir() {
            copy_dir(&entry.path(), &to);
        } else if ty.is_file() {
            fs::copy(entry.path(), &to).unwrap();
        } else {
            panic!(
                "unexpected entry in the fixture: {}",
                entry.path().display()
            );
        }
    }
}

/// A test's own temporary folder: `repo/` (a copy of the fixture, or empty) and `home/` (an
/// empty `$HOME` and caches, so neither the user's global git excludes nor their installed
/// models can change what is indexed or how).
pub struct Sandbox {
    _tmp: TempDir,
    pub root: PathBuf,
    pub home: PathBuf,
}

impl Sandbox {
    /// A fresh copy of the poker fixture.
    pub fn poker() -> Sandbox {
        let sb = Sandbox::empty();
        copy_dir(&fixture_dir(), &sb.root);
        sb
    }

    /// A fresh copy of the poker fixture, indexed.
    pub fn indexed_poker() -> Sandbox {
        let sb = Sandbox::poker();
        sb.tp(&["index"]).ok();
        sb
    }

    /// An empty repository folder.
    pub fn empty() -> Sandbox {
        let tmp = tempfile::Builder::new()
            .prefix("tp-cli-")
            .tempdir()
            .unwrap();
        // Canonical, so it matches the paths tp prints (it canonicalizes --repo).
        let base = tmp.path().canonicalize().unwrap();
        let root = base.join("repo");
        let home = base.join("home");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&home).unwrap();
        Sandbox {
            _tmp: tmp,
            root,
            home,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn index_dir(&self) -> PathBuf {
        self.root.join(".turboprop/index")
    }

    pub fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    }

    /// A `tp` command run in the repository folder.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(TP);
        cmd.args(args)
            .current_dir(&self.root)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            // No installed models: the model cache is the empty $HOME's.
            .env_remove("XDG_CACHE_HOME")
            .env_remove("TURBOPROP_CACHE_DIR")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `tp ARGS` in the repository folder.
    pub fn tp(&self, args: &[&str]) -> Run {
        Run::new(args, self.command(args).output().unwrap())
    }

    /// Runs `tp ARGS` in `cwd`.
    pub fn tp_in(&self, cwd: &Path, args: &[&str]) -> Run {
        let mut cmd = self.command(args);
        cmd.current_dir(cwd);
        Run::new(args, cmd.output().unwrap())
    }

    /// `tp search QUERY --output json EXTRA...`, successful, parsed.
    pub fn search(&self, query: &str, extra: &[&str]) -> Vec<Value> {
        let mut args = vec!["search", query, "--output", "json"];
        args.extend_from_slice(extra);
        parse_hits(&self.tp(&args).ok().stdout)
    }

    /// The files of the hits of `search`.
    pub fn search_files(&self, query: &str, extra: &[&str]) -> Vec<String> {
        files(&self.search(query, extra))
    }

    /// `tp status --output json`, parsed.
    pub fn status(&self) -> Value {
        serde_json::from_str(&self.tp(&["status", "--output", "json"]).ok().stdout).unwrap()
    }

    /// Every file of the repository outside `.turboprop/`, with its bytes.
    pub fn sources(&self) -> BTreeMap<String, Vec<u8>> {
        fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
            for entry in fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                let p = entry.path();
                let ty = entry.file_type().unwrap();
                if ty.is_dir() {
                    if entry.file_name() != ".turboprop" {
                        walk(&p, root, out);
                    }
                } else if ty.is_file() {
                    let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                    out.insert(rel, fs::read(&p).unwrap());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.root, &self.root, &mut out);
        out
    }

    /// Replaces the sandbox's absolute paths in `s` with `[REPO]` / `[HOME]`.
    pub fn redact(&self, s: &str) -> String {
        s.replace(&self.root.display().to_string(), "[REPO]")
            .replace(&self.home.display().to_string(), "[HOME]")
    }
}

/// The result of one `tp` run. Creating it asserts what must hold for every run: no panic,
/// and an exit code of 0 or 2 (never a signal, never another code).
pub struct Run {
    pub args: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn new(args: &[&str], out: Output) -> Run {
        let run = Run {
            args: format!("{args:?}"),
            code: out.status.code(),
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
        };
        run.assert_no_panic();
        assert!(
            matches!(run.code, Some(0 | 2)),
            "tp {} exited with {:?} (only 0 and 2 are allowed)\n{}",
            run.args,
            run.code,
            run.describe()
        );
        run
    }

    pub fn describe(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }

    pub fn assert_no_panic(&self) {
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "tp {} panicked\n{}",
            self.args,
            self.describe()
        );
    }

    /// Asserts success (exit 0).
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code,
            Some(0),
            "tp {} should succeed\n{}",
            self.args,
            self.describe()
        );
        self
    }

    /// Asserts an error of the contract's kind: exit 2, nothing on stdout, and the error as
    /// exactly one `error: ...` line, which is the last line on stderr (progress or
    /// `damaged:` lines may precede it). Returns the error line.
    pub fn err(&self) -> String {
        assert_eq!(
            self.code,
            Some(2),
            "tp {} should fail with exit code 2\n{}",
            self.args,
            self.describe()
        );
        assert!(
            self.stdout.is_empty(),
            "tp {} failed but printed to stdout\n{}",
            self.args,
            self.describe()
        );
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect();
        assert_eq!(
            errors.len(),
            1,
            "tp {}: expected exactly one error line\n{}",
            self.args,
            self.describe()
        );
        assert_eq!(
            self.stderr.lines().last(),
            Some(errors[0]),
            "tp {}: the error must be the last line\n{}",
            self.args,
            self.describe()
        );
        errors[0].to_owned()
    }

    /// Like [`Run::err`], and stderr must be that one line and nothing else.
    pub fn only_err(&self) -> String {
        let line = self.err();
        assert_eq!(
            self.stderr.lines().count(),
            1,
            "tp {}: expected a one-line error\n{}",
            self.args,
            self.describe()
        );
        line
    }

    /// Asserts a usage error as clap reports it: exit 2, nothing on stdout, an `error:` first
    /// line on stderr.
    pub fn usage_err(&self) {
        assert_eq!(
            self.code,
            Some(2),
            "tp {} is a usage error\n{}",
            self.args,
            self.describe()
        );
        assert!(self.stdout.is_empty(), "{}", self.describe());
        assert!(self.stderr.starts_with("error:"), "{}", self.describe());
    }
}

/// Parses JSON Lines search output and checks every record against the contract's schema.
pub fn parse_hits(stdout: &str) -> Vec<Value> {
    let hits: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let mut last_score = f64::INFINITY;
    for (i, h) in hits.iter().enumerate() {
        let obj = h.as_object().expect("a hit is a JSON object");
        let keys: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from(["file", "line_start", "line_end", "score", "content", "rank"]),
            "{h}"
        );
        let file = h["file"].as_str().unwrap();
        assert!(
            !file.starts_with('/') && !file.contains('\\') && !file.contains("./"),
            "file must be repo-relative: {file}"
        );
        let (start, end) = (
            h["line_start"].as_u64().unwrap(),
            h["line_end"].as_u64().unwrap(),
        );
        assert!(start >= 1 && end >= start, "bad line range in {h}");
        assert_eq!(h["rank"].as_u64(), Some(i as u64 + 1), "ranks start at 1");
        let score = h["score"].as_f64().unwrap();
        assert!(score <= last_score, "hits must be best first: {h}");
        last_score = score;
        assert!(h["content"].is_string());
    }
    hits
}

pub fn files(hits: &[Value]) -> Vec<String> {
    hits.iter()
        .map(|h| h["file"].as_str().unwrap().to_owned())
        .collect()
}

/// Search output in short: `file:start-end score` per hit.
pub fn summary(stdout: &str) -> Vec<String> {
    parse_hits(stdout)
        .iter()
        .map(|h| {
            format!(
                "{}:{}-{} {}",
                h["file"].as_str().unwrap(),
                h["line_start"],
                h["line_end"],
                h["score"]
            )
        })
        .collect()
}

/// Flips `mask` in the byte at `offset` of `path`.
pub fn flip_byte(path: &Path, offset: usize, mask: u8) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset] ^= mask;
    fs::write(path, bytes).unwrap();
}

/// The only segment folder of the committed index (`seg-*`).
pub fn only_segment(sb: &Sandbox) -> PathBuf {
    let segs: Vec<PathBuf> = fs::read_dir(sb.index_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("seg-"))
        })
        .collect();
    assert_eq!(segs.len(), 1, "expected one segment: {segs:?}");
    segs.into_iter().next().unwrap()
}

/// Sets the modification time of `path`, keeping its content.
pub fn set_mtime(path: &Path, time: SystemTime) {
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_modified(time).unwrap();
}
