//! The changes of a commit, planned against the base segments: where each live file is now,
//! which rows each segment's delete set gains, and what the new segment receives. Nothing is
//! written here: `apply.rs` writes what this plans.

use std::collections::{BTreeMap, HashMap};

use turboprop_storage::StorageError;
use turboprop_types::{FileRecord, LexicalTerms, TermId};

use super::plan::SegmentFacts;
use super::{Change, CommitStats, NewChunk};
use crate::error::{IndexError, Result};
use crate::reader::LiveSegment;

/// A file going into the new segment.
pub(super) enum Incoming<'a> {
    /// New chunks from the caller.
    New(&'a FileRecord, &'a Vec<NewChunk>),
    /// Rows copied from base segment `.1`, file `.2`, under a (possibly updated) record.
    Copy(FileRecord, usize, usize),
    /// Rows copied like `Copy`, with new vectors in every space of the spec (and, with a
    /// lexical space, each row's terms, which a base segment without postings lacks).
    Fill(
        FileRecord,
        usize,
        usize,
        &'a Vec<Vec<Vec<f32>>>,
        &'a Vec<LexicalTerms>,
    ),
}

/// A segment's delete set being extended by this commit.
pub(super) struct PendingDeletes {
    pub(super) files: BTreeMap<u32, u32>,
    pub(super) removed: BTreeMap<TermId, u32>,
}

impl PendingDeletes {
    fn from_existing(seg: &LiveSegment) -> Self {
        let mut p = PendingDeletes {
            files: BTreeMap::new(),
            removed: BTreeMap::new(),
        };
        if let Some(d) = &seg.deletes {
            p.files.extend(d.files().iter());
            p.removed.extend(d.removed_terms().iter());
        }
        p
    }

    pub(super) fn rows(&self) -> u64 {
        self.files.values().map(|&r| u64::from(r)).sum()
    }
}

/// A commit's changes against the base segments.
pub(super) struct Changes<'a> {
    /// The base's live segments, in manifest order.
    pub(super) segments: &'a [LiveSegment],
    /// Which base segments hold every space of the spec (only those can be copied from).
    complete: Vec<bool>,
    /// Deletions per segment, starting from each segment's current delete set; `None` where
    /// this commit deletes nothing.
    pub(super) deletes: Vec<Option<PendingDeletes>>,
    /// What the new segment receives, by path.
    pub(super) incoming: BTreeMap<&'a str, Incoming<'a>>,
}

impl<'a> Changes<'a> {
    /// Plans `changes` against `segments` (`complete[s]` saying whether segment `s` holds
    /// every space of the spec), counting written and removed files in `stats`.
    pub(super) fn plan(
        segments: &'a [LiveSegment],
        complete: Vec<bool>,
        changes: &'a BTreeMap<String, Change>,
        stats: &mut CommitStats,
    ) -> Result<Changes<'a>> {
        // Where each live file is now.
        let mut live: HashMap<&str, (usize, usize)> = HashMap::new();
        for (s, seg) in segments.iter().enumerate() {
            for (i, f) in seg.live_files()? {
                live.insert(f.record.path(), (s, i));
            }
        }

        let mut out = Changes {
            segments,
            complete,
            deletes: (0..segments.len()).map(|_| None).collect(),
            incoming: BTreeMap::new(),
        };
        for (path, change) in changes {
            let old = live.get(path.as_str()).copied();
            match change {
                Change::Put { record, chunks } => {
                    if let Some((s, i)) = old {
                        out.delete(s, i)?;
                    }
                    stats.files_written += 1;
                    stats.chunks_written += chunks.len() as u64;
                    out.incoming.insert(path, Incoming::New(record, chunks));
                }
                Change::Touch(record) => match old {
                    // A file of a segment lacking a space stays where it is until it is
                    // filled; its new stat is recorded then.
                    Some((s, i)) if out.complete[s] => {
                        out.delete(s, i)?;
                        out.incoming
                            .insert(path, Incoming::Copy(record.clone(), s, i));
                    }
                    _ => {}
                },
                Change::Fill {
                    record,
                    spaces,
                    lexical,
                } => {
                    if let Some((s, i)) = old {
                        let rows = segments[s].reader.file_rows(i)?;
                        let rows = rows.end - rows.start;
                        if !lexical.is_empty() && lexical.len() as u64 != rows {
                            return Err(IndexError::InvalidVector {
                                what: path.clone(),
                                reason: format!(
                                    "lexical terms of {} chunks to fill a file of {rows}",
                                    lexical.len()
                                ),
                            });
                        }
                        if let Some(bad) = spaces.iter().find(|v| v.len() as u64 != rows) {
                            return Err(IndexError::InvalidVector {
                                what: path.clone(),
                                reason: format!(
                                    "{} vectors to fill a file of {rows} chunks",
                                    bad.len()
                                ),
                            });
                        }
                        out.delete(s, i)?;
                        stats.files_written += 1;
                        out.incoming
                            .insert(path, Incoming::Fill(record.clone(), s, i, spaces, lexical));
                    }
                }
                Change::Remove => {
                    if let Some((s, i)) = old {
                        out.delete(s, i)?;
                        stats.files_removed += 1;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Marks file `i` of segment `s` deleted.
    fn delete(&mut self, s: usize, i: usize) -> Result<()> {
        let seg = &self.segments[s];
        let pending = match &mut self.deletes[s] {
            Some(p) => p,
            slot => slot.insert(PendingDeletes::from_existing(seg)),
        };
        let range = seg.reader.file_rows(i)?;
        let rows = u32::try_from(range.end - range.start).map_err(|_| {
            StorageError::corrupt(seg.reader.dir(), "file with more than 2^32 rows")
        })?;
        pending.files.insert(i as u32, rows);
        for (term, count) in seg.reader.file_terms(i)? {
            *pending.removed.entry(term).or_default() += count;
        }
        Ok(())
    }

    /// What the compaction plan needs of each base segment, with this commit's deletes.
    pub(super) fn segment_facts(&self) -> Vec<SegmentFacts> {
        let segments = self.segments;
        let live_rows = |s: usize| -> u64 {
            let rows = segments[s].reader.rows() as u64;
            rows - self.deletes[s].as_ref().map_or_else(
                || segments[s].deletes.as_ref().map_or(0, |d| d.rows()),
                PendingDeletes::rows,
            )
        };
        segments
            .iter()
            .enumerate()
            .map(|(s, seg)| SegmentFacts {
                rows: seg.reader.rows() as u64,
                live_rows: live_rows(s),
                complete: self.complete[s],
            })
            .collect()
    }

    /// Moves the live files of the segments to merge (`merge[s]`) into the new segment,
    /// except those this commit deletes, counting the merged segments in `stats`.
    pub(super) fn take_merged(&mut self, merge: &[bool], stats: &mut CommitStats) -> Result<()> {
        for (s, seg) in self.segments.iter().enumerate() {
            if !merge[s] {
                continue;
            }
            stats.segments_merged += 1;
            for (i, f) in seg.live_files()? {
                let deleted_now = self.deletes[s]
                    .as_ref()
                    .is_some_and(|p| p.files.contains_key(&(i as u32)));
                if !deleted_now {
                    self.incoming
                        .insert(f.record.path(), Incoming::Copy(f.record.clone(), s, i));
                }
            }
        }
        Ok(())
    }
}
