//! How `tp index` reads a file and cuts it into chunks, by the index's `chunking` settings: along its syntax
//! ([`turboprop_chunk`]: definitions with their symbol and kind, Markdown by headings, line
//! windows where no grammar applies or the parse failed) or into line windows only.
//!
//! What a chunk is embedded as (`turboprop_chunk::Chunk::embed_text`) is its lines after the
//! words of its symbol path and, for a piece of a split definition, the enclosing signatures:
//! the search finds `deal`'s tail by `Table::deal` too, while the lines shown stay the
//! chunk's own.

use anyhow::{Context, Result};
use turboprop_chunk::{chunk_file, windows_only, Chunked, ChunkerConfig, CHUNKER_VERSION};
use turboprop_embed::{document_terms, BuiltinEmbedder};
use turboprop_index::{Confirmed, Diff, NewChunk};
use turboprop_types::{ChunkMethod, ChunkingConfig, ContentHash, FileRecord};

use crate::discover::{read_source, Candidate, DiscoverOptions, SkipReason};

/// The chunking settings an index records for `config`: with the version of the rules that
/// cut syntax-aware chunks, so an index cut by other rules is re-chunked.
pub fn recorded(config: &ChunkingConfig) -> ChunkingConfig {
    ChunkingConfig {
        rules: match config.method {
            ChunkMethod::Syntax => CHUNKER_VERSION,
            ChunkMethod::Windows => 0,
        },
        ..config.clone()
    }
}

/// Cuts the file at `path` (relative to the repository; its extension picks the grammar)
/// with contents `bytes` as `config` says.
///
/// ```
/// use turboprop_types::{ChunkMethod, ChunkingConfig};
///
/// let source = b"/// A card table.\nstruct Table;\n\nimpl Table {\n    fn deal(&self) {}\n}\n";
/// let chunked = turboprop_cli::chunk_source("src/table.rs", source, &ChunkingConfig::default());
/// // Small definitions are grouped; the group takes its first definition's symbol.
/// assert_eq!(chunked.chunks[0].symbol.as_deref(), Some("Table"));
/// assert_eq!(chunked.chunks[0].kind, Some("struct"));
///
/// let windows = ChunkingConfig { method: ChunkMethod::Windows, ..ChunkingConfig::default() };
/// let chunked = turboprop_cli::chunk_source("src/table.rs", source, &windows);
/// assert_eq!((chunked.chunks.len(), chunked.chunks[0].symbol.as_ref()), (1, None));
/// ```
pub fn chunk_source(path: &str, bytes: &[u8], config: &ChunkingConfig) -> Chunked {
    match config.method {
        ChunkMethod::Syntax => chunk_file(path, bytes, &chunker(config)),
        ChunkMethod::Windows => windows_only(bytes, config),
    }
}

/// The chunker's settings for the index's.
fn chunker(config: &ChunkingConfig) -> ChunkerConfig {
    ChunkerConfig {
        max_tokens: config.max_tokens as usize,
        min_tokens: config.min_tokens as usize,
        windows: config.clone(),
        ..ChunkerConfig::default()
    }
}

/// A file after reading, before embedding.
pub(crate) enum Read {
    /// New or changed content (or unchanged content to fill): its chunks (new content's with
    /// their lexical vectors and exact terms, the model's vectors still empty) and their
    /// texts.
    Chunked {
        record: FileRecord,
        chunks: Vec<NewChunk>,
        texts: Vec<String>,
        /// Unchanged content needing only the model's vectors.
        fill: bool,
        /// Why a file with a grammar was cut into line windows (or runs of lines), for
        /// `tp index --verbose`.
        note: Option<String>,
    },
    /// Stat changed, content did not.
    Touched(FileRecord),
    /// Could not be indexed now.
    Skipped(SkipReason),
}

/// Reads the file of `c` (indexed as `stored`, if it was) and cuts it as `chunking` says: its
/// new chunks with the texts for the model, or only its new stat when the content is
/// unchanged and no `fill` is asked for. New content's chunks come with their `lexical`
/// vectors and exact terms (one pass of the analysis over each text, here in the parallel
/// reading, as they need no model); content kept and filled, with its exact terms only.
pub(crate) fn read_and_chunk(
    c: &Candidate,
    stored: Option<&FileRecord>,
    fill: bool,
    chunking: &ChunkingConfig,
    opts: &DiscoverOptions,
    lexical: &BuiltinEmbedder,
) -> Result<Read> {
    let source = match read_source(c, opts) {
        Ok(s) => s,
        Err(reason) => return Ok(Read::Skipped(reason)),
    };
    let record = FileRecord::new(&c.rel_path, source.size, source.mtime_ns, source.hash)
        .with_context(|| format!("cannot record {}", c.rel_path))?;
    let same = stored.is_some_and(|old| Diff::confirm(old, source.hash) == Confirmed::Touch);
    if same && !fill {
        return Ok(Read::Touched(record));
    }
    let chunked = chunk_source(&c.rel_path, &source.bytes, chunking);
    let texts: Vec<String> = chunked
        .chunks
        .iter()
        .map(|ch| ch.embed_text(&source.bytes))
        .collect();
    let chunks = chunked
        .chunks
        .iter()
        .zip(&texts)
        .map(|(ch, text)| {
            let symbol = ch.symbol.as_deref();
            let (vector, terms, exact) = if same {
                (Vec::new(), Vec::new(), document_terms(text, symbol))
            } else {
                lexical.embed_document_with_lexical(text, symbol)
            };
            NewChunk {
                lexical: Some(exact),
                line_start: ch.line_start,
                line_end: ch.line_end,
                byte_start: ch.bytes.start as u64,
                byte_end: ch.bytes.end as u64,
                hash: ContentHash::of(&source.bytes[ch.bytes.clone()]),
                vector,
                terms,
                spaces: Vec::new(),
                symbol: ch.symbol.clone(),
                kind: ch.kind.map(str::to_owned),
            }
        })
        .collect();
    Ok(Read::Chunked {
        record,
        chunks,
        texts,
        fill: same,
        note: chunked.note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_piece_of_a_split_definition_is_embedded_with_its_signature() {
        let body: String = (0..200)
            .map(|i| format!("    let value_{i} = compute_{i}(input, {i});\n"))
            .collect();
        let source = format!("impl Table {{\n    fn deal(&mut self) {{\n{body}    }}\n}}\n");
        let chunked = chunk_source("t.rs", source.as_bytes(), &ChunkingConfig::default());
        assert!(chunked.chunks.len() > 2, "{:?}", chunked.chunks);
        let tail = chunked.chunks.last().expect("chunks");
        let text = tail.embed_text(source.as_bytes());
        assert!(text.contains("fn deal(&mut self)"), "{text}");
        let shown = &source[tail.bytes.clone()];
        assert!(!shown.contains("fn deal"), "{shown}");
    }

    #[test]
    fn the_recorded_rules_change_only_with_syntax_chunks() {
        let syntax = recorded(&ChunkingConfig::default());
        assert_eq!(syntax.rules, CHUNKER_VERSION);
        let windows = ChunkingConfig {
            method: ChunkMethod::Windows,
            ..ChunkingConfig::default()
        };
        assert_eq!(recorded(&windows).rules, 0);
    }
}
