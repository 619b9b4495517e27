//! `tp index`: one update of the index (see [`crate::indexer`]) with a progress bar and a
//! summary line on stderr; with `--watch`, the same again whenever files change.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::IndexArgs;
use crate::escape::escape_control;
use crate::indexer::{Report, Summary, Updater};
use crate::repo::Repo;

/// Runs `tp index`.
pub fn run(args: &IndexArgs) -> Result<()> {
    let started = Instant::now();
    let repo = Repo::locate(args.repo.repo.as_deref())?;
    let report = StderrReport::new(&repo).verbose(args.verbose);
    let updater = Updater::prepare(repo, args, &report)?;
    if args.watch {
        return crate::watch_cmd::watch(updater);
    }
    let summary = updater.run(&report)?;
    report.finish();
    eprintln!("{}", summary_line(&summary, started.elapsed()));
    Ok(())
}

/// The line `tp index` ends with.
pub fn summary_line(s: &Summary, elapsed: Duration) -> String {
    let elapsed = fmt_duration(elapsed);
    let mut line = String::new();
    if s.routine_skips > 0 {
        line.push_str(&format!(
            "skipped {} lockfiles, binary files and symlinks\n",
            s.routine_skips
        ));
    }
    if s.commits == 0 {
        line.push_str(&format!(
            "index is up to date: nothing re-embedded ({} files unchanged, {} chunks, generation {}) in {elapsed}",
            s.unchanged, s.chunks, s.generation
        ));
    } else {
        let embedded_files = if s.filled > 0 {
            let by_model = s.filled - s.filled_lexical;
            let mut parts = Vec::new();
            if by_model > 0 {
                parts.push(format!("{by_model} only by the model"));
            }
            if s.filled_lexical > 0 {
                parts.push(format!("{} only given lexical postings", s.filled_lexical));
            }
            format!(
                "{} files ({})",
                s.new + s.changed + s.filled,
                parts.join(", ")
            )
        } else {
            format!("{} files", s.new + s.changed)
        };
        let batches = if s.commits > 1 {
            format!(" ({} commits)", s.commits)
        } else {
            String::new()
        };
        let kept = if s.reused_model_vectors > 0 {
            format!(
                " ({} of them unchanged: the model's vectors kept)",
                s.reused_model_vectors
            )
        } else {
            String::new()
        };
        line.push_str(&format!(
            "indexed {} files ({} new, {} changed, {} unchanged, {} removed, {} skipped): \
             embedded {} chunks from {embedded_files}{kept}; {} chunks in generation {} in {elapsed}{batches}",
            s.files, s.new, s.changed, s.unchanged, s.removed, s.skipped, s.embedded_chunks, s.chunks, s.generation
        ));
    }
    line
}

/// What `tp index` says on stderr: warnings and notes as lines, progress as a bar (on a
/// terminal only).
pub struct StderrReport {
    index_dir: String,
    progress: Mutex<Option<Progress>>,
    verbose: bool,
}

impl StderrReport {
    /// A report for an update of `repo`.
    pub fn new(repo: &Repo) -> StderrReport {
        StderrReport {
            index_dir: escape_control(&repo.index_dir.display().to_string()).into_owned(),
            progress: Mutex::new(None),
            verbose: false,
        }
    }

    /// This report, printing details too (`tp index --verbose`).
    pub fn verbose(self, verbose: bool) -> StderrReport {
        StderrReport { verbose, ..self }
    }

    /// Clears the progress bar.
    pub fn finish(&self) {
        if let Ok(mut p) = self.progress.lock() {
            if let Some(p) = p.take() {
                p.finish();
            }
        }
    }
}

impl Report for StderrReport {
    fn warn(&self, message: &str) {
        eprintln!("warning: {}", escape_control(message));
    }

    fn note(&self, message: &str) {
        eprintln!("{}", escape_control(message));
    }

    fn detail(&self, message: &str) {
        if self.verbose {
            self.note(&format!("note: {message}"));
        }
    }

    fn planned(&self, _files: usize, bytes: u64) {
        if let Ok(mut p) = self.progress.lock() {
            *p = Some(Progress::new(bytes));
        }
    }

    fn advanced(&self, _files: usize, bytes: u64, chunks: usize) {
        if let Ok(mut p) = self.progress.lock() {
            if let Some(p) = p.as_mut() {
                p.advance(bytes, chunks);
            }
        }
    }

    fn committed(&self, _generation: u64) {}

    fn begun(&self, root: &std::path::Path, models: &[&str]) {
        eprintln!(
            "indexing {} with model {}",
            escape_control(&root.display().to_string()),
            models.join(" + ")
        );
    }

    fn waiting(&self) {
        eprintln!("waiting for another tp index on {}", self.index_dir);
    }
}

/// The progress bar of `tp index` (on a terminal only, on stderr): bytes of files done out
/// of all to read (which drives the ETA), chunks embedded and their rate.
struct Progress {
    bar: ProgressBar,
    started: Instant,
    bytes: u64,
    chunks: usize,
}

impl Progress {
    fn new(total_bytes: u64) -> Self {
        let bar = if !std::io::stderr().is_terminal() || total_bytes == 0 {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::new(total_bytes);
            let style = ProgressStyle::with_template(
                "{spinner} embedding [{bar:30}] {percent}% {msg} eta {eta}",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message("0 chunks");
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        };
        Progress {
            bar,
            started: Instant::now(),
            bytes: 0,
            chunks: 0,
        }
    }

    fn advance(&mut self, bytes: u64, chunks: usize) {
        self.bytes += bytes;
        self.chunks += chunks;
        let rate = self.chunks as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        self.bar
            .set_message(format!("{} chunks, {rate:.1} chunks/s", self.chunks));
        self.bar.set_position(self.bytes);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
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
