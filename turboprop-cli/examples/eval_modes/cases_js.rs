//! JavaScript and TypeScript cases: a `/** ... */` block right before (blank lines and
//! decorators between are allowed) a function declaration, a method (class or object
//! literal, getters and constructors too), or a `const`/`let`/`var`, property or class field
//! assigned a `function` or an arrow function. The query is the first sentence of the block's
//! text (`*` margins stripped, `{@link X}` read as `X`, stopping at the first `@tag` line),
//! the target the declaration's line, and the extent runs from the `/**` to the end of the
//! body (braces matched, or the end of an arrow's expression). A declaration without a body
//! (an overload or interface signature) is no case. The blanked variant empties every such
//! block, keeping `/**` and `*/` and the line count.

use crate::cases::first_sentence;
use crate::corpus::{has_words, Target};
use crate::extent::{code_chars, js_fn_end, Syntax, Tok};

/// A `/**` block starting a line: its first and last 0-based lines.
struct Block {
    first: usize,
    last: usize,
}

/// The `/** */` blocks that start their line.
fn blocks(lines: &[&str]) -> Vec<Block> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim_start();
        if t.starts_with("/**") && !t.starts_with("/**/") {
            let after = &t[3..];
            let last = if after.contains("*/") {
                Some(i)
            } else {
                (i + 1..lines.len()).find(|&l| lines[l].contains("*/"))
            };
            let Some(last) = last else {
                break;
            };
            out.push(Block { first: i, last });
            i = last + 1;
        } else {
            i += 1;
        }
    }
    out
}

/// The text lines of a block: margins stripped, stopped at the first `@tag` line.
fn doc_text(lines: &[&str], b: &Block) -> Vec<String> {
    let mut out = Vec::new();
    for (l, line) in lines.iter().enumerate().take(b.last + 1).skip(b.first) {
        let mut t = line.trim();
        if l == b.first {
            t = t.trim_start_matches("/**");
        }
        if l == b.last {
            t = t.split("*/").next().unwrap_or("");
        }
        let t = t.trim();
        let t = t.strip_prefix('*').unwrap_or(t).trim();
        if t.starts_with('@') {
            break;
        }
        out.push(inline_tags(t));
    }
    out
}

/// `{@link X}`, `{@link X text}` and `{@link X|text}` read as `X` or `text`.
fn inline_tags(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(k) = rest.find("{@") {
        out.push_str(&rest[..k]);
        let inner = &rest[k + 2..];
        let Some(close) = inner.find('}') else {
            out.push_str(&rest[k..]);
            return out;
        };
        let inner = &inner[..close];
        let body = inner.split_once(char::is_whitespace).map_or("", |(_, b)| b);
        let shown = match body.split_once('|') {
            Some((_, text)) => text,
            None => match body.trim().split_once(char::is_whitespace) {
                Some((_, text)) => text,
                None => body,
            },
        };
        out.push_str(shown.trim());
        rest = &rest[k + 2 + close + 1..];
    }
    out.push_str(rest);
    out
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || c == '$'
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// `t` without the keyword `kw` and the whitespace after it.
fn strip_kw<'a>(t: &'a str, kw: &str) -> Option<&'a str> {
    t.strip_prefix(kw)
        .filter(|r| r.starts_with(char::is_whitespace))
        .map(str::trim_start)
}

/// The leading identifier of `t` and the rest.
fn ident(t: &str) -> Option<(&str, &str)> {
    if !t.starts_with(is_ident_start) {
        return None;
    }
    let end = t.find(|c: char| !is_ident(c)).unwrap_or(t.len());
    Some((&t[..end], &t[end..]))
}

/// Whether `rhs` (what is assigned) is a function: `function`, `async`, an arrow's
/// parameters or a lone parameter before `=>`.
fn is_fn_value(rhs: &str) -> bool {
    let t = rhs.trim_start();
    let t = strip_kw(t, "async").unwrap_or(t);
    if let Some(r) = t.strip_prefix("function") {
        return r.starts_with(['(', '*', ' ']);
    }
    if t.starts_with(['(', '<']) {
        return true;
    }
    ident(t).is_some_and(|(_, r)| r.trim_start().starts_with("=>"))
}

/// The text after the first lone `=` (not `==`, `=>`, `<=`...) of `t`.
fn after_assign(t: &str) -> Option<&str> {
    let b = t.as_bytes();
    (0..b.len())
        .find(|&k| {
            b[k] == b'='
                && b.get(k + 1).is_none_or(|&n| n != b'=' && n != b'>')
                && (k == 0 || !b"=!<>+-*/%&|^".contains(&b[k - 1]))
        })
        .map(|k| &t[k + 1..])
}

const NOT_METHODS: &[&str] = &[
    "if",
    "for",
    "while",
    "switch",
    "catch",
    "return",
    "function",
    "new",
    "typeof",
    "await",
    "yield",
    "super",
    "this",
    "else",
    "do",
    "with",
    "throw",
    "delete",
    "void",
    "import",
    "class",
    "interface",
    "type",
    "enum",
    "namespace",
    "module",
];

/// What the braces around a declaration hold.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scope {
    /// Statements or an object literal, where `name: value` is a value.
    Code,
    /// A class body, where `name: Type` is a type annotation.
    Class,
    /// An interface or type literal: signatures only, no function.
    Type,
}

/// The scope of the code on 0-based line `decl`: what the header of the innermost
/// unclosed `{` before it says.
pub fn scope_at(toks: &[Tok], decl: usize) -> Scope {
    let start = toks.partition_point(|t| (t.line as usize) < decl);
    let mut depth = 0usize;
    let mut opener = None;
    for k in (0..start).rev() {
        match toks[k].ch {
            '}' => depth += 1,
            '{' if depth == 0 => {
                opener = Some(k);
                break;
            }
            '{' => depth -= 1,
            _ => {}
        }
    }
    let Some(o) = opener else {
        return Scope::Code;
    };
    let mut first = o;
    while first > 0 && !matches!(toks[first - 1].ch, ';' | '{' | '}') {
        first -= 1;
    }
    // The header's words, from its code characters (comments and strings left out).
    let mut words: Vec<String> = Vec::new();
    for t in &toks[first..o] {
        if !is_ident(t.ch) {
            continue;
        }
        match words.last_mut() {
            Some(w) if !t.word_start => w.push(t.ch),
            _ => words.push(t.ch.to_string()),
        }
    }
    let has = |word: &str| words.iter().any(|w| w == word);
    let lead = words
        .iter()
        .find(|w| !matches!(w.as_str(), "export" | "declare" | "default"));
    if has("interface") || lead.is_some_and(|w| w == "type") {
        Scope::Type
    } else if has("class") {
        Scope::Class
    } else {
        Scope::Code
    }
}

/// Whether the code line `line` declares a function, method or function-valued binding
/// in `scope`.
pub fn is_decl(line: &str, scope: Scope) -> bool {
    if scope == Scope::Type {
        return false;
    }
    let mut t = line.trim();
    for kw in ["export", "default", "declare"] {
        t = strip_kw(t, kw).unwrap_or(t);
    }
    let plain = strip_kw(t, "async").unwrap_or(t);
    if let Some(r) = plain.strip_prefix("function") {
        return r.starts_with(['(', '*', ' ']);
    }
    for kw in ["const", "let", "var"] {
        if let Some(r) = strip_kw(t, kw) {
            return ident(r).is_some() && after_assign(r).is_some_and(is_fn_value);
        }
    }
    // `a.b.c = function ...`, `module.exports = (...) => ...`
    if let Some((_, mut r)) = ident(t) {
        let mut dotted = false;
        while let Some(next) = r.strip_prefix('.').and_then(ident) {
            dotted = true;
            r = next.1;
        }
        if dotted {
            let r = r.trim_start();
            return r.starts_with('=') && after_assign(r).is_some_and(is_fn_value);
        }
    }
    // Class and object members.
    let mut m = t;
    loop {
        let before = m;
        for kw in [
            "public",
            "private",
            "protected",
            "static",
            "readonly",
            "override",
            "abstract",
            "async",
            "get",
            "set",
            "accessor",
        ] {
            if let Some(r) = strip_kw(m, kw) {
                // `get(` is a method named get, not a getter.
                if !r.starts_with('(') {
                    m = r;
                }
            }
        }
        m = m.strip_prefix('*').map_or(m, str::trim_start);
        if m == before {
            break;
        }
    }
    let rest = if let Some(r) = m.strip_prefix('#') {
        ident(r).map(|(_, r)| r)
    } else if m.starts_with('[') {
        m.find(']').map(|k| &m[k + 1..])
    } else if m.starts_with(['\'', '"']) {
        let q = &m[..1];
        m[1..].find(q).map(|k| &m[k + 2..])
    } else {
        ident(m)
            .filter(|(name, _)| !NOT_METHODS.contains(name))
            .map(|(_, r)| r)
    };
    let Some(rest) = rest else {
        return false;
    };
    let rest = rest.trim_start();
    let rest = rest.strip_prefix(['?', '!']).unwrap_or(rest).trim_start();
    if rest.starts_with(['(', '<']) {
        return true;
    }
    if let Some(r) = rest.strip_prefix(':') {
        // `name: function (...)` and `name: (x) => ...` in an object literal; in a class
        // what follows `:` is a type, as in `name: Type = (x) => ...`.
        return (scope == Scope::Code && is_fn_value(r))
            || after_assign(r).is_some_and(is_fn_value);
    }
    rest.starts_with('=') && after_assign(rest).is_some_and(is_fn_value)
}

/// The documented functions of a JavaScript or TypeScript file.
pub fn documented_fns(text: &str) -> Vec<Target> {
    let lines: Vec<&str> = text.lines().collect();
    let toks = code_chars(text, Syntax::Js);
    let mut out = Vec::new();
    for b in blocks(&lines) {
        let tail = lines[b.last].split_once("*/").map_or("", |(_, r)| r);
        let decl = if !tail.trim().is_empty() {
            b.last
        } else {
            let Some(d) = (b.last + 1..lines.len()).find(|&l| {
                let t = lines[l].trim();
                !t.is_empty() && !t.starts_with('@')
            }) else {
                continue;
            };
            d
        };
        let code = if decl == b.last { tail } else { lines[decl] };
        if !is_decl(code, scope_at(&toks, decl)) {
            continue;
        }
        let Some(end) = js_fn_end(&toks, &lines, decl) else {
            continue;
        };
        let doc = doc_text(&lines, &b);
        let doc: Vec<&str> = doc.iter().map(String::as_str).collect();
        let query = first_sentence(&doc);
        if !has_words(&query) {
            continue;
        }
        out.push(Target {
            fn_line: decl as u32 + 1,
            start: b.first as u32 + 1,
            end: end.max(decl as u32) + 1,
            query,
        });
    }
    out
}

/// Empties every `/** */` block that starts a line, keeping `/**`, `*/`, the code after
/// it and every line.
pub fn blank_jsdoc(text: &str) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let trimmed: Vec<&str> = lines
        .iter()
        .map(|l| l.trim_end_matches(['\n', '\r']))
        .collect();
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for b in blocks(&trimmed) {
        for line in &lines[from..b.first] {
            out.push_str(line);
        }
        let first = trimmed[b.first];
        let lead = &first[..first.len() - first.trim_start().len()];
        let end = trimmed[b.last];
        let after = &end[end.find("*/").map_or(end.len(), |k| k + 2)..];
        if b.first == b.last {
            out.push_str(&format!("{lead}/** */{after}"));
        } else {
            out.push_str(&format!("{lead}/**"));
            for l in b.first..b.last {
                let eol = &lines[l][trimmed[l].len()..];
                out.push_str(eol);
            }
            out.push_str(&format!("{lead} */{after}"));
        }
        out.push_str(&lines[b.last][trimmed[b.last].len()..]);
        from = b.last + 1;
    }
    for line in &lines[from..] {
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(u32, u32, u32, String)> {
        documented_fns(text)
            .into_iter()
            .map(|t| (t.fn_line, t.start, t.end, t.query))
            .collect()
    }

    const JS: &str = r#"import x from './x.js';

/**
 * Creates an array of elements split into groups the length of `size`.
 * If `array` can't be split evenly, the final chunk is the rest.
 *
 * @param {Array} array The array to process.
 * @returns {Array} Returns the new array of chunks.
 */
function chunk(array, size) {
  const re = /}/g;
  return `${array.map(a => { return a; })}}`;
}

/** Adds two numbers, see {@link chunk}. */
export const add = (a, b) =>
  a + b;

/**
 * @private
 */
const hidden = () => 1;

/**
 * Initialize the server.
 */

app.init = function init() {
  this.cache = {};
};

/**
 * Not a function.
 */
const table = { a: 1 };
"#;

    #[test]
    fn javascript_functions_arrows_and_assignments() {
        assert_eq!(
            found(JS),
            vec![
                (
                    10,
                    3,
                    13,
                    "Creates an array of elements split into groups the length of `size`."
                        .to_owned()
                ),
                (16, 15, 17, "Adds two numbers, see chunk.".to_owned()),
                (28, 24, 30, "Initialize the server.".to_owned()),
            ]
        );
    }

    const TS: &str = r#"export class FocusManager extends Subscribable<Listener> {
  #focused?: boolean

  /**
   * `setFocused` can be used to manually set the focus state.
   * @param focused - The focus state.
   */
  @log()
  public setFocused<T>(
    focused?: boolean,
  ): void {
    const changed = this.#focused !== focused
    if (changed) {
      this.onFocus()
    }
  }

  /**
   * Returns whether the current runtime should be treated as a server environment.
   */
  isServer = (): boolean => isServerFn()

  /** Only a signature. */
  abstract fetch(): Promise<void>
}

/**
 * Emits only the first value.
 */
export function first<T, D>(predicate?: (value: T) => boolean): OperatorFunction<T, T | D> {
  return (source) => source
}

// See https://example.com/config
export interface Config<T> {
  /**
   * A factory function used to create the Subject.
   */
  connector: () => SubjectLike<T>;
}

/**
 * Used to determine if an object has a lift function.
 */
export function hasLift(source: any): source is { lift: Lift } {
  return isFunction(source?.lift);
}

const handlers = {
  /** Handles a click. */
  onClick: (event) => {
    go(event)
  },
}
"#;

    #[test]
    fn typescript_methods_fields_and_signatures() {
        assert_eq!(
            found(TS),
            vec![
                (
                    9,
                    4,
                    16,
                    "`setFocused` can be used to manually set the focus state.".to_owned()
                ),
                (
                    21,
                    18,
                    21,
                    "Returns whether the current runtime should be treated as a server environment."
                        .to_owned()
                ),
                (30, 27, 32, "Emits only the first value.".to_owned()),
                (
                    45,
                    42,
                    47,
                    "Used to determine if an object has a lift function.".to_owned()
                ),
                (51, 50, 53, "Handles a click.".to_owned()),
            ]
        );
    }

    #[test]
    fn blanking_keeps_lines_and_code() {
        let blanked = blank_jsdoc(JS);
        assert_eq!(blanked.lines().count(), JS.lines().count());
        let lines: Vec<&str> = blanked.lines().collect();
        assert_eq!(lines[2], "/**");
        assert_eq!(lines[3], "");
        assert_eq!(lines[8], " */");
        assert_eq!(lines[9], "function chunk(array, size) {");
        assert_eq!(lines[14], "/** */");
        assert!(!blanked.contains("Creates"));
        assert!(documented_fns(&blanked).is_empty());
        let ts = blank_jsdoc(TS);
        assert_eq!(ts.lines().nth(3), Some("  /**"));
        assert_eq!(ts.lines().nth(6), Some("   */"));
    }

    #[test]
    fn declarations() {
        for yes in [
            "function f() {",
            "export default async function* gen(a) {",
            "const f = async (a) => {",
            "export const f: Fn = <T,>(a: T) => a",
            "let g = x => x",
            "module.exports = function (req) {",
            "static async *[Symbol.asyncIterator]() {",
            "get size() {",
            "constructor(name) {",
            "private readonly _run = async () => {",
            "'quoted-name'(a) {",
            "onClick: function () {",
        ] {
            assert!(is_decl(yes, Scope::Code), "{yes}");
        }
        for no in [
            "if (a) {",
            "return (a) => a",
            "const x = 1;",
            "class A {",
            "interface B {",
            "foo.bar(1);",
            "type F = (a: number) => void",
        ] {
            assert!(!is_decl(no, Scope::Code), "{no}");
        }
        assert!(!is_decl("connector: () => SubjectLike<T>;", Scope::Class));
        assert!(!is_decl("connector(): void", Scope::Type));
        assert!(is_decl("run: Fn = () => {", Scope::Class));
    }
}
