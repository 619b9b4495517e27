//! The cases the fixtures do not show: syntax errors, huge definitions, files of statements,
//! minified code, Unicode names, hostile bytes, deep nesting.

// Tests fail loudly; `unwrap` on a test's own set-up is the clearest way to say so.
#![allow(clippy::unwrap_used)]

mod common;

use turboprop_chunk::{chunk_file, estimate_tokens, ChunkerConfig, Lang, Method};

fn cut(path: &str, text: &[u8]) -> turboprop_chunk::Chunked {
    let chunked = chunk_file(path, text, &ChunkerConfig::default());
    common::check(&chunked, text).unwrap();
    chunked
}

#[test]
fn a_syntax_error_falls_back_to_windows_with_a_note() {
    let mut text = String::from("fn broken( {\n");
    for i in 0..60 {
        text.push_str(&format!("    let x{i} = {i};\n"));
    }
    let chunked = cut("src/broken.rs", text.as_bytes());
    assert_eq!(chunked.method, Method::Windows);
    let note = chunked.note.unwrap();
    assert!(
        note.contains("src/broken.rs") && note.contains("syntax errors"),
        "{note}"
    );
    let spans: Vec<_> = chunked
        .chunks
        .iter()
        .map(|c| (c.line_start, c.line_end))
        .collect();
    assert_eq!(spans, vec![(1, 40), (31, 61)]);
    assert!(chunked
        .chunks
        .iter()
        .all(|c| c.symbol.is_none() && c.kind.is_none()));
}

#[test]
fn a_huge_method_is_split_under_budget_with_its_signatures_as_context() {
    let mut text = String::from("/// Holds the totals.\nstruct Big;\n\nimpl Big {\n");
    text.push_str("    /// Adds everything up.\n    fn huge(&mut self, base: u32) -> u32 {\n");
    text.push_str("        let mut total = base;\n");
    for i in 0..300 {
        text.push_str(&format!(
            "        total = total.wrapping_add(compute_step({i}, total));\n"
        ));
    }
    text.push_str("        total\n    }\n}\n");
    let chunked = cut("big.rs", text.as_bytes());
    let config = ChunkerConfig::default();
    let pieces: Vec<_> = chunked
        .chunks
        .iter()
        .filter(|c| c.symbol.as_deref() == Some("Big::huge"))
        .collect();
    assert!(pieces.len() > 10, "{:#?}", chunked.chunks);
    for piece in &pieces {
        assert!(estimate_tokens(&text.as_bytes()[piece.bytes.clone()]) <= config.max_tokens);
        assert_eq!(
            piece.context.as_deref(),
            Some("impl Big\nfn huge(&mut self, base: u32) -> u32")
        );
        assert_eq!(piece.kind, Some("method"));
    }
    // The first piece starts with the doc comment and signature; the closing braces are in
    // the last one.
    assert_eq!(pieces[0].line_start, 4);
    assert_eq!(
        chunked.chunks.last().unwrap().line_end,
        text.lines().count() as u32
    );
}

#[test]
fn a_huge_python_function_keeps_its_class_and_signature() {
    let mut text = String::from("class Ledger:\n    def settle(self, rows):\n");
    for i in 0..200 {
        text.push_str(&format!(
            "        self.total += rows[{i}] * rate_for({i})\n"
        ));
    }
    let chunked = cut("ledger.py", text.as_bytes());
    assert!(chunked.chunks.len() > 5);
    for c in &chunked.chunks {
        assert_eq!(c.symbol.as_deref(), Some("Ledger::settle"));
        assert_eq!(
            c.context.as_deref(),
            Some("class Ledger:\ndef settle(self, rows):")
        );
    }
}

#[test]
fn top_level_statements_are_grouped() {
    let text: String = (0..120)
        .map(|i| format!("setting_{i} = load_value(\"key_{i}\")\n"))
        .collect();
    let chunked = cut("settings.py", text.as_bytes());
    let config = ChunkerConfig::default();
    assert!(chunked.chunks.len() < 20, "{} chunks", chunked.chunks.len());
    for c in &chunked.chunks {
        assert_eq!(
            (c.symbol.as_deref(), c.kind, c.context.as_deref()),
            (None, None, None)
        );
        let tokens = estimate_tokens(&text.as_bytes()[c.bytes.clone()]);
        assert!(tokens <= config.max_tokens);
    }
    for c in &chunked.chunks[..chunked.chunks.len() - 1] {
        assert!(estimate_tokens(&text.as_bytes()[c.bytes.clone()]) >= config.min_tokens);
    }
}

#[test]
fn minified_javascript_on_one_line_is_cut_into_bounded_pieces() {
    let unit = "var a=1,b=[1,2,3];function f(x){return x.map(function(y){return y*a})}";
    let text = unit.repeat(5 * 1024 * 1024 / unit.len());
    let chunked = cut("dist/app.min.js", text.as_bytes());
    assert_eq!(chunked.method, Method::Lines);
    assert!(chunked.note.unwrap().contains("dist/app.min.js"));
    assert!(chunked.chunks.len() > 1000);
    for c in &chunked.chunks {
        assert_eq!((c.line_start, c.line_end), (1, 1));
        assert!(c.bytes.len() <= 768, "{:?}", c.bytes);
    }
    assert_eq!(chunked.chunks.last().unwrap().bytes.end, text.len());
}

#[test]
fn an_overlong_line_in_multibyte_text_is_cut_at_character_boundaries() {
    let text = format!("short\n{}\nend\n", "é".repeat(5000));
    let chunked = cut("notes.txt", text.as_bytes());
    assert_eq!(chunked.method, Method::Lines);
    for c in &chunked.chunks {
        assert!(std::str::from_utf8(&text.as_bytes()[c.bytes.clone()]).is_ok());
    }
}

#[test]
fn unicode_identifiers_name_their_symbols() {
    let rust = "/// Die Größe.\nfn größe() -> usize {\n    42\n}\n";
    let chunked = cut("maß.rs", rust.as_bytes());
    assert_eq!(chunked.chunks[0].symbol.as_deref(), Some("größe"));
    let python = "def 名前():\n    return \"名前\"\n";
    let chunked = cut("名前.py", python.as_bytes());
    assert_eq!(chunked.method, Method::Syntax(Lang::Python));
    assert_eq!(chunked.chunks[0].symbol.as_deref(), Some("名前"));
    // A method of a split class, so the path shows.
    let mut class = String::from("class Größe:\n    def größe(self):\n");
    for i in 0..80 {
        class.push_str(&format!("        self.wert_{i} = berechne({i})\n"));
    }
    let chunked = cut("klasse.py", class.as_bytes());
    assert_eq!(chunked.chunks[0].symbol.as_deref(), Some("Größe::größe"));
}

#[test]
fn hostile_bytes_never_panic() {
    let cases: Vec<Vec<u8>> = vec![
        b"\xff\xfe\x00\x00fn main() {}\n".to_vec(),
        b"fn a() {}\0\0\0\nfn b() {}\n".to_vec(),
        b"\n\n\n".to_vec(),
        b"\r\n\r\nfn a() {}\r\n".to_vec(),
        vec![0u8; 10_000],
        (0..=255u8).cycle().take(50_000).collect(),
    ];
    for text in &cases {
        for path in [
            "x.rs", "x.py", "x.tsx", "x.js", "x.go", "x.java", "x.c", "x.cpp", "x.md",
        ] {
            cut(path, text);
        }
    }
    assert!(chunk_file("x.rs", b"", &ChunkerConfig::default())
        .chunks
        .is_empty());
}

#[test]
fn deep_nesting_never_panics() {
    let depth = 20_000;
    let rust = format!(
        "fn deep() {{ {}{} }}\n",
        "{\n".repeat(depth),
        "}\n".repeat(depth)
    );
    cut("deep.rs", rust.as_bytes());
    let js = format!(
        "const x = {}1{};\n",
        "[\n".repeat(depth),
        "]\n".repeat(depth)
    );
    cut("deep.js", js.as_bytes());
    let mut py = String::new();
    for i in 0..300 {
        py.push_str(&" ".repeat(i));
        py.push_str("if x:\n");
    }
    py.push_str(&" ".repeat(300));
    py.push_str("pass\n");
    cut("deep.py", py.as_bytes());
    let c = format!(
        "int f() {{ return {}1{}; }}\n",
        "(\n".repeat(depth),
        ")\n".repeat(depth)
    );
    cut("deep.c", c.as_bytes());
}

#[test]
fn files_without_a_grammar_keep_line_windows() {
    let text: String = (1..=100).map(|i| format!("line {i}\n")).collect();
    let chunked = cut("notes.txt", text.as_bytes());
    assert_eq!(chunked.method, Method::Windows);
    assert_eq!(chunked.note, None);
    let spans: Vec<_> = chunked
        .chunks
        .iter()
        .map(|c| (c.line_start, c.line_end))
        .collect();
    assert_eq!(spans, vec![(1, 40), (31, 70), (61, 100)]);
}

#[test]
fn a_long_markdown_section_is_split_by_paragraphs_with_its_headings() {
    let mut text = String::from("# Guide\n\n## Dealing\n\n");
    for i in 0..30 {
        text.push_str(&format!(
            "Paragraph {i} explains one more rule of dealing cards at the table,\nin two lines.\n\n"
        ));
    }
    let chunked = cut("guide.md", text.as_bytes());
    assert_eq!(chunked.method, Method::Markdown);
    let dealing: Vec<_> = chunked
        .chunks
        .iter()
        .filter(|c| c.symbol.as_deref() == Some("Dealing"))
        .collect();
    assert!(dealing.len() > 3);
    for c in dealing {
        assert_eq!(c.kind, Some("section"));
        assert_eq!(c.context.as_deref(), Some("# Guide\n## Dealing"));
    }
}

#[test]
fn files_over_the_parse_limit_use_windows_with_a_note() {
    let config = ChunkerConfig {
        max_parse_bytes: 100,
        ..ChunkerConfig::default()
    };
    let text = "fn a() {}\n".repeat(20);
    let chunked = chunk_file("a.rs", text.as_bytes(), &config);
    assert_eq!(chunked.method, Method::Windows);
    assert!(chunked.note.unwrap().contains("limit"));
}

/// commander's style: a JSDoc block, a blank line, then the method. The comment belongs to
/// the method after it, not to the group before it (found by the evaluation: a query from the
/// comment found the previous method).
#[test]
fn a_doc_comment_a_blank_line_above_its_method_stays_with_it() {
    let body = |name: &str| {
        (0..12)
            .map(|i| format!("    this.{name}_{i} = compute_{name}({i});\n"))
            .collect::<String>()
    };
    let text = format!(
        "class Command {{\n  /**\n   * Add a hook.\n   */\n\n  hook(event) {{\n{}  }}\n\n  /**\n   * Register callback to use as replacement for calling process.exit.\n   */\n\n  exitOverride(fn) {{\n{}  }}\n}}\n",
        body("hook"),
        body("exit")
    );
    let chunked = cut("lib/command.js", text.as_bytes());
    let lines: Vec<&str> = text.lines().collect();
    let exit = chunked
        .chunks
        .iter()
        .find(|c| c.symbol.as_deref() == Some("Command::exitOverride"))
        .unwrap_or_else(|| panic!("{:#?}", chunked.chunks));
    assert_eq!(
        lines[exit.line_start as usize - 1].trim(),
        "/**",
        "{exit:?}"
    );
    assert!(
        lines[exit.line_start as usize].contains("Register callback"),
        "{exit:?}"
    );
    let hook = chunked
        .chunks
        .iter()
        .find(|c| c.symbol.as_deref() == Some("Command::hook"))
        .unwrap();
    assert!(hook.line_end < exit.line_start, "{hook:?} {exit:?}");
}
