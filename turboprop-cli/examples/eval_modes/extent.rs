//! Where a braced function body ends, for Rust and JavaScript/TypeScript: the source is
//! reduced to its code characters (strings, comments, char literals and regular expressions
//! left out), and braces are matched on those.

/// Which lexical rules strip strings and comments.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Syntax {
    /// Nested block comments, char literals beside lifetimes, raw strings.
    Rust,
    /// Template literals with `${}`, regular expression literals.
    Js,
}

/// A code character outside strings and comments, with its 0-based line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tok {
    pub line: u32,
    pub ch: char,
    /// Whether it is the first character of a word.
    pub word_start: bool,
}

/// The code characters of `text` (no whitespace), in order. A string, comment or literal
/// leaves no character, except that a string leaves one `"` so that `f("a") {` still reads
/// as a call and a body.
pub fn code_chars(text: &str, syntax: Syntax) -> Vec<Tok> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut line = 0u32;
    let mut i = 0;
    // Brace depths at which a `${` of a template literal was opened (JS only).
    let mut templates: Vec<usize> = Vec::new();
    let mut braces = 0usize;
    // The last code word, for telling a regular expression from a division.
    let mut word = String::new();
    let at = |k: usize| chars.get(k).copied().unwrap_or('\0');
    // Skips from `i` (just past an opening quote) to just past the closing `quote`, counting
    // lines; `\` escapes the next character.
    let skip_quoted = |i: &mut usize, line: &mut u32, quote: char, escapes: bool| {
        while *i < chars.len() {
            let c = chars[*i];
            *i += 1;
            if c == '\n' {
                *line += 1;
            } else if c == '\\' && escapes {
                if at(*i) == '\n' {
                    *line += 1;
                }
                *i += 1;
            } else if c == quote {
                return;
            }
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        // Comments.
        if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && at(i + 1) == '*' {
            let mut depth = 1;
            i += 2;
            while i < chars.len() && depth > 0 {
                if chars[i] == '\n' {
                    line += 1;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 1;
                } else if syntax == Syntax::Rust && chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 1;
                }
                i += 1;
            }
            continue;
        }
        let word_char = c.is_alphanumeric() || c == '_' || c == '$';
        match (syntax, c) {
            (_, '"') => {
                i += 1;
                skip_quoted(&mut i, &mut line, '"', true);
                out.push(Tok {
                    line,
                    ch: '"',
                    word_start: false,
                });
                word.clear();
                continue;
            }
            (Syntax::Rust, 'r' | 'b') if !ident_before(&chars, i) => {
                // r"..", r#".."#, br"..", b"..", b'x'.
                let mut k = i + 1;
                if c == 'b' && at(k) == 'r' {
                    k += 1;
                }
                let raw = c == 'r' || at(i + 1) == 'r';
                let mut hashes = 0;
                while raw && at(k) == '#' {
                    hashes += 1;
                    k += 1;
                }
                if at(k) == '"' && (raw || k == i + 1) {
                    i = k + 1;
                    if raw {
                        while i < chars.len() {
                            if chars[i] == '\n' {
                                line += 1;
                            }
                            if chars[i] == '"' && (1..=hashes).all(|h| at(i + h) == '#') {
                                i += 1 + hashes;
                                break;
                            }
                            i += 1;
                        }
                    } else {
                        skip_quoted(&mut i, &mut line, '"', true);
                    }
                    out.push(Tok {
                        line,
                        ch: '"',
                        word_start: false,
                    });
                    word.clear();
                    continue;
                }
                if c == 'b' && at(i + 1) == '\'' {
                    i += 2;
                    skip_quoted(&mut i, &mut line, '\'', true);
                    word.clear();
                    continue;
                }
            }
            // A char literal ('x', '\n', '\u{..}'), else a lifetime.
            (Syntax::Rust, '\'')
                if at(i + 1) == '\\' || (at(i + 2) == '\'' && at(i + 1) != '\'') =>
            {
                i += 1;
                skip_quoted(&mut i, &mut line, '\'', true);
                word.clear();
                continue;
            }
            (Syntax::Js, '\'') => {
                i += 1;
                skip_quoted(&mut i, &mut line, '\'', true);
                out.push(Tok {
                    line,
                    ch: '"',
                    word_start: false,
                });
                word.clear();
                continue;
            }
            // A template's text: from its opening backquote, or from the `}` ending one of
            // its `${}`s, to its next `${` or its end.
            (Syntax::Js, '`' | '}')
                if c == '`' || templates.last() == Some(&(braces.wrapping_sub(1))) =>
            {
                if c == '}' {
                    templates.pop();
                    braces -= 1;
                }
                i += 1;
                if template_text(&chars, &mut i, &mut line) {
                    templates.push(braces);
                    braces += 1;
                } else {
                    out.push(Tok {
                        line,
                        ch: '"',
                        word_start: false,
                    });
                }
                word.clear();
                continue;
            }
            (Syntax::Js, '/') if regex_may_start(out.last().map(|t| t.ch), &word) => {
                let mut k = i + 1;
                let mut class = false;
                while k < chars.len() && chars[k] != '\n' {
                    match chars[k] {
                        '\\' => k += 1,
                        '[' => class = true,
                        ']' => class = false,
                        '/' if !class => break,
                        _ => {}
                    }
                    k += 1;
                }
                if at(k) == '/' {
                    i = k + 1;
                    while at(i).is_alphabetic() {
                        i += 1;
                    }
                    out.push(Tok {
                        line,
                        ch: '"',
                        word_start: false,
                    });
                    word.clear();
                    continue;
                }
            }
            _ => {}
        }
        if word_char {
            if !ident_before(&chars, i) {
                word.clear();
            }
            word.push(c);
        } else {
            word.clear();
        }
        match c {
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            _ => {}
        }
        out.push(Tok {
            line,
            ch: c,
            word_start: word_char && !ident_before(&chars, i),
        });
        i += 1;
    }
    out
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Whether `chars[i]` continues an identifier (so the `r` of `for` starts no raw string).
fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && is_word(chars[i - 1])
}

/// Whether a `/` after the code character `prev` (and the word before it) starts a regular
/// expression rather than a division.
fn regex_may_start(prev: Option<char>, word: &str) -> bool {
    match prev {
        None => true,
        Some(c) if "(,=:[!&|?{};+-*%<>~^".contains(c) => true,
        Some(c) if is_word(c) => matches!(
            word,
            "return"
                | "typeof"
                | "case"
                | "do"
                | "else"
                | "in"
                | "of"
                | "new"
                | "delete"
                | "void"
                | "throw"
                | "yield"
                | "await"
        ),
        _ => false,
    }
}

/// Skips template literal text from `i` to its closing backtick (false) or to just past a
/// `${` (true).
fn template_text(chars: &[char], i: &mut usize, line: &mut u32) -> bool {
    while *i < chars.len() {
        let c = chars[*i];
        *i += 1;
        match c {
            '\n' => *line += 1,
            '\\' => *i += 1,
            '`' => return false,
            '$' if chars.get(*i) == Some(&'{') => {
                *i += 1;
                return true;
            }
            _ => {}
        }
    }
    false
}

/// The 0-based line of the `}` matching the `{` at `toks[open]`, if it is closed.
pub fn matching_close(toks: &[Tok], open: usize) -> Option<u32> {
    let mut depth = 0usize;
    for t in &toks[open..] {
        match t.ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(t.line);
                }
            }
            _ => {}
        }
    }
    None
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Whether the `{` at `toks[k]` opens a type (`): { a: T } {`, `x is { a: T }`), not a body.
fn type_brace(toks: &[Tok], k: usize) -> bool {
    let prev = toks[k - 1];
    if matches!(prev.ch, ':' | '|' | '&' | ',' | '<' | '=') {
        return true;
    }
    k >= 2 && prev.ch == 's' && !prev.word_start && toks[k - 2].ch == 'i' && toks[k - 2].word_start
}

/// The last 0-based line of the JavaScript/TypeScript function declared on line `decl`
/// (0-based): the `}` closing its body, or the end of an arrow's expression; `None` when
/// it has no body (a signature, or not a function after all).
pub fn js_fn_end(toks: &[Tok], lines: &[&str], decl: usize) -> Option<u32> {
    let start = toks.partition_point(|t| (t.line as usize) < decl);
    let own = indent(lines[decl]);
    let mut depth = 0i32;
    let mut params_closed = false;
    let mut arrow = false;
    let mut expr = false;
    let mut prev_line = decl as u32;
    let mut k = start;
    while k < toks.len() {
        let t = toks[k];
        if t.line != prev_line && depth == 0 && k > start {
            let line = lines[t.line as usize];
            if arrow && expr && !".?:+-*/%&|=<>".contains(t.ch) {
                return Some(prev_line);
            }
            if !arrow && params_closed && indent(line) <= own && !"{):|&=.>,?".contains(t.ch) {
                return None;
            }
        }
        match t.ch {
            '(' | '[' => depth += 1,
            ')' | ']' => {
                depth -= 1;
                if depth < 0 {
                    return (arrow && expr).then_some(prev_line);
                }
                if depth == 0 && t.ch == ')' {
                    params_closed = true;
                }
            }
            '=' if depth == 0 && toks.get(k + 1).is_some_and(|n| n.ch == '>') => {
                arrow = true;
                expr = false;
                k += 2;
                prev_line = t.line;
                continue;
            }
            '{' if depth == 0 => {
                let close = matching_close(toks, k)?;
                let in_expression = arrow && expr;
                let a_type = k > start && type_brace(toks, k);
                if !in_expression && !a_type {
                    return Some(close);
                }
                // An object in the arrow's expression, or a type: skip it.
                while toks[k].line != close || toks[k].ch != '}' {
                    k += 1;
                }
            }
            ';' if depth == 0 => return (arrow && expr).then_some(t.line),
            ',' if depth == 0 && arrow && expr => return Some(t.line),
            _ => {}
        }
        if arrow {
            expr = true;
        }
        prev_line = toks[k].line;
        k += 1;
    }
    (arrow && expr).then_some(prev_line)
}

/// The last 0-based line of the Rust item whose `fn` is on line `fn_line`: the line of the
/// `}` closing its body, or of the `;` ending a declaration without one.
pub fn rust_fn_end(toks: &[Tok], fn_line: u32) -> u32 {
    let start = toks.partition_point(|t| t.line < fn_line);
    let mut depth = 0i32;
    for (k, t) in toks.iter().enumerate().skip(start) {
        match t.ch {
            '(' | '[' | '<' => depth += 1,
            ')' | ']' => depth -= 1,
            '>' if k > 0 && toks[k - 1].ch == '-' => {} // `->`
            '>' => depth -= 1,
            '{' if depth <= 0 => return matching_close(toks, k).unwrap_or(t.line),
            ';' if depth <= 0 => return t.line,
            _ => {}
        }
    }
    fn_line
}

/// The first 0-based line of a Rust item's doc comment and attributes above `fn_line`.
pub fn rust_item_start(lines: &[&str], fn_line: u32) -> u32 {
    let mut j = fn_line as usize;
    while j > 0 {
        let t = lines[j - 1].trim_start();
        if (t.starts_with("///") && !t.starts_with("////")) || t.starts_with("#[") {
            j -= 1;
        } else {
            break;
        }
    }
    j as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars_of(text: &str, syntax: Syntax) -> String {
        code_chars(text, syntax).iter().map(|t| t.ch).collect()
    }

    #[test]
    fn rust_strings_comments_and_lifetimes_leave_no_braces() {
        let text = "fn f<'a>(x: &'a str) -> char {\n    let c = '{';\n    let s = r#\"}\"#; // }\n    /* { /* } */ */ '}'\n}\n";
        assert_eq!(
            chars_of(text, Syntax::Rust),
            "fnf<'a>(x:&'astr)->char{letc=;lets=\";}"
        );
        let toks = code_chars(text, Syntax::Rust);
        assert_eq!(rust_fn_end(&toks, 0), 4);
    }

    #[test]
    fn rust_declaration_without_body_ends_at_its_semicolon() {
        let text = "trait T {\n    fn f(&self)\n        -> u32;\n    fn g() {}\n}\n";
        let toks = code_chars(text, Syntax::Rust);
        assert_eq!(rust_fn_end(&toks, 1), 2);
        assert_eq!(rust_fn_end(&toks, 3), 3);
    }

    #[test]
    fn js_templates_and_regexes_are_skipped() {
        let text = "function f(a) {\n  const s = `}${a + {b: 1}.b}{`;\n  const r = /[}/]{2}/g;\n  return a / 2 / 3;\n}\n";
        let toks = code_chars(text, Syntax::Js);
        let open = toks.iter().position(|t| t.ch == '{').unwrap();
        assert_eq!(matching_close(&toks, open), Some(4));
        assert!(chars_of(text, Syntax::Js).contains("returna/2/3;"));
    }

    #[test]
    fn rust_item_start_takes_docs_and_attributes() {
        let lines = ["", "/// Doc.", "#[inline]", "pub fn f() {}"];
        assert_eq!(rust_item_start(&lines, 3), 1);
    }
}
