//! The code-aware analyzer: turns source text or a query into normalized terms.
//!
//! Text is cut into identifier-like runs (letters, digits, `_`); each run is split on `_` and
//! on camelCase boundaries (`HTTPServer` -> `http`, `server`), the parts are lowercased,
//! filtered (at least two characters, not starting with a digit, not a stopword) and lightly
//! stemmed (`entries` -> `entry`, `parsing` / `parsed` / `parses` -> `pars`). Adjacent parts of
//! one identifier also give a compound term (`rank_hand` -> `rankhand`), and in a query every
//! pair of adjacent words does (`rank hand` -> `rankhand`), so a query written in prose matches
//! the identifier that spells it.
//!
//! Everything here is deterministic and independent of the platform; changing any rule
//! changes stored vectors and needs a new model id.

/// What a term stands for; the embedder weights the two kinds differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TermKind {
    /// One normalized word: a part of an identifier or a word of prose.
    Word,
    /// Two adjacent words glued together (`rank` + `hand` -> `rankhand`).
    Compound,
}

/// Longest part kept, in bytes; longer runs are hashes, base64 or generated data.
const MAX_PART_LEN: usize = 40;

/// Calls `emit` with every term of a document (a chunk of source), in order of appearance.
///
/// ```
/// use turboprop_embed::{analyze_document, TermKind};
///
/// let mut terms = Vec::new();
/// analyze_document("fn rank_hand(cards: &[Card])", |t, kind| terms.push((t.to_string(), kind)));
/// let words: Vec<&str> = terms
///     .iter()
///     .filter(|(_, k)| *k == TermKind::Word)
///     .map(|(t, _)| t.as_str())
///     .collect();
/// assert_eq!(words, ["rank", "hand", "card", "card"]);
/// assert!(terms.contains(&("rankhand".to_string(), TermKind::Compound)));
/// ```
pub fn analyze_document(text: &str, mut emit: impl FnMut(&str, TermKind)) {
    Walker::new(Mode::Document).run(text, |t, k, _| emit(t, k));
}

/// Calls `emit` with every term of a query: the words as in [`analyze_document`], plus a
/// compound for every pair of adjacent words. A query made only of stopwords keeps them, so
/// searching for `self` still finds something.
///
/// ```
/// use turboprop_embed::analyze_query;
///
/// let mut terms = Vec::new();
/// analyze_query("split the pot", |t, _| terms.push(t.to_string()));
/// assert_eq!(terms, ["split", "pot", "splitpot"]);
/// ```
pub fn analyze_query(text: &str, mut emit: impl FnMut(&str, TermKind)) {
    let mut any = false;
    Walker::new(Mode::Query).run(text, |t, k, _| {
        any = true;
        emit(t, k);
    });
    if !any {
        Walker::new(Mode::QueryKeepStopwords).run(text, |t, k, _| emit(t, k));
    }
}

/// Calls `emit` with every term of a document for the exact lexical space: the words as in
/// [`analyze_document`], and a compound for every pair of adjacent words as in a query
/// (within an identifier, and between words of prose or code not parted by sentence
/// punctuation), so that a query's phrase matches the comment that spells it.
///
/// ```
/// use turboprop_embed::{analyze_phrases, TermKind};
///
/// let mut compounds = Vec::new();
/// analyze_phrases("/// Splits the pot between tied winners.", |t, k| {
///     if k == TermKind::Compound {
///         compounds.push(t.to_string());
///     }
/// });
/// assert_eq!(compounds, ["splitpot", "potbetween", "betweentied", "tiedwinner"]);
/// ```
pub fn analyze_phrases(text: &str, mut emit: impl FnMut(&str, TermKind)) {
    Walker::new(Mode::Query).run(text, |t, k, _| emit(t, k));
}

/// One pass giving both analyses of a document: every term of [`analyze_phrases`], with
/// whether [`analyze_document`] gives it too (every word, and the compounds of parts of one
/// identifier; not the compounds across identifiers). `tp index` needs both for each chunk
/// (the hashed vector and the exact terms), and the text is walked once.
pub(crate) fn analyze_document_and_phrases(text: &str, emit: impl FnMut(&str, TermKind, bool)) {
    Walker::new(Mode::Query).run(text, emit);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Document,
    Query,
    QueryKeepStopwords,
}

/// The state of one pass over a text.
struct Walker {
    mode: Mode,
    /// The current part, lowercased and stemmed.
    part: String,
    /// The previous kept part, for compounds; empty when there is none.
    prev: String,
    /// Scratch space for compounds.
    compound: String,
    /// Scratch space for the characters of the current identifier.
    chars: Vec<(usize, char)>,
    /// Whether `prev` is a part of the current identifier (a compound with it is one a
    /// document's analysis makes too).
    prev_here: bool,
}

impl Walker {
    fn new(mode: Mode) -> Self {
        Walker {
            mode,
            part: String::with_capacity(32),
            prev: String::with_capacity(32),
            compound: String::with_capacity(64),
            chars: Vec::with_capacity(64),
            prev_here: false,
        }
    }

    fn run(mut self, text: &str, mut emit: impl FnMut(&str, TermKind, bool)) {
        let mut start: Option<usize> = None;
        for (i, c) in text.char_indices() {
            if is_ident_char(c) {
                if start.is_none() {
                    start = Some(i);
                }
                continue;
            }
            if let Some(s) = start.take() {
                self.identifier(&text[s..i], &mut emit);
            }
            if self.breaks_compound(c, &text[i + c.len_utf8()..]) {
                self.prev.clear();
            }
        }
        if let Some(s) = start {
            self.identifier(&text[s..], &mut emit);
        }
    }

    /// Whether the character between two identifiers stops them from forming a compound.
    /// Inside documents every identifier stands alone; in a query, words separated by spaces,
    /// backticks, `::`, `.` inside a path and similar glue stay adjacent, sentence punctuation
    /// separates them.
    fn breaks_compound(&self, c: char, rest: &str) -> bool {
        match self.mode {
            Mode::Document => true,
            Mode::Query | Mode::QueryKeepStopwords => match c {
                '.' | ',' | ';' | ':' | '!' | '?' => match rest.chars().next() {
                    None => true,
                    Some(next) => next.is_whitespace(),
                },
                '(' | ')' | '[' | ']' | '{' | '}' | '"' | '\n' => true,
                _ => false,
            },
        }
    }

    /// Splits one identifier into parts and emits them and their compounds.
    fn identifier(&mut self, ident: &str, emit: &mut impl FnMut(&str, TermKind, bool)) {
        if self.mode == Mode::Document {
            self.prev.clear();
        }
        self.prev_here = false;
        let mut part_start = 0usize;
        let mut chars = std::mem::take(&mut self.chars);
        chars.clear();
        if ident.is_ascii() {
            // Nearly every identifier: its bytes are its characters, no decoding needed.
            chars.extend(ident.bytes().enumerate().map(|(i, b)| (i, char::from(b))));
        } else {
            chars.extend(ident.char_indices());
        }
        for (k, &(i, c)) in chars.iter().enumerate() {
            if c == '_' {
                self.part_range(&ident[part_start..i], emit);
                part_start = i + 1;
                continue;
            }
            if k == 0 || i == part_start {
                continue;
            }
            let prev = chars[k - 1].1;
            let next = chars.get(k + 1).map(|&(_, n)| n);
            let boundary = c.is_uppercase()
                && (prev.is_lowercase()
                    || prev.is_ascii_digit()
                    || (prev.is_uppercase() && next.is_some_and(char::is_lowercase)));
            if boundary {
                self.part_range(&ident[part_start..i], emit);
                part_start = i;
            }
        }
        self.part_range(&ident[part_start..], emit);
        self.chars = chars;
    }

    /// Normalizes one raw part and emits it (and the compound with the previous part).
    fn part_range(&mut self, raw: &str, emit: &mut impl FnMut(&str, TermKind, bool)) {
        if raw.len() > MAX_PART_LEN {
            self.prev.clear();
            return;
        }
        let mut chars = raw.chars();
        let Some(first) = chars.next() else {
            return;
        };
        if first.is_ascii_digit() || chars.next().is_none() {
            // Numbers and one-letter names carry no meaning of their own; like stopwords,
            // they do not break a compound (`page_2_size` still gives `pagesize`).
            return;
        }
        self.part.clear();
        if raw.is_ascii() {
            // Nearly every identifier: one byte per character, lowercased in place of the
            // general (and far slower) per-character mapping, with the same result.
            self.part.push_str(raw);
            self.part.make_ascii_lowercase();
        } else {
            for c in raw.chars() {
                self.part.extend(c.to_lowercase());
            }
        }
        if self.mode != Mode::QueryKeepStopwords && is_stopword(&self.part) {
            return;
        }
        stem(&mut self.part);
        emit(&self.part, TermKind::Word, true);
        if !self.prev.is_empty() {
            self.compound.clear();
            self.compound.push_str(&self.prev);
            self.compound.push_str(&self.part);
            emit(&self.compound, TermKind::Compound, self.prev_here);
        }
        std::mem::swap(&mut self.prev, &mut self.part);
        self.prev_here = true;
    }
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Common English function words and the keywords that appear in almost every chunk of
/// source code. They are dropped from documents and queries (a query made only of them keeps
/// them, see [`analyze_query`]).
#[rustfmt::skip]
const STOPWORDS: &[&str] = &[
    // English
    "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been",
    "being", "but", "by", "can", "could", "did", "do", "does", "each", "eg", "etc", "for",
    "from", "had", "has", "have", "he", "her", "here", "his", "how", "ie", "if", "in", "into",
    "is", "it", "its", "may", "might", "must", "my", "no", "nor", "not", "of", "on", "onto",
    "or", "our", "shall", "she", "should", "so", "such", "than", "that", "the", "their", "them",
    "then", "there", "these", "they", "this", "those", "to", "too", "us", "very", "was", "we",
    "were", "what", "when", "which", "while", "who", "whom", "whose", "why", "will", "with",
    "would", "you", "your",
    // Keywords of Rust and other common languages that fill every chunk.
    "fn", "let", "mut", "pub", "self", "crate", "super", "impl", "dyn", "ref", "mod", "def",
    "var", "func", "elif", "endif",
];

/// Whether `word` (lowercased) is one of [`STOPWORDS`]. Every word of a chunk is checked, so
/// the list is kept as a sorted table of the words packed into integers (all are at most
/// seven bytes), searched in a few comparisons.
pub(crate) fn is_stopword(word: &str) -> bool {
    static PACKED: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    let Some(key) = pack(word) else {
        return false;
    };
    let table = PACKED.get_or_init(|| {
        let mut keys: Vec<u64> = STOPWORDS.iter().filter_map(|w| pack(w)).collect();
        keys.sort_unstable();
        keys
    });
    table.binary_search(&key).is_ok()
}

/// A word of at most seven bytes as an integer: its bytes, then its length in the last
/// byte (none for a longer word).
fn pack(word: &str) -> Option<u64> {
    let bytes = word.as_bytes();
    if bytes.len() > 7 {
        return None;
    }
    let mut b = [0u8; 8];
    b[..bytes.len()].copy_from_slice(bytes);
    b[7] = bytes.len() as u8;
    Some(u64::from_le_bytes(b))
}

/// Light, deterministic suffix stripping for ASCII words: plural `s`/`es`/`ies`, `-ing`,
/// `-ed` (with consonant undoubling: `mapped` -> `map`) and a final silent `e`, so that
/// `parse`, `parses`, `parsed` and `parsing` all become `pars`. Non-ASCII words and words of
/// three letters or fewer are left alone.
pub(crate) fn stem(w: &mut String) {
    if !w.is_ascii() || w.len() <= 3 {
        return;
    }
    if w.ends_with("ies") && w.len() > 4 {
        w.truncate(w.len() - 3);
        w.push('y');
    } else if w.ends_with("sses") {
        w.truncate(w.len() - 2);
    } else if w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is") {
        w.truncate(w.len() - 1);
    }
    if w.ends_with("ing") && w.len() >= 6 {
        w.truncate(w.len() - 3);
        undouble(w);
    } else if w.ends_with("ed") && !w.ends_with("eed") && w.len() >= 5 {
        w.truncate(w.len() - 2);
        undouble(w);
    }
    if w.len() > 3 && w.ends_with('e') && !w.ends_with("ee") {
        w.truncate(w.len() - 1);
    }
}

/// `mapp` -> `map`, `runn` -> `run`; `call`, `pass` and `buzz` keep their double letter.
fn undouble(w: &mut String) {
    let b = w.as_bytes();
    let n = b.len();
    if n >= 4
        && b[n - 1] == b[n - 2]
        && !matches!(
            b[n - 1],
            b'a' | b'e' | b'i' | b'o' | b'u' | b'l' | b's' | b'z'
        )
    {
        w.truncate(n - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc_words(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        analyze_document(text, |t, k| {
            if k == TermKind::Word {
                out.push(t.to_string());
            }
        });
        out
    }

    fn doc_compounds(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        analyze_document(text, |t, k| {
            if k == TermKind::Compound {
                out.push(t.to_string());
            }
        });
        out
    }

    fn query_terms(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        analyze_query(text, |t, _| out.push(t.to_string()));
        out
    }

    fn stemmed(w: &str) -> String {
        let mut s = w.to_string();
        stem(&mut s);
        s
    }

    #[test]
    fn splits_snake_case_and_camel_case() {
        assert_eq!(doc_words("rank_hand"), ["rank", "hand"]);
        assert_eq!(doc_words("rankHand"), ["rank", "hand"]);
        assert_eq!(doc_words("RankHand"), ["rank", "hand"]);
        assert_eq!(doc_words("HTTPServer"), ["http", "server"]);
        assert_eq!(doc_words("parseJSONValue"), ["pars", "json", "valu"]);
        assert_eq!(
            doc_words("SCREAMING_SNAKE"),
            ["screaming", "snake"].map(stemmed)
        );
        assert_eq!(doc_words("__private__field"), ["privat", "field"]);
    }

    #[test]
    fn compounds_join_adjacent_parts_of_one_identifier_only() {
        assert_eq!(
            doc_compounds("split_pot_between"),
            ["splitpot", "potbetween"]
        );
        assert_eq!(doc_compounds("split pot"), Vec::<String>::new());
        assert_eq!(doc_compounds("TiedWinners"), ["tiedwinner"]);
        assert_eq!(doc_compounds("page_2_size"), ["pagsiz"]);
        assert_eq!(doc_compounds("is_empty_or_none"), ["emptynon"]);
    }

    #[test]
    fn digits_stay_attached_and_numbers_are_dropped() {
        assert_eq!(
            doc_words("u8 to_utf8 0x7f 1234 sha256Sum"),
            ["u8", "utf8", "sha256", "sum"]
        );
    }

    #[test]
    fn stopwords_and_keywords_are_dropped() {
        assert_eq!(
            doc_words("pub fn is_empty(&self) -> bool { self.len == 0 }"),
            ["empty", "bool", "len"]
        );
    }

    #[test]
    fn stopwords_are_exactly_the_list() {
        assert!(STOPWORDS.iter().all(|w| w.len() <= 7 && is_stopword(w)));
        for word in [
            "", "selfie", "sel", "a\0", "should_", "fns", "thereof", "endifs", "x",
        ] {
            assert!(!is_stopword(word), "{word:?}");
        }
    }

    #[test]
    fn query_compounds_cross_words_but_not_sentences() {
        assert_eq!(query_terms("split the pot"), ["split", "pot", "splitpot"]);
        assert_eq!(query_terms("rank. hand"), ["rank", "hand"]);
        assert_eq!(
            query_terms("Value::Number"),
            ["valu", "number", "valunumber"]
        );
    }

    #[test]
    fn stopword_only_query_keeps_its_words() {
        assert_eq!(query_terms("self"), ["self"]);
        assert_eq!(query_terms("  "), Vec::<String>::new());
    }

    #[test]
    fn light_stemming() {
        let cases = [
            ("entries", "entry"),
            ("queries", "query"),
            ("matches", "match"),
            ("boxes", "box"),
            ("indexes", "index"),
            ("indexed", "index"),
            ("parse", "pars"),
            ("parses", "pars"),
            ("parsed", "pars"),
            ("parsing", "pars"),
            ("running", "run"),
            ("mapped", "map"),
            ("called", "call"),
            ("passed", "pass"),
            ("added", "add"),
            ("class", "class"),
            ("status", "status"),
            ("analysis", "analysis"),
            ("needs", "need"),
            ("pots", "pot"),
            ("bytes", "byt"),
            ("byte", "byt"),
            ("tied", "tied"),
            ("use", "use"),
            ("größe", "größe"),
        ];
        for (word, want) in cases {
            assert_eq!(stemmed(word), want, "{word}");
        }
    }

    #[test]
    fn unicode_identifiers_are_lowercased_whole() {
        assert_eq!(doc_words("ÜberGröße straße"), ["über", "größe", "straße"]);
    }

    #[test]
    fn long_runs_are_skipped() {
        let blob = "a".repeat(MAX_PART_LEN + 1);
        assert!(doc_words(&blob).is_empty());
    }
}
