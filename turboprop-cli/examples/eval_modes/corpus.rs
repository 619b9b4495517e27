//! Corpora: where a name's sources are, which files count (language by extension), their
//! cases, and the repository each variant is indexed in.

use std::path::{Path, PathBuf};

use turboprop_embed::analyze_query;

use crate::cases::{blank_doc_comments, documented_functions, Variant};
use crate::extent::{code_chars, rust_fn_end, rust_item_start, Syntax};
use crate::{cases_js, cases_python};

/// A source language, by file extension.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Lang {
    Rust,
    Python,
    JavaScript,
    TypeScript,
}

impl Lang {
    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::JavaScript => "javascript",
            Lang::TypeScript => "typescript",
        }
    }

    /// The language of a file name; `None` for other files and for TypeScript declarations
    /// and minified bundles, which are not source.
    pub fn of(file_name: &str) -> Option<Lang> {
        let (stem, ext) = file_name.rsplit_once('.')?;
        let lang = match ext {
            "rs" => Lang::Rust,
            "py" => Lang::Python,
            "js" | "mjs" | "cjs" => Lang::JavaScript,
            "ts" | "tsx" | "mts" | "cts" => Lang::TypeScript,
            _ => return None,
        };
        if stem.ends_with(".d") || stem.ends_with(".min") {
            return None;
        }
        Some(lang)
    }

    /// The documented functions of a file in this language.
    pub fn targets(self, text: &str) -> Vec<Target> {
        match self {
            Lang::Rust => rust_targets(text),
            Lang::Python => cases_python::documented_defs(text),
            Lang::JavaScript | Lang::TypeScript => cases_js::documented_fns(text),
        }
    }

    /// The file with its documentation emptied, every line kept.
    pub fn blank(self, text: &str) -> String {
        match self {
            Lang::Rust => blank_doc_comments(text),
            Lang::Python => cases_python::blank_docstrings(text),
            Lang::JavaScript | Lang::TypeScript => cases_js::blank_jsdoc(text),
        }
    }
}

/// A documented function in a file: 1-based lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The line a right hit must contain: the `fn`, `def` or declaration line.
    pub fn_line: u32,
    /// The first line of the function with its doc comment, attributes or decorators.
    pub start: u32,
    /// The last line of its body.
    pub end: u32,
    /// The first sentence of its documentation.
    pub query: String,
}

/// A query and where its answer is.
pub struct Case {
    pub file: String,
    pub lang: Lang,
    pub target: Target,
}

/// Whether `query` has a word a search can use.
pub fn has_words(query: &str) -> bool {
    let mut words = 0;
    analyze_query(query, |_, _| words += 1);
    words > 0
}

fn rust_targets(text: &str) -> Vec<Target> {
    let lines: Vec<&str> = text.lines().collect();
    let toks = code_chars(text, Syntax::Rust);
    documented_functions(&lines)
        .into_iter()
        .map(|(fn_line, query)| Target {
            fn_line,
            start: rust_item_start(&lines, fn_line - 1) + 1,
            end: rust_fn_end(&toks, fn_line - 1) + 1,
            query,
        })
        .collect()
}

/// A corpus to evaluate on: its sources and what to call it.
pub struct Corpus {
    pub label: String,
    pub dir: PathBuf,
    /// A crate from the cargo registry: only its `.rs` files count (as they always did).
    pub rust_only: bool,
}

/// `name` as a folder, else the newest version of crate `name` in the cargo registry, else
/// the newest `name-VERSION` in the corpora folder `scripts/fetch-eval-corpora.sh` fills
/// (`$TURBOPROP_EVAL_CACHE/corpora`, default `~/.cache/turboprop-eval/corpora`).
pub fn find_corpus(name: &str) -> Option<Corpus> {
    let as_path = PathBuf::from(name);
    if as_path.is_dir() {
        let dir = std::fs::canonicalize(&as_path).unwrap_or(as_path);
        // A fetched corpus is a symlink named NAME-VERSION: name it so.
        let label = Path::new(name.trim_end_matches('/'))
            .file_name()
            .or(dir.file_name())
            .map_or_else(|| name.to_owned(), |n| n.to_string_lossy().into_owned());
        return Some(Corpus {
            label,
            dir,
            rust_only: false,
        });
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let cargo = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".cargo")));
    let registries: Vec<PathBuf> = cargo
        .and_then(|c| std::fs::read_dir(c.join("registry/src")).ok())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    if let Some(dir) = newest(&registries, name) {
        return Some(Corpus {
            label: label_of(&dir, name),
            dir,
            rust_only: true,
        });
    }
    let cache = std::env::var_os("TURBOPROP_EVAL_CACHE")
        .map(PathBuf::from)
        .or_else(|| home.map(|h| h.join(".cache/turboprop-eval")))?;
    let flat = name.trim_start_matches('@').replace('/', "-");
    let link = newest(&[cache.join("corpora")], &flat)?;
    let label = label_of(&link, name);
    Some(Corpus {
        label,
        dir: std::fs::canonicalize(&link).unwrap_or(link),
        rust_only: false,
    })
}

fn label_of(dir: &Path, name: &str) -> String {
    dir.file_name()
        .map_or_else(|| name.to_owned(), |n| n.to_string_lossy().into_owned())
}

/// The `name-VERSION` entry with the highest numeric version in any of `parents`.
fn newest(parents: &[PathBuf], name: &str) -> Option<PathBuf> {
    let mut found: Vec<(Vec<u64>, PathBuf)> = Vec::new();
    for parent in parents {
        for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            let Some(version) = file_name.strip_prefix(&format!("{name}-")) else {
                continue;
            };
            let Some(parsed) = version
                .split('.')
                .map(|p| p.parse::<u64>().ok())
                .collect::<Option<Vec<u64>>>()
            else {
                continue;
            };
            found.push((parsed, entry.path()));
        }
    }
    found.into_iter().max().map(|(_, p)| p)
}

/// The source files under `dir` with their languages, sorted. Hidden folders, `target`,
/// `node_modules` and `__pycache__` are skipped, and JavaScript/TypeScript under a `dist`
/// folder unless there is no other.
pub fn source_files(dir: &Path, rust_only: bool) -> Vec<(PathBuf, Lang)> {
    let mut all = Vec::new();
    walk(dir, false, &mut all);
    all.retain(|(_, lang, _)| !rust_only || *lang == Lang::Rust);
    let js = |l: Lang| matches!(l, Lang::JavaScript | Lang::TypeScript);
    let outside_dist = all.iter().any(|&(_, l, dist)| js(l) && !dist);
    let mut out: Vec<(PathBuf, Lang)> = all
        .into_iter()
        .filter(|&(_, l, dist)| !(js(l) && dist && outside_dist))
        .map(|(p, l, _)| (p, l))
        .collect();
    out.sort();
    out
}

fn walk(dir: &Path, in_dist: bool, out: &mut Vec<(PathBuf, Lang, bool)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || ["target", "node_modules", "__pycache__"].contains(&&*name) {
            continue;
        }
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&path, in_dist || name == "dist", out),
            Ok(t) if t.is_file() => {
                if let Some(lang) = Lang::of(&name) {
                    out.push((path, lang, in_dist));
                }
            }
            _ => {}
        }
    }
}

/// Whether a JavaScript file reads as a minified bundle: very long lines.
fn minified(text: &str) -> bool {
    let lines = text.lines().count().max(1);
    text.lines().any(|l| l.len() > 2000) || text.len() / lines > 300
}

/// Every `cap`-th share of `cases`, spread evenly, when there are more than `cap`.
pub fn spread<T>(cases: Vec<T>, cap: usize) -> Vec<T> {
    let n = cases.len();
    if n <= cap || cap == 0 {
        return cases;
    }
    let keep: Vec<usize> = (0..cap).map(|i| i * n / cap).collect();
    cases
        .into_iter()
        .enumerate()
        .filter(|(k, _)| keep.binary_search(k).is_ok())
        .map(|(_, c)| c)
        .collect()
}

/// Copies the corpus's source files into `repo` (documentation emptied in the blanked
/// variant) and returns its cases, at most `cap` of them (spread evenly over all).
pub fn prepare(
    corpus: &Corpus,
    repo: &Path,
    variant: Variant,
    cap: usize,
) -> std::io::Result<Vec<Case>> {
    let mut cases = Vec::new();
    for (path, lang) in source_files(&corpus.dir, corpus.rust_only) {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if matches!(lang, Lang::JavaScript | Lang::TypeScript) && minified(&text) {
            continue;
        }
        let rel = path
            .strip_prefix(&corpus.dir)
            .map_err(std::io::Error::other)?
            .to_string_lossy()
            .replace('\\', "/");
        for target in lang.targets(&text) {
            cases.push(Case {
                file: rel.clone(),
                lang,
                target,
            });
        }
        let out = match variant {
            Variant::WithDocs => text,
            Variant::Blanked => lang.blank(&text),
        };
        let to = repo.join(&rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Unchanged files keep their mtime, so re-runs re-index nothing.
        if std::fs::read_to_string(&to).ok().as_deref() != Some(out.as_str()) {
            std::fs::write(&to, out)?;
        }
    }
    Ok(spread(cases, cap))
}

/// How the index cuts files into chunks, `--chunking`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Chunking {
    Windows,
    Syntax,
}

impl Chunking {
    pub fn parse(s: &str) -> Option<Chunking> {
        match s {
            "windows" => Some(Chunking::Windows),
            "syntax" => Some(Chunking::Syntax),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Chunking::Windows => "windows",
            Chunking::Syntax => "syntax",
        }
    }

    /// Writes the method into `repo`'s `.turboprop/index/config.yaml` before indexing, unless
    /// the file names it already (the other settings keep `tp`'s defaults).
    pub fn configure(self, repo: &Path) -> std::io::Result<()> {
        let dir = repo.join(".turboprop/index");
        let path = dir.join("config.yaml");
        let want = format!("method: {}", self.name());
        if std::fs::read_to_string(&path).is_ok_and(|t| t.lines().any(|l| l.trim() == want)) {
            return Ok(());
        }
        std::fs::create_dir_all(&dir)?;
        std::fs::write(path, format!("chunking:\n  {want}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_by_extension() {
        assert_eq!(Lang::of("a.rs"), Some(Lang::Rust));
        assert_eq!(Lang::of("a.py"), Some(Lang::Python));
        assert_eq!(Lang::of("a.mjs"), Some(Lang::JavaScript));
        assert_eq!(Lang::of("a.tsx"), Some(Lang::TypeScript));
        assert_eq!(Lang::of("a.d.ts"), None);
        assert_eq!(Lang::of("a.min.js"), None);
        assert_eq!(Lang::of("a.json"), None);
    }

    #[test]
    fn spread_keeps_an_even_share() {
        assert_eq!(spread((0..10).collect(), 4), vec![0, 2, 5, 7]);
        assert_eq!(spread((0..3).collect(), 4), vec![0, 1, 2]);
    }

    #[test]
    fn rust_targets_have_extents() {
        let text = "/// Adds one.\n#[inline]\npub fn inc(x: u32) -> u32 {\n    x + 1\n}\n";
        assert_eq!(
            rust_targets(text),
            vec![Target {
                fn_line: 3,
                start: 1,
                end: 5,
                query: "Adds one.".to_owned()
            }]
        );
    }

    #[test]
    fn each_method_is_written_into_the_config() {
        for method in [Chunking::Windows, Chunking::Syntax] {
            let dir = tempfile::tempdir().expect("tempdir");
            method.configure(dir.path()).expect("configure");
            let yaml = std::fs::read_to_string(dir.path().join(".turboprop/index/config.yaml"))
                .expect("written");
            assert_eq!(yaml, format!("chunking:\n  method: {}\n", method.name()));
        }
    }
}
