//! [`Lines`]: a text's lines (where they start, whether they are blank, their token
//! estimates), the coordinates every chunker works in.
//!
//! Lines are cut at `\n` exactly as `turboprop_types::line_windows` cuts them: a trailing
//! newline does not start a new line, a `\r` before it belongs to its line. Rows are 0-based
//! here; chunks are reported 1-based.

use std::ops::Range;

use crate::budget::estimate_tokens;

/// The lines of one text, with prefix sums of their token estimates.
pub(crate) struct Lines {
    /// Byte offset where each line starts.
    starts: Vec<usize>,
    /// Length of the text.
    len: usize,
    /// `tokens[i]` is the estimate of rows `0..i`.
    tokens: Vec<usize>,
    /// Whether each row is whitespace only.
    blank: Vec<bool>,
}

impl Lines {
    pub(crate) fn new(text: &[u8]) -> Lines {
        let mut starts = vec![0usize];
        for (i, &b) in text.iter().enumerate() {
            if b == b'\n' && i + 1 < text.len() {
                starts.push(i + 1);
            }
        }
        let mut lines = Lines {
            starts,
            len: text.len(),
            tokens: vec![0],
            blank: Vec::new(),
        };
        if text.is_empty() {
            lines.starts.clear();
            return lines;
        }
        for row in 0..lines.starts.len() {
            let bytes = &text[lines.bytes(row, row)];
            let sum = lines.tokens[row] + estimate_tokens(bytes);
            lines.tokens.push(sum);
            lines
                .blank
                .push(bytes.iter().all(|b| b.is_ascii_whitespace()));
        }
        lines
    }

    /// Number of lines (0 for an empty text).
    pub(crate) fn count(&self) -> usize {
        self.starts.len()
    }

    /// Bytes of rows `first..=last`, including the last row's newline.
    pub(crate) fn bytes(&self, first: usize, last: usize) -> Range<usize> {
        let start = self.starts.get(first).copied().unwrap_or(self.len);
        let end = self.starts.get(last + 1).copied().unwrap_or(self.len);
        start..end.max(start)
    }

    /// Estimated tokens of rows `first..=last`.
    pub(crate) fn tokens(&self, first: usize, last: usize) -> usize {
        let last = last.min(self.count().saturating_sub(1));
        match (self.tokens.get(last + 1), self.tokens.get(first)) {
            (Some(end), Some(start)) if first <= last => end - start,
            _ => 0,
        }
    }

    /// Whether `row` is whitespace only (rows past the end count as blank).
    pub(crate) fn is_blank(&self, row: usize) -> bool {
        self.blank.get(row).copied().unwrap_or(true)
    }

    /// The row holding byte `offset` (the last row for offsets at or past the end).
    pub(crate) fn row_of(&self, offset: usize) -> usize {
        self.starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1)
    }

    /// The longest line in bytes, and its row.
    pub(crate) fn longest(&self) -> (usize, usize) {
        (0..self.count())
            .map(|row| (self.bytes(row, row).len(), row))
            .fold((0, 0), |best, cur| if cur.0 > best.0 { cur } else { best })
    }

    /// Rows `first..=last` with blank rows at both ends removed, or `None` if all are blank.
    pub(crate) fn trim(&self, first: usize, last: usize) -> Option<(usize, usize)> {
        let last = last.min(self.count().checked_sub(1)?);
        let first = (first..=last).find(|&r| !self.is_blank(r))?;
        let last = (first..=last).rev().find(|&r| !self.is_blank(r))?;
        Some((first, last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_bytes_and_tokens() {
        let lines = Lines::new(b"fn a() {}\n\n  x\n");
        assert_eq!(lines.count(), 3);
        assert_eq!(lines.bytes(0, 0), 0..10);
        assert_eq!(lines.bytes(1, 2), 10..15);
        assert!(lines.is_blank(1) && !lines.is_blank(2));
        assert_eq!(lines.row_of(0), 0);
        assert_eq!(lines.row_of(10), 1);
        assert_eq!(lines.row_of(99), 2);
        assert_eq!(lines.tokens(0, 2), 7);
        assert_eq!(lines.trim(1, 2), Some((2, 2)));
        assert_eq!(lines.trim(1, 1), None);
        assert_eq!(Lines::new(b"").count(), 0);
    }
}
