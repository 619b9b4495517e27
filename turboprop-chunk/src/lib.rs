//! Syntax-aware chunking: a source file cut into chunks that are definitions.
//!
//! [`chunk_file`] picks a method by file extension:
//! - **Syntax** ([`Method::Syntax`]): Rust, Python, TypeScript/TSX, JavaScript/JSX, Go, Java,
//!   C and C++ are parsed with tree-sitter. A chunk is one definition (function, method,
//!   class, struct, enum, impl, trait, interface, type, module, constant) with its doc comment,
//!   attributes or decorators and signature. A definition over the token budget is split at
//!   its inner boundaries (the methods of a class, the statements of a body), each piece
//!   carrying the enclosing signatures as [`Chunk::context`]. Small neighbouring definitions
//!   and top-level statements are grouped until a group reaches [`ChunkerConfig::min_tokens`].
//! - **Markdown** ([`Method::Markdown`], `.md`, `.markdown`): one chunk per heading's section,
//!   grouped and split the same way.
//! - **Windows** ([`Method::Windows`]): other files, files whose parse has errors and files
//!   over [`ChunkerConfig::max_parse_bytes`] keep today's overlapping line windows
//!   (`turboprop_types::line_windows`), with a [`Chunked::note`] saying why when a grammar
//!   was not used.
//! - **Lines** ([`Method::Lines`]): a file with a line over [`ChunkerConfig::max_line_bytes`]
//!   (minified or generated) is cut into runs of whole lines within the budget, and each such
//!   line into pieces of about the budget (3 bytes a token): the only chunks that end inside a line
//!   and share a line number (their byte ranges are still disjoint).
//!
//! With the Syntax and Markdown methods, chunks are sorted, never share a line, never end
//! inside a line, and together cover every non-blank line (blank lines between chunks are left
//! out). Symbols are paths joined with `::` in every language (`Table::deal` for a method of
//! `Table` in Rust, Python, Java, C++ or Go); a group of several definitions takes the symbol
//! and kind of its first definition, a group without one those of the definition it lies in
//! (none at the top level). Chunking is deterministic and never panics; parsing is bounded by
//! a step budget proportional to the file size, not by a clock.
//!
//! ```
//! use turboprop_chunk::{chunk_file, ChunkerConfig, Method};
//!
//! let source = "/// A card table.\npub struct Table {\n    seats: u8,\n}\n";
//! let chunked = chunk_file("src/table.rs", source.as_bytes(), &ChunkerConfig::default());
//! assert!(matches!(chunked.method, Method::Syntax(_)));
//! let chunk = &chunked.chunks[0];
//! assert_eq!((chunk.line_start, chunk.line_end), (1, 4));
//! assert_eq!(chunk.symbol.as_deref(), Some("Table"));
//! assert_eq!(chunk.kind, Some("struct"));
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod budget;
mod fallback;
mod group;
mod lang;
mod lines;
mod markdown;
mod syntax;

use std::ops::Range;

pub use budget::estimate_tokens;
pub use lang::{language_for, Lang};
use turboprop_types::ChunkingConfig;

use crate::fallback::line_number;
use crate::lines::Lines;
use crate::syntax::ParseFailure;

/// The version of the chunking rules. An index records it (`chunking.rules` in its manifest);
/// a different value means the index was cut differently, and the next `tp index` re-chunks
/// every file. Bump it with any change that moves
/// a chunk boundary, a symbol, a kind, a context or the text a chunk is embedded as
/// ([`Chunk::embed_text`]).
pub const CHUNKER_VERSION: u32 = 3;

/// How files are cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkerConfig {
    /// The embedding model's token budget per chunk, as [`estimate_tokens`] counts (256).
    /// Only a single line over it makes a bigger chunk.
    pub max_tokens: usize,
    /// Small units are grouped until a group reaches this many tokens (a third of the budget,
    /// 85); a definition this large is a chunk alone.
    pub min_tokens: usize,
    /// Files larger than this are not parsed but cut into line windows (1 MiB).
    pub max_parse_bytes: usize,
    /// A file with a line longer than this is cut by [`Method::Lines`] (4 KiB).
    pub max_line_bytes: usize,
    /// The line windows used where no structure is (the index's chunking settings).
    pub windows: ChunkingConfig,
}

impl Default for ChunkerConfig {
    fn default() -> Self {
        ChunkerConfig {
            max_tokens: 256,
            min_tokens: 85,
            max_parse_bytes: 1024 * 1024,
            max_line_bytes: 4096,
            windows: ChunkingConfig::default(),
        }
    }
}

impl ChunkerConfig {
    /// The defaults, with `max_tokens` and `min_tokens` for a model's token budget.
    ///
    /// ```
    /// let config = turboprop_chunk::ChunkerConfig::for_budget(512);
    /// assert_eq!((config.max_tokens, config.min_tokens), (512, 170));
    /// ```
    pub fn for_budget(max_tokens: usize) -> ChunkerConfig {
        ChunkerConfig {
            max_tokens,
            min_tokens: max_tokens / 3,
            ..ChunkerConfig::default()
        }
    }
}

/// One chunk of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// First line, 1-based.
    pub line_start: u32,
    /// Last line, 1-based, inclusive.
    pub line_end: u32,
    /// The chunk's bytes in the file: whole lines (the last one's newline included), except
    /// for the pieces of an over-long line ([`Method::Lines`]).
    pub bytes: Range<usize>,
    /// Symbol path, `::`-separated (`Table::deal`); `None` for top-level statements.
    pub symbol: Option<String>,
    /// `function`, `method`, `class`, `struct`, `enum`, `trait`, `interface`, `impl`, `type`,
    /// `module`, `const`, `macro` or `section`; `None` with `symbol`.
    pub kind: Option<&'static str>,
    /// The signatures of the definitions a piece of a split definition lies in, outermost
    /// first, one per line (`impl Table` / `fn deal(&mut self)`): text to embed with the chunk,
    /// not to show as its lines.
    pub context: Option<String>,
}

impl Chunk {
    /// The text to embed for this chunk of `file` (the bytes it was cut from): the words of
    /// its symbol path (`Table deal`: the type a method belongs to is otherwise missing from
    /// a method's lines), the enclosing signatures of a piece of a split definition, then the
    /// chunk's own bytes (invalid UTF-8 replaced). The lines shown for a hit are the chunk's
    /// own; [`CHUNKER_VERSION`] changes when this text does.
    ///
    /// ```
    /// use turboprop_chunk::{chunk_file, ChunkerConfig};
    ///
    /// let source = b"class Table:\n    def deal(self):\n        return self.deck.pop()\n";
    /// let chunked = chunk_file("table.py", source, &ChunkerConfig::default());
    /// let text = chunked.chunks[0].embed_text(source);
    /// assert!(text.starts_with("Table\n"), "{text}");
    /// assert!(text.ends_with("return self.deck.pop()\n"), "{text}");
    /// ```
    pub fn embed_text(&self, file: &[u8]) -> String {
        let own = file
            .get(self.bytes.clone())
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let mut text = String::with_capacity(own.len() + 64);
        if let Some(symbol) = &self.symbol {
            text.push_str(&symbol.replace("::", " "));
            text.push('\n');
        }
        if let Some(context) = &self.context {
            text.push_str(context);
            text.push('\n');
        }
        text.push_str(&own);
        text
    }
}

/// How a file was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// By its syntax tree.
    Syntax(Lang),
    /// By Markdown headings.
    Markdown,
    /// Overlapping line windows (`turboprop_types::line_windows`).
    Windows,
    /// Runs of whole lines within the budget, over-long lines cut by bytes.
    Lines,
}

/// The chunks of one file and how they were made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunked {
    /// The chunks, sorted by position.
    pub chunks: Vec<Chunk>,
    /// How the file was cut.
    pub method: Method,
    /// Why a file with a grammar was not cut by it (one line naming the file), for verbose
    /// output.
    pub note: Option<String>,
}

/// Cuts `text` into the overlapping line windows of `config` only
/// (`turboprop_types::line_windows`), as chunks without symbol, kind or context: the chunking
/// of an index whose `chunking.method` is `windows`.
///
/// ```
/// use turboprop_chunk::{windows_only, Method};
/// use turboprop_types::ChunkingConfig;
///
/// let text = "fn a() {}\n".repeat(50);
/// let chunked = windows_only(text.as_bytes(), &ChunkingConfig::default());
/// assert_eq!(chunked.method, Method::Windows);
/// let spans: Vec<_> = chunked.chunks.iter().map(|c| (c.line_start, c.line_end)).collect();
/// assert_eq!(spans, vec![(1, 40), (31, 50)]);
/// ```
pub fn windows_only(text: &[u8], config: &ChunkingConfig) -> Chunked {
    Chunked {
        chunks: fallback::windows(text, config),
        method: Method::Windows,
        note: None,
    }
}

/// Cuts `text`, the contents of the file at `path` (used only for its extension and in notes),
/// into chunks. Never fails and never panics, whatever the bytes.
///
/// ```
/// use turboprop_chunk::{chunk_file, ChunkerConfig, Method};
///
/// let source = b"def deal(cards):\n    return cards.pop()\n";
/// let chunked = chunk_file("table.py", source, &ChunkerConfig::default());
/// assert_eq!(chunked.method, Method::Syntax(turboprop_chunk::Lang::Python));
/// assert_eq!(chunked.chunks[0].symbol.as_deref(), Some("deal"));
///
/// // A syntax error: line windows, and a note saying why.
/// let broken = chunk_file("broken.py", b"def deal(:\n", &ChunkerConfig::default());
/// assert_eq!(broken.method, Method::Windows);
/// assert!(broken.note.unwrap().contains("broken.py"));
/// ```
pub fn chunk_file(path: &str, text: &[u8], config: &ChunkerConfig) -> Chunked {
    let lang = language_for(path);
    let markdown = matches!(
        lang::extension(path).as_deref(),
        Some("md" | "markdown" | "mdown" | "mkd")
    );
    let windows = |note: Option<String>| Chunked {
        chunks: fallback::windows(text, &config.windows),
        method: Method::Windows,
        note,
    };
    if text.is_empty() {
        return windows(None);
    }
    let lines = Lines::new(text);
    let (longest, row) = lines.longest();
    if longest > config.max_line_bytes {
        let note = format!(
            "{path}: line {} is {longest} bytes (minified or generated?), over {}: cut into \
             runs of lines and pieces of that line",
            line_number(row),
            config.max_line_bytes
        );
        return Chunked {
            chunks: fallback::packed(text, &lines, config.max_tokens, piece_bytes(config)),
            method: Method::Lines,
            note: Some(note),
        };
    }
    let max = config.max_tokens.max(1);
    let min = config.min_tokens.min(max);
    if markdown {
        let pieces = markdown::chunk_markdown(text, &lines, max, min);
        return Chunked {
            chunks: to_chunks(pieces, &lines),
            method: Method::Markdown,
            note: None,
        };
    }
    let Some(lang) = lang else {
        return windows(None);
    };
    if text.len() > config.max_parse_bytes {
        return windows(Some(format!(
            "{path}: {} bytes is over the {}-byte limit for parsing: cut into line windows",
            text.len(),
            config.max_parse_bytes
        )));
    }
    match syntax::parse(lang, text) {
        Ok(tree) => {
            let pieces = syntax::chunk_tree(lang, &tree, text, &lines, max, min);
            Chunked {
                chunks: to_chunks(pieces, &lines),
                method: Method::Syntax(lang),
                note: None,
            }
        }
        Err(failure) => {
            let why = match failure {
                ParseFailure::Grammar => "the grammar could not be loaded",
                ParseFailure::TooSlow => "the parse took too many steps",
                ParseFailure::Errors => "the parse has syntax errors",
            };
            windows(Some(format!(
                "{path}: {why} ({}): cut into line windows",
                lang.name()
            )))
        }
    }
}

fn to_chunks(pieces: Vec<group::Piece>, lines: &Lines) -> Vec<Chunk> {
    pieces
        .into_iter()
        .map(|p| Chunk {
            line_start: line_number(p.first),
            line_end: line_number(p.last),
            bytes: lines.bytes(p.first, p.last),
            symbol: p.symbol,
            kind: p.kind,
            context: p.context,
        })
        .collect()
}

/// The size of the pieces an over-long line is cut into: about the token budget at 3 bytes a
/// token (minified code is dense), within `64..=max_line_bytes`.
fn piece_bytes(config: &ChunkerConfig) -> usize {
    config
        .max_tokens
        .saturating_mul(3)
        .clamp(64, config.max_line_bytes.max(64))
}
