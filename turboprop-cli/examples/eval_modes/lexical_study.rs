//! `--lexical-study`: exact-term rankers over the same chunks as the index, in memory, to
//! compare with `tp`'s lexical mode: plain BM25 (lowercased `\w+` tokens, the usual baseline)
//! and BM25 over the code-aware analyzer's exact terms with a choice of saturation (`k1`),
//! length normalisation (`b`, against the collection's mean length or a fixed one) and field
//! weights (the chunk's symbol, its file path).

use std::collections::HashMap;
use std::path::Path;

use turboprop_embed::{analyze_document, analyze_query, TermKind};
use turboprop_types::ChunkingConfig;

use crate::corpus::source_files;
use crate::Hit;

/// How text becomes terms.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Analysis {
    /// Lowercased runs of letters, digits and `_`.
    Plain,
    /// `turboprop_embed::analyze_document` / `analyze_query`.
    Code,
    /// Both: the code-aware terms, and the plain tokens as terms of their own (weighted by
    /// `Scheme::plain`).
    Both,
    /// `turboprop_embed::document_terms` / `query_terms`: what `tp` indexes.
    Tp,
}

/// One exact-term ranker.
#[derive(Clone, Debug)]
pub struct Scheme {
    pub name: String,
    pub analysis: Analysis,
    pub k1: f32,
    pub b: f32,
    /// `None`: the collection's mean length; else this fixed length.
    pub avgdl: Option<f32>,
    /// A compound's weight in a document and in a query.
    pub doc_compound: f32,
    pub query_compound: f32,
    /// Extra term frequency for each occurrence in the symbol path and in the file path.
    pub symbol: f32,
    pub path: f32,
    /// Query weights are `idf^idf_power`.
    pub idf_power: f32,
    /// The weight of plain tokens in `Analysis::Both`.
    pub plain: f32,
    /// In `Analysis::Both`: 0 every plain token, 1 those with a term of the code-aware
    /// analysis (no stopwords), 2 those whose analysis is not just themselves.
    pub plain_filter: u8,
    /// Extra term frequency for each occurrence in a comment.
    pub comment: f32,
    /// Extra weight of the compounds of adjacent words of a document, as a query makes them
    /// (phrases of prose).
    pub adjacent: f32,
}

impl Scheme {
    fn code(name: &str) -> Scheme {
        Scheme {
            name: name.to_owned(),
            analysis: Analysis::Code,
            k1: 1.2,
            b: 0.75,
            avgdl: None,
            doc_compound: 0.25,
            query_compound: 0.5,
            symbol: 0.0,
            path: 0.0,
            idf_power: 1.0,
            plain: 1.0,
            plain_filter: 0,
            comment: 0.0,
            adjacent: 0.0,
        }
    }
}

/// The schemes compared, from `TP_LEXICAL_SCHEMES` (`name:key=value,...;...`) or a default
/// grid.
pub fn schemes() -> Vec<Scheme> {
    if let Ok(spec) = std::env::var("TP_LEXICAL_SCHEMES") {
        return spec
            .split(';')
            .filter(|s| !s.trim().is_empty())
            .map(parse_scheme)
            .collect();
    }
    let mut out = vec![Scheme {
        analysis: Analysis::Plain,
        doc_compound: 0.0,
        query_compound: 0.0,
        ..Scheme::code("bm25 plain")
    }];
    out.push(Scheme::code("code bm25"));
    out.push(Scheme {
        k1: 2.0,
        ..Scheme::code("code k1=2")
    });
    out.push(Scheme {
        b: 0.5,
        ..Scheme::code("code b=.5")
    });
    out.push(Scheme {
        symbol: 1.0,
        ..Scheme::code("code sym1")
    });
    out.push(Scheme {
        symbol: 1.0,
        path: 0.5,
        ..Scheme::code("code sym1 path.5")
    });
    out
}

fn parse_scheme(spec: &str) -> Scheme {
    let (name, rest) = spec.split_once(':').unwrap_or((spec, ""));
    let mut s = Scheme::code(name.trim());
    for kv in rest.split(',').filter(|kv| !kv.trim().is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, "1"));
        let f = || v.trim().parse::<f32>().expect("a number");
        match k.trim() {
            "plain" => {
                s.analysis = Analysis::Plain;
                s.doc_compound = 0.0;
                s.query_compound = 0.0;
            }
            "k1" => s.k1 = f(),
            "b" => s.b = f(),
            "avgdl" => s.avgdl = Some(f()),
            "dc" => s.doc_compound = f(),
            "qc" => s.query_compound = f(),
            "sym" => s.symbol = f(),
            "path" => s.path = f(),
            "idf" => s.idf_power = f(),
            "com" => s.comment = f(),
            "adj" => s.adjacent = f(),
            "pf" => s.plain_filter = f() as u8,
            "tp" => s.analysis = Analysis::Tp,
            "both" => {
                s.analysis = Analysis::Both;
                s.plain = f();
            }
            other => panic!("unknown scheme key {other}"),
        }
    }
    s
}

/// A chunk of the repository as `tp index` cuts it.
pub struct Doc {
    hit: Hit,
    text: String,
    symbol: Option<String>,
}

/// Every chunk of the source files in `repo`, cut as `chunking` says.
pub fn chunks(repo: &Path, chunking: &ChunkingConfig) -> Vec<Doc> {
    let mut out = Vec::new();
    for (path, _) in source_files(repo, false) {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let rel = path
            .strip_prefix(repo)
            .expect("under the repository")
            .to_string_lossy()
            .replace('\\', "/");
        for c in turboprop_cli::chunk_source(&rel, &bytes, chunking).chunks {
            out.push(Doc {
                hit: (rel.clone(), c.line_start, c.line_end),
                text: c.embed_text(&bytes),
                symbol: c.symbol.clone(),
            });
        }
    }
    out
}

/// Calls `emit(term, kind)` for every term: kind 0 a word, 1 a compound, 2 a plain token
/// (in `Analysis::Both`).
fn terms(s: &Scheme, text: &str, query: bool, mut emit: impl FnMut(&str, u8)) {
    let analysis = s.analysis;
    let filter = s.plain_filter;
    let plain = |emit: &mut dyn FnMut(&str, u8), kind: u8, prefix: &str| {
        for t in text
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|t| !t.is_empty())
        {
            let lower = t.to_lowercase();
            if filter > 0 {
                let mut words = Vec::new();
                analyze_document(t, |w, k| {
                    if k == TermKind::Word {
                        words.push(w.to_owned())
                    }
                });
                if words.is_empty() || (filter == 2 && words == [lower.clone()]) {
                    continue;
                }
            }
            emit(&format!("{prefix}{lower}"), kind);
        }
    };
    if analysis == Analysis::Tp {
        return;
    }
    if analysis == Analysis::Plain {
        plain(&mut emit, 0, "");
        return;
    }
    {
        let f = |t: &str, k: TermKind| emit(t, u8::from(k == TermKind::Compound));
        if query {
            analyze_query(text, f);
        } else {
            analyze_document(text, f);
        }
    }
    if analysis == Analysis::Both {
        plain(&mut emit, 2, "=");
    }
}

/// An in-memory inverted index of one scheme.
pub struct Ranker {
    scheme: Scheme,
    docs: Vec<Hit>,
    ids: HashMap<String, u32>,
    postings: Vec<Vec<(u32, f32)>>,
    lengths: Vec<f32>,
    avgdl: f32,
}

impl Ranker {
    pub fn build(scheme: &Scheme, docs: &[Doc]) -> Ranker {
        let mut r = Ranker {
            scheme: scheme.clone(),
            docs: docs.iter().map(|d| d.hit.clone()).collect(),
            ids: HashMap::new(),
            postings: Vec::new(),
            lengths: Vec::with_capacity(docs.len()),
            avgdl: 1.0,
        };
        for (i, d) in docs.iter().enumerate() {
            if scheme.analysis == Analysis::Tp {
                let terms = turboprop_embed::document_terms(&d.text, d.symbol.as_deref());
                for (t, f) in terms.iter() {
                    let next = r.ids.len() as u32;
                    let id = *r.ids.entry(t.to_owned()).or_insert(next);
                    if id as usize == r.postings.len() {
                        r.postings.push(Vec::new());
                    }
                    r.postings[id as usize].push((i as u32, f));
                }
                r.lengths.push(terms.length());
                continue;
            }
            let mut tf: HashMap<String, f32> = HashMap::new();
            let mut len = 0.0f32;
            let mut add = |text: &str, weight: f32, counts: bool| {
                terms(scheme, text, false, |t, kind| {
                    let w = match kind {
                        0 => 1.0,
                        1 => scheme.doc_compound,
                        _ => 1.0,
                    };
                    if w > 0.0 {
                        *tf.entry(t.to_owned()).or_default() += w * weight;
                    }
                    if counts && kind == 0 {
                        len += 1.0;
                    }
                });
            };
            add(&d.text, 1.0, true);
            if scheme.symbol > 0.0 {
                if let Some(s) = &d.symbol {
                    add(&s.replace("::", " "), scheme.symbol, false);
                }
            }
            if scheme.comment > 0.0 {
                add(&comments(&d.text), scheme.comment, false);
            }
            if scheme.path > 0.0 {
                add(&d.hit.0, scheme.path, false);
            }
            if scheme.adjacent > 0.0 {
                analyze_query(&d.text, |t, k| {
                    if k == TermKind::Compound {
                        *tf.entry(t.to_owned()).or_default() += scheme.adjacent;
                    }
                });
            }
            for (t, f) in tf {
                let next = r.ids.len() as u32;
                let id = *r.ids.entry(t).or_insert(next);
                if id as usize == r.postings.len() {
                    r.postings.push(Vec::new());
                }
                r.postings[id as usize].push((i as u32, f));
            }
            r.lengths.push(len);
        }
        let n = r.lengths.len().max(1) as f32;
        r.avgdl = (r.lengths.iter().sum::<f32>() / n).max(1.0);
        r
    }

    /// The top `k` chunks for `query`, best first (ties by position).
    pub fn search(&self, query: &str, k: usize) -> Vec<Hit> {
        let s = &self.scheme;
        let mut q: HashMap<String, f32> = HashMap::new();
        if s.analysis == Analysis::Tp {
            q.extend(turboprop_embed::query_terms(query).unwrap_or_default());
        }
        terms(s, query, true, |t, kind| {
            let w = match kind {
                0 => 1.0,
                1 => s.query_compound,
                _ => s.plain,
            };
            if w > 0.0 {
                *q.entry(t.to_owned()).or_default() += w;
            }
        });
        let n = self.docs.len() as f32;
        let avgdl = s.avgdl.unwrap_or(self.avgdl);
        let mut acc = vec![0.0f32; self.docs.len()];
        for (t, qw) in q {
            let Some(&id) = self.ids.get(&t) else {
                continue;
            };
            let list = &self.postings[id as usize];
            let df = list.len() as f32;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln().powf(s.idf_power);
            for &(d, tf) in list {
                let norm = 1.0 - s.b + s.b * self.lengths[d as usize] / avgdl;
                acc[d as usize] += qw * idf * tf * (s.k1 + 1.0) / (tf + s.k1 * norm);
            }
        }
        let mut order: Vec<u32> = (0..acc.len() as u32)
            .filter(|&d| acc[d as usize] > 0.0)
            .collect();
        order.sort_by(|&a, &b| acc[b as usize].total_cmp(&acc[a as usize]).then(a.cmp(&b)));
        order
            .into_iter()
            .take(k)
            .map(|d| self.docs[d as usize].clone())
            .collect()
    }
}

/// The comment lines of a chunk, by a line-based heuristic: lines starting with `//`, `#`,
/// `*` or `/*`, and lines inside `/* */` or a `"""` string.
fn comments(text: &str) -> String {
    let mut out = String::new();
    let mut block = false;
    let mut doc = false;
    for line in text.lines() {
        let t = line.trim_start();
        let quotes = t.matches("\"\"\"").count();
        let is = block
            || doc
            || t.starts_with("//")
            || t.starts_with('#')
            || t.starts_with('*')
            || t.starts_with("/*")
            || quotes > 0;
        if t.starts_with("/*") && !t.contains("*/") {
            block = true;
        } else if block && t.contains("*/") {
            block = false;
        }
        if quotes % 2 == 1 {
            doc = !doc;
        }
        if is {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
