//! Exact lexical search: BM25 over the postings of the segments' lexical space (segment
//! format 5), with the index's live statistics: document frequencies, the number of chunks
//! and their mean length are those of the live rows (deleted files' rows not counted, a
//! filter not applied), computed per query from the postings themselves, so they are exact
//! after any sequence of commits.
//!
//! A chunk's score is BM25's, `Σ w · idf · tf (k1 + 1) / (tf + k1 (1 − b + b · len / avglen))`
//! over the query's terms, divided by its ceiling `Σ w · idf · (k1 + 1)` over the terms the
//! index holds: a score in 0..1 that reads like the other spaces' cosines and can be fused
//! with them.

use std::ops::Range;

use turboprop_storage::{LexicalPostings, StorageError, LENGTHS_FILE, POSTINGS_FILE};

use super::{Hit, Index, SearchOptions};
use crate::error::Result;
use crate::filter::FileFilter;
use crate::topk::{Scored, TopK};

/// A query in the lexical space: its distinct terms with their weights (as the analyzer that
/// made the index's postings makes them, e.g. `turboprop_embed::query_terms`) and BM25's
/// parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct LexicalQuery {
    /// `(term, weight)`: weights finite and above zero; a term given twice counts twice.
    pub terms: Vec<(String, f32)>,
    /// Term-frequency saturation (BM25's `k1`, at least zero).
    pub k1: f32,
    /// Length normalisation (BM25's `b`, 0 to 1).
    pub b: f32,
}

/// Every wanted row's BM25 score, per segment (`None`: no row of it scored), and the
/// query's ceiling that normalizes them.
pub(super) struct LexicalScores {
    segments: Vec<Option<Vec<f32>>>,
    ceiling: f32,
}

impl LexicalScores {
    /// The normalized score of `row` of segment `seg` (0 when it matched nothing or is not
    /// wanted).
    pub(super) fn get(&self, seg: u32, row: u32) -> f32 {
        let raw = self
            .segments
            .get(seg as usize)
            .and_then(Option::as_ref)
            .and_then(|s| s.get(row as usize))
            .copied()
            .unwrap_or(0.0);
        self.normalized(raw)
    }

    fn normalized(&self, raw: f32) -> f32 {
        if self.ceiling > 0.0 {
            (raw / self.ceiling).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// The best `limit` rows with normalized scores above zero and at least `floor`.
    pub(super) fn top(&self, limit: usize, floor: f32) -> TopK {
        let mut top = TopK::new(limit);
        for (seg, scores) in self.segments.iter().enumerate() {
            let Some(scores) = scores else { continue };
            for (row, &raw) in scores.iter().enumerate() {
                if raw <= 0.0 {
                    continue;
                }
                let score = self.normalized(raw);
                if score > 0.0 && score >= floor && score >= top.threshold() {
                    top.push(Scored {
                        score,
                        segment: seg as u32,
                        row: row as u32,
                    });
                }
            }
        }
        top
    }
}

/// Which rows of a segment count: all of them, or those set in a bit mask.
enum Rows {
    All,
    Mask(Vec<u64>),
}

impl Rows {
    fn from_ranges(rows: usize, ranges: impl Iterator<Item = Range<usize>>) -> Rows {
        let mut mask = vec![0u64; rows.div_ceil(64)];
        for r in ranges {
            for row in r {
                if let Some(w) = mask.get_mut(row / 64) {
                    *w |= 1 << (row % 64);
                }
            }
        }
        Rows::Mask(mask)
    }

    fn contains(&self, row: usize) -> bool {
        match self {
            Rows::All => true,
            Rows::Mask(m) => m.get(row / 64).is_some_and(|w| w >> (row % 64) & 1 == 1),
        }
    }

    /// The rows below `rows` not in the set.
    fn missing(&self, rows: usize) -> impl Iterator<Item = usize> + '_ {
        let words: &[u64] = match self {
            Rows::All => &[],
            Rows::Mask(m) => m,
        };
        words.iter().enumerate().flat_map(move |(k, &w)| {
            let mut dead = !w;
            std::iter::from_fn(move || {
                while dead != 0 {
                    let bit = dead.trailing_zeros() as usize;
                    dead &= dead - 1;
                    let row = k * 64 + bit;
                    if row < rows {
                        return Some(row);
                    }
                }
                None
            })
        })
    }

    fn count(&self, rows: usize) -> u64 {
        match self {
            Rows::All => rows as u64,
            Rows::Mask(m) => m.iter().map(|w| u64::from(w.count_ones())).sum(),
        }
    }
}

impl Index {
    /// Whether every live segment holds postings made by the lexical rules `rules` (the
    /// manifest's [`lexical`](turboprop_storage::Manifest::lexical)), so that
    /// [`Self::search_lexical`] covers every chunk.
    pub fn has_lexical(&self, rules: &str) -> bool {
        self.manifest.lexical.as_deref() == Some(rules)
            && self.segments.iter().all(|s| s.reader.lexical().is_some())
    }

    /// The `limit` chunks with the best BM25 scores for `query` over the index's postings,
    /// best first, among files that pass the filter; scores normalized to 0..1 (see the
    /// module documentation). Segments without postings are not searched
    /// ([`Self::has_lexical`] says whether there are any). `opts.strategy` and
    /// `opts.candidates` do not apply: every posting of the query's terms is scored.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use turboprop_index::{
    ///     Directory, Index, IndexSpec, IndexWriter, LexicalQuery, MemDirectory, ModelGuard,
    ///     NewChunk, SearchOptions, WriterOptions,
    /// };
    /// use turboprop_types::{ChunkingConfig, ContentHash, FileRecord, LexicalTerms};
    ///
    /// let dir: Arc<dyn Directory> = Arc::new(MemDirectory::new());
    /// let spec = IndexSpec {
    ///     model: ModelGuard { id: "v".into(), dimensions: 2 },
    ///     chunking: ChunkingConfig::default(),
    ///     spaces: vec![],
    ///     lexical: Some("my-words".into()),
    /// };
    /// let mut writer = IndexWriter::open_in(dir.clone(), spec, WriterOptions::default(), || {})?;
    /// for (path, words) in [("pot.rs", vec!["pot", "split"]), ("deck.rs", vec!["deck", "shuffle"])] {
    ///     let hash = ContentHash::of(path.as_bytes());
    ///     let terms = LexicalTerms::from_pairs(words.iter().map(|w| (w, 1.0)), 2.0);
    ///     writer.put_file(FileRecord::new(path, 10, 0, hash)?, vec![NewChunk {
    ///         line_start: 1, line_end: 1, byte_start: 0, byte_end: 10, hash,
    ///         vector: vec![1.0, 0.0], terms: vec![], spaces: vec![], symbol: None, kind: None,
    ///         lexical: Some(terms),
    ///     }])?;
    /// }
    /// writer.commit()?;
    ///
    /// let index = Index::open_in(dir)?;
    /// assert!(index.has_lexical("my-words"));
    /// let query = LexicalQuery { terms: vec![("split".into(), 1.0)], k1: 1.2, b: 0.75 };
    /// let hits = index.search_lexical(&query, &SearchOptions::default())?;
    /// assert_eq!(hits.len(), 1);
    /// assert_eq!(hits[0].chunk.file(), "pot.rs");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn search_lexical(
        &self,
        query: &LexicalQuery,
        opts: &SearchOptions<'_>,
    ) -> Result<Vec<Hit>> {
        let hits = self.lexical_scores(query, opts.filter).and_then(|scores| {
            scores
                .top(opts.limit, opts.min_score.max(0.0))
                .into_sorted()
                .into_iter()
                .map(|s| self.hit(s))
                .collect()
        });
        self.checked(hits)
    }

    /// The normalized BM25 score of every live row that passes `filter`.
    pub(super) fn lexical_scores(
        &self,
        query: &LexicalQuery,
        filter: Option<&FileFilter>,
    ) -> Result<LexicalScores> {
        let mut out = LexicalScores {
            segments: (0..self.segments.len()).map(|_| None).collect(),
            ceiling: 0.0,
        };
        let (k1, b) = (query.k1.max(0.0), query.b.clamp(0.0, 1.0));
        if !k1.is_finite() || !b.is_finite() {
            return Ok(out);
        }
        let segments: Vec<(usize, &LexicalPostings)> = self
            .segments
            .iter()
            .enumerate()
            .filter_map(|(s, seg)| seg.reader.lexical().map(|l| (s, l)))
            .collect();
        if segments.is_empty() {
            return Ok(out);
        }
        // Live rows (for the statistics) and the rows to score (live and passing the filter).
        let live = self.row_sets(None)?;
        let filtered = match filter.filter(|f| !f.is_any()) {
            Some(f) => Some(self.row_sets(Some(f))?),
            None => None,
        };
        let wanted = filtered.as_ref().unwrap_or(&live);
        let mut chunks = 0u64;
        let mut total_length = 0f64;
        for &(s, postings) in &segments {
            let rows = self.segments[s].reader.rows();
            chunks += live[s].count(rows);
            let mut dead_length = 0f64;
            for row in live[s].missing(rows) {
                dead_length += f64::from(checked_length(postings, row, self, s)?);
            }
            total_length += postings.total_length() - dead_length;
        }
        if chunks == 0 {
            return Ok(out);
        }
        let mean_length = (total_length / chunks as f64).max(1.0) as f32;
        let n = chunks as f64;
        let mut ceiling = 0f32;

        for (term, weight) in &query.terms {
            if !(weight.is_finite() && *weight > 0.0) {
                continue;
            }
            // The term's live document frequency, over every segment.
            let mut lists = Vec::with_capacity(segments.len());
            let mut df = 0u64;
            for &(s, postings) in &segments {
                let Some(list) = postings.lookup(term)? else {
                    continue;
                };
                df += match &live[s] {
                    Rows::All => list.len() as u64,
                    mask => list
                        .iter()
                        .filter(|&(row, _)| mask.contains(row as usize))
                        .count() as u64,
                };
                lists.push((s, postings, list));
            }
            if df == 0 {
                continue;
            }
            let df = df as f64;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln() as f32;
            let w = weight * idf;
            ceiling += w * (k1 + 1.0);
            for (s, postings, list) in lists {
                // Per posting: its row and tf, and the row's length, checked as they are used.
                let rows = self.segments[s].reader.rows();
                let lengths = postings.lengths();
                if lengths.len() != rows {
                    let what = format!("{} lengths for {rows} rows", lengths.len());
                    return Err(damaged(self, s, LENGTHS_FILE, what));
                }
                let acc = out.segments[s].get_or_insert_with(|| vec![0.0; rows]);
                for (row, tf) in list.iter() {
                    let r = row as usize;
                    if r >= rows || !(tf.is_finite() && tf > 0.0) {
                        return Err(damaged(
                            self,
                            s,
                            POSTINGS_FILE,
                            format!("a posting of row {row} has term frequency {tf}"),
                        ));
                    }
                    if !wanted[s].contains(r) {
                        continue;
                    }
                    let len = lengths[r];
                    // NaN is in no range.
                    if !(0.0..f32::INFINITY).contains(&len) {
                        let what = format!("row {row} has length {len}");
                        return Err(damaged(self, s, LENGTHS_FILE, what));
                    }
                    let norm = 1.0 - b + b * len / mean_length;
                    acc[r] += w * tf * (k1 + 1.0) / (tf + k1 * norm);
                }
            }
        }
        out.ceiling = ceiling;
        Ok(out)
    }

    /// Per segment, its live rows (and with `filter`, only those of files passing it): the
    /// row ranges exact search scores ([`Self::blocks`]), as a bit mask, or `All` for a
    /// segment without deletes when nothing is filtered.
    fn row_sets(&self, filter: Option<&FileFilter>) -> Result<Vec<Rows>> {
        let blocks = self.blocks(filter, 0)?;
        Ok(self
            .segments
            .iter()
            .enumerate()
            .map(|(s, seg)| {
                if filter.is_none() && seg.deletes.is_none() {
                    return Rows::All;
                }
                let ranges = blocks
                    .iter()
                    .filter(|(b, _)| *b == s)
                    .map(|(_, r)| r.clone());
                Rows::from_ranges(seg.reader.rows(), ranges)
            })
            .collect())
    }
}

/// Row `row`'s length, which must be finite and at least zero.
fn checked_length(postings: &LexicalPostings, row: usize, index: &Index, s: usize) -> Result<f32> {
    match postings.length(row) {
        Some(len) if len.is_finite() && len >= 0.0 => Ok(len),
        Some(len) => Err(damaged(
            index,
            s,
            LENGTHS_FILE,
            format!("row {row} has length {len}"),
        )),
        None => Err(damaged(
            index,
            s,
            LENGTHS_FILE,
            format!("no length for row {row}"),
        )),
    }
}

/// Damage found in `file` of segment `s` while searching.
fn damaged(index: &Index, s: usize, file: &str, what: String) -> crate::error::IndexError {
    let path = index.segments[s].reader.dir().join(file);
    StorageError::corrupt(path, what).into()
}
