//! `tp search`: embed the query with the index's own models, search the lexical space, the
//! model's space, or both fused, and print the hits with their current content.

use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{bail, Result};
use turboprop_index::{hybrid_scores, FileFilter, Hit, Index, SearchOptions, SpaceQuery, Strategy};
use turboprop_types::Embedder;

pub use crate::args::Mode;
use crate::args::{OutputFormat, SearchArgs};
use crate::escape::escape_control;
use crate::models;
use crate::output::{json_hit, text_hit, Snippet};
use crate::repo::Repo;

/// Candidates taken from each space for hybrid ranking: every chunk in the top
/// `HYBRID_DEPTH` of either ranker is scored in both.
pub const HYBRID_DEPTH: usize = 100;

/// An opened index with the embedders of its vector spaces, ready to answer queries: what
/// `tp search` runs, for programs that search many times (such as the evaluation harness in
/// `examples/eval_modes.rs`).
pub struct Searcher {
    index: Index,
    index_dir: std::path::PathBuf,
    lexical: Box<dyn Embedder>,
    /// The model of space 1, loaded on first use (a lexical search never loads it).
    model: OnceLock<Box<dyn Embedder>>,
}

impl Searcher {
    /// Opens the index of the repository at `repo` (its `.turboprop/index`) and loads the
    /// models it was built with.
    pub fn open(repo: &Path) -> Result<Searcher> {
        let repo = Repo::locate(Some(repo))?;
        Self::open_repo(&repo)
    }

    fn open_repo(repo: &Repo) -> Result<Searcher> {
        let index = repo.open_index()?;
        let lexical = models::for_index(&index.model().id, &repo.index_dir)?;
        index.check_model(lexical.model_id(), lexical.dimensions())?;
        Ok(Searcher {
            index,
            index_dir: repo.index_dir.clone(),
            lexical,
            model: OnceLock::new(),
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
        let m = models::for_index(&space.model.id, &self.index_dir)?;
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
        let lexical = self.lexical.embed_query(query, stats)?;
        let semantic = model.embed_query(query, stats)?;
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

    /// The best chunks for `query` in `mode`, best first.
    pub fn search(&self, query: &str, mode: Mode, opts: &SearchOptions<'_>) -> Result<Vec<Hit>> {
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
        let lexical = || self.lexical.embed_query(query, index.term_stats());
        let hits = match (mode, model) {
            (Mode::Lexical, _) | (_, None) => index.search(&lexical()?, opts)?,
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
    let searcher = Searcher::open_repo(&repo)?;
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
                Strategy::Auto
            },
            ..SearchOptions::default()
        },
    )?;

    let mut sources = Sources::new(&repo);
    let stdout = io::stdout();
    let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut out = io::BufWriter::new(stdout.lock());
    for (i, hit) in hits.iter().enumerate() {
        let snippet = sources.snippet(hit);
        match args.output {
            OutputFormat::Json => writeln!(out, "{}", json_hit(hit, i + 1, &snippet))?,
            OutputFormat::Text => text_hit(&mut out, hit, &snippet, query, color)?,
        }
    }
    if hits.is_empty() && args.output == OutputFormat::Text {
        eprintln!("no results for {query:?}");
    }
    out.flush()?;
    Ok(())
}

/// Source files read for snippets, each once per search.
struct Sources<'a> {
    repo: &'a Repo,
    files: HashMap<String, Option<Vec<u8>>>,
}

impl<'a> Sources<'a> {
    fn new(repo: &'a Repo) -> Self {
        Sources {
            repo,
            files: HashMap::new(),
        }
    }

    /// The hit's text as the file holds it now, with a warning (once per file) when the file
    /// changed or disappeared since it was indexed.
    fn snippet(&mut self, hit: &Hit) -> Snippet {
        let path = hit.chunk.file().to_owned();
        let repo = self.repo;
        let bytes = self.files.entry(path.clone()).or_insert_with(|| {
            let read = std::fs::read(repo.root.join(&path)).ok();
            if read.is_none() {
                eprintln!(
                    "warning: {} is gone or unreadable since it was indexed; run tp index",
                    escape_control(&path)
                );
            }
            read
        });
        let Some(bytes) = bytes else {
            return Snippet {
                text: String::new(),
                stale: true,
            };
        };
        let range = hit.chunk.bytes();
        let exact = usize::try_from(range.start)
            .ok()
            .zip(usize::try_from(range.end).ok())
            .and_then(|(s, e)| bytes.get(s..e))
            .filter(|b| crate::discover::hash_bytes(b) == hit.chunk.hash());
        match exact {
            Some(b) => Snippet {
                text: String::from_utf8_lossy(b).into_owned(),
                stale: false,
            },
            None => {
                eprintln!(
                    "warning: {} changed since it was indexed; run tp index",
                    escape_control(&path)
                );
                // Show the same lines as they read now.
                let text = String::from_utf8_lossy(bytes)
                    .lines()
                    .skip(hit.chunk.line_start() as usize - 1)
                    .take(hit.chunk.line_count() as usize)
                    .collect::<Vec<_>>()
                    .join("\n");
                Snippet { text, stale: true }
            }
        }
    }
}
