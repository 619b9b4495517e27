//! Text from untrusted places (file names from a repository or an index, parts of files)
//! made safe for a terminal: control characters are shown escaped, never sent raw, so a file
//! named `a\x1b[31m.py` cannot recolour or rewrite the user's screen.

use std::borrow::Cow;

/// `text` with every control character (C0, DEL and C1) written as a Rust-style escape
/// (`\n`, `\t`, `\u{1b}`, ...); other text, non-ASCII letters included, is unchanged.
///
/// ```
/// use turboprop_cli::escape::escape_control;
/// assert_eq!(escape_control("src/main.rs"), "src/main.rs");
/// assert_eq!(escape_control("ctrl\x01\x1b[31mred.py"), "ctrl\\u{1}\\u{1b}[31mred.py");
/// assert_eq!(escape_control("naïve.rs"), "naïve.rs");
/// ```
pub fn escape_control(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}
