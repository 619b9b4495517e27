//! Cutting text into overlapping line windows, the unit turboprop embeds and returns.
//!
//! Works on raw bytes so byte ranges are exact even when a file is not valid UTF-8.

use std::ops::Range;

use crate::ChunkingConfig;

/// One window of lines: 1-based inclusive line numbers and the byte range they cover
/// (including the final line's newline, if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineWindow {
    /// First line, 1-based.
    pub line_start: u32,
    /// Last line, 1-based, inclusive.
    pub line_end: u32,
    /// Bytes of the window in the text.
    pub bytes: Range<usize>,
}

/// Cuts `text` into windows of `config.lines` lines, consecutive windows sharing
/// `config.overlap` lines. Windows holding only whitespace are dropped; an empty text has no
/// windows. The last window ends at the last line; no line is left out.
///
/// ```
/// use turboprop_types::{line_windows, ChunkingConfig};
///
/// let text = (1..=100).map(|i| format!("line {i}\n")).collect::<String>();
/// let config = ChunkingConfig { lines: 40, overlap: 10, ..ChunkingConfig::default() };
/// let spans: Vec<(u32, u32)> = line_windows(text.as_bytes(), &config)
///     .iter()
///     .map(|w| (w.line_start, w.line_end))
///     .collect();
/// assert_eq!(spans, vec![(1, 40), (31, 70), (61, 100)]);
/// ```
pub fn line_windows(text: &[u8], config: &ChunkingConfig) -> Vec<LineWindow> {
    // Byte offset where each line starts; a trailing newline does not start a new line.
    let mut starts = vec![0usize];
    for (i, &b) in text.iter().enumerate() {
        if b == b'\n' && i + 1 < text.len() {
            starts.push(i + 1);
        }
    }
    if text.is_empty() {
        return Vec::new();
    }
    let n_lines = starts.len();
    let size = config.lines.max(1) as usize;
    let step = size.saturating_sub(config.overlap as usize).max(1);
    let mut windows = Vec::new();
    let mut first = 0usize;
    loop {
        let last = (first + size).min(n_lines) - 1;
        let start = starts[first];
        let end = if last + 1 < n_lines {
            starts[last + 1]
        } else {
            text.len()
        };
        if text[start..end].iter().any(|b| !b.is_ascii_whitespace()) {
            windows.push(LineWindow {
                line_start: u32::try_from(first + 1).unwrap_or(u32::MAX),
                line_end: u32::try_from(last + 1).unwrap_or(u32::MAX),
                bytes: start..end,
            });
        }
        if last + 1 >= n_lines {
            break;
        }
        first += step;
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(lines: u32, overlap: u32) -> ChunkingConfig {
        ChunkingConfig {
            lines,
            overlap,
            ..ChunkingConfig::default()
        }
    }

    #[test]
    fn empty_and_blank_texts_have_no_windows() {
        assert!(line_windows(b"", &cfg(40, 10)).is_empty());
        assert!(line_windows(b"\n\n  \n", &cfg(40, 10)).is_empty());
    }

    #[test]
    fn short_text_is_one_window() {
        let w = line_windows(b"a\nb\nc", &cfg(40, 10));
        assert_eq!(w.len(), 1);
        assert_eq!((w[0].line_start, w[0].line_end), (1, 3));
        assert_eq!(w[0].bytes, 0..5);
    }

    #[test]
    fn windows_cover_every_line_with_exact_bytes() {
        let text: String = (1..=57).map(|i| format!("l{i}\n")).collect();
        let w = line_windows(text.as_bytes(), &cfg(10, 3));
        assert_eq!(w[0].line_start, 1);
        assert_eq!(w.last().map(|w| w.line_end), Some(57));
        for pair in w.windows(2) {
            assert_eq!(pair[1].line_start, pair[0].line_start + 7);
        }
        for win in &w {
            let s = std::str::from_utf8(&text.as_bytes()[win.bytes.clone()]).expect("utf8");
            assert!(s.starts_with(&format!("l{}\n", win.line_start)));
            assert!(s.ends_with(&format!("l{}\n", win.line_end)));
        }
    }

    #[test]
    fn invalid_utf8_and_crlf_are_fine() {
        let w = line_windows(b"\xff\xfe\r\nok\r\n", &cfg(1, 0));
        assert_eq!(w.len(), 2);
        assert_eq!(w[1].bytes, 4..8);
    }
}
