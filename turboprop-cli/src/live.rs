//! A resident index: the repository's index kept open and kept fresh, for `tp mcp` and `tp
//! watch`.
//!
//! One indexing thread runs updates ([`Updater::run`], the same as `tp index`) whenever
//! something asks for one: the watcher ([`crate::watcher`]) marks the files it saw change,
//! the `index` tool asks for a full pass. Changes are debounced ([`DEBOUNCE`]) so a burst of
//! saves makes one update. The writer lock is taken by each update only, so a CLI `tp index`
//! runs between them.
//!
//! Searches use a reader that is reopened when a new generation is committed, by this
//! process or any other (the manifest is replaced on every commit: its identity is checked
//! on each search, one `lstat`). Every answer carries a [`Freshness`]: the generation it
//! answered from and what is still waiting to be indexed, so it is never silently stale.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use serde::Serialize;
use turboprop_storage::MANIFEST_FILE;

use crate::indexer::{Report, Summary, Updater};
use crate::repo::Repo;
use crate::search_cmd::Searcher;

/// Quiet time after the last change before an update starts: a burst of saves (an editor's
/// write-rename, a formatter, a `git checkout`) makes one update.
pub const DEBOUNCE: Duration = Duration::from_millis(150);
/// The longest a steady stream of changes delays an update.
pub const MAX_DELAY: Duration = Duration::from_secs(1);

/// How long a search waits for the first commit of a repository that had no index.
pub const FIRST_INDEX_WAIT: Duration = Duration::from_secs(60);

/// After a failed update, the wait before the next try.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// How the repository is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Watching {
    /// File system events (inotify and the like).
    Events,
    /// Events are not available: a stat walk every few seconds.
    Polling,
}

/// How fresh an answer is: every search and status answer carries one.
#[derive(Debug, Clone, Serialize)]
pub struct Freshness {
    /// The index generation the answer comes from (0: no index yet).
    pub generation: u64,
    /// Whether every change seen so far is in that generation.
    pub fresh: bool,
    /// Files seen changing since the last update began, not yet indexed.
    pub pending_files: usize,
    /// Whether an update is running now (its commit is not in this answer yet).
    pub indexing: bool,
    /// In words, when not fresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The progress of the update in flight.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Progress {
    /// Files the update has to read and embed (known once it has diffed).
    pub files_total: usize,
    /// Of those, done.
    pub files_done: usize,
    /// Chunks embedded so far.
    pub chunks_embedded: usize,
    /// Commits made so far by this update.
    pub commits: u64,
    /// Whether it is waiting for another process's writer lock.
    pub waiting_for_lock: bool,
    /// Milliseconds since it began.
    pub elapsed_ms: u64,
    #[serde(skip)]
    started: Option<Instant>,
}

/// The outcome of the last update.
#[derive(Debug, Clone, Serialize)]
pub struct LastUpdate {
    /// What it did, when it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// Why it failed, when it failed (the next change or `index` call tries again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub took_ms: u64,
    /// Seconds ago it finished.
    pub seconds_ago: u64,
    #[serde(skip)]
    finished: Option<Instant>,
}

#[derive(Default)]
struct State {
    /// Relevant paths changed since the running (or last) update began.
    dirty: BTreeSet<String>,
    /// A full pass is wanted (start, an `index` call, lost events).
    full: bool,
    /// When the first and the last change of the current burst were seen.
    burst: Option<(Instant, Instant)>,
    /// Requests made, and the last request an update has begun after (an update covers
    /// every request made before it began).
    requested: u64,
    begun: u64,
    /// Updates finished, and the request number each covered.
    covered: u64,
    running: Option<Progress>,
    /// Paths the running update was started for.
    in_flight: usize,
    last: Option<LastUpdate>,
    /// After a failed update, the next try waits until then (unless asked for by a call).
    hold_until: Option<Instant>,
    stop: bool,
}

/// A reader and the manifest it was opened from.
struct Reader {
    token: Option<ManifestToken>,
    searcher: Arc<Searcher>,
}

/// The identity of `manifest.json`: a commit replaces it (a new inode), so a change of
/// identity means a new generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ManifestToken {
    dev: u64,
    ino: u64,
    mtime_ns: i64,
    len: u64,
}

/// The resident index of one repository.
pub struct Live {
    updater: Updater,
    repo_model: Option<String>,
    watching: Mutex<Watching>,
    state: Mutex<State>,
    wake: Condvar,
    reader: Mutex<Option<Reader>>,
}

impl Live {
    /// A resident index over `updater`'s repository; nothing runs until [`Live::spawn`].
    pub fn new(updater: Updater, repo_model: Option<String>) -> Arc<Live> {
        Arc::new(Live {
            updater,
            repo_model,
            watching: Mutex::new(Watching::Events),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            reader: Mutex::new(None),
        })
    }

    /// The repository.
    pub fn repo(&self) -> &Repo {
        self.updater.repo()
    }

    /// The ids of the models of the index, the built-in lexical one first.
    pub fn model_ids(&self) -> Vec<&str> {
        self.updater.model_ids()
    }

    /// Starts the indexing thread, which first brings the index up to date; `on_done` is
    /// called after every update with its outcome.
    pub fn spawn(
        self: &Arc<Self>,
        on_done: impl Fn(&Result<Summary>, Duration) + Send + 'static,
    ) -> Result<std::thread::JoinHandle<()>> {
        self.request_full();
        let live = Arc::clone(self);
        std::thread::Builder::new()
            .name("tp-indexer".into())
            .spawn(move || live.index_loop(on_done))
            .map_err(|e| anyhow!("cannot start the indexing thread: {e}"))
    }

    /// Stops the indexing thread after the update in flight (if any) commits.
    pub fn stop(&self) {
        let mut s = self.lock_state();
        s.stop = true;
        self.wake.notify_all();
    }

    /// Records how the repository is watched.
    pub fn set_watching(&self, how: Watching) {
        if let Ok(mut w) = self.watching.lock() {
            *w = how;
        }
    }

    /// How the repository is watched.
    pub fn watching(&self) -> Watching {
        self.watching.lock().map_or(Watching::Polling, |w| *w)
    }

    /// Files at these paths (relative to the root) changed: index them soon.
    pub fn mark_changed(&self, paths: impl IntoIterator<Item = String>) {
        let mut s = self.lock_state();
        let before = s.dirty.len();
        s.dirty.extend(paths);
        if s.dirty.len() > before {
            self.note_change(&mut s);
        }
    }

    /// Something changed that events cannot name (lost events, a new folder): a full pass
    /// soon. Returns the request number an update must cover.
    pub fn mark_unknown_change(&self) -> u64 {
        let mut s = self.lock_state();
        s.full = true;
        self.note_change(&mut s)
    }

    /// Asks for a full pass now, without waiting for quiet. Returns the request number an
    /// update must cover for the index to hold every change made before this call.
    pub fn request_full(&self) -> u64 {
        let mut s = self.lock_state();
        s.full = true;
        s.requested += 1;
        s.burst = None;
        s.hold_until = None;
        self.wake.notify_all();
        s.requested
    }

    fn note_change(&self, s: &mut State) -> u64 {
        let now = Instant::now();
        s.burst = Some(match s.burst {
            Some((first, _)) => (first, now),
            None => (now, now),
        });
        s.requested += 1;
        self.wake.notify_all();
        s.requested
    }

    /// Waits until an update that began after request `ticket` has finished, or `timeout`
    /// passed; returns whether it had.
    pub fn wait_covered(&self, ticket: u64, timeout: Duration) -> bool {
        self.wait_until(timeout, |s| {
            (s.covered >= ticket || s.stop).then_some(s.covered >= ticket)
        })
    }

    /// Waits until an update that began after request `ticket` has finished and nothing seen
    /// since is waiting to be indexed (or that update failed), or `timeout` passed; returns
    /// false only when it timed out. The events of a write can arrive after the pass that
    /// already indexed it; the next update (a debounce later) finds the file unchanged and
    /// clears it, and an answer after that is fresh.
    pub fn wait_fresh(&self, ticket: u64, timeout: Duration) -> bool {
        self.wait_until(timeout, |s| {
            if s.stop {
                return Some(s.covered >= ticket);
            }
            if s.covered < ticket {
                return None;
            }
            let settled =
                s.running.is_none() && !s.full && s.dirty.is_empty() && s.covered >= s.requested;
            // A failed update is reported by status; waiting longer would not help.
            let failed = s.last.as_ref().is_some_and(|l| l.error.is_some());
            (settled || failed).then_some(true)
        })
    }

    /// Waits on the state until `done` gives an answer, woken by every change of it, or
    /// `timeout` passed (false).
    fn wait_until(&self, timeout: Duration, done: impl Fn(&State) -> Option<bool>) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock_state();
        loop {
            if let Some(answer) = done(&s) {
                return answer;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = match self.wake.wait_timeout(s, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// What is waiting to be indexed, as of generation `generation`.
    pub fn freshness(&self, generation: u64) -> Freshness {
        let s = self.lock_state();
        let pending = s.dirty.len() + if s.running.is_some() { s.in_flight } else { 0 };
        let indexing = s.running.is_some();
        let waiting = s.full || !s.dirty.is_empty() || s.covered < s.requested;
        let fresh = !indexing && !waiting;
        let note = if fresh {
            None
        } else if indexing {
            Some(format!(
                "indexing now: this answer is from generation {generation}, the last commit; changes being indexed are not in it yet"
            ))
        } else if pending > 0 {
            Some(format!(
                "{pending} changed files are waiting to be indexed (within about a second): this answer is from generation {generation}"
            ))
        } else {
            Some(format!(
                "changes were seen and are waiting to be indexed (within about a second): this answer is from generation {generation}"
            ))
        };
        Freshness {
            generation,
            fresh,
            pending_files: pending,
            indexing,
            note,
        }
    }

    /// The update in flight, if any, and the last one finished.
    pub fn progress(&self) -> (Option<Progress>, Option<LastUpdate>) {
        let s = self.lock_state();
        let running = s.running.clone().map(|mut p| {
            p.elapsed_ms = p.started.map_or(0, |t| t.elapsed().as_millis() as u64);
            p
        });
        let last = s.last.clone().map(|mut l| {
            l.seconds_ago = l.finished.map_or(0, |t| t.elapsed().as_secs());
            l
        });
        (running, last)
    }

    /// A reader of the latest committed generation: the one in hand if nothing was
    /// committed since it was opened, else a new one (the model stays loaded).
    pub fn searcher(&self) -> Result<Arc<Searcher>> {
        let token = self.manifest_token()?;
        let mut reader = self
            .reader
            .lock()
            .map_err(|_| anyhow!("the reader lock is poisoned"))?;
        if let Some(r) = reader.as_ref() {
            if r.token == token {
                return Ok(Arc::clone(&r.searcher));
            }
        }
        if token.is_none() {
            *reader = None;
            drop(reader);
            // No index yet: the first update is on its way (it started with the process);
            // wait for its first commit rather than answer nothing.
            let ticket = self.lock_state().requested;
            if self.wait_covered(ticket, FIRST_INDEX_WAIT) && self.manifest_token()?.is_some() {
                return self.searcher();
            }
            let (running, _) = self.progress();
            return Err(match running {
                Some(_) => anyhow!(
                    "the repository is being indexed for the first time; the first commit is searchable in a few seconds (see the status tool)"
                ),
                None => anyhow!("the repository has no index yet: call the index tool"),
            });
        }
        let searcher = Arc::new(Searcher::open_shared(
            self.repo(),
            self.repo_model.as_deref(),
            self.updater.model(),
        )?);
        *reader = Some(Reader {
            token,
            searcher: Arc::clone(&searcher),
        });
        Ok(searcher)
    }

    /// Forgets the reader in hand (it saw its files change under it): the next search
    /// opens the index again.
    pub fn drop_reader(&self) {
        if let Ok(mut r) = self.reader.lock() {
            *r = None;
        }
    }

    fn manifest_token(&self) -> Result<Option<ManifestToken>> {
        let path = self.repo().index_dir.join(MANIFEST_FILE);
        match std::fs::symlink_metadata(&path) {
            Ok(m) => Ok(Some(ManifestToken {
                dev: m.dev(),
                ino: m.ino(),
                mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                len: m.len(),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow!("cannot read {}: {e}", path.display())),
        }
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere leaves the counters consistent (each is set in one statement).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn index_loop(&self, on_done: impl Fn(&Result<Summary>, Duration)) {
        loop {
            let (ticket, paths) = {
                let mut s = self.lock_state();
                loop {
                    if s.stop {
                        return;
                    }
                    let wanted = s.full || !s.dirty.is_empty();
                    let held = s
                        .hold_until
                        .map(|t| t.saturating_duration_since(Instant::now()));
                    let wait = match s.burst {
                        _ if !wanted => None,
                        _ if held.is_some_and(|d| !d.is_zero()) => held,
                        // Asked for now (start, the index tool).
                        None => Some(Duration::ZERO),
                        Some((first, last)) => {
                            let quiet = DEBOUNCE.saturating_sub(last.elapsed());
                            let cap = MAX_DELAY.saturating_sub(first.elapsed());
                            Some(quiet.min(cap))
                        }
                    };
                    match wait {
                        Some(d) if d.is_zero() => break,
                        Some(d) => {
                            s = match self.wake.wait_timeout(s, d) {
                                Ok((g, _)) => g,
                                Err(p) => p.into_inner().0,
                            }
                        }
                        None => {
                            s = match self.wake.wait(s) {
                                Ok(g) => g,
                                Err(p) => p.into_inner(),
                            }
                        }
                    }
                }
                let paths = std::mem::take(&mut s.dirty);
                s.full = false;
                s.burst = None;
                s.begun = s.requested;
                s.in_flight = paths.len();
                s.running = Some(Progress {
                    started: Some(Instant::now()),
                    ..Progress::default()
                });
                (s.begun, paths)
            };
            let started = Instant::now();
            let outcome = self.updater.run(&LiveReport { live: self });
            let took = started.elapsed();
            {
                let mut s = self.lock_state();
                s.running = None;
                s.in_flight = 0;
                s.covered = s.covered.max(ticket);
                if outcome.is_err() {
                    // Tried and failed: the files are still to do; try again a little later
                    // (at once if the index tool asks).
                    s.dirty.extend(paths);
                    s.hold_until = Some(Instant::now() + RETRY_AFTER);
                } else {
                    s.hold_until = None;
                }
                s.last = Some(LastUpdate {
                    summary: outcome.as_ref().ok().cloned(),
                    error: outcome.as_ref().err().map(crate::one_line),
                    took_ms: took.as_millis() as u64,
                    seconds_ago: 0,
                    finished: Some(Instant::now()),
                });
                self.wake.notify_all();
            }
            if outcome.as_ref().is_ok_and(|s| s.commits > 0) {
                // Open the new generation now, not on the next search.
                let _ = self.searcher();
            }
            on_done(&outcome, took);
        }
    }
}

/// Progress of an update into the shared state; warnings to stderr (an MCP server's stderr
/// is the client's log).
struct LiveReport<'a> {
    live: &'a Live,
}

impl LiveReport<'_> {
    fn with(&self, f: impl FnOnce(&mut Progress)) {
        let mut s = self.live.lock_state();
        if let Some(p) = s.running.as_mut() {
            f(p);
        }
    }
}

impl Report for LiveReport<'_> {
    fn warn(&self, message: &str) {
        eprintln!("warning: {}", crate::escape::escape_control(message));
    }

    fn note(&self, message: &str) {
        eprintln!("{}", crate::escape::escape_control(message));
    }

    fn planned(&self, files: usize, _bytes: u64) {
        self.with(|p| {
            p.files_total = files;
            p.waiting_for_lock = false;
        });
    }

    fn advanced(&self, files: usize, _bytes: u64, chunks: usize) {
        self.with(|p| {
            p.files_done += files;
            p.chunks_embedded += chunks;
        });
    }

    fn committed(&self, _generation: u64) {
        self.with(|p| p.commits += 1);
    }

    fn waiting(&self) {
        self.with(|p| p.waiting_for_lock = true);
    }
}
