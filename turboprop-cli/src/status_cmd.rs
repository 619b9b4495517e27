//! `tp status` and `tp verify`: what the index holds, and whether every byte of it is intact.

use std::io::{self, Write};

use anyhow::{bail, Result};
use serde::Serialize;

use crate::args::{OutputFormat, RepoArg, StatusArgs};
use crate::escape::escape_control;
use crate::repo::Repo;
use turboprop_index::Index;
use turboprop_types::ChunkingConfig;

/// What `tp status --output json` prints.
#[derive(Serialize)]
pub(crate) struct Status {
    files: u64,
    chunks: u64,
    /// The model searches use: the transformer model when the index has one, else the
    /// built-in lexical model.
    model: String,
    dimensions: u32,
    /// Every vector space: the built-in lexical one first, then the model's.
    spaces: Vec<SpaceStatus>,
    bytes_on_disk: u64,
    pub(crate) generation: u64,
    updated_at: String,
    index_path: String,
    /// How the rows were cut (`config.yaml`'s `chunking`, with the rules version of
    /// syntax-aware chunks).
    chunking: ChunkingConfig,
}

#[derive(Serialize)]
pub(crate) struct SpaceStatus {
    model: String,
    dimensions: u32,
    /// Chunks with vectors in this space (fewer than all while an update adding the model
    /// has not finished).
    chunks: u64,
}

/// Runs `tp status`.
pub fn status(args: &StatusArgs) -> Result<()> {
    let repo = Repo::locate(args.repo.repo.as_deref())?;
    let index = repo.open_index()?;
    let status = status_of(&repo, &index);
    let mut out = io::stdout().lock();
    match args.output {
        OutputFormat::Json => writeln!(out, "{}", serde_json::to_string(&status)?)?,
        OutputFormat::Text => {
            writeln!(out, "index       {}", escape_control(&status.index_path))?;
            writeln!(out, "files       {}", status.files)?;
            writeln!(out, "chunks      {}", status.chunks)?;
            for (i, sp) in status.spaces.iter().enumerate() {
                let label = if i == 0 { "model" } else { "  + model" };
                let partial = if sp.chunks < status.chunks {
                    format!(", {} of {} chunks: run tp index", sp.chunks, status.chunks)
                } else {
                    String::new()
                };
                writeln!(
                    out,
                    "{label:<11} {} ({} dims{partial})",
                    sp.model, sp.dimensions
                )?;
            }
            writeln!(out, "chunking    {}", status.chunking.describe())?;
            writeln!(out, "size        {}", human_bytes(status.bytes_on_disk))?;
            writeln!(out, "generation  {}", status.generation)?;
            writeln!(out, "updated     {}", status.updated_at)?;
        }
    }
    Ok(())
}

/// What the index of `repo` holds.
pub(crate) fn status_of(repo: &Repo, index: &Index) -> Status {
    let s = index.stats();
    let spaces: Vec<SpaceStatus> = (0..=index.spaces().len())
        .filter_map(|k| {
            let m = index.space_model(k)?;
            Some(SpaceStatus {
                model: m.id.clone(),
                dimensions: m.dimensions,
                chunks: index.space_rows(k),
            })
        })
        .collect();
    let main = index.spaces().first().map_or(&s.model, |sp| &sp.model);
    Status {
        files: s.files,
        chunks: s.chunks,
        model: main.id.clone(),
        dimensions: main.dimensions,
        spaces,
        bytes_on_disk: s.bytes_on_disk,
        generation: s.generation,
        updated_at: rfc3339_utc(s.updated_at_ms),
        index_path: repo.index_dir.display().to_string(),
        chunking: index.manifest().chunking.clone(),
    }
}

/// Runs `tp verify`: exit 0 when every file checks out, else one line per damaged file.
pub fn verify(args: &RepoArg) -> Result<()> {
    let repo = Repo::locate(args.repo.as_deref())?;
    let index = repo.open_index()?;
    let problems = index.verify();
    if problems.is_empty() {
        let s = index.stats();
        println!(
            "ok: {} files, {} chunks, generation {}, {} verified",
            s.files,
            s.chunks,
            s.generation,
            human_bytes(s.bytes_on_disk)
        );
        return Ok(());
    }
    let mut problems = problems.into_iter();
    let first = problems.next();
    for p in problems {
        eprintln!("damaged: {}", escape_control(&p.to_string()));
    }
    // The error printer appends the way out (repo::way_out).
    match first {
        Some(p) => Err(anyhow::Error::new(p)),
        None => bail!("tp verify found damage but cannot name it"),
    }
}

/// `1536` -> `1.5 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Milliseconds since the epoch as `2026-11-27T13:39:48Z`.
pub fn rfc3339_utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(1_795_786_788_000), "2026-11-27T13:39:48Z");
        assert_eq!(rfc3339_utc(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
