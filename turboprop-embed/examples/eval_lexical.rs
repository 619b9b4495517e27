//! Measures the built-in embedder against BM25 on real crates.
//!
//! For every function with a `///` doc comment, the first sentence of the comment is a query
//! and the chunks (40-line windows, overlap 10) that contain the `fn` line are the targets.
//! All chunks of the crate are ranked by BM25 (k1 = 1.2, b = 0.75, over the analyzer's terms)
//! and by the built-in embedder (document-frequency table from `document_terms`, query from
//! `embed_query`, brute-force cosine), and recall@10 and MRR@10 are printed per crate and
//! overall. The `blanked` variant replaces every `///` line by an empty `///` first, so only
//! the code itself can match. `--dims` sweeps the embedder's dimension; `--exact` adds the
//! embedder's own weights scored without hashing (`unhashed`), which separates what the
//! weighting costs from what the hashing costs.
//!
//! ```text
//! cargo run --release -p turboprop-embed --example eval_lexical -- \
//!     [--dims 256,384,512,768,1024] [--exact] <crate dir>...
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use turboprop_embed::{analyze_document, analyze_query, term_id, BuiltinEmbedder};

mod cases;
use cases::{Corpus, Variant};
use turboprop_types::{Embedder, TermId, TermStatistics};

const TOP: usize = 10;

fn main() {
    let mut dims_list = vec![turboprop_embed::DEFAULT_DIMENSIONS];
    let mut exact = false;
    let mut crates = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dims" => {
                let list = args.next().unwrap_or_default();
                dims_list = list
                    .split(',')
                    .map(|d| {
                        d.trim()
                            .parse()
                            .expect("--dims takes numbers, e.g. 256,512")
                    })
                    .collect();
            }
            "--exact" => exact = true,
            _ => crates.push(PathBuf::from(arg)),
        }
    }
    if crates.is_empty() {
        eprintln!("usage: eval_lexical [--dims 256,512] [--exact] <crate dir>...");
        std::process::exit(2);
    }
    let embedders: Vec<BuiltinEmbedder> = dims_list
        .iter()
        .map(|&d| BuiltinEmbedder::with_dimensions(d).expect("dimension in range"))
        .collect();

    let mut methods = vec!["bm25".to_string()];
    if exact {
        methods.push("unhashed".to_string());
    }
    methods.extend(
        embedders
            .iter()
            .map(|e| format!("builtin-d{}", e.dimensions())),
    );

    for variant in [Variant::WithDocs, Variant::Blanked] {
        println!("\n## {} (recall@{TOP} / MRR@{TOP})", variant.name());
        print!("{:<22} {:>7} {:>7}", "crate", "queries", "chunks");
        for m in &methods {
            print!(" {:>15}", m);
        }
        println!();
        let mut total = Totals::new(methods.len());
        for dir in &crates {
            let started = Instant::now();
            let corpus = Corpus::load(dir, variant);
            let mut t = Totals::new(methods.len());
            evaluate(&corpus, &embedders, exact, &mut t);
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            print_row(&name, &t, corpus.chunks.len());
            eprintln!("  ({name}: {:.1}s)", started.elapsed().as_secs_f64());
            total.add(&t);
        }
        print_row("OVERALL", &total, total.chunks);
        let mut top = total.top_scores.clone();
        top.sort_by(f32::total_cmp);
        if !top.is_empty() {
            let at = |q: f64| top[((top.len() - 1) as f64 * q) as usize];
            println!(
                "best cosine per query, builtin-d{}: 10% {:.2}, median {:.2}, 90% {:.2}",
                embedders[0].dimensions(),
                at(0.1),
                at(0.5),
                at(0.9)
            );
        }
    }
}

struct Totals {
    queries: usize,
    chunks: usize,
    hits: Vec<usize>,
    rr: Vec<f64>,
    /// The best cosine of each query, for the default-dimension embedder.
    top_scores: Vec<f32>,
}

impl Totals {
    fn new(methods: usize) -> Self {
        Totals {
            queries: 0,
            chunks: 0,
            hits: vec![0; methods],
            rr: vec![0.0; methods],
            top_scores: Vec::new(),
        }
    }

    fn add(&mut self, other: &Totals) {
        self.queries += other.queries;
        self.chunks += other.chunks;
        for (a, b) in self.hits.iter_mut().zip(&other.hits) {
            *a += b;
        }
        for (a, b) in self.rr.iter_mut().zip(&other.rr) {
            *a += b;
        }
        self.top_scores.extend(&other.top_scores);
    }

    fn record(&mut self, method: usize, rank: Option<usize>) {
        if let Some(r) = rank {
            if r <= TOP {
                self.hits[method] += 1;
                self.rr[method] += 1.0 / r as f64;
            }
        }
    }
}

fn print_row(name: &str, t: &Totals, chunks: usize) {
    print!("{:<22} {:>7} {:>7}", name, t.queries, chunks);
    let q = t.queries.max(1) as f64;
    for (h, rr) in t.hits.iter().zip(&t.rr) {
        print!("     {:>5.1} / {:.3}", 100.0 * *h as f64 / q, rr / q);
    }
    println!();
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

/// The 1-based rank of the best-ranked target, ties broken by chunk order; `None` when no
/// target scores above zero.
fn rank_of_target(scores: &[f32], targets: &[usize]) -> Option<usize> {
    let best = targets
        .iter()
        .copied()
        .filter(|&t| scores[t] > 0.0)
        .min_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)))?;
    let s = scores[best];
    let ahead = scores
        .iter()
        .enumerate()
        .filter(|&(i, &x)| x > s || (x == s && i < best))
        .count();
    Some(ahead + 1)
}

fn evaluate(corpus: &Corpus, embedders: &[BuiltinEmbedder], exact: bool, t: &mut Totals) {
    let n = corpus.chunks.len();
    t.queries = corpus.queries.len();
    t.chunks = n;

    // BM25 postings over the analyzer's terms.
    let mut postings: HashMap<TermId, Vec<(usize, f32)>> = HashMap::new();
    let mut lengths = Vec::with_capacity(n);
    for (c, chunk) in corpus.chunks.iter().enumerate() {
        let mut tf: HashMap<TermId, f32> = HashMap::new();
        let mut len = 0usize;
        analyze_document(&chunk.text, |term, _| {
            *tf.entry(term_id(term)).or_insert(0.0) += 1.0;
            len += 1;
        });
        lengths.push(len as f32);
        for (term, f) in tf {
            postings.entry(term).or_default().push((c, f));
        }
    }
    let avgdl = lengths.iter().sum::<f32>() / n.max(1) as f32;

    // The index's document-frequency table, from `document_terms`.
    let reference = &embedders[0];
    let mut df: HashMap<TermId, u64> = HashMap::new();
    for chunk in &corpus.chunks {
        for term in reference.document_terms(&chunk.text).unwrap_or_default() {
            *df.entry(term).or_insert(0) += 1;
        }
    }
    let stats = DfTable { docs: n as u64, df };

    let vectors: Vec<Vec<Vec<f32>>> = embedders
        .iter()
        .map(|e| {
            let texts: Vec<&str> = corpus.chunks.iter().map(|c| c.text.as_str()).collect();
            e.embed_documents(&texts).expect("built-in embedding")
        })
        .collect();
    let sparse: Vec<HashMap<TermId, f32>> = if exact {
        corpus
            .chunks
            .iter()
            .map(|c| {
                let w = reference.document_term_weights(&c.text);
                let norm = w.iter().map(|(_, x)| x * x).sum::<f32>().sqrt().max(1e-12);
                w.into_iter().map(|(id, x)| (id, x / norm)).collect()
            })
            .collect()
    } else {
        Vec::new()
    };

    let mut scores = vec![0.0f32; n];
    for q in &corpus.queries {
        let targets: Vec<usize> = corpus
            .chunks
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                c.file == q.file && c.line_start <= q.fn_line && q.fn_line <= c.line_end
            })
            .map(|(i, _)| i)
            .collect();
        let mut method = 0;

        // BM25.
        scores.iter_mut().for_each(|s| *s = 0.0);
        let mut qtf: HashMap<TermId, f32> = HashMap::new();
        analyze_query(&q.text, |term, _| {
            *qtf.entry(term_id(term)).or_insert(0.0) += 1.0
        });
        for (term, qf) in &qtf {
            let Some(list) = postings.get(term) else {
                continue;
            };
            let dfv = list.len() as f32;
            let idf = (1.0 + (n as f32 - dfv + 0.5) / (dfv + 0.5)).ln();
            for &(c, f) in list {
                let norm = 1.0 - 0.75 + 0.75 * lengths[c] / avgdl;
                scores[c] += qf * idf * f * 2.2 / (f + 1.2 * norm);
            }
        }
        t.record(method, rank_of_target(&scores, &targets));
        method += 1;

        if exact {
            let qw = reference
                .query_term_weights(&q.text, &stats)
                .expect("non-empty query");
            for (c, doc) in sparse.iter().enumerate() {
                scores[c] = qw
                    .iter()
                    .map(|(id, w)| w * doc.get(id).copied().unwrap_or(0.0))
                    .sum();
            }
            t.record(method, rank_of_target(&scores, &targets));
            method += 1;
        }

        for (e, vecs) in embedders.iter().zip(&vectors) {
            let qv = e.embed_query(&q.text, &stats).expect("non-empty query");
            for (s, v) in scores.iter_mut().zip(vecs) {
                *s = v.iter().zip(&qv).map(|(a, b)| a * b).sum();
            }
            t.record(method, rank_of_target(&scores, &targets));
            if method == usize::from(exact) + 1 {
                t.top_scores
                    .push(scores.iter().copied().fold(0.0, f32::max));
            }
            method += 1;
        }
    }
}
