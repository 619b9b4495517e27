//! Chunking by syntax tree: parse, turn a node's children into [`Unit`]s (comments and
//! attributes joined to the definition after them, definitions named with their symbol path),
//! and split units over budget at their inner boundaries (see [`crate::group`]).
//!
//! A split definition's pieces carry its signature, after those of the definitions around it,
//! as context: `impl Table` then `fn deal(&mut self) -> Card`, one per line.

use tree_sitter::{Node, ParseOptions, ParseState, Parser, Tree};

use crate::group::{self, Def, Piece, Scope, Splitter, Unit};
use crate::lang::{collapse, definition, DefNode, Lang, Where};
use crate::lines::Lines;

/// Parser steps allowed per byte of input (tree-sitter reports progress every 100 steps);
/// a parse that needs more is cancelled and the file cut into line windows. Deterministic,
/// unlike a timeout: the same bytes take the same steps.
const STEPS_PER_BYTE: u64 = 200;
/// Steps every file is allowed whatever its size.
const MIN_STEPS: u64 = 1_000_000;
/// At most this many characters of signature per enclosing definition in a context.
const MAX_SIGNATURE_CHARS: usize = 160;

/// Why a file was not cut by its syntax tree.
pub(crate) enum ParseFailure {
    /// The grammar could not be loaded (ABI mismatch).
    Grammar,
    /// The parse needed more steps than allowed.
    TooSlow,
    /// The tree has syntax errors.
    Errors,
}

/// Parses `text`, or says why not.
pub(crate) fn parse(lang: Lang, text: &[u8]) -> Result<Tree, ParseFailure> {
    let mut parser = Parser::new();
    parser
        .set_language(&lang.grammar())
        .map_err(|_| ParseFailure::Grammar)?;
    let allowed = MIN_STEPS.saturating_add(STEPS_PER_BYTE.saturating_mul(text.len() as u64));
    let mut steps = 0u64;
    let mut progress = |_: &ParseState| {
        steps += 100;
        steps > allowed
    };
    let options = ParseOptions::new().progress_callback(&mut progress);
    let len = text.len();
    let tree = parser
        .parse_with_options(
            &mut |i, _| text.get(i..).filter(|_| i < len).unwrap_or_default(),
            None,
            Some(options),
        )
        .ok_or(ParseFailure::TooSlow)?;
    if tree.root_node().has_error() {
        return Err(ParseFailure::Errors);
    }
    Ok(tree)
}

/// The pieces of a file whose tree parsed without errors.
pub(crate) fn chunk_tree(
    lang: Lang,
    tree: &Tree,
    text: &[u8],
    lines: &Lines,
    max: usize,
    min: usize,
) -> Vec<Piece> {
    let cutter = Cutter { lang, text, lines };
    // The root itself is never a definition: start from its children.
    let units = cutter.children_units(&[tree.root_node()], Where::Top, None);
    group::group(lines, max, min, &cutter, units, &Scope::default())
}

/// What the splitter keeps of a unit.
pub(crate) struct Payload<'t> {
    /// The nodes the unit was built from (comments and attributes included).
    nodes: Vec<Node<'t>>,
    /// Where the nodes lie.
    at: Where,
    /// The definition, if the unit is one (the first, when several share rows).
    def: Option<DefNode<'t>>,
}

impl group::Payload for Payload<'_> {
    fn absorb(&mut self, other: Self) {
        self.nodes.extend(other.nodes);
        if self.def.is_none() {
            self.def = other.def;
        }
    }
}

struct Cutter<'a> {
    lang: Lang,
    text: &'a [u8],
    lines: &'a Lines,
}

impl<'a> Cutter<'a> {
    fn rows(&self, node: Node<'_>) -> (usize, usize) {
        let first = self.lines.row_of(node.start_byte());
        let last = self
            .lines
            .row_of(node.end_byte().max(node.start_byte() + 1) - 1);
        (first, last.max(first))
    }

    /// The units of the children of `nodes`, lying at `at`, named under `prefix`.
    fn children_units<'t>(
        &self,
        nodes: &[Node<'t>],
        at: Where,
        prefix: Option<&str>,
    ) -> Vec<Unit<Payload<'t>>> {
        let mut children = Vec::new();
        for node in nodes {
            let mut cursor = node.walk();
            children.extend(node.children(&mut cursor));
        }
        self.units(&children, at, prefix)
    }

    /// Units of the sibling `nodes`: comments and attributes with no blank line before the
    /// next node join it; a comment on the row where the previous unit ends joins that one.
    fn units<'t>(
        &self,
        nodes: &[Node<'t>],
        at: Where,
        prefix: Option<&str>,
    ) -> Vec<Unit<Payload<'t>>> {
        let mut units: Vec<Unit<Payload<'t>>> = Vec::new();
        let mut pending: Vec<Node<'t>> = Vec::new();
        for &node in nodes {
            if node.start_byte() >= node.end_byte() {
                continue;
            }
            let (first, last) = self.rows(node);
            if self.lang.is_attachable(node.kind()) {
                match units.last_mut() {
                    Some(prev) if pending.is_empty() && prev.last == first => {
                        prev.last = prev.last.max(last);
                        prev.payload.nodes.push(node);
                    }
                    _ => pending.push(node),
                }
                continue;
            }
            // The comments right above `node`, with no blank row between.
            let mut top = first;
            let mut keep = pending.len();
            while let Some(&p) = keep.checked_sub(1).and_then(|i| pending.get(i)) {
                let (pf, pl) = self.rows(p);
                // The comment nearest the node may end a few blank lines above it (a JSDoc
                // block, then a blank line, then the method); the ones before it touch.
                let gap_ok = keep == pending.len() && (pl + 1..top).all(|r| self.lines.is_blank(r));
                if pl + 1 < top && !gap_ok {
                    break;
                }
                top = top.min(pf);
                keep -= 1;
            }
            let attached = pending.split_off(keep);
            for p in pending.drain(..) {
                units.push(self.plain(p, at));
            }
            let def = definition(self.lang, node, at, self.text);
            let mut all = attached;
            all.push(node);
            units.push(Unit {
                first: top,
                last,
                def: def.as_ref().map(|d| Def {
                    symbol: join(prefix, &d.name),
                    kind: d.kind,
                }),
                glue: !node.is_named() || node.kind() == "access_specifier",
                payload: Payload {
                    nodes: all,
                    at,
                    def,
                },
            });
        }
        for p in pending {
            units.push(self.plain(p, at));
        }
        group::merge_overlapping(units)
    }

    fn plain<'t>(&self, node: Node<'t>, at: Where) -> Unit<Payload<'t>> {
        let (first, last) = self.rows(node);
        Unit {
            first,
            last,
            def: None,
            glue: false,
            payload: Payload {
                nodes: vec![node],
                at,
                def: None,
            },
        }
    }

    /// The one-line signature of a definition: its text from the signature start to its body
    /// (or its first row), whitespace collapsed, without a trailing `{`.
    fn signature(&self, def: &DefNode<'_>) -> String {
        let end = match def.body {
            Some(body) => body.start_byte(),
            None => {
                let row = self.lines.row_of(def.sig_start);
                self.lines.bytes(row, row).end
            }
        };
        let bytes = self.text.get(def.sig_start..end).unwrap_or_default();
        let sig = collapse(&String::from_utf8_lossy(bytes), MAX_SIGNATURE_CHARS);
        sig.trim_end_matches(['{', ' ']).to_owned()
    }
}

impl<'t> Splitter<Payload<'t>> for Cutter<'_> {
    fn split(
        &self,
        unit: &Unit<Payload<'t>>,
        scope: &Scope,
    ) -> Option<(Vec<Unit<Payload<'t>>>, Scope)> {
        let payload = &unit.payload;
        let (Some(def), Some(info)) = (&unit.def, &payload.def) else {
            // Not a definition: split by children, in the same scope.
            let units = self.children_units(&payload.nodes, payload.at, scope.symbol.as_deref());
            return Some((units, scope.clone()));
        };
        let context = match &scope.context {
            Some(outer) => format!("{outer}\n{}", self.signature(info)),
            None => self.signature(info),
        };
        let inner = Scope {
            symbol: Some(def.symbol.clone()),
            kind: Some(def.kind),
            context: Some(context),
        };
        let Some(body) = info.body else {
            // A definition without a body (a long constant): by children, named after it.
            let units = self.children_units(&payload.nodes, payload.at, Some(&def.symbol));
            let scope = Scope {
                context: scope.context.clone(),
                ..inner
            };
            return Some((units, scope));
        };
        // The head: rows up to the end of what precedes the body (`impl Table {`,
        // `class Table:`), with the comments and attributes above it.
        let head_end = body
            .prev_sibling()
            .map_or(info.sig_start, |p| p.end_byte())
            .max(info.sig_start + 1);
        let head_last = self.lines.row_of(head_end - 1).max(unit.first);
        let mut units = vec![self.glue(unit.first, head_last)];
        units.extend(self.children_units(&[body], Where::inside(def.kind), Some(&def.symbol)));
        let covered = units.iter().map(|u| u.last).max().unwrap_or(head_last);
        if covered < unit.last {
            units.push(self.glue(covered + 1, unit.last));
        }
        Some((group::merge_overlapping(units), inner))
    }
}

impl<'t> Cutter<'_> {
    fn glue(&self, first: usize, last: usize) -> Unit<Payload<'t>> {
        Unit {
            first,
            last,
            def: None,
            glue: true,
            payload: Payload {
                nodes: Vec::new(),
                at: Where::Body,
                def: None,
            },
        }
    }
}

fn join(prefix: Option<&str>, name: &str) -> String {
    match prefix {
        Some(p) => format!("{p}::{name}"),
        None => name.to_owned(),
    }
}
