//! The writes of a commit, as planned: the kept segments' delete sets, the new segment with
//! its codes, and the manifest that commits them.

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use turboprop_storage::{
    space_file, write_delete_set, DeleteEntry, IndexDir, LexicalRow, Manifest, NewRow, ReadMode,
    SegmentEntry, SegmentReader, SegmentSpace, SegmentWriter, SpaceMeta, StorageError,
    MANIFEST_FILE, VECTORS_FILE,
};
use turboprop_types::{FileRecord, LexicalTerms, TermId};

use super::changes::{Changes, Incoming, PendingDeletes};
use super::{CommitStats, IndexWriter, NewChunk};
use crate::error::{IndexError, Result};
use crate::reader::{non_finite, LiveSegment};

impl IndexWriter {
    /// Writes generation `generation` as planned (the base segments to merge, `merge[s]`,
    /// and the `changes`) and commits it; returns the stats, completed, and its manifest.
    pub(super) fn apply(
        &self,
        generation: u64,
        merge: &[bool],
        changes: &Changes<'_>,
        mut stats: CommitStats,
    ) -> Result<(CommitStats, Option<Manifest>)> {
        let mut entries =
            self.write_delete_sets(generation, merge, &changes.deletes, &mut stats)?;
        // Write the new segment, if it holds anything.
        if !changes.incoming.is_empty() {
            let entry =
                self.write_segment(generation, changes.segments, &changes.incoming, &mut stats)?;
            entries.push(entry);
        }

        let manifest = Manifest {
            generation,
            updated_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            model: self.spec.model.clone(),
            chunking: self.spec.chunking.clone(),
            spaces: self.space_entries.clone(),
            lexical: self.spec.lexical.clone(),
            segments: entries,
        };
        stats.files = manifest.files();
        stats.chunks = manifest.rows();
        stats.segments = manifest.segments.len();
        // Rows copied from a base file that shrank under its mapping would be zeros.
        if let Some(base) = &self.base {
            base.check_intact()?;
        }
        // The commit point. Before this line a crash leaves the previous generation; after
        // it, the new one.
        self.dir.commit(&self.lock, &manifest)?;
        stats.bytes_written += self.dir.directory().file_len(MANIFEST_FILE)?;
        Ok((stats, Some(manifest)))
    }

    /// The manifest entries of the base segments kept (not in `merge`), with their spaces
    /// and delete sets as of this generation; writes the delete sets this commit extends.
    fn write_delete_sets(
        &self,
        generation: u64,
        merge: &[bool],
        deletes: &[Option<PendingDeletes>],
        stats: &mut CommitStats,
    ) -> Result<Vec<SegmentEntry>> {
        // The base's manifest entries, one per segment, in the same order.
        let base_entries: &[SegmentEntry] =
            self.base.as_ref().map_or(&[], |b| &b.manifest().segments);
        let mut entries: Vec<SegmentEntry> = Vec::new();
        for (s, base_entry) in base_entries.iter().enumerate() {
            if merge[s] {
                continue;
            }
            let mut entry = base_entry.clone();
            // Keep only the spaces the new manifest lists, made by the same models.
            let base_spaces = &self
                .base
                .as_ref()
                .map_or(&[][..], |b| &b.manifest().spaces[..]);
            entry.spaces.retain(|sp| {
                let was = base_spaces.iter().find(|e| e.key == sp.key);
                let now = self.space_entries.iter().find(|e| e.key == sp.key);
                matches!((was, now), (Some(a), Some(b)) if a.model == b.model)
            });
            if let Some(p) = &deletes[s] {
                let name = IndexDir::delete_set_name(&entry.name, generation);
                let store = self.dir.directory();
                write_delete_set(store, &name, &p.files, &p.removed)?;
                stats.bytes_written += store.file_len(&name)?;
                entry.deletes = Some(DeleteEntry {
                    name,
                    files: p.files.len() as u64,
                    rows: p.rows(),
                });
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    /// Writes the new segment of generation `generation` with the `incoming` files (rows of
    /// base `segments` copied as they say), and its codes; returns its manifest entry.
    fn write_segment(
        &self,
        generation: u64,
        segments: &[LiveSegment],
        incoming: &BTreeMap<&str, Incoming<'_>>,
        stats: &mut CommitStats,
    ) -> Result<SegmentEntry> {
        let name = IndexDir::segment_name(generation);
        let metas: Vec<SpaceMeta> = self
            .space_entries
            .iter()
            .map(|e| SpaceMeta {
                key: e.key.clone(),
                dimensions: e.model.dimensions,
            })
            .collect();
        let keys: Vec<&str> = metas.iter().map(|m| m.key.as_str()).collect();
        let store = self.dir.directory();
        let dims = self.spec.model.dimensions;
        let lexical = self.spec.lexical.is_some();
        let mut writer = if lexical {
            SegmentWriter::create_lexical(store, &name, dims, &metas)?
        } else {
            SegmentWriter::create_with_spaces(store, &name, dims, &metas)?
        };
        for item in incoming.values() {
            match item {
                Incoming::New(record, chunks) => {
                    let terms = file_terms(chunks);
                    let pairs: Vec<Vec<(&str, f32)>> = chunks
                        .iter()
                        .map(|c| {
                            c.lexical
                                .as_ref()
                                .map(LexicalTerms::pairs)
                                .unwrap_or_default()
                        })
                        .collect();
                    let rows = chunks.iter().zip(&pairs).map(|(c, pairs)| NewRow {
                        line_start: c.line_start,
                        line_end: c.line_end,
                        byte_start: c.byte_start,
                        byte_end: c.byte_end,
                        hash: c.hash,
                        vector: &c.vector,
                        symbol: c.symbol.as_deref(),
                        kind: c.kind.as_deref(),
                        lexical: c.lexical.as_ref().map(|l| LexicalRow {
                            terms: pairs,
                            length: l.length(),
                        }),
                    });
                    let spaces: Vec<Vec<f32>> = (0..metas.len())
                        .map(|k| chunks.iter().flat_map(|c| c.spaces[k].clone()).collect())
                        .collect();
                    let spaces: Vec<&[f32]> = spaces.iter().map(Vec::as_slice).collect();
                    writer.add_file_with_spaces((*record).clone(), rows, &terms, &spaces)?;
                }
                Incoming::Copy(record, s, i) => {
                    let reader = &segments[*s].reader;
                    let spaces = copied_spaces(reader, *i, &keys)?;
                    let from = Copied {
                        spaces: &spaces,
                        lexical: lexical.then_some(Terms::Kept),
                    };
                    copy_file(&mut writer, reader, *i, record.clone(), from)?;
                }
                Incoming::Fill(record, s, i, vectors, terms) => {
                    let reader = &segments[*s].reader;
                    // No vectors given: the segment's own, in every space of the spec.
                    let given: Vec<Vec<f32>> = vectors.iter().map(|rows| rows.concat()).collect();
                    let spaces: Vec<&[f32]> = if vectors.is_empty() {
                        copied_spaces(reader, *i, &keys)?
                    } else {
                        given.iter().map(Vec::as_slice).collect()
                    };
                    let from = Copied {
                        spaces: &spaces,
                        lexical: match (lexical, terms.is_empty()) {
                            (false, _) => None,
                            (true, true) => Some(Terms::Kept),
                            (true, false) => Some(Terms::Given(terms)),
                        },
                    };
                    copy_file(&mut writer, reader, *i, record.clone(), from)?;
                }
            }
        }
        let summary = writer.finish()?;
        stats.bytes_written += summary.bytes;
        let written = SegmentReader::open(store, &name, ReadMode::Mmap)?;
        let codes =
            crate::quant::write_codes(store, &name, None, written.vectors(), written.dims())?;
        stats.bytes_written += codes.bytes;
        let mut seg_spaces = Vec::with_capacity(metas.len());
        for (k, meta) in metas.iter().enumerate() {
            let space_codes = crate::quant::write_codes(
                store,
                &name,
                Some(&meta.key),
                written.space_vectors(k),
                meta.dimensions as usize,
            )?;
            stats.bytes_written += space_codes.bytes;
            seg_spaces.push(SegmentSpace {
                key: meta.key.clone(),
                codes: space_codes.bits,
                codes8: space_codes.int8,
                planes: space_codes.bits,
            });
        }
        Ok(SegmentEntry {
            name,
            rows: summary.rows,
            files: summary.files,
            deletes: None,
            codes: codes.bits,
            codes8: codes.int8,
            planes: codes.bits,
            spaces: seg_spaces,
        })
    }
}

/// The vectors of file `i` of `reader` in the spaces `keys`, each back to back.
pub(super) fn copied_spaces<'r>(
    reader: &'r SegmentReader,
    i: usize,
    keys: &[&str],
) -> Result<Vec<&'r [f32]>> {
    let range = reader.file_rows(i)?;
    let (first, end) = (range.start as usize, range.end as usize);
    keys.iter()
        .map(|key| {
            let k = reader.space_index(key).ok_or_else(|| {
                StorageError::corrupt(reader.dir(), format!("no vectors of space {key}"))
            })?;
            let d = reader.spaces()[k].dimensions as usize;
            let rows = reader
                .space_vectors(k)
                .get(first * d..end * d)
                .ok_or_else(|| {
                    StorageError::corrupt(
                        reader.dir(),
                        format!("rows of space {key} out of bounds"),
                    )
                })?;
            if let Some(at) = rows.iter().position(|v| !v.is_finite()) {
                let path = reader.dir().join(space_file(VECTORS_FILE, Some(key)));
                return Err(non_finite(&path, first + at / d.max(1)).into());
            }
            Ok(rows)
        })
        .collect()
}

/// Where a copied file's rows get what the source segment does not give as it is.
struct Copied<'a> {
    /// Its vectors in the writer's additional spaces, back to back per space.
    spaces: &'a [&'a [f32]],
    /// Its rows' lexical terms, for a writer with a lexical space (`None` without).
    lexical: Option<Terms<'a>>,
}

/// A copied file's lexical terms.
enum Terms<'a> {
    /// The source segment's postings (which it must have).
    Kept,
    /// Given by the caller, one per row (the source segment has none).
    Given(&'a [LexicalTerms]),
}

/// Copies file `i` of `reader` (vectors, chunk records, symbols, terms) into `writer`, with
/// `from` giving its vectors in the writer's additional spaces and its lexical terms.
fn copy_file(
    writer: &mut SegmentWriter<'_>,
    reader: &SegmentReader,
    i: usize,
    record: FileRecord,
    from: Copied<'_>,
) -> Result<()> {
    let range = reader.file_rows(i)?;
    // Never carry damage forward: the rows must match the hash recorded when written.
    reader.verify_file_rows(i)?;
    let terms = reader.file_terms(i)?;
    let (first, end) = (range.start as usize, range.end as usize);
    // Each row's lexical terms, borrowed from the source's postings or the caller.
    let lexical: Vec<(Vec<(&str, f32)>, f32)> = match &from.lexical {
        None => Vec::new(),
        Some(Terms::Given(given)) => {
            if given.len() != end - first {
                return Err(IndexError::InvalidVector {
                    what: record.path().to_owned(),
                    reason: format!("lexical terms of {} rows for {}", given.len(), end - first),
                });
            }
            given.iter().map(|t| (t.pairs(), t.length())).collect()
        }
        Some(Terms::Kept) => {
            let postings = reader.lexical().ok_or_else(|| {
                StorageError::corrupt(
                    reader.dir(),
                    format!("{} has no lexical terms to copy", record.path()),
                )
            })?;
            let forward = postings.forward()?;
            (first..end)
                .map(|row| {
                    let length = forward.length(row).ok_or_else(|| {
                        StorageError::corrupt(reader.dir(), format!("row {row} has no length"))
                    })?;
                    Ok((forward.terms_of(row), length))
                })
                .collect::<Result<_>>()?
        }
    };
    let mut rows = Vec::with_capacity(end - first);
    for row in first..end {
        let rec = reader.chunk(row)?;
        let vector = reader.vector(row).ok_or_else(|| {
            StorageError::corrupt(reader.dir(), format!("row {row} out of bounds"))
        })?;
        // A checksum says the bytes are as written, not that they are a vector.
        if vector.iter().any(|v| !v.is_finite()) {
            return Err(non_finite(&reader.dir().join(VECTORS_FILE), row).into());
        }
        let (symbol, kind) = reader.chunk_symbol(row)?;
        rows.push(NewRow {
            line_start: rec.line_start,
            line_end: rec.line_end,
            byte_start: rec.byte_start,
            byte_end: rec.byte_end,
            hash: rec.hash,
            vector,
            symbol,
            kind,
            lexical: lexical.get(row - first).map(|(terms, length)| LexicalRow {
                terms,
                length: *length,
            }),
        });
    }
    writer.add_file_with_spaces(record, rows, &terms, from.spaces)?;
    Ok(())
}

/// For each distinct term of a file, the number of its chunks that contain it.
fn file_terms(chunks: &[NewChunk]) -> Vec<(TermId, u32)> {
    let mut counts: HashMap<TermId, u32> = HashMap::new();
    for c in chunks {
        let mut seen: Vec<TermId> = c.terms.clone();
        seen.sort_unstable();
        seen.dedup();
        for t in seen {
            *counts.entry(t).or_default() += 1;
        }
    }
    let mut v: Vec<(TermId, u32)> = counts.into_iter().collect();
    v.sort_unstable();
    v
}
