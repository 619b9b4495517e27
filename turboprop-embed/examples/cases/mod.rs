//! Evaluation cases from real crates, shared by the evaluation examples
//! (`eval_lexical` and `fusion_study` here, `eval_modes` in turboprop-cli): for every function with a `///` doc
//! comment, the first sentence of the comment is a query and the function's `fn` line is
//! what a search should find. The `blanked` variant empties every `///` line (keeping the
//! line, so line numbers do not move), so that only the code itself can match.
// Each example uses a part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use turboprop_embed::analyze_query;
use turboprop_types::{line_windows, ChunkingConfig};

/// Doc comments kept or blanked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Variant {
    /// The crate as published.
    WithDocs,
    /// Every `///` line emptied.
    Blanked,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::WithDocs => "doc comments present",
            Variant::Blanked => "doc comments blanked",
        }
    }
}

/// A 40-line window (overlap 10) of a crate file, as `tp index` cuts it.
pub struct Chunk {
    pub file: usize,
    pub line_start: u32,
    pub line_end: u32,
    pub text: String,
}

/// A query and the line of the function it describes.
pub struct Query {
    pub file: usize,
    pub fn_line: u32,
    pub text: String,
}

/// A crate's chunks and queries.
pub struct Corpus {
    pub chunks: Vec<Chunk>,
    pub queries: Vec<Query>,
}

impl Corpus {
    /// Loads the `.rs` files under `dir` in `variant`.
    pub fn load(dir: &Path, variant: Variant) -> Corpus {
        let mut files = Vec::new();
        collect_rs_files(dir, &mut files);
        files.sort();
        let mut chunks = Vec::new();
        let mut queries = Vec::new();
        for (file, path) in files.iter().enumerate() {
            let Ok(text) = std::fs::read_to_string(path) else {
                continue;
            };
            let lines: Vec<&str> = text.lines().collect();
            for (fn_line, sentence) in documented_functions(&lines) {
                queries.push(Query {
                    file,
                    fn_line,
                    text: sentence,
                });
            }
            let text = match variant {
                Variant::WithDocs => text,
                Variant::Blanked => blank_doc_comments(&text),
            };
            for w in line_windows(text.as_bytes(), &ChunkingConfig::default()) {
                chunks.push(Chunk {
                    file,
                    line_start: w.line_start,
                    line_end: w.line_end,
                    text: text[w.bytes].to_string(),
                });
            }
        }
        Corpus { chunks, queries }
    }
}

/// Every `.rs` file under `dir` (hidden folders and `target` skipped), unsorted.
pub fn collect_rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect_rs_files(&path, out),
            Ok(t) if t.is_file() && name.ends_with(".rs") => out.push(path),
            _ => {}
        }
    }
}

/// `(1-based fn line, first sentence of its doc comment)` for every documented function.
pub fn documented_functions(lines: &[&str]) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !is_fn_line(line) {
            continue;
        }
        let mut j = i;
        while j > 0 && lines[j - 1].trim_start().starts_with("#[") {
            j -= 1;
        }
        let mut doc = Vec::new();
        while j > 0 {
            let t = lines[j - 1].trim_start();
            if t.starts_with("///") && !t.starts_with("////") {
                doc.push(t.trim_start_matches("///").trim());
                j -= 1;
            } else {
                break;
            }
        }
        doc.reverse();
        let sentence = first_sentence(&doc);
        let mut words = 0;
        analyze_query(&sentence, |_, _| words += 1);
        if words > 0 {
            out.push((i as u32 + 1, sentence));
        }
    }
    out
}

/// Whether `line` starts a function definition.
pub fn is_fn_line(line: &str) -> bool {
    let mut t = line.trim_start();
    if let Some(rest) = t.strip_prefix("pub") {
        t = if let Some(r) = rest.strip_prefix('(') {
            match r.find(')') {
                Some(k) => r[k + 1..].trim_start(),
                None => return false,
            }
        } else if rest.starts_with(' ') {
            rest.trim_start()
        } else {
            return false;
        };
    }
    for q in [
        "default ",
        "const ",
        "async ",
        "unsafe ",
        "extern \"C\" ",
        "extern ",
    ] {
        if let Some(r) = t.strip_prefix(q) {
            t = r.trim_start();
        }
    }
    t.strip_prefix("fn ")
        .and_then(|r| r.chars().next())
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// The first sentence of the first paragraph of a doc comment.
pub fn first_sentence(doc: &[&str]) -> String {
    let mut para = String::new();
    for line in doc {
        if line.is_empty() {
            if para.is_empty() {
                continue;
            }
            break;
        }
        if !para.is_empty() {
            para.push(' ');
        }
        para.push_str(line);
    }
    let bytes = para.as_bytes();
    for (k, &b) in bytes.iter().enumerate() {
        if b == b'.' && (k + 1 == bytes.len() || bytes[k + 1] == b' ') {
            return para[..=k].to_string();
        }
    }
    para
}

/// Empties every `///` line, keeping the line so that line numbers do not move.
pub fn blank_doc_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with("///") {
            let indent = &line[..line.len() - trimmed.len()];
            out.push_str(indent);
            out.push_str("///");
            if line.ends_with('\n') {
                out.push('\n');
            }
        } else {
            out.push_str(line);
        }
    }
    out
}
