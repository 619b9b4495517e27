//! Shared test helpers: a compact rendering of chunks for snapshots and the invariants every
//! chunking must keep.

#![allow(dead_code)]

use turboprop_chunk::{estimate_tokens, Chunked, Method};

/// One line per chunk: `12-30 method Table::deal ~140 | impl Table`.
pub fn render(chunked: &Chunked, text: &[u8]) -> String {
    let mut out = format!("method: {:?}\n", chunked.method);
    if let Some(note) = &chunked.note {
        out.push_str(&format!("note: {note}\n"));
    }
    for c in &chunked.chunks {
        let tokens = estimate_tokens(&text[c.bytes.clone()]);
        out.push_str(&format!(
            "{}-{} {} {} ~{tokens}",
            c.line_start,
            c.line_end,
            c.kind.unwrap_or("-"),
            c.symbol.as_deref().unwrap_or("-"),
        ));
        if let Some(context) = &c.context {
            out.push_str(&format!(" | {}", context.replace('\n', " / ")));
        }
        out.push('\n');
    }
    out
}

/// The 0-based rows of `text` as byte ranges (a trailing newline does not start a row).
pub fn rows(text: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut rows = Vec::new();
    let mut start = 0;
    for (i, &b) in text.iter().enumerate() {
        if b == b'\n' {
            rows.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < text.len() {
        rows.push(start..text.len());
    }
    rows
}

/// Checks the invariants; returns a description of the first broken one.
pub fn check(chunked: &Chunked, text: &[u8]) -> Result<(), String> {
    let rows = rows(text);
    let n = rows.len() as u32;
    let disjoint = !matches!(chunked.method, Method::Windows);
    let mut covered = vec![false; rows.len()];
    let mut prev: Option<&turboprop_chunk::Chunk> = None;
    for c in &chunked.chunks {
        if c.line_start < 1 || c.line_start > c.line_end || c.line_end > n {
            return Err(format!("lines out of range: {c:?} (file has {n})"));
        }
        if c.bytes.start >= c.bytes.end || c.bytes.end > text.len() {
            return Err(format!("bytes out of range: {c:?}"));
        }
        let first = &rows[c.line_start as usize - 1];
        let last = &rows[c.line_end as usize - 1];
        let piece = chunked.method == Method::Lines && c.line_start == c.line_end;
        if piece {
            if c.bytes.start < first.start || c.bytes.end > first.end {
                return Err(format!("piece outside its line: {c:?}"));
            }
        } else if c.bytes != (first.start..last.end) {
            return Err(format!(
                "bytes {:?} are not lines {c:?}",
                first.start..last.end
            ));
        }
        if text[c.bytes.clone()]
            .iter()
            .all(|b| b.is_ascii_whitespace())
        {
            return Err(format!("blank chunk: {c:?}"));
        }
        if let Some(p) = prev {
            if (p.line_start, p.bytes.start) > (c.line_start, c.bytes.start) {
                return Err(format!("not sorted: {p:?} then {c:?}"));
            }
            if p.bytes.end > c.bytes.start && (disjoint || p.line_start == c.line_start) {
                return Err(format!("overlap: {p:?} and {c:?}"));
            }
            if disjoint && !(piece && p.line_end == c.line_start) && p.line_end >= c.line_start {
                return Err(format!("share a line: {p:?} and {c:?}"));
            }
        }
        for row in c.line_start..=c.line_end {
            covered[row as usize - 1] = true;
        }
        prev = Some(c);
    }
    for (i, row) in rows.iter().enumerate() {
        if !covered[i] && text[row.clone()].iter().any(|b| !b.is_ascii_whitespace()) {
            return Err(format!("line {} is not covered", i + 1));
        }
    }
    Ok(())
}
