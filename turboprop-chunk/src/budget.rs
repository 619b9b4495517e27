//! The token estimate: a cheap, deterministic stand-in for the embedding model's tokenizer.
//!
//! The model's WordPiece tokenizer is not available here, so chunks are measured with a rule
//! that imitates it on code and over-counts rather than under-counts (a chunk the estimate
//! says fits the budget should not be truncated by the model):
//!
//! - every ASCII punctuation byte (`(`, `.`, `::` is two, ...) is one token;
//! - every non-ASCII character (a UTF-8 lead byte, or an invalid byte) is one token, as CJK
//!   characters are in BERT vocabularies;
//! - a run of ASCII letters, digits and `_` is split into word pieces at `_`, at lower-to-upper
//!   case changes (`parseHTTPHeader` -> `parse`, `HTTP`, `Header`) and at letter/digit changes;
//!   each piece of `n` bytes counts `ceil(n / 5)` tokens (`deal` 1, `shuffle` 2);
//! - whitespace is free.
//!
//! The estimate of a text is the sum of the estimates of its lines (no piece crosses a
//! newline), which lets the chunker sum line estimates instead of re-reading text.

/// The estimated number of model tokens in `text` (see the module documentation).
///
/// ```
/// use turboprop_chunk::estimate_tokens;
///
/// assert_eq!(estimate_tokens(b"fn deal(&mut self)"), 7); // fn deal ( & mut self )
/// assert_eq!(estimate_tokens(b"shuffle_deck"), 3); // shuf-fle, deck
/// assert_eq!(estimate_tokens(b"   \n\t"), 0);
/// assert_eq!(estimate_tokens("größe".as_bytes()), 4); // gr, ö, ß, e
/// ```
pub fn estimate_tokens(text: &[u8]) -> usize {
    let mut tokens = 0usize;
    let mut i = 0usize;
    while i < text.len() {
        let b = text[i];
        if is_word(b) {
            let start = i;
            while i < text.len() && is_word(text[i]) {
                i += 1;
            }
            tokens += word_pieces(&text[start..i]);
        } else {
            // Whitespace is free; a UTF-8 continuation byte belongs to a counted lead byte.
            if !b.is_ascii_whitespace() && !(0x80..0xC0).contains(&b) {
                tokens += 1;
            }
            i += 1;
        }
    }
    tokens
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Lower,
    Upper,
    Digit,
}

fn class(b: u8) -> Option<Class> {
    if b.is_ascii_lowercase() {
        Some(Class::Lower)
    } else if b.is_ascii_uppercase() {
        Some(Class::Upper)
    } else if b.is_ascii_digit() {
        Some(Class::Digit)
    } else {
        None
    }
}

/// Tokens of one run of `[A-Za-z0-9_]`.
fn word_pieces(word: &[u8]) -> usize {
    let mut tokens = 0usize;
    let mut piece = 0usize;
    let mut prev: Option<Class> = None;
    for (i, &b) in word.iter().enumerate() {
        let Some(c) = class(b) else {
            // `_` ends a piece and is not counted itself.
            tokens += piece.div_ceil(5);
            piece = 0;
            prev = None;
            continue;
        };
        let next = word.get(i + 1).copied().and_then(class);
        let boundary = match (prev, c) {
            (Some(Class::Lower), Class::Upper) => true,
            (Some(Class::Digit), Class::Lower | Class::Upper) => true,
            (Some(Class::Lower | Class::Upper), Class::Digit) => true,
            // `HTTPHeader`: the `H` of `Header` starts a piece.
            (Some(Class::Upper), Class::Upper) => next == Some(Class::Lower),
            _ => false,
        };
        if boundary {
            tokens += piece.div_ceil(5);
            piece = 0;
        }
        piece += 1;
        prev = Some(c);
    }
    tokens + piece.div_ceil(5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_pieces_split_on_case_underscore_and_digits() {
        assert_eq!(estimate_tokens(b"parseHTTPHeader"), 4); // parse, HTTP, Heade-r
        assert_eq!(estimate_tokens(b"sha256sum"), 3);
        assert_eq!(estimate_tokens(b"__init__"), 1);
        assert_eq!(estimate_tokens(b"a.b"), 3);
    }

    #[test]
    fn lines_add_up() {
        let text = b"let x = 1;\nfoo(bar_baz);\n\xff\xfe\n";
        let sum: usize = text.split(|&b| b == b'\n').map(estimate_tokens).sum();
        assert_eq!(sum, estimate_tokens(text));
    }
}
