//! The one harness of the integration tests that drive the real `tp` binary (issue 18: there
//! were five near-copies). Each test file includes it with `mod common;` and uses what it
//! needs:
//!
//! - [`Sandbox`] (`sandbox.rs`): a test's own temporary repository, `$HOME` and model cache,
//!   and runs of `tp` in it;
//! - [`Running`] and [`Run`] (`process.rs`): a `tp` process bounded by a timeout, and what it
//!   printed, with the contract's checks (`ok`, `err`, `only_err`, `usage_err`);
//! - below: parsers of search output, file helpers and a seeded generator of repositories.
//!
//! Checks that need something a machine may lack skip loudly, or fail where CI requires them:
//! see the `turboprop-testkit` crate.

// Not every test file uses every helper.
#![allow(dead_code)]
// Tests fail loudly; `unwrap` on a test's own set-up is the clearest way to say so.
#![allow(clippy::unwrap_used)]

mod corpus;
mod process;
mod sandbox;

#[allow(unused_imports)]
pub use corpus::Corpus;

#[allow(unused_imports)]
pub use process::{Run, Running, RUN_TIMEOUT};
pub use sandbox::Sandbox;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::Value;

/// The `tp` binary under test.
pub const TP: &str = env!("CARGO_BIN_EXE_tp");

/// Files of the poker fixture that are indexed (EXPECTED.md: "26 files").
pub const FIXTURE_FILES: u64 = 26;

/// The poker fixture (`tests/fixtures/poker/`, see its `EXPECTED.md`).
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/poker")
}

/// Copies `src` into `dst` recursively (files and folders; links are an error).
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
            panic!("unexpected entry to copy: {}", entry.path().display());
        }
    }
}

/// A seeded pseudo-random generator (splitmix64): a failing test names its seed and replays.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    /// Uniform in `0.0..1.0`.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// One of `items`.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.range(0, items.len() - 1)]
    }
}

/// Writes `files` Rust files of `lines` one-line functions under `root/src/m<f % 20>/`, each
/// named by two words of `words` chosen by a generator seeded with `seed`.
pub fn generate_functions(root: &Path, files: usize, lines: usize, words: &[&str], seed: u64) {
    let mut rng = Rng(seed);
    for f in 0..files {
        let mut text = String::new();
        for l in 0..lines {
            let (a, b) = (rng.pick(words), rng.pick(words));
            text.push_str(&format!(
                "fn {a}_{b}_{f}_{l}(x: u32) -> u32 {{ x + {} }}\n",
                rng.next() % 97
            ));
        }
        let dir = root.join(format!("src/m{}", f % 20));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("f{f}.rs")), text).unwrap();
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
        let required =
            BTreeSet::from(["file", "line_start", "line_end", "score", "content", "rank"]);
        // `symbol` and `kind` are added where the chunker knew them (DESIGN.md: fields are
        // added, never renamed or removed).
        let known = &required | &BTreeSet::from(["symbol", "kind"]);
        assert!(
            required.is_subset(&keys) && keys.is_subset(&known),
            "keys {keys:?} of {h}"
        );
        if let Some(symbol) = obj.get("symbol") {
            assert!(symbol.as_str().is_some_and(|s| !s.is_empty()), "{h}");
        }
        if let Some(kind) = obj.get("kind") {
            let kind = kind.as_str().expect("kind is a string");
            assert!(
                !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{h}"
            );
        }
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
    // No two hits of one search overlap in lines (DESIGN.md).
    for (i, a) in hits.iter().enumerate() {
        for b in &hits[..i] {
            let overlap = a["file"] == b["file"]
                && a["line_start"].as_u64() <= b["line_end"].as_u64()
                && b["line_start"].as_u64() <= a["line_end"].as_u64();
            assert!(!overlap, "two hits overlap:\n{b}\n{a}");
        }
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

/// `tp search QUERY --output json --limit 20` in `repo`, which must succeed, as an [`Answer`].
pub fn answer(sb: &Sandbox, repo: &Path, query: &str) -> Answer {
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
pub type Answer = Vec<(i64, String, u64, u64)>;

pub fn answer_of(out: &Run) -> Answer {
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

/// The body of `manifest.json` (after its one-line header), parsed.
pub fn manifest(repo: &Path) -> serde_json::Value {
    let text = fs::read_to_string(index_dir(repo).join("manifest.json")).unwrap();
    let (_, body) = text.split_once('\n').unwrap();
    serde_json::from_str(body).unwrap()
}

pub fn index_dir(repo: &Path) -> PathBuf {
    repo.join(".turboprop/index")
}

/// Every file under `root` outside `.turboprop/`, by `/`-separated relative path, with its
/// bytes.
pub fn sources(root: &Path) -> BTreeMap<String, Vec<u8>> {
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
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Rewrites `manifest.json` with `change` applied to its JSON body, under a valid checksum.
pub fn rewrite_manifest(sb: &Sandbox, change: impl FnOnce(&mut serde_json::Value)) {
    let path = sb.index_dir().join("manifest.json");
    let bytes = fs::read(&path).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_slice(
        turboprop::storage::document_body(&path, "manifest", &bytes).unwrap(),
    )
    .unwrap();
    change(&mut manifest);
    fs::write(
        &path,
        turboprop::storage::encode_document(&path, "manifest", &manifest).unwrap(),
    )
    .unwrap();
}
