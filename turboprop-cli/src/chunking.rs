//! How `tp index` cuts a file into chunks, by the index's `chunking` settings: along its syntax
//! ([`turboprop_chunk`]: definitions with their symbol and kind, Markdown by headings, line
//! windows where no grammar applies or the parse failed) or into line windows only.
//!
//! What a chunk is embedded as ([`embed_text`]) is its lines with, for a piece of a split
//! definition, the enclosing signatures before them: the search finds `deal`'s tail by
//! `Table::deal` too, while the lines shown stay the chunk's own.

use turboprop_chunk::{chunk_file, Chunk, Chunked, ChunkerConfig, Method, CHUNKER_VERSION};
use turboprop_types::{line_windows, ChunkMethod, ChunkingConfig};

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
        ChunkMethod::Windows => Chunked {
            chunks: line_windows(bytes, config)
                .into_iter()
                .map(|w| Chunk {
                    line_start: w.line_start,
                    line_end: w.line_end,
                    bytes: w.bytes,
                    symbol: None,
                    kind: None,
                    context: None,
                })
                .collect(),
            method: Method::Windows,
            note: None,
        },
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

/// The text a chunk is embedded as: the enclosing signatures of a piece of a split definition
/// (one per line), then the chunk's own bytes (invalid UTF-8 replaced).
///
/// ```
/// use turboprop_types::ChunkingConfig;
///
/// let source = b"def deal(cards):\n    return cards.pop()\n";
/// let chunked = turboprop_cli::chunk_source("table.py", source, &ChunkingConfig::default());
/// let text = turboprop_cli::embed_text(&chunked.chunks[0], source);
/// assert_eq!(text.as_bytes(), source);
/// ```
pub fn embed_text(chunk: &Chunk, bytes: &[u8]) -> String {
    let own = bytes
        .get(chunk.bytes.clone())
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    match &chunk.context {
        Some(context) => format!("{context}\n{own}"),
        None => own.into_owned(),
    }
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
        let text = embed_text(tail, source.as_bytes());
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
