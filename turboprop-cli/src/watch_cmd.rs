//! `tp watch` (and `tp index --watch`): keep the index fresh while files change, printing
//! one line per commit on stderr. The watcher and the indexing thread are those of `tp
//! mcp` ([`crate::live`], [`crate::watcher`]).

use std::time::Duration;

use anyhow::Result;

use crate::args::ResidentArgs;
use crate::escape::escape_control;
use crate::index_cmd::{fmt_duration, StderrReport};
use crate::indexer::{Summary, Updater};
use crate::live::{Live, Watching};
use crate::repo::Repo;

/// Runs `tp watch`.
pub fn run(args: &ResidentArgs) -> Result<()> {
    let repo = Repo::locate(args.repo.repo.as_deref())?;
    let report = StderrReport::new(&repo);
    let updater = Updater::prepare(repo, &args.index_args(), &report)?;
    watch(updater)
}

/// Watches `updater`'s repository until the process is stopped.
pub fn watch(updater: Updater) -> Result<()> {
    let live = Live::new(updater, None);
    let how = crate::watcher::start(&live)?;
    eprintln!(
        "watching {} with model {} ({}); Ctrl-C stops",
        escape_control(&live.repo().root.display().to_string()),
        live.model_ids().join(" + "),
        match how {
            Watching::Events => "file events",
            Watching::Polling => "polling",
        }
    );
    let indexer = live.spawn(|outcome, took| {
        if let Some(line) = commit_line(outcome, took) {
            eprintln!("{line}");
        }
    })?;
    // The indexing thread runs until the process is stopped.
    let _ = indexer.join();
    Ok(())
}

/// The line printed after an update: one per update that committed, or failed.
pub(crate) fn commit_line(outcome: &Result<Summary>, took: Duration) -> Option<String> {
    match outcome {
        Ok(s) if s.commits == 0 => None,
        Ok(s) => Some(format!(
            "generation {}: {} new, {} changed, {} removed; {} chunks embedded{} in {} ({} files, {} chunks indexed)",
            s.generation,
            s.new,
            s.changed,
            s.removed,
            s.embedded_chunks,
            if s.reused_model_vectors > 0 {
                format!(" ({} kept the model's vectors)", s.reused_model_vectors)
            } else {
                String::new()
            },
            fmt_duration(took),
            s.files,
            s.chunks
        )),
        Err(e) => Some(format!(
            "error: {} (retrying on the next change)",
            escape_control(&crate::one_line(e))
        )),
    }
}
