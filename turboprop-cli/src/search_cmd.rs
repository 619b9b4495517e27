//! `tp search`: embed the query with the index's own model, search, and print the hits with
//! their current content.

use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};

use anyhow::{bail, Result};
use turboprop_index::{FileFilter, Hit, SearchOptions, Strategy};

use crate::args::{OutputFormat, SearchArgs};
use crate::models;
use crate::output::{json_hit, text_hit, Snippet};
use crate::repo::Repo;

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
    let index = repo.open_index()?;
    let embedder = models::for_index(&index.model().id, &repo.index_dir)?;
    index.check_model(embedder.model_id(), embedder.dimensions())?;
    let vector = embedder.embed_query(query, index.term_stats())?;
    let hits = index.search(
        &vector,
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
                    "warning: {path} is gone or unreadable since it was indexed; run tp index"
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
                eprintln!("warning: {path} changed since it was indexed; run tp index");
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
