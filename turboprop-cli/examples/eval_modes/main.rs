//! Evaluates `tp search` in every mode on real code, through the real index.
//!
//! For every documented function, the first sentence of its documentation is a query, and a
//! hit is right when it is in the function's file and its lines contain the function's
//! declaration line. Documentation by language (by file extension):
//! - Rust (`.rs`): `///` comments above a `fn` (see `turboprop-embed/examples/cases`);
//! - Python (`.py`): a docstring opening a `def` or `async def` body (`cases_python.rs`);
//! - JavaScript and TypeScript (`.js .mjs .cjs .ts .tsx`, no `.d.ts`, no minified files,
//!   nothing under `dist/` unless that is all there is): a `/** */` block before a
//!   function, method or function-valued binding (`cases_js.rs`).
//!
//! Each corpus's source files are copied into a repository of their own under the work folder
//! (in the `blanked` variant with the documentation emptied, line numbers kept), indexed with
//! `tp index --model MODEL` (in this process; the indexes are kept, so a second run costs
//! only the searches), and every query is searched the way `tp search --mode M --limit 10`
//! does. Printed per mode and variant: recall@10 and MRR@10; precision, the share of the
//! queries answered in the top 10 whose first right hit lies within the function's extent
//! (its doc comment or decorators to the end of its body, `extent.rs`) give or take
//! `SLACK` lines; the mean lines per returned hit; and the share of queries whose right hit
//! comes within the first `--budget` (200) lines of the hits read best first (the top
//! `--depth`, 10 unless given), which compares methods at an equal cost of reading however
//! long their hits are. Rows: every corpus with
//! `--per-crate`, all, and each language.
//!
//! `--chunking windows|syntax` writes `chunking: {method: M}` into each repository's
//! `config.yaml` before indexing (`syntax`, `tp`'s default, when not given) and keeps
//! each method's indexes in a work subfolder of its own. `--max-queries N` keeps an evenly
//! spread N of a corpus's queries (default 500, which keeps every query of the ten crates
//! the README's tables measure; 0: all). `--cases` prints the cases and stops.
//! `--study` adds alternative fusions of the same candidates (each ranker's top
//! `HYBRID_DEPTH`, scored in both spaces, hits merged as `tp search` merges them), to compare
//! with the one `--mode hybrid` uses. `--lexical-study` adds exact-term rankers run in memory
//! over the same chunks (`lexical_study.rs`: plain BM25, the baseline, and variants of the
//! code-aware analysis and of BM25's parameters; `TP_LEXICAL_SCHEMES` names others);
//! `TP_STUDY_ONLY=1` skips the index's own modes, so a grid of them takes seconds.
//!
//! ```text
//! cargo run --release -p turboprop-cli --example eval_modes -- \
//!     [--model all-MiniLM-L6-v2] [--work DIR] [--chunking windows|syntax] [--max-queries N] \
//!     [--per-crate] [--study] [--lexical-study] [--cases] <folder | crate name | corpus name>...
//! ```
//! A crate name (such as `serde_json`) means its newest version in `~/.cargo/registry/src`
//! (its `.rs` files only); another name, the newest `NAME-VERSION` that
//! `scripts/fetch-eval-corpora.sh` unpacked (such as `click` or `@tanstack/query-core`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use turboprop_cli::{Mode, Searcher};
use turboprop_index::{SearchOptions, Strategy};
use turboprop_types::ChunkMeta;

#[path = "../../../turboprop-embed/examples/cases/mod.rs"]
mod cases;
mod cases_js;
mod cases_python;
mod corpus;
mod extent;
mod lexical_study;

use cases::Variant;
use corpus::{find_corpus, prepare, Case, Chunking, Lang};

const TOP: usize = 10;

/// Lines a hit may reach beyond the function's extent and still be precise.
const SLACK: u32 = 3;

/// The reading budget of the "found within" column: lines of the hits, best first
/// (`--budget`, 200 unless given).
static BUDGET: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(200);

/// A hit: file and 1-based lines.
type Hit = (String, u32, u32);

/// What one method scored over some queries.
#[derive(Default, Clone, Copy)]
struct Score {
    queries: usize,
    /// Queries with a right hit in the top 10.
    found: usize,
    rr: f64,
    /// Found queries whose first right hit lies within the function's extent (± `SLACK`).
    precise: usize,
    /// Hits returned, and their lines added up.
    hits: usize,
    hit_lines: u64,
    /// Queries whose right hit is within the first `BUDGET` lines of the top 10, read best
    /// first: recall at an equal cost of reading, whatever the size of the hits.
    within: usize,
}

impl Score {
    fn record(&mut self, case: &Case, hits: &[Hit]) {
        self.queries += 1;
        let top = &hits[..hits.len().min(TOP)];
        self.hits += top.len();
        self.hit_lines += top
            .iter()
            .map(|(_, s, e)| u64::from(e - s + 1))
            .sum::<u64>();
        let t = &case.target;
        let is_right = |(f, s, e): &Hit| *f == case.file && *s <= t.fn_line && t.fn_line <= *e;
        // Within the reading budget: among all the hits asked for (`--depth`).
        let mut read = 0u64;
        for h in hits {
            read += u64::from(h.2 - h.1 + 1);
            if read > BUDGET.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            if is_right(h) {
                self.within += 1;
                break;
            }
        }
        let right = top.iter().position(is_right);
        if let Some(p) = right {
            self.found += 1;
            self.rr += 1.0 / (p + 1) as f64;
            let (_, s, e) = &hits[p];
            if *s >= t.start.saturating_sub(SLACK) && *e <= t.end + SLACK {
                self.precise += 1;
            }
        }
    }

    fn add(&mut self, o: Score) {
        self.queries += o.queries;
        self.found += o.found;
        self.rr += o.rr;
        self.precise += o.precise;
        self.hits += o.hits;
        self.hit_lines += o.hit_lines;
        self.within += o.within;
    }

    /// `recall / MRR | precision | lines per hit | found within BUDGET lines`, as table
    /// cells.
    fn cells(self) -> String {
        let q = self.queries.max(1) as f64;
        let ranked = format!("{:.1}% / {:.3}", 100.0 * self.found as f64 / q, self.rr / q);
        format!(
            " {ranked:>16} | {:5.1}% | {:5.1} | {:5.1}% |",
            100.0 * self.precise as f64 / self.found.max(1) as f64,
            self.hit_lines as f64 / self.hits.max(1) as f64,
            100.0 * self.within as f64 / q,
        )
    }
}

/// A fusion of `[lexical, semantic]` candidate scores, as `Index::search_fused` takes it.
type Fusion = Box<dyn Fn(&[Vec<f32>]) -> Vec<f32>>;

/// Alternative fusions for `--study`.
fn study_fusions() -> Vec<(String, Fusion)> {
    let mut out: Vec<(String, Fusion)> = Vec::new();
    for w in [0.6f32, 0.7, 0.8] {
        out.push((
            format!("blend lexical {w}"),
            Box::new(move |s: &[Vec<f32>]| s.iter().map(|c| w * c[0] + (1.0 - w) * c[1]).collect()),
        ));
    }
    // The lexical weight rising with the best lexical score among the candidates: a query
    // whose words are all in a chunk leans on the words.
    for (name, gain, power) in [
        ("adaptive 0.3·top", 0.3f32, 1.0f32),
        ("adaptive 0.3·top²", 0.3, 2.0),
        ("adaptive 0.2·top", 0.2, 1.0),
    ] {
        out.push((
            name.to_owned(),
            Box::new(move |s: &[Vec<f32>]| {
                let top = s.iter().map(|c| c[0]).fold(0.0f32, f32::max);
                let w = (0.7 + gain * top.powf(power)).min(1.0);
                s.iter().map(|c| w * c[0] + (1.0 - w) * c[1]).collect()
            }),
        ));
    }
    out.push((
        "rrf k=60".to_owned(),
        Box::new(|s: &[Vec<f32>]| rrf(s, 60.0)),
    ));
    out
}

/// Reciprocal-rank fusion over the candidates, scaled to 0..=1.
fn rrf(scores: &[Vec<f32>], k: f32) -> Vec<f32> {
    let ranks = |space: usize| -> Vec<f32> {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b][space].total_cmp(&scores[a][space]));
        let mut rank = vec![0.0; scores.len()];
        for (r, &c) in order.iter().enumerate() {
            rank[c] = r as f32 + 1.0;
        }
        rank
    };
    let (lex, sem) = (ranks(0), ranks(1));
    let best = 2.0 / (k + 1.0);
    lex.iter()
        .zip(&sem)
        .map(|(a, b)| (1.0 / (k + a) + 1.0 / (k + b)) / best)
        .collect()
}

/// The command line.
struct Options {
    model: String,
    work: PathBuf,
    chunking: Chunking,
    max_queries: usize,
    per_crate: bool,
    study: bool,
    lexical_study: bool,
    list_cases: bool,
    corpora: Vec<String>,
    /// Hits asked for per search (at least `TOP`): the "found within" column reads this many.
    depth: usize,
}

const USAGE: &str = "usage: eval_modes [--model NAME] [--work DIR] [--chunking windows|syntax] [--max-queries N] [--depth 10] [--budget 200] [--per-crate] [--study] [--lexical-study] [--cases] <folder | crate name | corpus name>...";

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        model: "all-MiniLM-L6-v2".to_owned(),
        work: std::env::temp_dir().join("turboprop-eval-modes"),
        chunking: Chunking::Syntax,
        max_queries: 500,
        per_crate: false,
        study: false,
        lexical_study: false,
        list_cases: false,
        corpora: Vec::new(),
        depth: TOP,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--model" => o.model = value()?,
            "--work" => o.work = PathBuf::from(value()?),
            "--chunking" => {
                let v = value()?;
                o.chunking = Chunking::parse(&v).ok_or(format!("unknown chunking {v}"))?;
            }
            "--max-queries" => {
                let v = value()?;
                o.max_queries = v.parse().map_err(|_| format!("bad --max-queries {v}"))?;
            }
            "--depth" => {
                let v = value()?;
                o.depth = v.parse().map_err(|_| format!("bad --depth {v}"))?;
                o.depth = o.depth.max(TOP);
            }
            "--budget" => {
                let v = value()?;
                let b: u64 = v.parse().map_err(|_| format!("bad --budget {v}"))?;
                BUDGET.store(b, std::sync::atomic::Ordering::Relaxed);
            }
            "--per-crate" => o.per_crate = true,
            "--study" => o.study = true,
            "--lexical-study" => o.lexical_study = true,
            "--cases" => o.list_cases = true,
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => o.corpora.push(arg),
        }
    }
    if o.corpora.is_empty() {
        return Err("no corpus given".to_owned());
    }
    Ok(o)
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Prints every case of every corpus (WithDocs): `file:line [start-end] lang query`.
fn list_cases(o: &Options) -> anyhow::Result<()> {
    let scratch = tempfile::tempdir()?;
    for name in &o.corpora {
        let corpus = find_corpus(name).ok_or_else(|| anyhow::anyhow!("no corpus {name}"))?;
        let cases = prepare(
            &corpus,
            &scratch.path().join(&corpus.label),
            Variant::WithDocs,
            o.max_queries,
        )?;
        println!("# {} ({} cases)", corpus.label, cases.len());
        for c in cases {
            let t = &c.target;
            println!(
                "{}:{} [{}-{}] {} {}",
                c.file,
                t.fn_line,
                t.start,
                t.end,
                c.lang.name(),
                t.query
            );
        }
    }
    Ok(())
}

fn run(o: &Options) -> anyhow::Result<()> {
    if o.list_cases {
        return list_cases(o);
    }
    let mut methods: Vec<String> = ["lexical", "semantic", "hybrid"].map(String::from).to_vec();
    let fusions = if o.study { study_fusions() } else { Vec::new() };
    methods.extend(fusions.iter().map(|(n, _)| n.clone()));
    let schemes = if o.lexical_study {
        lexical_study::schemes()
    } else {
        Vec::new()
    };
    methods.extend(schemes.iter().map(|s| s.name.clone()));
    println!(
        "model {}, chunking {}, at most {} queries per corpus; per mode: recall@{TOP} / MRR@{TOP} | precision (first right hit within the function ±{SLACK} lines) | mean lines per hit | found within the first {} lines of the top {}",
        o.model,
        o.chunking.name(),
        o.max_queries,
        BUDGET.load(std::sync::atomic::Ordering::Relaxed),
        o.depth
    );
    for variant in [Variant::WithDocs, Variant::Blanked] {
        println!("\n## {}\n", variant.name());
        print!(
            "| {:<28} | {:<10} | {:>7} |",
            "corpus", "language", "queries"
        );
        for m in &methods {
            print!(
                " {m:>16} | {:>6} | {:>5} | {:>6} |",
                "prec", "lines", "within"
            );
        }
        println!();
        print!("|{}|{}|{}|", "-".repeat(30), "-".repeat(12), "-".repeat(9));
        for _ in &methods {
            print!(
                "{}|{}|{}|{}|",
                "-".repeat(18),
                "-".repeat(8),
                "-".repeat(7),
                "-".repeat(8)
            );
        }
        println!();
        let mut total = vec![Score::default(); methods.len()];
        let mut by_lang: BTreeMap<Lang, Vec<Score>> = BTreeMap::new();
        for name in &o.corpora {
            let corpus = find_corpus(name).ok_or_else(|| {
                anyhow::anyhow!(
                    "no folder, crate in ~/.cargo/registry/src or fetched corpus {name}"
                )
            })?;
            let tag = match variant {
                Variant::WithDocs => "docs",
                Variant::Blanked => "blanked",
            };
            let repo = o.work.join(o.chunking.name()).join(tag).join(&corpus.label);
            let cases = prepare(&corpus, &repo, variant, o.max_queries)?;
            let started = Instant::now();
            let scores = evaluate(o, &repo, &cases, &fusions, &schemes, &mut by_lang)?;
            if o.per_crate {
                let mut langs: Vec<&str> = cases.iter().map(|c| c.lang.name()).collect();
                langs.sort();
                langs.dedup();
                row(&corpus.label, &langs.join("+"), &scores);
            }
            eprintln!(
                "  {} ({tag}): {} queries in {:.1}s",
                corpus.label,
                cases.len(),
                started.elapsed().as_secs_f64()
            );
            for (t, s) in total.iter_mut().zip(&scores) {
                t.add(*s);
            }
        }
        row("**all**", "", &total);
        for (lang, scores) in &by_lang {
            row(&format!("**{}**", lang.name()), lang.name(), scores);
        }
    }
    Ok(())
}

fn row(label: &str, lang: &str, scores: &[Score]) {
    print!(
        "| {label:<28} | {lang:<10} | {:>7} |",
        scores.first().map_or(0, |s| s.queries)
    );
    for s in scores {
        print!("{}", s.cells());
    }
    println!();
}

fn hit(chunk: &ChunkMeta) -> Hit {
    (
        chunk.file().to_owned(),
        chunk.line_start(),
        chunk.line_end(),
    )
}

/// Indexes `repo` and scores every method on `cases`, adding each case to its language's
/// scores too.
fn evaluate(
    o: &Options,
    repo: &Path,
    cases: &[Case],
    fusions: &[(String, Fusion)],
    schemes: &[lexical_study::Scheme],
    by_lang: &mut BTreeMap<Lang, Vec<Score>>,
) -> anyhow::Result<Vec<Score>> {
    o.chunking.configure(repo)?;
    let repo_arg = repo.to_string_lossy().into_owned();
    let code = turboprop_cli::run_from(["tp", "index", "--repo", &repo_arg, "--model", &o.model]);
    if code != ExitCode::SUCCESS {
        anyhow::bail!("tp index failed on {}", repo.display());
    }
    let searcher = Searcher::open(repo)?;
    let methods = 3 + fusions.len() + schemes.len();
    let mut scores = vec![Score::default(); methods];
    let opts = SearchOptions {
        limit: o.depth,
        strategy: Strategy::Exact,
        ..SearchOptions::default()
    };
    let study_only = std::env::var_os("TP_STUDY_ONLY").is_some();
    for case in cases {
        let lang = by_lang
            .entry(case.lang)
            .or_insert_with(|| vec![Score::default(); methods]);
        if study_only {
            continue;
        }
        for (m, mode) in [Mode::Lexical, Mode::Semantic, Mode::Hybrid]
            .into_iter()
            .enumerate()
        {
            let found = searcher.search(&case.target.query, mode, &opts)?;
            let hits: Vec<Hit> = found.iter().map(|h| hit(&h.chunk)).collect();
            scores[m].record(case, &hits);
            lang[m].record(case, &hits);
        }
        for (k, (_, fuse)) in fusions.iter().enumerate() {
            let found = searcher.search_fused_merged(&case.target.query, &opts, fuse.as_ref())?;
            let hits: Vec<Hit> = found.iter().map(|h| hit(&h.chunk)).collect();
            scores[3 + k].record(case, &hits);
            lang[3 + k].record(case, &hits);
        }
    }
    if !schemes.is_empty() {
        let chunking = turboprop_types::ChunkingConfig {
            method: match o.chunking {
                Chunking::Windows => turboprop_types::ChunkMethod::Windows,
                Chunking::Syntax => turboprop_types::ChunkMethod::Syntax,
            },
            ..turboprop_types::ChunkingConfig::default()
        };
        let docs = lexical_study::chunks(repo, &chunking);
        for (k, scheme) in schemes.iter().enumerate() {
            let ranker = lexical_study::Ranker::build(scheme, &docs);
            let m = 3 + fusions.len() + k;
            for case in cases {
                let hits = ranker.search(&case.target.query, o.depth);
                scores[m].record(case, &hits);
                if let Some(lang) = by_lang.get_mut(&case.lang) {
                    lang[m].record(case, &hits);
                }
            }
        }
    }
    Ok(scores)
}
