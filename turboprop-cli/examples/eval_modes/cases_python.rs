//! Python cases: every `def` or `async def` (functions and methods) whose body starts with a
//! docstring. The query is the docstring's first sentence, the target the `def` line (also
//! for a decorated function), and the extent runs from the first decorator (else the `def`)
//! to the body's last line, found by indentation. The blanked variant replaces every
//! function's and class's docstring by `""` on its first line and empties the rest, so the
//! file keeps its line numbers and stays valid Python.

use crate::cases::first_sentence;
use crate::corpus::{has_words, Target};

/// What a scan of a Python file found, on byte offsets of the text.
struct Lexed {
    /// Byte ranges of the string literals, prefix and quotes included.
    strings: Vec<(usize, usize)>,
    /// Per line: whether it starts inside a string or brackets, or after a `\` line end,
    /// so that its indentation means nothing.
    cont: Vec<bool>,
    /// Byte offset of each line's start.
    starts: Vec<usize>,
    /// Per line: the byte offset of a `:` that ends a block header there, if any.
    colons: Vec<Option<usize>>,
}

fn lex(text: &str) -> Lexed {
    let b = text.as_bytes();
    let mut strings = Vec::new();
    let mut cont = vec![false];
    let mut starts = vec![0];
    let mut colons = vec![None];
    let mut depth = 0usize;
    let mut i = 0;
    let newline = |i: usize, c: bool, cont: &mut Vec<bool>, starts: &mut Vec<usize>| {
        cont.push(c);
        starts.push(i + 1);
    };
    while i < b.len() {
        match b[i] {
            b'\n' => {
                let backslash =
                    i > 0 && b[i - 1] == b'\\' || i > 1 && b[i - 1] == b'\r' && b[i - 2] == b'\\';
                newline(i, depth > 0 || backslash, &mut cont, &mut starts);
                colons.push(None);
                i += 1;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                i += 1;
            }
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b':' if depth == 0 => {
                let last = colons.last_mut().expect("a line");
                last.get_or_insert(i);
                i += 1;
            }
            q @ (b'"' | b'\'') => {
                let mut start = i;
                while start > 0 && b[start - 1].is_ascii_alphabetic() && start + 3 > i {
                    start -= 1;
                }
                if start > 0 && (b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_') {
                    start = i; // an identifier ending in a quote? not a prefix
                }
                let triple = b.get(i + 1) == Some(&q) && b.get(i + 2) == Some(&q);
                i += if triple { 3 } else { 1 };
                while i < b.len() {
                    if b[i] == b'\\' {
                        if b.get(i + 1) == Some(&b'\n') {
                            newline(i + 1, true, &mut cont, &mut starts);
                            colons.push(None);
                        }
                        i += 2;
                        continue;
                    }
                    if b[i] == b'\n' {
                        if !triple {
                            break; // unterminated: the line ends it
                        }
                        newline(i, true, &mut cont, &mut starts);
                        colons.push(None);
                    }
                    if b[i] == q
                        && (!triple || (b.get(i + 1) == Some(&q) && b.get(i + 2) == Some(&q)))
                    {
                        i += if triple { 3 } else { 1 };
                        break;
                    }
                    i += 1;
                }
                strings.push((start, i.min(b.len())));
            }
            _ => i += 1,
        }
    }
    Lexed {
        strings,
        cont,
        starts,
        colons,
    }
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Whether `line` starts a `def` (`Some(true)`) or `class` (`Some(false)`).
fn header_kind(line: &str) -> Option<bool> {
    let t = line.trim_start();
    let t = t
        .strip_prefix("async")
        .filter(|r| r.starts_with([' ', '\t']))
        .map_or(t, str::trim_start);
    if t.strip_prefix("def")
        .is_some_and(|r| r.starts_with([' ', '\t']))
    {
        Some(true)
    } else if t
        .strip_prefix("class")
        .is_some_and(|r| r.starts_with([' ', '\t']))
    {
        Some(false)
    } else {
        None
    }
}

/// A block header (`def` or `class`) on line `at` and what follows it.
struct Block {
    /// The line of the header's closing `:`.
    header_end: usize,
    /// The docstring's byte range, if the body starts with one.
    doc: Option<(usize, usize)>,
}

fn block(text: &str, lines: &[&str], lx: &Lexed, at: usize) -> Option<Block> {
    // The header ends at the first line from `at` on with a block `:`.
    let header_end = (at..lines.len()).find(|&l| lx.colons[l].is_some())?;
    let colon = lx.colons[header_end]?;
    let line_end = lx.starts.get(header_end + 1).map_or(text.len(), |&s| s);
    let rest = &text[colon + 1..line_end];
    let rest = rest.split('#').next().unwrap_or("");
    if !rest.trim().is_empty() {
        return Some(Block {
            header_end,
            doc: None,
        }); // `def f(): return 1`
    }
    let body = (header_end + 1..lines.len()).find(|&l| {
        let t = lines[l].trim();
        !t.is_empty() && !t.starts_with('#')
    })?;
    if indent(lines[body]) <= indent(lines[at]) {
        return None;
    }
    let first = lx.starts[body] + indent(lines[body]);
    let doc = lx
        .strings
        .iter()
        .find(|&&(s, _)| s == first)
        .copied()
        .filter(|&(s, _)| {
            let prefix: String = text[s..]
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            matches!(prefix.to_ascii_lowercase().as_str(), "" | "r" | "u")
        })
        // The string must be the whole statement, not `"a" + b`.
        .filter(|&(_, e)| {
            let after = &text[e..];
            let after = after.split('\n').next().unwrap_or("");
            after.trim().is_empty() || after.trim_start().starts_with('#')
        });
    Some(Block { header_end, doc })
}

/// The lines of a docstring, quotes and prefix removed, each trimmed.
fn doc_lines(raw: &str) -> Vec<&str> {
    let body = raw.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    let q = if body.starts_with("\"\"\"") || body.starts_with("'''") {
        3
    } else {
        1
    };
    let inner = body.get(q..body.len().saturating_sub(q)).unwrap_or("");
    inner.lines().map(str::trim).collect()
}

/// The documented functions of a Python file.
pub fn documented_defs(text: &str) -> Vec<Target> {
    let lines: Vec<&str> = text.lines().collect();
    let lx = lex(text);
    let mut out = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        if lx.cont.get(at).copied().unwrap_or(true) || header_kind(line) != Some(true) {
            continue;
        }
        let Some(Block {
            header_end,
            doc: Some((s, e)),
        }) = block(text, &lines, &lx, at)
        else {
            continue;
        };
        let doc = doc_lines(&text[s..e]);
        let query = first_sentence(&doc);
        if !has_words(&query) {
            continue;
        }
        let end = body_end(&lines, &lx, at, header_end);
        out.push(Target {
            fn_line: at as u32 + 1,
            start: decorators_start(&lines, &lx, at) as u32 + 1,
            end: end as u32 + 1,
            query,
        });
    }
    out
}

/// The last line of the body of the block whose header is on `at` and ends on `header_end`.
fn body_end(lines: &[&str], lx: &Lexed, at: usize, header_end: usize) -> usize {
    let own = indent(lines[at]);
    let mut end = header_end;
    for (l, line) in lines.iter().enumerate().skip(header_end + 1) {
        if line.trim().is_empty() {
            continue;
        }
        if !lx.cont[l] && indent(line) <= own {
            break;
        }
        end = l;
    }
    end
}

/// The first line of the decorators above the `def` on line `at` (else `at`).
fn decorators_start(lines: &[&str], lx: &Lexed, at: usize) -> usize {
    let own = indent(lines[at]);
    let mut start = at;
    let mut j = at;
    while j > 0 {
        j -= 1;
        let line = lines[j];
        if lx.cont[j] || indent(line) > own || line.trim_start().starts_with(')') {
            continue; // inside a decorator's arguments
        }
        if indent(line) == own && line.trim_start().starts_with('@') {
            start = j;
            continue;
        }
        break;
    }
    start
}

/// Replaces every function's and class's docstring by `""` (on its first line, the others
/// emptied), keeping the lines; a module's docstring stays.
pub fn blank_docstrings(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let lx = lex(text);
    let mut docs: Vec<(usize, usize)> = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        if lx.cont.get(at).copied().unwrap_or(true) || header_kind(line).is_none() {
            continue;
        }
        if let Some(Block { doc: Some(d), .. }) = block(text, &lines, &lx, at) {
            docs.push(d);
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for (s, e) in docs {
        out.push_str(&text[from..s]);
        out.push_str("\"\"");
        // Keep the line breaks (and so every later line number) of the docstring.
        for _ in text[s..e].matches('\n') {
            out.push('\n');
        }
        from = e;
    }
    out.push_str(&text[from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#""""Module docstring."""
import functools


class Pot:
    """A pot of chips."""

    @functools.cache
    @other(
        1,
    )
    def split(self, winners: list[str],
              rake: int = 0) -> dict[str, int]:
        """Split the pot between the winners.

        Remainders go to the first.
        """
        share = {w: 1 for w in winners}
        text = """
not indentation
"""
        return share

    async def empty(self): return None

    def no_doc(self):
        x = "not a docstring"
        return x


def free():
    r'''Raw docstring, one line.'''
    pass
"#;

    #[test]
    fn finds_decorated_methods_and_their_extent() {
        let found = documented_defs(SAMPLE);
        let got: Vec<(u32, u32, u32, &str)> = found
            .iter()
            .map(|t| (t.fn_line, t.start, t.end, t.query.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (12, 8, 22, "Split the pot between the winners."),
                (31, 31, 33, "Raw docstring, one line."),
            ]
        );
    }

    #[test]
    fn blanking_keeps_lines_and_code() {
        let blanked = blank_docstrings(SAMPLE);
        assert_eq!(blanked.lines().count(), SAMPLE.lines().count());
        let lines: Vec<&str> = blanked.lines().collect();
        assert_eq!(lines[0], "\"\"\"Module docstring.\"\"\"");
        assert_eq!(lines[5], "    \"\"");
        assert_eq!(lines[13], "        \"\"");
        assert_eq!(lines[14], "");
        assert_eq!(lines[16], "");
        assert_eq!(lines[17], "        share = {w: 1 for w in winners}");
        assert_eq!(lines[18], "        text = \"\"\"");
        assert_eq!(lines[31], "    \"\"");
        assert!(!blanked.contains("Split the pot"));
        assert!(blanked.contains("not a docstring"));
        assert!(documented_defs(&blanked).is_empty());
    }
}
