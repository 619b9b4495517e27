//! One update of the index: discover the repository's files, diff them against the committed
//! index, read, chunk and embed only what is new or changed, and commit it atomically. `tp
//! index` runs one; `tp watch` and `tp mcp` run one each time files change, with the models
//! kept loaded. What an update has to say (warnings, progress) goes to a [`Report`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use turboprop_embed::{BuiltinEmbedder, LEXICAL_ID};
use turboprop_index::{
    BaseState, Diff, FileStatus, IndexSpec, IndexWriter, Lacking, LockWait, ModelGuard,
    ScannedFile, WriterOptions,
};
use turboprop_storage::IndexDir;
use turboprop_types::{ChunkMethod, ChunkingConfig, Embedder, FileRecord, IndexConfig};

use crate::args::{parse_size, IndexArgs};
use crate::batching::{time_estimate, BatchPolicy, Speed};
use crate::discover::{discover, DiscoverOptions};
use crate::groups::{embed_group, Embedders, Reuse, Tally, Work};
use crate::models;
use crate::repo::{explain, Repo};

/// The largest `max_filesize` a repository's own `config.yaml` may set; only the user's
/// `--max-filesize` goes higher.
pub const MAX_REPO_FILESIZE: u64 = 64 * 1024 * 1024;

/// Everything an update needs, resolved once: the repository, its settings and the loaded
/// models. `tp index` runs it once; a resident process keeps it and runs it again whenever
/// files change, so the model is loaded once.
pub struct Updater {
    repo: Repo,
    config: IndexConfig,
    lexical: BuiltinEmbedder,
    /// The transformer model of the second space, if the index has one.
    model: Option<Arc<dyn Embedder>>,
    spec: IndexSpec,
    options: WriterOptions,
}

impl Updater {
    /// Reads the repository's settings and resolves the model `args` and the index ask for
    /// (loaded on its first use, so an update with nothing to embed never loads it):
    /// `--model` (or `--repo-model`), else config.yaml's, else the one the index already
    /// has, else the default.
    pub fn prepare(repo: Repo, args: &IndexArgs, report: &dyn Report) -> Result<Updater> {
        repo.check_not_foreign()?;
        let dir = IndexDir::new(&repo.index_dir);
        let mut config = match dir.read_config() {
            Ok(c) => c,
            Err(e) if args.rebuild => {
                report.warn(&format!(
                    "{e}; --rebuild replaces config.yaml with the defaults"
                ));
                let c = IndexConfig::default();
                dir.write_config(&c)?;
                c
            }
            // The way out (fix it, delete it, or --rebuild) is appended when printed.
            Err(e) => return Err(anyhow::Error::new(e).context("config.yaml is invalid")),
        };
        if let Some(size) = &args.max_filesize {
            config.max_filesize = parse_size(size).with_context(|| {
                format!("invalid --max-filesize {size:?}: use a size such as 500kb, 2mb or 1gb")
            })?;
        } else if config.max_filesize > MAX_REPO_FILESIZE {
            // config.yaml arrives with the repository: it may not make tp read huge files.
            report.warn(&format!(
                "config.yaml asks for max_filesize {} bytes; a repository's own settings may ask for at most {} bytes: pass --max-filesize to go higher",
                config.max_filesize, MAX_REPO_FILESIZE
            ));
            config.max_filesize = MAX_REPO_FILESIZE;
        }

        // Every index holds the built-in lexical vectors (the primary space, which also keeps
        // the term statistics); a transformer model's vectors are a second space beside them.
        let recorded = if args.rebuild {
            None
        } else {
            dir.read_manifest()
                .ok()
                .flatten()
                .map(|m| match m.spaces.first() {
                    Some(space) => space.model.id.clone(),
                    None => m.model.id,
                })
        };
        let tp_dir = repo.root.join(".turboprop");
        // A repository's own model only with --repo-model (see model_store.rs).
        let repo_model = args.repo_model.as_deref();
        let named = args.model.as_ref().or(args.repo_model.as_ref());
        let embedder: Box<dyn Embedder> = match (named, &config.model, &recorded) {
            (Some(name), _, _) | (None, Some(name), _) => {
                models::by_name(name, &tp_dir, repo_model)?
            }
            (None, None, Some(id)) => match models::by_name(id, &tp_dir, None) {
                Ok(e) => e,
                Err(e) => {
                    report.note(&format!("note: {}", crate::one_line(&e)));
                    models::default_embedder(&tp_dir)?
                }
            },
            (None, None, None) => models::default_embedder(&tp_dir)?,
        };
        let lexical = BuiltinEmbedder::new();
        let model: Option<Arc<dyn Embedder>> =
            (embedder.model_id() != lexical.model_id()).then(|| Arc::from(embedder));
        let spec = IndexSpec {
            lexical: Some(LEXICAL_ID.to_owned()),
            model: guard(&lexical)?,
            chunking: crate::chunking::recorded(&config.chunking),
            spaces: model
                .as_deref()
                .map(guard)
                .transpose()?
                .into_iter()
                .collect(),
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
        Ok(Updater {
            repo,
            config,
            lexical,
            model,
            spec,
            options,
        })
    }

    /// The repository this updater indexes.
    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    /// The transformer model it embeds with, if any (shared with searches).
    pub fn model(&self) -> Option<&Arc<dyn Embedder>> {
        self.model.as_ref()
    }

    /// The ids of the models of every space, the built-in lexical one first.
    pub fn model_ids(&self) -> Vec<&str> {
        std::iter::once(&self.spec.model)
            .chain(&self.spec.spaces)
            .map(|m| m.id.as_str())
            .collect()
    }

    /// Brings the index up to date with the repository's files: one update, with as many
    /// commits as it takes (see [`BatchPolicy`]). Only a `--rebuild` updater starts over; a
    /// damaged index is rebuilt from the source files (which are only read).
    pub fn run(&self, report: &dyn Report) -> Result<Summary> {
        let repo = &self.repo;
        let spec = &self.spec;
        let options = &self.options;
        let on_wait = || report.waiting();
        let mut writer = match IndexWriter::open_repairing(
            &repo.index_dir,
            spec.clone(),
            options.clone(),
            on_wait,
        ) {
            // A damaged index is rebuilt: source files are the truth, and they are only read.
            Err(e) if e.is_damage() && !options.rebuild => {
                report.warn(&format!("{e}; rebuilding the index from the source files"));
                let options = WriterOptions {
                    rebuild: true,
                    ..options.clone()
                };
                IndexWriter::open(&repo.index_dir, spec.clone(), options, on_wait)
            }
            other => other,
        }
        .map_err(|e| explain(e, &repo.index_dir))?;
        // Never build on damage: what search and verify would find is found here (a segment
        // that does not open was left out when opening), and the damaged segments are
        // dropped; their files are indexed again below as new ones.
        for damage in writer.drop_damaged_segments() {
            for p in &damage.problems {
                report.warn(&p.to_string());
            }
            report.warn(&format!(
                "dropping the damaged segment {} of the index; its {} files are indexed again from the source files",
                damage.name, damage.files
            ));
        }
        let rebuilding = matches!(writer.base_state(), BaseState::Rebuild);
        match writer.base_state() {
            BaseState::SpecChanged { old } => report.note(&format!(
                "note: the index was built with {} ({} dims, {}{}); re-indexing every file with {} ({} dims, {}{})",
                old.model.id,
                old.model.dimensions,
                old.chunking.describe(),
                rules(&old.chunking),
                writer.spec().model.id,
                writer.spec().model.dimensions,
                writer.spec().chunking.describe(),
                rules(&writer.spec().chunking),
            )),
            BaseState::Rebuild => report.note("rebuilding the index from scratch"),
            BaseState::Empty | BaseState::Reused => {}
        }
        report.begun(&repo.root, &self.model_ids());
        let embedders = Embedders {
            lexical: &self.lexical,
            model: self.model.as_deref(),
        };
        let run_update = |writer| {
            update(
                writer,
                repo,
                &self.config.chunking,
                embedders,
                self.config.max_filesize,
                report,
            )
        };
        match run_update(writer) {
            // Damage found while copying old rows: nothing was committed; rebuild once.
            Err(e) if !rebuilding && e.downcast_ref::<Damaged>().is_some() => {
                report.warn(&format!(
                    "{e:#}; rebuilding the index from the source files"
                ));
                let options = WriterOptions {
                    rebuild: true,
                    ..options.clone()
                };
                let writer = IndexWriter::open(&repo.index_dir, spec.clone(), options, on_wait)
                    .map_err(|e| explain(e, &repo.index_dir))?;
                run_update(writer)
            }
            other => other,
        }
    }
}

/// `, chunking rules N` where syntax-aware chunks name the version of their rules.
fn rules(chunking: &ChunkingConfig) -> String {
    match chunking.method {
        ChunkMethod::Syntax => format!(", chunking rules {}", chunking.rules),
        ChunkMethod::Windows => String::new(),
    }
}

/// A commit found the committed index damaged (the damage is the source).
#[derive(Debug, thiserror::Error)]
#[error("the index is damaged")]
struct Damaged;

/// The model guard of an embedder.
fn guard(e: &dyn Embedder) -> Result<ModelGuard> {
    Ok(ModelGuard {
        id: e.model_id().to_owned(),
        dimensions: u32::try_from(e.dimensions()).context("model dimensions")?,
    })
}

/// What one update did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Files in the index after the update.
    pub files: u64,
    /// Chunks in the index after the update.
    pub chunks: u64,
    /// The generation the index is at after the update.
    pub generation: u64,
    /// Commits made (0 when nothing had changed).
    pub commits: u64,
    /// Files indexed for the first time.
    pub new: usize,
    /// Files whose content changed.
    pub changed: usize,
    /// Files left as they were (content unchanged).
    pub unchanged: usize,
    /// Files removed from the index (deleted, or now ignored).
    pub removed: usize,
    /// Files that could not be indexed now (each got a warning).
    pub skipped: usize,
    /// Indexed files that got only what their segment lacked: the model's vectors, the
    /// exact lexical postings, or both.
    pub filled: usize,
    /// Of those, files that got the lexical postings alone (their vectors kept).
    pub filled_lexical: usize,
    /// Chunks embedded.
    pub embedded_chunks: usize,
    /// Of those, chunks of changed files whose model vectors were kept (their text did not
    /// change), so only the lexical embedder ran on them.
    pub reused_model_vectors: usize,
    /// Lockfiles, binary files and symlinks passed over without a warning.
    pub routine_skips: usize,
}

/// Where an update says what it is doing. `tp index` prints to stderr with a progress bar;
/// the resident server keeps the latest progress for its `status` tool.
pub trait Report: Sync {
    /// A problem that does not stop the update (a file skipped, damage dropped).
    fn warn(&self, message: &str);
    /// Something worth knowing (a rebuild, the model in use), as the line to show.
    fn note(&self, message: &str);
    /// A detail for `tp index --verbose` (a file cut into line windows because its parse
    /// failed), as the line to show.
    fn detail(&self, _message: &str) {}
    /// The update found `files` files (`bytes` bytes) to read and embed.
    fn planned(&self, files: usize, bytes: u64);
    /// `files` more files (`bytes` bytes, `chunks` chunks) are done.
    fn advanced(&self, files: usize, bytes: u64, chunks: usize);
    /// A commit made generation `generation` visible to readers.
    fn committed(&self, generation: u64);
    /// The writer lock is held by another process: the update waits for it.
    fn waiting(&self);
    /// The update holds the writer lock and starts its work, embedding with `models`.
    fn begun(&self, _root: &std::path::Path, _models: &[&str]) {}
}

fn update(
    mut writer: IndexWriter,
    repo: &Repo,
    chunking: &ChunkingConfig,
    embedders: Embedders<'_>,
    max_filesize: u64,
    report: &dyn Report,
) -> Result<Summary> {
    let warn = |m: &dyn std::fmt::Display| report.warn(&m.to_string());
    let policy = BatchPolicy::from_env()?;
    let opts = DiscoverOptions { max_filesize };
    let found = discover(&repo.root, &opts)?;
    for w in &found.warnings {
        warn(w);
    }
    let mut routine = 0usize;
    for s in &found.skipped {
        if s.reason.is_routine() {
            routine += 1;
        } else {
            warn(s);
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
        Some(Err(e)) => return Err(writer_error(e, &repo.index_dir)),
        None => Vec::new(),
    };
    let diff = Diff::new(&base_files, &scanned);
    let (_, _, mut unchanged) = diff.counts();
    // Files whose segment lacks the model's space (the model was just added, or a run that
    // added it was interrupted) or the exact lexical space (an index from before it): what
    // they have is kept, only what they lack is made.
    let lacking: HashMap<String, Lacking> = writer
        .files_lacking()
        .map_err(|e| writer_error(e, &repo.index_dir))?
        .into_iter()
        .map(|(f, l)| (f.path().to_owned(), l))
        .collect();
    let mut work: Vec<Work<'_>> = Vec::new();
    for (c, status) in found.files.iter().zip(&diff.status) {
        let fill = lacking.get(&c.rel_path).copied();
        match status {
            FileStatus::New => work.push((c, None, None)),
            FileStatus::StatChanged(r) => work.push((c, Some(*r), fill)),
            FileStatus::Unchanged(r) if fill.is_some() => {
                unchanged -= 1;
                work.push((c, Some(*r), fill));
            }
            FileStatus::Unchanged(_) => {}
        }
    }
    let filling: Vec<Lacking> = work.iter().filter_map(|w| w.2).collect();
    if !filling.is_empty() {
        report.note(&filling_note(&filling, embedders.model));
    }

    // Removed files go into the first commit: from then on the index never names a file that
    // is gone, and an interrupted run leaves every file either as it is now or as it was.
    let removed = diff.removed.len();
    for path in &diff.removed {
        writer.remove_file(path);
    }

    let commit = |writer: &mut IndexWriter| {
        writer
            .commit_and_continue()
            .map_err(|e| writer_error(e, &repo.index_dir))
    };
    let total_bytes: u64 = work.iter().map(|(c, _, _)| c.size).sum();
    report.planned(work.len(), total_bytes);
    let mut speed = Speed::new();
    let mut reused = 0usize;
    let mut tally = Tally::default();
    let mut commits = 0u64;
    let mut last_commit = Instant::now();
    let mut rest = &work[..];
    while !rest.is_empty() {
        let take = policy.group_len(rest, speed.bytes_per_second());
        let (group, tail) = rest.split_at(take);
        rest = tail;
        let bytes: u64 = group.iter().map(|(c, _, _)| c.size).sum();
        let reuse = reusable(&writer, group).map_err(|e| writer_error(e, &repo.index_dir))?;
        let embedded = embed_group(group, chunking, embedders, &opts, &reuse)?;
        reused += embedded.reused;
        for note in &embedded.notes {
            report.detail(note);
        }
        speed.bytes += bytes;
        let first = speed.chunks == 0;
        speed.chunks += embedded.chunks;
        report.advanced(group.len(), bytes, embedded.chunks);
        if first {
            if let (Some(m), Some(bps)) = (embedders.model, speed.bytes_per_second()) {
                let left: u64 = rest.iter().map(|(c, _, _)| c.size).sum();
                let cps = speed.chunks_per_second();
                if let Some(note) = time_estimate(m.model_id(), left, rest.len(), bps, cps) {
                    report.note(&note);
                }
            }
        }
        tally.record(&mut writer, embedded, &repo.index_dir, report)?;
        if !rest.is_empty() && policy.commit_due(last_commit) {
            let stats = commit(&mut writer)?;
            if stats.committed {
                commits += 1;
                report.committed(stats.generation);
                last_commit = Instant::now();
                policy.after_commit(commits);
            }
        }
    }
    let stats = commit(&mut writer)?;
    if stats.committed {
        commits += 1;
        report.committed(stats.generation);
    }
    drop(writer);
    Ok(Summary {
        files: stats.files,
        chunks: stats.chunks,
        generation: stats.generation,
        commits,
        new: tally.new,
        changed: tally.changed,
        unchanged: unchanged + tally.touched + tally.filled,
        removed,
        skipped: tally.skipped,
        filled: tally.filled,
        filled_lexical: tally.filled_lexical,
        embedded_chunks: tally.chunks,
        reused_model_vectors: reused,
        routine_skips: routine,
    })
}

/// The model vectors `group`'s changed files may keep: a changed file's chunks that did not
/// change keep their model vectors, and only the chunks that changed go through the model
/// (the lexical vectors, cheap, are always made again: they also give the chunk's terms).
/// Empty without a model: the writer then has no vectors to keep.
fn reusable(
    writer: &IndexWriter,
    group: &[Work<'_>],
) -> Result<Reuse, turboprop_index::IndexError> {
    let changed: HashSet<&str> = group
        .iter()
        .filter(|(_, stored, fill)| stored.is_some() && fill.is_none())
        .map(|(c, _, _)| c.rel_path.as_str())
        .collect();
    writer.reusable_vectors(&changed)
}

/// An index writer's error as `tp index` reports it: damage marked as such (the update is
/// retried as a rebuild), anything else explained.
fn writer_error(e: turboprop_index::IndexError, index_dir: &std::path::Path) -> anyhow::Error {
    if e.is_damage() {
        anyhow::Error::new(e).context(Damaged)
    } else {
        explain(e, index_dir)
    }
}

/// What the update adds to indexed files that lack a space of the spec (`filling`, one
/// per file): the model's vectors (the model was just added, or a run adding it was
/// interrupted) and the exact lexical postings (an index written before them, or by other
/// lexical rules). What the files have is kept.
fn filling_note(filling: &[Lacking], model: Option<&dyn Embedder>) -> String {
    let mut what = Vec::new();
    if let Some(m) = model.filter(|_| filling.iter().any(|l| l.spaces)) {
        what.push(format!("{} vectors", m.model_id()));
    }
    if filling.iter().any(|l| l.lexical) {
        what.push(format!("exact lexical postings ({LEXICAL_ID})"));
    }
    format!(
        "adding {} to {} indexed files (what they have is kept)",
        what.join(" and "),
        filling.len()
    )
}
