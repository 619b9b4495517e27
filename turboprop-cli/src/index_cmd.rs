//! `tp index`: discover files, diff them against the committed index, chunk and embed only
//! what is new or changed, and commit the result atomically.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use turboprop_index::{
    BaseState, Confirmed, Diff, FileStatus, IndexSpec, IndexWriter, LockWait, ModelGuard, NewChunk,
    ScannedFile, WriterOptions,
};
use turboprop_storage::IndexDir;
use turboprop_types::{line_windows, ChunkingConfig, Embedder, FileRecord};

use crate::args::{parse_size, IndexArgs};
use crate::discover::{discover, read_source, Candidate, DiscoverOptions, SkipReason};
use crate::models;
use crate::repo::{explain, Repo};

/// What happened to one file that had to be read.
enum Outcome {
    /// New or changed content: its chunks, embedded.
    Embedded(FileRecord, Vec<NewChunk>),
    /// Stat changed, content did not.
    Touched(FileRecord),
    /// Could not be indexed now.
    Skipped(SkipReason),
}

/// Runs `tp index`.
pub fn run(args: &IndexArgs) -> Result<()> {
    let started = Instant::now();
    let repo = Repo::locate(args.repo.repo.as_deref())?;
    repo.check_not_foreign()?;
    let dir = IndexDir::new(&repo.index_dir);
    let mut config = match dir.read_config() {
        Ok(c) => c,
        Err(e) if args.rebuild => {
            eprintln!("warning: {e}; --rebuild replaces config.yaml with the defaults");
            let c = turboprop_types::IndexConfig::default();
            dir.write_config(&c)?;
            c
        }
        Err(e) => return Err(anyhow::Error::new(e).context(
            "config.yaml is invalid: fix it, delete it for the defaults, or run tp index --rebuild",
        )),
    };
    if let Some(size) = &args.max_filesize {
        config.max_filesize = parse_size(size).with_context(|| {
            format!("invalid --max-filesize {size:?}: use a size such as 500kb, 2mb or 1gb")
        })?;
    }

    // The model: the flag, else config.yaml, else the one the index already has, else the
    // default.
    let recorded = if args.rebuild {
        None
    } else {
        dir.read_manifest().ok().flatten().map(|m| m.model.id)
    };
    let tp_dir = repo.root.join(".turboprop");
    let embedder: Box<dyn Embedder> = match (&args.model, &config.model, &recorded) {
        (Some(name), _, _) | (None, Some(name), _) => models::by_name(name, &tp_dir)?,
        (None, None, Some(id)) => match models::by_name(id, &tp_dir) {
            Ok(e) => e,
            Err(_) => {
                eprintln!("note: the index's model {id} is not available");
                models::default_embedder(&tp_dir)
            }
        },
        (None, None, None) => models::default_embedder(&tp_dir),
    };
    let spec = IndexSpec {
        model: ModelGuard {
            id: embedder.model_id().to_owned(),
            dimensions: u32::try_from(embedder.dimensions()).context("model dimensions")?,
        },
        chunking: config.chunking.clone(),
    };
    let options = WriterOptions {
        wait: if args.no_wait {
            LockWait::NoWait
        } else {
            LockWait::Block
        },
        rebuild: args.rebuild,
        compaction: config.compaction.clone(),
    };
    let index_dir = repo.index_dir.clone();
    let on_wait = || eprintln!("waiting for another tp index on {}", index_dir.display());
    let writer = match IndexWriter::open(&repo.index_dir, spec.clone(), options.clone(), on_wait) {
        // A damaged index is rebuilt: source files are the truth, and they are only read.
        Err(e) if e.is_damage() && !options.rebuild => {
            eprintln!("warning: {e}; rebuilding the index from the source files");
            let options = WriterOptions {
                rebuild: true,
                ..options.clone()
            };
            IndexWriter::open(&repo.index_dir, spec.clone(), options, on_wait)
        }
        other => other,
    }
    .map_err(|e| explain(e, &repo.index_dir))?;
    let rebuilding = matches!(writer.base_state(), BaseState::Rebuild);
    match writer.base_state() {
        BaseState::SpecChanged { old } => eprintln!(
            "note: the index was built with {} ({} dims, {}-line chunks); re-indexing every file with {} ({} dims, {}-line chunks)",
            old.model.id,
            old.model.dimensions,
            old.chunking.lines,
            writer.spec().model.id,
            writer.spec().model.dimensions,
            writer.spec().chunking.lines
        ),
        BaseState::Rebuild => eprintln!("rebuilding the index from scratch"),
        BaseState::Empty | BaseState::Reused => {}
    }
    eprintln!(
        "indexing {} with model {}",
        repo.root.display(),
        writer.spec().model.id
    );
    let run_update = |writer| {
        update(
            writer,
            &repo,
            &config.chunking,
            embedder.as_ref(),
            config.max_filesize,
            started,
        )
    };
    match run_update(writer) {
        // Damage found while copying old rows: nothing was committed; rebuild once.
        Err(e) if !rebuilding && e.downcast_ref::<Damaged>().is_some() => {
            eprintln!("warning: {e:#}; rebuilding the index from the source files");
            let options = WriterOptions {
                rebuild: true,
                ..options
            };
            let writer = IndexWriter::open(&repo.index_dir, spec, options, on_wait)
                .map_err(|e| explain(e, &repo.index_dir))?;
            run_update(writer)
        }
        other => other,
    }
}

/// A commit found the committed index damaged (the damage is the source).
#[derive(Debug, thiserror::Error)]
#[error("the index is damaged")]
struct Damaged;

fn update(
    mut writer: IndexWriter,
    repo: &Repo,
    chunking: &ChunkingConfig,
    embedder: &dyn Embedder,
    max_filesize: u64,
    started: Instant,
) -> Result<()> {
    let opts = DiscoverOptions { max_filesize };
    let found = discover(&repo.root, &opts)?;
    for w in &found.warnings {
        eprintln!("warning: {w}");
    }
    let mut routine = 0usize;
    for s in &found.skipped {
        if s.reason.is_routine() {
            routine += 1;
        } else {
            eprintln!("warning: {s}");
        }
    }

    let scanned: Vec<ScannedFile<'_>> = found
        .files
        .iter()
        .map(|c| ScannedFile {
            path: &c.rel_path,
            size: c.size,
            mtime_ns: c.mtime_ns,
        })
        .collect();
    // The file records are read (and checked) here, the first time anything needs them.
    let base_files: Vec<FileRecord> = match writer.base().map(|b| b.files()) {
        Some(Ok(files)) => files.cloned().collect(),
        Some(Err(e)) if e.is_damage() => return Err(anyhow::Error::new(e).context(Damaged)),
        Some(Err(e)) => return Err(explain(e, &repo.index_dir)),
        None => Vec::new(),
    };
    let diff = Diff::new(&base_files, &scanned);
    let (_, _, unchanged) = diff.counts();
    let work: Vec<(&Candidate, Option<&FileRecord>)> = found
        .files
        .iter()
        .zip(&diff.status)
        .filter_map(|(c, s)| match s {
            FileStatus::New => Some((c, None)),
            FileStatus::StatChanged(r) => Some((c, Some(*r))),
            FileStatus::Unchanged(_) => None,
        })
        .collect();

    let bar = progress(work.len() as u64);
    let outcomes: Vec<(&Candidate, bool, Result<Outcome>)> = work
        .par_iter()
        .map(|&(c, stored)| {
            let out = process(c, stored, chunking, embedder, &opts);
            bar.inc(1);
            (c, stored.is_some(), out)
        })
        .collect();
    bar.finish_and_clear();

    let (mut new, mut changed, mut chunks, mut touched, mut skipped) = (0, 0, 0, 0, 0);
    for (c, was_indexed, out) in outcomes {
        match out? {
            Outcome::Embedded(record, new_chunks) => {
                if was_indexed {
                    changed += 1;
                } else {
                    new += 1;
                }
                chunks += new_chunks.len();
                writer
                    .put_file(record, new_chunks)
                    .map_err(|e| explain(e, &repo.index_dir))?;
            }
            Outcome::Touched(record) => {
                touched += 1;
                writer.touch_file(record);
            }
            Outcome::Skipped(reason) => {
                skipped += 1;
                eprintln!("warning: skipped {}: {reason}", c.rel_path);
                if was_indexed {
                    writer.remove_file(&c.rel_path);
                }
            }
        }
    }
    let removed = diff.removed.len();
    for path in &diff.removed {
        writer.remove_file(path);
    }
    let stats = writer.commit().map_err(|e| {
        if e.is_damage() {
            anyhow::Error::new(e).context(Damaged)
        } else {
            explain(e, &repo.index_dir)
        }
    })?;

    let elapsed = fmt_duration(started.elapsed());
    if routine > 0 {
        eprintln!("skipped {routine} lockfiles, binary files and symlinks");
    }
    if !stats.committed {
        eprintln!(
            "index is up to date: nothing re-embedded ({unchanged} files unchanged, {} chunks, generation {}) in {elapsed}",
            stats.chunks, stats.generation
        );
    } else {
        let unchanged = unchanged + touched;
        eprintln!(
            "indexed {} files ({new} new, {changed} changed, {unchanged} unchanged, {removed} removed, {skipped} skipped): \
             embedded {chunks} chunks from {} files; {} chunks in generation {} in {elapsed}",
            stats.files,
            new + changed,
            stats.chunks,
            stats.generation
        );
    }
    Ok(())
}

fn process(
    c: &Candidate,
    stored: Option<&FileRecord>,
    chunking: &ChunkingConfig,
    embedder: &dyn Embedder,
    opts: &DiscoverOptions,
) -> Result<Outcome> {
    let source = match read_source(c, opts) {
        Ok(s) => s,
        Err(reason) => return Ok(Outcome::Skipped(reason)),
    };
    let record = FileRecord::new(&c.rel_path, source.size, source.mtime_ns, source.hash)
        .with_context(|| format!("cannot record {}", c.rel_path))?;
    if let Some(old) = stored {
        if Diff::confirm(old, source.hash) == Confirmed::Touch {
            return Ok(Outcome::Touched(record));
        }
    }
    let windows = line_windows(&source.bytes, chunking);
    let texts: Vec<String> = windows
        .iter()
        .map(|w| String::from_utf8_lossy(&source.bytes[w.bytes.clone()]).into_owned())
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let embedded = embedder
        .embed_documents_with_terms(&refs)
        .with_context(|| format!("cannot embed {}", c.rel_path))?;
    if embedded.len() != windows.len() {
        bail!(
            "model {} returned {} vectors for {} chunks of {}",
            embedder.model_id(),
            embedded.len(),
            windows.len(),
            c.rel_path
        );
    }
    let chunks = windows
        .iter()
        .zip(embedded)
        .map(|(w, (vector, terms))| NewChunk {
            line_start: w.line_start,
            line_end: w.line_end,
            byte_start: w.bytes.start as u64,
            byte_end: w.bytes.end as u64,
            hash: crate::discover::hash_bytes(&source.bytes[w.bytes.clone()]),
            vector,
            terms,
        })
        .collect();
    Ok(Outcome::Embedded(record, chunks))
}

fn progress(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() || len == 0 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{spinner} embedding [{bar:30}] {pos}/{len} files {per_sec} eta {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A duration for people: `84ms`, `2.31s`, `3m05s`.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.2}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}
