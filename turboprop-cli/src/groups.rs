//! How `tp index` turns a group of files into what the index writer takes: read, cut and
//! given their lexical vectors and exact terms in parallel, embedded by the model in one call
//! ([`embed_group`]), then handed to the writer file by file ([`Tally::record`]).

use anyhow::{Context, Result};
use rayon::prelude::*;
use turboprop_embed::BuiltinEmbedder;
use turboprop_index::{IndexWriter, Lacking, NewChunk};
use turboprop_types::{ChunkingConfig, Embedder, FileRecord, LexicalTerms};

use crate::chunking::{read_and_chunk, Read};
use crate::discover::{Candidate, DiscoverOptions, SkipReason};
use crate::indexer::Report;
use crate::repo::explain;

/// What happened to one file that had to be read.
pub(crate) enum Outcome {
    /// New or changed content: its chunks, embedded.
    Embedded(FileRecord, Vec<NewChunk>),
    /// Unchanged content whose segment lacks the model's space or the exact lexical space:
    /// its chunks' vectors in the spec's additional spaces (`[space][chunk]`) and their
    /// lexical terms.
    Filled(FileRecord, Vec<Vec<Vec<f32>>>, Vec<LexicalTerms>),
    /// Stat changed, content did not.
    Touched(FileRecord),
    /// Could not be indexed now.
    Skipped(SkipReason),
}

/// The embedders of an update: the built-in lexical one (the primary space, used as the
/// files are read: see `read_and_chunk`) and the transformer model of the additional space,
/// if the index has one.
#[derive(Clone, Copy)]
pub(crate) struct Embedders<'a> {
    pub(crate) lexical: &'a BuiltinEmbedder,
    pub(crate) model: Option<&'a dyn Embedder>,
}

/// A file to read: its candidate, its indexed record (if any), and what its segment lacks
/// (a fill, should its content be unchanged).
pub(crate) type Work<'a> = (&'a Candidate, Option<&'a FileRecord>, Option<Lacking>);

/// The outcome of every file of a group.
pub(crate) struct Group<'a> {
    outcomes: Vec<(&'a Candidate, bool, Outcome)>,
    pub(crate) chunks: usize,
    /// Chunks whose model vectors were reused.
    pub(crate) reused: usize,
    /// Why files with a grammar were not cut by it.
    pub(crate) notes: Vec<String>,
}

/// Model vectors of indexed chunks, by file and chunk hash (see
/// `IndexWriter::reusable_vectors`).
pub(crate) type Reuse = std::collections::HashMap<
    String,
    std::collections::HashMap<turboprop_types::ContentHash, Vec<Vec<f32>>>,
>;

/// Reads and chunks the files of a group in parallel (each chunk of new content with its
/// lexical vector and exact terms from one pass of the analysis), then embeds all their
/// chunks in one call to the model, so it sorts and batches chunks across files. Files being
/// filled are embedded by the model only.
pub(crate) fn embed_group<'a>(
    group: &[Work<'a>],
    chunking: &ChunkingConfig,
    embedders: Embedders<'_>,
    opts: &DiscoverOptions,
    reuse: &Reuse,
) -> Result<Group<'a>> {
    let read: Vec<(&Candidate, bool, Read)> = group
        .par_iter()
        .map(|&(c, stored, fill)| {
            Ok((
                c,
                stored.is_some(),
                read_and_chunk(c, stored, fill.is_some(), chunking, opts, embedders.lexical)?,
            ))
        })
        .collect::<Result<_>>()?;
    // Whether a filled file lacks the model's vectors (else only its lexical postings).
    let needs_model: Vec<bool> = group
        .iter()
        .map(|(_, _, fill)| fill.is_some_and(|l| l.spaces))
        .collect();
    let notes = read
        .iter()
        .filter_map(|(_, _, r)| match r {
            Read::Chunked { note, .. } => note.clone(),
            _ => None,
        })
        .collect();
    let texts = |fills: bool| -> Vec<&str> {
        read.iter()
            .zip(&needs_model)
            .flat_map(|((_, _, r), &model)| match r {
                Read::Chunked { texts, fill, .. } if *fill == fills && (!fills || model) => {
                    texts.as_slice()
                }
                _ => &[],
            })
            .map(String::as_str)
            .collect()
    };
    let (new_texts, fill_texts) = (texts(false), texts(true));
    // Per new chunk (in the order of `new_texts`): its kept model vectors, if any.
    let kept: Vec<Option<&Vec<Vec<f32>>>> = read
        .iter()
        .flat_map(|(c, _, r)| match r {
            Read::Chunked {
                chunks,
                fill: false,
                ..
            } => {
                // Kept by the chunk's own bytes. A piece of a split definition is embedded
                // with its enclosing signatures too, which are not part of that check: a
                // renamed class keeps its methods' model vectors until they change (their
                // lexical vectors are always made afresh).
                let of_file = reuse.get(&c.rel_path);
                chunks
                    .iter()
                    .map(|ch| of_file.and_then(|m| m.get(&ch.hash)))
                    .collect::<Vec<_>>()
            }
            _ => Vec::new(),
        })
        .collect();
    let to_embed: Vec<&str> = new_texts
        .iter()
        .zip(&kept)
        .filter(|(_, k)| k.is_none())
        .map(|(t, _)| *t)
        .collect();
    let reused = new_texts.len() - to_embed.len();
    let context = || match group.first() {
        Some((c, _, _)) if group.len() > 1 => format!(
            "cannot embed {} and {} other files",
            c.rel_path,
            group.len() - 1
        ),
        Some((c, _, _)) => format!("cannot embed {}", c.rel_path),
        None => "cannot embed".to_owned(),
    };
    // The model embeds new (not kept) and filled chunks in one call.
    let model = match embedders.model {
        Some(m) => {
            let all: Vec<&str> = to_embed.iter().chain(&fill_texts).copied().collect();
            let v = m.embed_documents(&all).with_context(context)?;
            if v.len() != all.len() {
                anyhow::bail!(
                    "model {} returned {} vectors for {} chunks",
                    m.model_id(),
                    v.len(),
                    all.len()
                );
            }
            Some(v)
        }
        None => None,
    };
    let (mut model_new, mut model_fill) = match model {
        Some(mut v) => {
            let fill = v.split_off(to_embed.len());
            (Some(v.into_iter()), Some(fill.into_iter()))
        }
        None => (None, None),
    };
    let mut kept = kept.into_iter();
    let chunks = new_texts.len() + fill_texts.len();
    let outcomes = read
        .into_iter()
        .zip(group)
        .map(|((c, was_indexed, r), &(_, _, lacks))| {
            let outcome = match r {
                Read::Touched(record) => Outcome::Touched(record),
                Read::Skipped(reason) => Outcome::Skipped(reason),
                Read::Chunked {
                    record,
                    chunks,
                    texts,
                    fill: true,
                    ..
                } => {
                    let lacks = lacks.unwrap_or(Lacking {
                        spaces: true,
                        lexical: true,
                    });
                    // Empty vectors or terms: the segment's own are kept.
                    let vectors = match model_fill.as_mut() {
                        Some(m) if lacks.spaces => vec![m.by_ref().take(texts.len()).collect()],
                        _ => Vec::new(),
                    };
                    let lexical = if lacks.lexical {
                        chunks.into_iter().filter_map(|c| c.lexical).collect()
                    } else {
                        Vec::new()
                    };
                    Outcome::Filled(record, vectors, lexical)
                }
                Read::Chunked {
                    record,
                    chunks,
                    texts,
                    fill: false,
                    ..
                } => {
                    let n = texts.len();
                    let spaces: Vec<Vec<Vec<f32>>> = match model_new.as_mut() {
                        Some(m) => kept
                            .by_ref()
                            .take(n)
                            .map(|k| match k {
                                Some(v) => v.clone(),
                                None => m.next().into_iter().collect(),
                            })
                            .collect(),
                        None => {
                            kept.by_ref().take(n).for_each(drop);
                            vec![Vec::new(); n]
                        }
                    };
                    let chunks = chunks
                        .into_iter()
                        .zip(spaces)
                        .map(|(c, spaces)| NewChunk { spaces, ..c })
                        .collect();
                    Outcome::Embedded(record, chunks)
                }
            };
            (c, was_indexed, outcome)
        })
        .collect();
    Ok(Group {
        outcomes,
        chunks,
        reused,
        notes,
    })
}

/// Counts of what an update did, summed over its groups.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) new: usize,
    pub(crate) changed: usize,
    pub(crate) chunks: usize,
    pub(crate) touched: usize,
    pub(crate) skipped: usize,
    pub(crate) filled: usize,
    pub(crate) filled_lexical: usize,
}

impl Tally {
    /// Hands a group's outcomes to the writer, counting them.
    pub(crate) fn record(
        &mut self,
        writer: &mut IndexWriter,
        group: Group<'_>,
        index_dir: &std::path::Path,
        report: &dyn Report,
    ) -> Result<()> {
        for (c, was_indexed, out) in group.outcomes {
            match out {
                Outcome::Embedded(record, new_chunks) => {
                    if was_indexed {
                        self.changed += 1;
                    } else {
                        self.new += 1;
                    }
                    self.chunks += new_chunks.len();
                    writer
                        .put_file(record, new_chunks)
                        .map_err(|e| explain(e, index_dir))?;
                }
                Outcome::Filled(record, vectors, lexical) => {
                    self.filled += 1;
                    if vectors.is_empty() {
                        self.filled_lexical += 1;
                    }
                    self.chunks += vectors.first().map_or(lexical.len(), Vec::len);
                    writer
                        .fill_file(record, vectors, lexical)
                        .map_err(|e| explain(e, index_dir))?;
                }
                Outcome::Touched(record) => {
                    self.touched += 1;
                    writer.touch_file(record);
                }
                Outcome::Skipped(reason) => {
                    self.skipped += 1;
                    report.warn(&format!("skipped {}: {reason}", c.rel_path));
                    if was_indexed {
                        writer.remove_file(&c.rel_path);
                    }
                }
            }
        }
        Ok(())
    }
}
