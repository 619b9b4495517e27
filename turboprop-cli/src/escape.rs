//! Text from untrusted places (file names from a repository or an index, parts of files)
//! made safe for a terminal: control characters and invisible formatting characters are
//! shown escaped, never sent raw, so a file named `a\x1b[31m.py` cannot recolour or rewrite
//! the user's screen, and one holding a right-to-left override cannot show its name
//! reversed. JSON output needs none of this: serde escapes control characters.

use std::borrow::Cow;

/// `text` with every control character (C0, DEL and C1) and every invisible formatting
/// character (bidirectional overrides and isolates, zero-width characters, the byte order
/// mark) written as a Rust-style escape (`\n`, `\t`, `\u{1b}`, `\u{202e}`, ...); other
/// text, non-ASCII letters included, is unchanged.
///
/// ```
/// use turboprop_cli::escape::escape_control;
/// assert_eq!(escape_control("src/main.rs"), "src/main.rs");
/// assert_eq!(escape_control("ctrl\x01\x1b[31mred.py"), "ctrl\\u{1}\\u{1b}[31mred.py");
/// assert_eq!(escape_control("naïve.rs"), "naïve.rs");
/// assert_eq!(escape_control("gnp.\u{202e}exe"), "gnp.\\u{202e}exe");
/// ```
pub fn escape_control(text: &str) -> Cow<'_, str> {
    escape_where(text, needs_escape)
}

/// [`escape_control`] for one line of a file's content shown to people: the same, except
/// that tabs are kept (they indent code; a line holds no newline).
///
/// ```
/// use turboprop_cli::escape::escape_line;
/// assert_eq!(escape_line("\tif x {"), "\tif x {");
/// assert_eq!(escape_line("say(\"\x1b]0;pwned\x07\")"), "say(\"\\u{1b}]0;pwned\\u{7}\")");
/// ```
pub fn escape_line(line: &str) -> Cow<'_, str> {
    escape_where(line, |c| c != '\t' && needs_escape(c))
}

/// `text` with the characters `escape` picks written as Rust-style escapes.
fn escape_where(text: &str, escape: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(&escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Whether `c` changes what a terminal shows without being shown itself.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Arabic letter mark, zero-width space/joiners, left-to-right and right-to-left
            // marks, embeddings and overrides, word joiner and invisible operators,
            // isolates, byte order mark.
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{feff}'
        )
}
