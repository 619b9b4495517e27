//! The grouping engine shared by the syntax and Markdown chunkers: a sequence of [`Unit`]s
//! (whole-line spans, some of them definitions) becomes chunks within the token budget.
//!
//! Rules, applied left to right over the units of one scope:
//! - a unit over `max` tokens is split by the [`Splitter`] into the units inside it (methods
//!   of a class, statements of a body, paragraphs of a section), which are grouped in turn in
//!   a child scope; when it cannot be split (or the nesting is too deep) it is cut into runs of
//!   whole lines within the budget;
//! - a unit of at least `min` tokens is a chunk of its own;
//! - smaller units are grouped with their neighbours until the group reaches `min` tokens or
//!   the next unit would not fit in `max`; a group of statements (no definition) left under
//!   `min` (before a unit that stands alone, or at the end) joins the chunk this scope made just
//!   before it when both fit in `max`;
//! - *glue* (a split definition's signature lines, its closing brace, lone punctuation) never
//!   stands alone if it fits with a neighbour: leading glue joins the next chunk, trailing glue
//!   the previous one of the same scope.
//!
//! A group takes the symbol and kind of its first definition; a group without a definition
//! takes its scope's (the split definition it lies in; none at the top level).

use crate::lines::Lines;

/// Deeper splits than this are cut by lines instead (bounds recursion on nested code).
const MAX_DEPTH: usize = 48;

/// A definition: its symbol path and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Def {
    pub(crate) symbol: String,
    pub(crate) kind: &'static str,
}

/// A span of whole rows that is grouped or split as one.
pub(crate) struct Unit<P> {
    pub(crate) first: usize,
    pub(crate) last: usize,
    pub(crate) def: Option<Def>,
    /// Signature lines, closing braces: never a chunk alone when a neighbour can take it.
    pub(crate) glue: bool,
    /// What the splitter needs to look inside the unit.
    pub(crate) payload: P,
}

/// Where units lie: what definition-less groups are named after, and the embedding context.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope {
    pub(crate) symbol: Option<String>,
    pub(crate) kind: Option<&'static str>,
    pub(crate) context: Option<String>,
}

/// One chunk in rows, before it is turned into a public `Chunk`.
#[derive(Debug, Clone)]
pub(crate) struct Piece {
    pub(crate) first: usize,
    pub(crate) last: usize,
    pub(crate) symbol: Option<String>,
    pub(crate) kind: Option<&'static str>,
    pub(crate) context: Option<String>,
}

/// Looks inside a unit that is over budget.
pub(crate) trait Splitter<P> {
    /// The units inside `unit` (covering its rows) and the scope they lie in, or `None` to
    /// cut it by lines.
    fn split(&self, unit: &Unit<P>, scope: &Scope) -> Option<(Vec<Unit<P>>, Scope)>;
}

/// Groups `units` (sorted, disjoint) of the top-level `scope` into pieces.
pub(crate) fn group<P, S: Splitter<P>>(
    lines: &Lines,
    max: usize,
    min: usize,
    splitter: &S,
    units: Vec<Unit<P>>,
    scope: &Scope,
) -> Vec<Piece> {
    let mut grouper = Grouper {
        lines,
        max: max.max(1),
        min: min.min(max),
        splitter,
        out: Vec::new(),
    };
    grouper.emit(units, scope, Group::default(), 0);
    finish(grouper.out, lines)
}

/// What a unit carries for its splitter, merged when units sharing a row are merged.
pub(crate) trait Payload {
    /// Takes in the payload of a unit merged into this one.
    fn absorb(&mut self, other: Self);
}

/// Merges units that share a row, so units are disjoint (the first definition wins).
pub(crate) fn merge_overlapping<P: Payload>(units: Vec<Unit<P>>) -> Vec<Unit<P>> {
    let mut out: Vec<Unit<P>> = Vec::with_capacity(units.len());
    for unit in units {
        match out.last_mut() {
            Some(prev) if unit.first <= prev.last => {
                prev.last = prev.last.max(unit.last);
                prev.glue = prev.glue && unit.glue;
                if prev.def.is_none() {
                    prev.def = unit.def;
                }
                prev.payload.absorb(unit.payload);
            }
            _ => out.push(unit),
        }
    }
    out
}

#[derive(Default)]
struct Group {
    /// `(first, last)` rows, `None` while empty.
    rows: Option<(usize, usize)>,
    def: Option<Def>,
    glue_only: bool,
}

impl Group {
    fn add(&mut self, first: usize, last: usize, def: Option<&Def>, glue: bool) {
        match &mut self.rows {
            Some((_, end)) => *end = (*end).max(last),
            None => {
                self.rows = Some((first, last));
                self.glue_only = true;
            }
        }
        self.glue_only &= glue;
        if self.def.is_none() {
            self.def = def.cloned();
        }
    }
}

struct Grouper<'a, S> {
    lines: &'a Lines,
    max: usize,
    min: usize,
    splitter: &'a S,
    out: Vec<Piece>,
}

/// The last piece a scope flushed itself (not a nested split's), which a small group after it
/// may join.
#[derive(Default)]
struct Own(Option<usize>);

impl<S> Grouper<'_, S> {
    /// Flushes `group`, or adds it to the scope's previous piece when it is small, holds no
    /// definition and both fit in the budget.
    fn flush_small(&mut self, group: &mut Group, scope: &Scope, own: &mut Own) {
        let Some((_, last)) = group.rows else {
            return;
        };
        let small = self.tokens(group) < self.min && group.def.is_none();
        if small && own.0.is_some() && own.0 == self.out.len().checked_sub(1) {
            if let Some(prev) = self.out.last_mut() {
                if self.lines.tokens(prev.first, last) <= self.max {
                    prev.last = last;
                    *group = Group::default();
                    return;
                }
            }
        }
        self.flush(group, scope);
        own.0 = self.out.len().checked_sub(1);
    }

    fn tokens(&self, group: &Group) -> usize {
        group.rows.map_or(0, |(f, l)| self.lines.tokens(f, l))
    }

    fn flush(&mut self, group: &mut Group, scope: &Scope) {
        let group = std::mem::take(group);
        let Some((first, last)) = group.rows else {
            return;
        };
        let (symbol, kind) = match group.def {
            Some(def) => (Some(def.symbol), Some(def.kind)),
            None => (scope.symbol.clone(), scope.kind),
        };
        self.out.push(Piece {
            first,
            last,
            symbol,
            kind,
            context: scope.context.clone(),
        });
    }

    fn emit<P>(&mut self, units: Vec<Unit<P>>, scope: &Scope, carry: Group, depth: usize)
    where
        S: Splitter<P>,
    {
        let scope_start = self.out.len();
        let mut own = Own::default();
        let mut group = carry;
        for unit in units {
            let t = self.lines.tokens(unit.first, unit.last);
            if t > self.max {
                let carry = if group.glue_only {
                    std::mem::take(&mut group)
                } else {
                    self.flush_small(&mut group, scope, &mut own);
                    Group::default()
                };
                let split = if depth < MAX_DEPTH {
                    self.splitter.split(&unit, scope)
                } else {
                    None
                };
                match split {
                    Some((children, inner)) if !children.is_empty() => {
                        self.emit(children, &inner, carry, depth + 1);
                    }
                    _ => self.pack(&unit, scope, carry),
                }
                own.0 = None;
                continue;
            }
            if t >= self.min {
                if group.rows.is_some() {
                    if group.glue_only && self.tokens(&group) + t <= self.max {
                        group.add(unit.first, unit.last, unit.def.as_ref(), unit.glue);
                        self.flush(&mut group, scope);
                        own.0 = self.out.len().checked_sub(1);
                        continue;
                    }
                    self.flush_small(&mut group, scope, &mut own);
                }
                group.add(unit.first, unit.last, unit.def.as_ref(), unit.glue);
                self.flush(&mut group, scope);
                own.0 = self.out.len().checked_sub(1);
                continue;
            }
            if group.rows.is_some() && self.tokens(&group) + t > self.max {
                self.flush(&mut group, scope);
                own.0 = self.out.len().checked_sub(1);
            }
            group.add(unit.first, unit.last, unit.def.as_ref(), unit.glue);
            if self.tokens(&group) >= self.min {
                self.flush(&mut group, scope);
                own.0 = self.out.len().checked_sub(1);
            }
        }
        if let Some((_, last)) = group.rows {
            if group.glue_only && self.out.len() > scope_start {
                if let Some(prev) = self.out.last_mut() {
                    if self.lines.tokens(prev.first, last) <= self.max {
                        prev.last = last;
                        return;
                    }
                }
            }
            self.flush_small(&mut group, scope, &mut own);
        }
    }

    /// Cuts `unit` into runs of whole rows within the budget (a single row over it is a
    /// piece alone), the first run starting with `carry`.
    fn pack<P>(&mut self, unit: &Unit<P>, scope: &Scope, carry: Group) {
        let mut cur = carry;
        for row in unit.first..=unit.last {
            if cur.rows.is_none() && self.lines.is_blank(row) {
                continue;
            }
            let t = self.lines.tokens(row, row);
            if cur.rows.is_some() && self.tokens(&cur) + t > self.max {
                self.flush(&mut cur, scope);
                if self.lines.is_blank(row) {
                    continue;
                }
            }
            cur.add(row, row, unit.def.as_ref(), false);
        }
        self.flush(&mut cur, scope);
    }
}

/// Makes pieces sorted, disjoint, without blank rows at their ends, and covering every
/// non-blank row (a defensive pass: the rules above already do, a gap becomes a piece).
pub(crate) fn finish(mut pieces: Vec<Piece>, lines: &Lines) -> Vec<Piece> {
    pieces.sort_by_key(|p| (p.first, p.last));
    let mut out: Vec<Piece> = Vec::with_capacity(pieces.len());
    let mut next_free = 0usize;
    for mut piece in pieces {
        piece.first = piece.first.max(next_free);
        let Some((first, last)) = lines.trim(piece.first, piece.last) else {
            continue;
        };
        if let Some((gap_first, gap_last)) = first.checked_sub(1).and_then(|end| {
            if end >= next_free {
                lines.trim(next_free, end)
            } else {
                None
            }
        }) {
            out.push(Piece {
                first: gap_first,
                last: gap_last,
                symbol: None,
                kind: None,
                context: None,
            });
        }
        piece.first = first;
        piece.last = last;
        next_free = last + 1;
        out.push(piece);
    }
    if let Some((first, last)) = lines.trim(next_free, lines.count().saturating_sub(1)) {
        if lines.count() > 0 {
            out.push(Piece {
                first,
                last,
                symbol: None,
                kind: None,
                context: None,
            });
        }
    }
    out
}
