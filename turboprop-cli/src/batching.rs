//! How `tp index` paces its work: files go to the embedders in groups sized by the speed
//! measured so far, commits are made every few seconds while it embeds, and a long run with
//! a model is announced with its estimated time once the first group has given the speed.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::groups::Work;

/// Bytes embedded per second so far: sizes the next group of files.
pub(crate) struct Speed {
    started: Instant,
    pub(crate) bytes: u64,
    pub(crate) chunks: usize,
}

impl Speed {
    pub(crate) fn new() -> Speed {
        Speed {
            started: Instant::now(),
            bytes: 0,
            chunks: 0,
        }
    }

    pub(crate) fn chunks_per_second(&self) -> f64 {
        self.chunks as f64 / self.started.elapsed().as_secs_f64().max(1e-3)
    }

    pub(crate) fn bytes_per_second(&self) -> Option<f64> {
        let secs = self.started.elapsed().as_secs_f64();
        (self.bytes > 0 && secs > 0.0).then(|| self.bytes as f64 / secs)
    }
}

/// Work left that is estimated to take less than this is not announced.
const ANNOUNCE_AFTER: Duration = Duration::from_secs(30);

/// After the first group of files, when a model embeds: how long the rest will take at the
/// speed measured so far, said once, up front, when it is long (`None` when it is not), with
/// the way to an index in seconds.
pub(crate) fn time_estimate(
    model: &str,
    bytes_left: u64,
    files_left: usize,
    bytes_per_second: f64,
    chunks_per_second: f64,
) -> Option<String> {
    let secs = bytes_left as f64 / bytes_per_second.max(1.0);
    if !secs.is_finite() || secs < ANNOUNCE_AFTER.as_secs_f64() {
        return None;
    }
    Some(format!(
        "note: {model} embeds {:.1} chunks/s on this machine: the {files_left} files left ({:.1} MB) will take about {}; \
         an interrupted run keeps what it committed, and --model builtin indexes without a model in seconds",
        chunks_per_second,
        bytes_left as f64 / 1e6,
        crate::index_cmd::fmt_duration(Duration::from_secs_f64(secs))
    ))
}

/// When `tp index` commits while it embeds. Work goes in groups of files (about
/// [`GROUP_SECONDS`] of embedding each); after a group, a commit is made if
/// [`COMMIT_INTERVAL`] has passed since the last one, and once at the end. A file's rows
/// are always in one commit.
///
/// With the `test-hooks` feature (on only in the test build, never in a release), two
/// environment variables make batches deterministic for tests:
/// `TURBOPROP_COMMIT_EVERY_FILES=N` makes every group N files and commits after each;
/// `TURBOPROP_TEST_PAUSE_AFTER_COMMITS=K` makes `tp index` stop after its K-th intermediate
/// commit and wait there until it is killed.
pub(crate) struct BatchPolicy {
    every_files: Option<usize>,
    pause_after: Option<u64>,
}

/// Commit at least this often (after the group in progress) while embedding.
const COMMIT_INTERVAL: Duration = Duration::from_secs(10);
/// Aim for groups of files that take about this long to embed: short enough for a smooth
/// progress bar and timely commits, long enough to sort and batch many chunks together.
const GROUP_SECONDS: f64 = 2.0;
/// The first group, before the speed is known.
const FIRST_GROUP_BYTES: u64 = 64 * 1024;

impl BatchPolicy {
    #[cfg(not(feature = "test-hooks"))]
    pub(crate) fn from_env() -> Result<Self> {
        Ok(BatchPolicy {
            every_files: None,
            pause_after: None,
        })
    }

    #[cfg(feature = "test-hooks")]
    pub(crate) fn from_env() -> Result<Self> {
        let var = |name: &str| -> Result<Option<u64>> {
            match std::env::var(name) {
                Ok(v) => match v.parse::<u64>() {
                    Ok(n) if n > 0 => Ok(Some(n)),
                    _ => anyhow::bail!("{name}={v:?} must be a positive whole number"),
                },
                Err(_) => Ok(None),
            }
        };
        Ok(BatchPolicy {
            every_files: var("TURBOPROP_COMMIT_EVERY_FILES")?.map(|n| n as usize),
            pause_after: var("TURBOPROP_TEST_PAUSE_AFTER_COMMITS")?,
        })
    }

    /// How many of the files in `rest` the next group takes (at least one).
    pub(crate) fn group_len(&self, rest: &[Work<'_>], speed: Option<f64>) -> usize {
        if let Some(n) = self.every_files {
            return n.min(rest.len());
        }
        let budget = speed.map_or(FIRST_GROUP_BYTES, |bps| (bps * GROUP_SECONDS) as u64);
        let mut bytes = 0u64;
        let mut n = 0;
        for (c, _, _) in rest {
            if n > 0 && bytes + c.size > budget {
                break;
            }
            bytes += c.size;
            n += 1;
        }
        n
    }

    pub(crate) fn commit_due(&self, last: Instant) -> bool {
        self.every_files.is_some() || last.elapsed() >= COMMIT_INTERVAL
    }

    pub(crate) fn after_commit(&self, commits: u64) {
        if self.pause_after == Some(commits) {
            eprintln!("paused after commit {commits} (TURBOPROP_TEST_PAUSE_AFTER_COMMITS)");
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_model_run_is_announced_with_its_estimate_and_the_fast_way() {
        // 20 MB left at 10 kB/s: 2,000 s.
        let note = time_estimate("all-MiniLM-L6-v2", 20_000_000, 1_500, 10_000.0, 24.5)
            .expect("announced");
        assert!(note.contains("about 33m20s"), "{note}");
        assert!(note.contains("1500 files left (20.0 MB)"), "{note}");
        assert!(note.contains("24.5 chunks/s"), "{note}");
        assert!(note.contains("--model builtin"), "{note}");
        // 20 s of work is not worth a note.
        assert_eq!(
            time_estimate("all-MiniLM-L6-v2", 200_000, 10, 10_000.0, 24.5),
            None
        );
    }
}
