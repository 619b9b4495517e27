//! Evaluates `tp search` in every mode on real crates, through the real index.
//!
//! For every function with a `///` doc comment, the first sentence of the comment is a query,
//! and a hit is right when it is in the function's file and its lines contain the `fn` line.
//! Each crate's `.rs` files are copied into a repository of their own under the work folder
//! (in the `blanked` variant with every `///` line emptied, line numbers kept), indexed with
//! `tp index --model MODEL` (in this process; the indexes are kept, so a second run costs
//! only the searches), and every query is searched the way `tp search --mode M --limit 10`
//! does. Printed: recall@10 (share of queries with a right hit in the top 10) and MRR@10 per
//! mode and variant, overall and with `--per-crate` per crate.
//!
//! `--study` adds alternative fusions of the same candidates (each ranker's top
//! `HYBRID_DEPTH`, scored in both spaces), to compare with the one `--mode hybrid` uses.
//!
//! ```text
//! cargo run --release -p turboprop-cli --example eval_modes -- \
//!     [--model all-MiniLM-L6-v2] [--work DIR] [--per-crate] [--study] <crate dir | crate name>...
//! ```
//! A crate name (such as `serde_json`) means its newest version in `~/.cargo/registry/src`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use turboprop_cli::{Mode, Searcher};
use turboprop_index::{SearchOptions, Strategy};

#[path = "../../turboprop-embed/examples/cases/mod.rs"]
mod cases;
use cases::{blank_doc_comments, collect_rs_files, documented_functions, Variant};

const TOP: usize = 10;

/// A query and where its answer is.
struct Case {
    file: String,
    fn_line: u32,
    query: String,
}

/// Found-in-top-10 count and reciprocal-rank sum of one method.
#[derive(Default, Clone, Copy)]
struct Score {
    queries: usize,
    found: usize,
    rr: f64,
}

impl Score {
    fn record(&mut self, rank: Option<usize>) {
        self.queries += 1;
        if let Some(r) = rank.filter(|&r| r <= TOP) {
            self.found += 1;
            self.rr += 1.0 / r as f64;
        }
    }

    fn add(&mut self, o: Score) {
        self.queries += o.queries;
        self.found += o.found;
        self.rr += o.rr;
    }

    fn cell(self) -> String {
        let q = self.queries.max(1) as f64;
        format!(
            "{:5.1}% / {:.3}",
            100.0 * self.found as f64 / q,
            self.rr / q
        )
    }
}

/// A fusion of `[lexical, semantic]` candidate scores, as `Index::search_fused` takes it.
type Fusion = Box<dyn Fn(&[Vec<f32>]) -> Vec<f32>>;

/// Alternative fusions for `--study`.
fn study_fusions() -> Vec<(String, Fusion)> {
    let mut out: Vec<(String, Fusion)> = Vec::new();
    for w in [0.5f32, 0.6, 0.8, 0.9] {
        out.push((
            format!("blend lexical {w}"),
            Box::new(move |s: &[Vec<f32>]| s.iter().map(|c| w * c[0] + (1.0 - w) * c[1]).collect()),
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

/// The newest version of crate `name` in the cargo registry, or `name` as a folder.
fn crate_dir(name: &str) -> Option<PathBuf> {
    let as_path = PathBuf::from(name);
    if as_path.is_dir() {
        return Some(as_path);
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let mut found: Vec<(Vec<u64>, PathBuf)> = Vec::new();
    for registry in std::fs::read_dir(home.join("registry/src")).ok()?.flatten() {
        for entry in std::fs::read_dir(registry.path())
            .into_iter()
            .flatten()
            .flatten()
        {
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

/// Copies the crate's `.rs` files into `repo` (blanking doc comments for that variant) and
/// returns its cases.
fn prepare(src: &Path, repo: &Path, variant: Variant) -> std::io::Result<Vec<Case>> {
    let mut files = Vec::new();
    collect_rs_files(src, &mut files);
    files.sort();
    let mut cases = Vec::new();
    for path in files {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let rel = path
            .strip_prefix(src)
            .map_err(std::io::Error::other)?
            .to_string_lossy()
            .replace('\\', "/");
        let lines: Vec<&str> = text.lines().collect();
        for (fn_line, sentence) in documented_functions(&lines) {
            cases.push(Case {
                file: rel.clone(),
                fn_line,
                query: sentence,
            });
        }
        let out = match variant {
            Variant::WithDocs => text.clone(),
            Variant::Blanked => blank_doc_comments(&text),
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
    Ok(cases)
}

fn main() -> ExitCode {
    let mut model = "all-MiniLM-L6-v2".to_owned();
    let mut work = std::env::temp_dir().join("turboprop-eval-modes");
    let mut per_crate = false;
    let mut study = false;
    let mut crates = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--model" => model = args.next().unwrap_or_default(),
            "--work" => work = PathBuf::from(args.next().unwrap_or_default()),
            "--per-crate" => per_crate = true,
            "--study" => study = true,
            _ => crates.push(arg),
        }
    }
    if crates.is_empty() {
        eprintln!(
            "usage: eval_modes [--model NAME] [--work DIR] [--per-crate] [--study] <crate dir | crate name>..."
        );
        return ExitCode::from(2);
    }
    match run(&model, &work, per_crate, study, &crates) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(
    model: &str,
    work: &Path,
    per_crate: bool,
    study: bool,
    crates: &[String],
) -> anyhow::Result<()> {
    let mut methods: Vec<String> = ["lexical", "semantic", "hybrid"].map(String::from).to_vec();
    let fusions = if study { study_fusions() } else { Vec::new() };
    methods.extend(fusions.iter().map(|(n, _)| n.clone()));
    for variant in [Variant::WithDocs, Variant::Blanked] {
        println!("\n## {} (recall@{TOP} / MRR@{TOP})\n", variant.name());
        print!("| {:<22} | {:>7} |", "crate", "queries");
        for m in &methods {
            print!(" {m:>16} |");
        }
        println!();
        print!("|{}|{}|", "-".repeat(24), "-".repeat(9));
        for _ in &methods {
            print!("{}|", "-".repeat(18));
        }
        println!();
        let mut total = vec![Score::default(); methods.len()];
        for name in crates {
            let src = crate_dir(name)
                .ok_or_else(|| anyhow::anyhow!("no crate {name} in ~/.cargo/registry/src"))?;
            let label = src
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| name.clone());
            let tag = match variant {
                Variant::WithDocs => "docs",
                Variant::Blanked => "blanked",
            };
            let repo = work.join(tag).join(&label);
            let cases = prepare(&src, &repo, variant)?;
            let started = Instant::now();
            let repo_arg = repo.to_string_lossy().into_owned();
            let code =
                turboprop_cli::run_from(["tp", "index", "--repo", &repo_arg, "--model", model]);
            if code != ExitCode::SUCCESS {
                anyhow::bail!("tp index failed on {}", repo.display());
            }
            let searcher = Searcher::open(&repo)?;
            let mut scores = vec![Score::default(); methods.len()];
            let opts = SearchOptions {
                limit: TOP,
                strategy: Strategy::Exact,
                ..SearchOptions::default()
            };
            for case in &cases {
                let rank = |hits: &[(String, u32, u32)]| {
                    hits.iter()
                        .position(|(f, s, e)| {
                            *f == case.file && *s <= case.fn_line && case.fn_line <= *e
                        })
                        .map(|p| p + 1)
                };
                for (m, mode) in [Mode::Lexical, Mode::Semantic, Mode::Hybrid]
                    .into_iter()
                    .enumerate()
                {
                    let hits: Vec<(String, u32, u32)> = searcher
                        .search(&case.query, mode, &opts)?
                        .into_iter()
                        .map(|h| {
                            (
                                h.chunk.file().to_owned(),
                                h.chunk.line_start(),
                                h.chunk.line_end(),
                            )
                        })
                        .collect();
                    scores[m].record(rank(&hits));
                }
                if !fusions.is_empty() {
                    for (k, (_, fuse)) in fusions.iter().enumerate() {
                        let hits: Vec<(String, u32, u32)> = searcher
                            .search_fused_with(&case.query, &opts, fuse.as_ref())?
                            .into_iter()
                            .map(|h| {
                                (
                                    h.chunk.file().to_owned(),
                                    h.chunk.line_start(),
                                    h.chunk.line_end(),
                                )
                            })
                            .collect();
                        scores[3 + k].record(rank(&hits));
                    }
                }
            }
            if per_crate {
                print!("| {label:<22} | {:>7} |", cases.len());
                for s in &scores {
                    print!(" {:>16} |", s.cell());
                }
                println!();
            }
            eprintln!(
                "  {label} ({tag}): {} queries in {:.1}s",
                cases.len(),
                started.elapsed().as_secs_f64()
            );
            for (t, s) in total.iter_mut().zip(&scores) {
                t.add(*s);
            }
        }
        print!("| {:<22} | {:>7} |", "**all**", total[0].queries);
        for s in &total {
            print!(" {:>16} |", s.cell());
        }
        println!();
    }
    Ok(())
}
