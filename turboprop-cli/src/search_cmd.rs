//! `tp search`: embed the query with the index's own models, search the lexical space, the
//! model's space, or both fused, and print the hits with their current content.

use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Result};
use turboprop_embed::{query_terms, LexicalParams, LEXICAL_ID};
use turboprop_index::{
    hybrid_scores, FileFilter, Hit, Index, LexicalQuery, SearchOptions, SpaceQuery, Strategy,
};
use turboprop_types::Embedder;

pub use crate::args::Mode;
use crate::args::{OutputFormat, SearchArgs};
use crate::models;
use crate::output::{json_hit, text_hit};
use crate::overlap::{first_fetch, merge_overlaps, Found};
use crate::repo::Repo;
use crate::snippet::Snippets;

/// Candidates taken from each space for hybrid ranking: every chunk in the top
/// `HYBRID_DEPTH` of either ranker is scored in both.
pub const HYBRID_DEPTH: usize = 100;

/// An opened index with the embedders of its vector spaces, ready to answer queries: what
/// `tp search` runs, for programs that search many times (such as the evaluation harness in
/// `examples/eval_modes/`).
pub struct Searcher {
    index: Index,
    index_dir: std::path::PathBuf,
    lexical: Box<dyn Embedder>,
    /// The model of space 1, loaded on first use (a lexical search never loads it), or
    /// given by a resident process that already has it loaded.
    model: OnceLock<Arc<dyn Embedder>>,
    /// The repository model the user allowed (`--repo-model`).
    repo_model: Option<String>,
}

impl Searcher {
    /// Opens the index of the repository at `repo` (its `.turboprop/index`) and loads the
    /// models it was built with.
    pub fn open(repo: &Path) -> Result<Searcher> {
        let repo = Repo::locate(Some(repo))?;
        Self::open_repo(&repo, None)
    }

    /// Opens the index of `repo`; `repo_model` is the repository model the user allowed
    /// (`--repo-model`), else models come from the user cache only.
    fn open_repo(repo: &Repo, repo_model: Option<&str>) -> Result<Searcher> {
        Self::open_shared(repo, repo_model, None)
    }

    /// Opens the index of `repo` with `loaded`, a model already in memory, used for space 1
    /// when the index was built with it (checked as a loaded model is).
    pub(crate) fn open_shared(
        repo: &Repo,
        repo_model: Option<&str>,
        loaded: Option<&Arc<dyn Embedder>>,
    ) -> Result<Searcher> {
        let index = repo.open_index()?;
        let lexical = models::for_index(&index.model().id, &repo.index_dir, repo_model)?;
        index.check_model(lexical.model_id(), lexical.dimensions())?;
        let model = OnceLock::new();
        if let (Some(m), Some(space)) = (loaded, index.spaces().first()) {
            if space.model.id == m.model_id()
                && index
                    .check_space_model(1, m.model_id(), m.dimensions())
                    .is_ok()
            {
                let _ = model.set(Arc::clone(m));
            }
        }
        Ok(Searcher {
            index,
            index_dir: repo.index_dir.clone(),
            lexical,
            model,
            repo_model: repo_model.map(str::to_owned),
        })
    }

    /// Whether the index has a model's vectors (space 1).
    pub fn has_model(&self) -> bool {
        !self.index.spaces().is_empty()
    }

    /// The model of space 1, loaded (and checked against the index) on first use; `None`
    /// when the index has no model's vectors.
    fn model(&self) -> Result<Option<&dyn Embedder>> {
        let Some(space) = self.index.spaces().first() else {
            return Ok(None);
        };
        if let Some(m) = self.model.get() {
            return Ok(Some(m.as_ref()));
        }
        let m: Arc<dyn Embedder> = Arc::from(models::for_index(
            &space.model.id,
            &self.index_dir,
            self.repo_model.as_deref(),
        )?);
        // Loaded before it is checked: a search runs it next anyway, and a damaged model
        // folder (a config.json that disagrees with its weights) is then reported as such,
        // not as a model of other dimensions than the index's.
        m.prepare()?;
        self.index
            .check_space_model(1, m.model_id(), m.dimensions())?;
        Ok(Some(self.model.get_or_init(|| m).as_ref()))
    }

    /// The open index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The mode `tp search` uses without `--mode`: hybrid when the index has a model's
    /// vectors, else lexical.
    pub fn default_mode(&self) -> Mode {
        if self.has_model() {
            Mode::Hybrid
        } else {
            Mode::Lexical
        }
    }

    /// The best chunks for `query` by `fuse` of their lexical and semantic scores (see
    /// [`Index::search_fused`]): each ranker's top [`HYBRID_DEPTH`] are the candidates.
    /// `--mode hybrid` is this with [`hybrid_scores`]; the evaluation compares others.
    pub fn search_fused_with(
        &self,
        query: &str,
        opts: &SearchOptions<'_>,
        fuse: &dyn Fn(&[Vec<f32>]) -> Vec<f32>,
    ) -> Result<Vec<Hit>> {
        let Some(model) = self.model()? else {
            bail!(
                "--mode hybrid needs a model's vectors, and the index at {} has only the built-in lexical ones: \
                 run tp index --model all-MiniLM-L6-v2 (after tp model download all-MiniLM-L6-v2), or use --mode lexical",
                self.index.path().display()
            );
        };
        let stats = self.index.term_stats();
        let semantic = model.embed_query(query, stats)?;
        if let Some(lexical) = self.lexical_query(query)? {
            let queries = [SpaceQuery {
                space: 1,
                vector: &semantic,
                depth: HYBRID_DEPTH,
            }];
            return Ok(self.index.search_fused_lexical(
                &lexical,
                HYBRID_DEPTH,
                &queries,
                opts,
                fuse,
            )?);
        }
        let lexical = self.lexical.embed_query(query, stats)?;
        let queries = [
            SpaceQuery {
                space: 0,
                vector: &lexical,
                depth: HYBRID_DEPTH,
            },
            SpaceQuery {
                space: 1,
                vector: &semantic,
                depth: HYBRID_DEPTH,
            },
        ];
        Ok(self.index.search_fused(&queries, opts, fuse)?)
    }

    /// The query in the exact lexical space (BM25 over postings) when every segment of the
    /// index has postings made by this build's rules; `None` for an index written before
    /// them (or while an update adds them), searched in the hashed lexical vectors instead.
    fn lexical_query(&self, query: &str) -> Result<Option<LexicalQuery>> {
        if !self.index.has_lexical(LEXICAL_ID) {
            return Ok(None);
        }
        let LexicalParams { k1, b } = LexicalParams::DEFAULT;
        Ok(Some(LexicalQuery {
            terms: query_terms(query)?,
            k1,
            b,
        }))
    }

    /// The best chunks for `query` in `mode`, best first, no two of them overlapping in
    /// lines: overlapping chunks of one file are merged into one hit (see `overlap.rs`).
    pub fn search(&self, query: &str, mode: Mode, opts: &SearchOptions<'_>) -> Result<Vec<Found>> {
        self.merged(opts, |o| self.ranked(query, mode, o))
    }

    /// [`Self::search_fused_with`] with its hits merged as [`Self::search`] merges them: how
    /// the evaluation compares other fusions with `--mode hybrid`'s.
    pub fn search_fused_merged(
        &self,
        query: &str,
        opts: &SearchOptions<'_>,
        fuse: &dyn Fn(&[Vec<f32>]) -> Vec<f32>,
    ) -> Result<Vec<Found>> {
        self.merged(opts, |o| self.search_fused_with(query, o, fuse))
    }

    /// The best `opts.limit` hits of `ranked` after merging overlaps, asking it for more
    /// hits while merging leaves fewer than the limit.
    fn merged(
        &self,
        opts: &SearchOptions<'_>,
        ranked: impl Fn(&SearchOptions<'_>) -> Result<Vec<Hit>>,
    ) -> Result<Vec<Found>> {
        if opts.limit == 0 {
            return Ok(Vec::new());
        }
        let mut fetch = first_fetch(opts.limit);
        loop {
            let ranked = ranked(&SearchOptions {
                limit: fetch,
                ..opts.clone()
            })?;
            let exhausted = ranked.len() < fetch;
            let found = merge_overlaps(ranked, opts.limit);
            if found.len() == opts.limit || exhausted {
                return Ok(found);
            }
            fetch = fetch.saturating_mul(4);
        }
    }

    /// The best chunks for `query` in `mode`, best first, as the index ranks them (windows of
    /// one file may overlap).
    fn ranked(&self, query: &str, mode: Mode, opts: &SearchOptions<'_>) -> Result<Vec<Hit>> {
        let index = &self.index;
        let model = match (mode, self.has_model()) {
            (Mode::Lexical, _) => None,
            (_, true) => self.model()?,
            (_, false) => bail!(
                "--mode {} needs a model's vectors, and the index at {} has only the built-in lexical ones: \
                 run tp index --model all-MiniLM-L6-v2 (after tp model download all-MiniLM-L6-v2), or use --mode lexical",
                if mode == Mode::Hybrid { "hybrid" } else { "semantic" },
                index.path().display()
            ),
        };
        let lexical = || -> Result<Vec<Hit>> {
            Ok(match self.lexical_query(query)? {
                Some(q) => index.search_lexical(&q, opts)?,
                None => {
                    index.search(&self.lexical.embed_query(query, index.term_stats())?, opts)?
                }
            })
        };
        let hits = match (mode, model) {
            (Mode::Lexical, _) | (_, None) => lexical()?,
            (Mode::Semantic, Some(m)) => {
                let vector = m.embed_query(query, index.term_stats())?;
                index.search_space(1, &vector, opts)?
            }
            (Mode::Hybrid, Some(_)) => self.search_fused_with(query, opts, &hybrid_scores)?,
        };
        Ok(hits)
    }
}

/// Runs `tp search`.
pub fn run(args: &SearchArgs) -> Result<()> {
    let query = args.query.trim();
    if query.is_empty() {
        bail!(
            "the query is empty: give some words to search for, e.g. tp search \"split the pot\""
        );
    }
    let min_score = match args.threshold {
        None => 0.0,
        Some(t) if (0.0..=1.0).contains(&t) => t,
        Some(t) => bail!("invalid --threshold {t}: use a score between 0.0 and 1.0"),
    };
    let filter = FileFilter::any()
        .with_extensions(&args.filetype)
        .with_globs(&args.filter)?;

    let repo = Repo::locate(args.repo.repo.as_deref())?;
    let searcher = Searcher::open_repo(&repo, args.repo_model.as_deref())?;
    let mode = args.mode.unwrap_or(searcher.default_mode());
    if mode != Mode::Lexical {
        let index = searcher.index();
        let (covered, all) = (index.space_rows(1), index.stats().chunks);
        if searcher.has_model() && covered < all {
            eprintln!(
                "warning: the model's vectors cover {covered} of {all} chunks (an update adding them was interrupted): run tp index"
            );
        }
    }
    let hits = searcher.search(
        query,
        mode,
        &SearchOptions {
            limit: args.limit,
            min_score,
            filter: Some(&filter),
            strategy: if args.exact {
                Strategy::Exact
            } else {
                default_strategy()
            },
            ..SearchOptions::default()
        },
    )?;

    let mut sources = Snippets::new(&repo.root);
    let stdout = io::stdout();
    let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut out = io::BufWriter::new(stdout.lock());
    for (i, hit) in hits.iter().enumerate() {
        let snippet = sources.snippet(hit);
        for warning in sources.take_warnings() {
            eprintln!("{warning}");
        }
        match args.output {
            OutputFormat::Json => writeln!(out, "{}", json_hit(hit, i + 1, &snippet))?,
            OutputFormat::Text => text_hit(&mut out, hit, &snippet, query, color)?,
        }
    }
    if hits.is_empty() && args.output == OutputFormat::Text {
        eprintln!("no results for {query:?}");
    }
    out.flush()?;
    // The process ends here: freeing the model (a tokenizer of tens of thousands of
    // allocations) would only delay the exit, by as long as a query takes to embed.
    std::mem::forget(searcher);
    Ok(())
}

/// The strategy of a search without `--exact`: chosen by the index's size.
#[cfg(not(feature = "test-hooks"))]
fn default_strategy() -> Strategy {
    Strategy::Auto
}

/// The strategy of a search without `--exact`. In the test build (`test-hooks`, never in a
/// release), `TURBOPROP_TEST_FAST_PATH=1` takes the fast path on an index of any size, so the
/// CLI tests reach it without indexing [`turboprop_index::FAST_MIN_ROWS`] chunks.
#[cfg(feature = "test-hooks")]
fn default_strategy() -> Strategy {
    if std::env::var_os("TURBOPROP_TEST_FAST_PATH").is_some_and(|v| v == "1") {
        Strategy::Fast
    } else {
        Strategy::Auto
    }
}
