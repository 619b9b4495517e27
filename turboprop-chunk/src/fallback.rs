//! The chunkers that need no structure: today's overlapping line windows, and runs of whole
//! lines within the budget with over-long lines cut by bytes (for minified or generated files).

use turboprop_types::{line_windows, ChunkingConfig};

use crate::lines::Lines;
use crate::Chunk;

/// `turboprop_types::line_windows`, as chunks without symbol, kind or context.
pub(crate) fn windows(text: &[u8], config: &ChunkingConfig) -> Vec<Chunk> {
    line_windows(text, config)
        .into_iter()
        .map(|w| Chunk {
            line_start: w.line_start,
            line_end: w.line_end,
            bytes: w.bytes,
            symbol: None,
            kind: None,
            context: None,
        })
        .collect()
}

/// Consecutive runs of whole lines within `max` tokens; a line longer than `piece_bytes` is
/// cut into pieces of at most `piece_bytes` bytes (moved back to a UTF-8 character boundary
/// when the text there is UTF-8), each a chunk whose first and last line are that line.
pub(crate) fn packed(text: &[u8], lines: &Lines, max: usize, piece_bytes: usize) -> Vec<Chunk> {
    let piece_bytes = piece_bytes.max(16);
    let mut out = Vec::new();
    // The run being built: (first row, last row).
    let mut run: Option<(usize, usize)> = None;
    let push_run = |out: &mut Vec<Chunk>, run: &mut Option<(usize, usize)>| {
        if let Some((first, last)) = run.take().and_then(|(f, l)| lines.trim(f, l)) {
            out.push(Chunk {
                line_start: line_number(first),
                line_end: line_number(last),
                bytes: lines.bytes(first, last),
                symbol: None,
                kind: None,
                context: None,
            });
        }
    };
    for row in 0..lines.count() {
        let bytes = lines.bytes(row, row);
        if bytes.len() > piece_bytes {
            push_run(&mut out, &mut run);
            let mut start = bytes.start;
            while start < bytes.end {
                let mut end = (start + piece_bytes).min(bytes.end);
                let mut back = 0;
                while end < bytes.end
                    && back < 3
                    && text.get(end).is_some_and(|b| (0x80..0xC0).contains(b))
                {
                    end -= 1;
                    back += 1;
                }
                if back == 3 && text.get(end).is_some_and(|b| (0x80..0xC0).contains(b)) {
                    // Not UTF-8 here: cut where the budget says.
                    end += 3;
                }
                let piece = text.get(start..end).unwrap_or_default();
                if piece.iter().any(|b| !b.is_ascii_whitespace()) {
                    out.push(Chunk {
                        line_start: line_number(row),
                        line_end: line_number(row),
                        bytes: start..end,
                        symbol: None,
                        kind: None,
                        context: None,
                    });
                }
                start = end;
            }
            continue;
        }
        let fits = run.is_some_and(|(f, _)| lines.tokens(f, row) <= max);
        match run {
            Some((f, _)) if fits => run = Some((f, row)),
            Some(_) => {
                push_run(&mut out, &mut run);
                run = Some((row, row));
            }
            None => run = Some((row, row)),
        }
    }
    push_run(&mut out, &mut run);
    out
}

/// 1-based line number of a 0-based row.
pub(crate) fn line_number(row: usize) -> u32 {
    u32::try_from(row + 1).unwrap_or(u32::MAX)
}
