//! How hits are printed: JSON Lines for programs, a readable listing for people. Text from
//! the repository (file names, content lines) is escaped for the terminal
//! ([`crate::escape`]); JSON is exact (serde escapes control characters).

use std::io::{self, Write};

use crate::overlap::Found;
use serde::Serialize;

use crate::escape::{escape_control, escape_line};

/// The text of a hit as read from its file.
pub struct Snippet {
    /// The chunk's text.
    pub text: String,
    /// Whether the file changed since it was indexed.
    pub stale: bool,
}

#[derive(Serialize)]
struct JsonHit<'a> {
    file: &'a str,
    line_start: u32,
    line_end: u32,
    score: f64,
    content: &'a str,
    rank: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    symbol: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
}

/// One JSON Lines record, as DESIGN.md fixes it, with the chunk's `symbol` and `kind` where
/// its chunker knew them.
pub fn json_hit(hit: &Found, rank: usize, snippet: &Snippet) -> String {
    let record = JsonHit {
        file: hit.chunk.file(),
        line_start: hit.chunk.line_start(),
        line_end: hit.chunk.line_end(),
        score: round4(hit.score),
        content: &snippet.text,
        rank,
        symbol: hit.chunk.symbol(),
        kind: hit.chunk.kind(),
    };
    // Serializing a struct of strings and numbers cannot fail.
    serde_json::to_string(&record).unwrap_or_default()
}

fn round4(x: f32) -> f64 {
    (f64::from(x) * 10_000.0).round() / 10_000.0
}

/// Lines of context shown per hit in text output.
const SHOWN_LINES: usize = 8;

/// A hit for people: `path:start-end  kind symbol  score`, then the most relevant lines of the chunk
/// with their line numbers.
pub fn text_hit(
    out: &mut impl Write,
    hit: &Found,
    snippet: &Snippet,
    query: &str,
    color: bool,
) -> io::Result<()> {
    let (bold, dim, reset) = if color {
        ("\x1b[1;35m", "\x1b[2m", "\x1b[0m")
    } else {
        ("", "", "")
    };
    let stale = if snippet.stale {
        " (changed since indexed)"
    } else {
        ""
    };
    let symbol = match (hit.chunk.kind(), hit.chunk.symbol()) {
        (Some(kind), Some(symbol)) => format!("  {kind} {}", escape_control(symbol)),
        (None, Some(symbol)) => format!("  {}", escape_control(symbol)),
        (Some(kind), None) => format!("  {kind}"),
        (None, None) => String::new(),
    };
    writeln!(
        out,
        "{bold}{}:{}-{}{reset}{symbol}  {dim}score {:.3}{stale}{reset}",
        escape_control(hit.chunk.file()),
        hit.chunk.line_start(),
        hit.chunk.line_end(),
        hit.score
    )?;
    let lines: Vec<&str> = snippet.text.lines().collect();
    let (from, to) = focus(&lines, query);
    let width = (hit.chunk.line_start() as usize + to).to_string().len();
    if from > 0 {
        writeln!(out, "{dim}{:>width$} ┆ …{reset}", "")?;
    }
    for (i, line) in lines[from..to].iter().enumerate() {
        let n = hit.chunk.line_start() as usize + from + i;
        let line: String = line.chars().take(160).collect();
        writeln!(
            out,
            "{dim}{n:>width$} │{reset} {}",
            escape_line(line.trim_end())
        )?;
    }
    if to < lines.len() {
        writeln!(
            out,
            "{dim}{:>width$} ┆ … {} more lines{reset}",
            "",
            lines.len() - to
        )?;
    }
    writeln!(out)
}

/// The window of at most [`SHOWN_LINES`] lines that mentions the query's words most.
fn focus(lines: &[&str], query: &str) -> (usize, usize) {
    let n = lines.len();
    if n <= SHOWN_LINES {
        return (0, n);
    }
    let words: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 3)
        .map(str::to_lowercase)
        .collect();
    let hits: Vec<usize> = lines
        .iter()
        .map(|l| {
            let l = l.to_lowercase();
            words.iter().filter(|w| l.contains(w.as_str())).count()
        })
        .collect();
    let mut best = (0usize, 0usize);
    let mut sum: usize = hits[..SHOWN_LINES].iter().sum();
    best.1 = sum;
    for start in 1..=n - SHOWN_LINES {
        sum = sum + hits[start + SHOWN_LINES - 1] - hits[start - 1];
        if sum > best.1 {
            best = (start, sum);
        }
    }
    if best.1 == 0 {
        return (0, SHOWN_LINES);
    }
    // Show two lines above the first match of the best window (a doc comment, a signature).
    let first = (best.0..best.0 + SHOWN_LINES)
        .find(|&i| hits[i] > 0)
        .unwrap_or(best.0);
    let start = first.saturating_sub(2).min(n - SHOWN_LINES);
    (start, (start + SHOWN_LINES).min(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn focus_finds_the_matching_lines() {
        let lines: Vec<String> = (0..40).map(|i| format!("line {i}")).collect();
        let mut refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        refs[30] = "fn split_pot(winners: &[Seat])";
        let (from, to) = focus(&refs, "split the pot");
        assert!(from <= 30 && 30 < to, "{from}..{to}");
        assert_eq!(to - from, SHOWN_LINES);
        assert_eq!(focus(&refs[..3], "x"), (0, 3));
    }

    #[test]
    fn a_symbol_from_the_index_is_escaped_for_the_terminal_and_exact_in_json() {
        use turboprop_types::{ChunkMeta, ContentHash};
        // An index folder is untrusted: its symbol text may hold terminal escapes.
        let chunk = ChunkMeta::new("a.rs", 1, 2, 0..10, ContentHash::of(b"x"))
            .and_then(|c| c.with_symbol(Some("Evil\u{1b}[31m::deal".into()), Some("method".into())))
            .expect("meta");
        let hit = Found {
            chunk: chunk.clone(),
            score: 0.5,
            parts: vec![chunk],
        };
        let snippet = Snippet {
            text: "fn deal() {}\n".into(),
            stale: false,
        };
        let mut out = Vec::new();
        text_hit(&mut out, &hit, &snippet, "deal", false).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(text.starts_with("a.rs:1-2  method Evil"), "{text:?}");
        let json: serde_json::Value =
            serde_json::from_str(&json_hit(&hit, 1, &snippet)).expect("json");
        assert_eq!(json["symbol"], "Evil\u{1b}[31m::deal");
        assert_eq!(json["kind"], "method");
    }
}
