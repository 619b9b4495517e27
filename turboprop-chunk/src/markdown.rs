//! Markdown cut by headings, without a grammar: a small parser of ATX headings (`#` to
//! `######` after at most three spaces) that skips fenced code blocks (```` ``` ```` or `~~~`).
//!
//! Each section (a heading and the lines up to the next heading of any level) is a unit of
//! kind `section` named by its heading text; the lines before the first heading are a unit
//! without a name. Small sections are grouped like small definitions; a section over budget is
//! split into its paragraphs (blank-line separated blocks, a fenced block kept whole), cut by
//! lines when a paragraph alone is over budget. The pieces of a split section carry its
//! heading, after the headings it lies under, as context.

use crate::group::{self, Def, Piece, Scope, Splitter, Unit};
use crate::lines::Lines;

/// What the splitter keeps of a unit.
pub(crate) struct Block {
    /// The headings this unit lies under and, for a section, its own, one per line.
    headings: Option<String>,
    /// Whether the unit is a section (split into paragraphs) or already a paragraph.
    section: bool,
}

impl group::Payload for Block {
    fn absorb(&mut self, _other: Self) {}
}

/// The pieces of a Markdown text.
pub(crate) fn chunk_markdown(text: &[u8], lines: &Lines, max: usize, min: usize) -> Vec<Piece> {
    let splitter = Sections { text, lines };
    let units = splitter.sections();
    group::group(lines, max, min, &splitter, units, &Scope::default())
}

struct Sections<'a> {
    text: &'a [u8],
    lines: &'a Lines,
}

impl Sections<'_> {
    /// Row `row` without its line ending, lossy UTF-8.
    fn row(&self, row: usize) -> String {
        let bytes = self
            .text
            .get(self.lines.bytes(row, row))
            .unwrap_or_default();
        String::from_utf8_lossy(bytes)
            .trim_end_matches(['\n', '\r'])
            .to_owned()
    }

    /// The rows opening or closing a fence, as `(fence char, length)`.
    fn fence(line: &str) -> Option<(char, usize)> {
        let trimmed = line.trim_start_matches(' ');
        if line.len() - trimmed.len() > 3 {
            return None;
        }
        let c = trimmed.chars().next().filter(|c| *c == '`' || *c == '~')?;
        let n = trimmed.chars().take_while(|x| *x == c).count();
        (n >= 3).then_some((c, n))
    }

    /// `(level, text)` of an ATX heading row.
    fn heading(line: &str) -> Option<(usize, String)> {
        let trimmed = line.trim_start_matches(' ');
        if line.len() - trimmed.len() > 3 {
            return None;
        }
        let level = trimmed.chars().take_while(|c| *c == '#').count();
        if !(1..=6).contains(&level) {
            return None;
        }
        let rest = &trimmed[level..];
        if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
            return None;
        }
        let rest = rest.trim();
        // An optional closing sequence of `#`s after a space.
        let stripped = rest.trim_end_matches('#');
        let text = if stripped.is_empty() || stripped.ends_with([' ', '\t']) {
            stripped.trim()
        } else {
            rest
        };
        Some((level, crate::lang::collapse(text, 120)))
    }

    /// The heading rows: `(row, level, text)`, fenced blocks skipped.
    fn headings(&self) -> Vec<(usize, usize, String)> {
        let mut out = Vec::new();
        let mut open: Option<(char, usize)> = None;
        for row in 0..self.lines.count() {
            let line = self.row(row);
            if let Some((c, n)) = Self::fence(&line) {
                match open {
                    None => open = Some((c, n)),
                    Some((oc, on)) if oc == c && n >= on && line.trim().chars().all(|x| x == c) => {
                        open = None;
                    }
                    Some(_) => {}
                }
                continue;
            }
            if open.is_none() {
                if let Some((level, text)) = Self::heading(&line) {
                    out.push((row, level, text));
                }
            }
        }
        out
    }

    fn sections(&self) -> Vec<Unit<Block>> {
        let count = self.lines.count();
        let headings = self.headings();
        let mut units = Vec::new();
        let first_heading = headings.first().map_or(count, |h| h.0);
        if let Some((first, last)) = first_heading
            .checked_sub(1)
            .and_then(|end| self.lines.trim(0, end))
        {
            units.push(Unit {
                first,
                last,
                def: None,
                glue: false,
                payload: Block {
                    headings: None,
                    section: true,
                },
            });
        }
        // The headings enclosing the current one: (level, heading row text).
        let mut stack: Vec<(usize, String)> = Vec::new();
        for (i, (row, level, name)) in headings.iter().enumerate() {
            let end = headings.get(i + 1).map_or(count, |h| h.0);
            let last = self
                .lines
                .trim(*row, end.saturating_sub(1))
                .map_or(*row, |t| t.1);
            while stack.last().is_some_and(|(l, _)| l >= level) {
                stack.pop();
            }
            stack.push((*level, self.row(*row).trim().to_owned()));
            let chain: Vec<&str> = stack.iter().map(|(_, h)| h.as_str()).collect();
            units.push(Unit {
                first: *row,
                last,
                def: (!name.is_empty()).then(|| Def {
                    symbol: name.clone(),
                    kind: "section",
                }),
                glue: false,
                payload: Block {
                    headings: Some(chain.join("\n")),
                    section: true,
                },
            });
        }
        units
    }

    /// The paragraphs of rows `first..=last`: blank-line separated, fences kept whole.
    fn paragraphs(&self, first: usize, last: usize) -> Vec<Unit<Block>> {
        let mut out = Vec::new();
        let mut start: Option<usize> = None;
        let mut open: Option<(char, usize)> = None;
        for row in first..=last {
            let line = self.row(row);
            let blank = self.lines.is_blank(row);
            if let Some((c, n)) = Self::fence(&line) {
                match open {
                    None => open = Some((c, n)),
                    Some((oc, on)) if oc == c && n >= on => open = None,
                    Some(_) => {}
                }
            }
            if blank && open.is_none() {
                if let Some(s) = start.take() {
                    out.push(self.paragraph(s, row - 1));
                }
            } else if start.is_none() && !blank {
                start = Some(row);
            }
        }
        if let Some((s, l)) = start.and_then(|s| self.lines.trim(s, last)) {
            out.push(self.paragraph(s, l));
        }
        out
    }

    fn paragraph(&self, first: usize, last: usize) -> Unit<Block> {
        let (first, last) = self.lines.trim(first, last).unwrap_or((first, last));
        Unit {
            first,
            last,
            def: None,
            glue: false,
            payload: Block {
                headings: None,
                section: false,
            },
        }
    }
}

impl Splitter<Block> for Sections<'_> {
    fn split(&self, unit: &Unit<Block>, scope: &Scope) -> Option<(Vec<Unit<Block>>, Scope)> {
        if !unit.payload.section {
            return None;
        }
        let Some(def) = &unit.def else {
            // The text before the first heading.
            return Some((self.paragraphs(unit.first, unit.last), scope.clone()));
        };
        let mut units = vec![Unit {
            first: unit.first,
            last: unit.first,
            def: None,
            glue: true,
            payload: Block {
                headings: None,
                section: false,
            },
        }];
        if unit.last > unit.first {
            units.extend(self.paragraphs(unit.first + 1, unit.last));
        }
        let inner = Scope {
            symbol: Some(def.symbol.clone()),
            kind: Some(def.kind),
            context: unit.payload.headings.clone(),
        };
        Some((units, inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_and_fences() {
        assert_eq!(
            Sections::heading("## Install ##"),
            Some((2, "Install".into()))
        );
        assert_eq!(Sections::heading("#hashtag"), None);
        assert_eq!(Sections::heading("    # code"), None);
        assert_eq!(Sections::heading("#"), Some((1, String::new())));
        assert_eq!(Sections::heading("# C#"), Some((1, "C#".into())));
        let text = b"# A\n```\n# not a heading\n```\n## B\n";
        let lines = Lines::new(text);
        let s = Sections {
            text,
            lines: &lines,
        };
        let rows: Vec<usize> = s.headings().iter().map(|h| h.0).collect();
        assert_eq!(rows, vec![0, 4]);
    }
}
