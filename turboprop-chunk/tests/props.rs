//! Properties over random and mutated inputs: never a panic, and the chunks keep their
//! invariants (sorted, disjoint unless line windows, within the file, byte ranges matching
//! line ranges, every non-blank line covered), for any token budget.

mod common;

use proptest::prelude::*;
use turboprop_chunk::{chunk_file, ChunkerConfig};

const FIXTURES: [(&str, &str); 10] = [
    ("table.rs", include_str!("fixtures/table.rs")),
    ("table.py", include_str!("fixtures/table.py")),
    ("table.ts", include_str!("fixtures/table.ts")),
    ("Table.tsx", include_str!("fixtures/Table.tsx")),
    ("table.js", include_str!("fixtures/table.js")),
    ("table.go", include_str!("fixtures/table.go")),
    ("Table.java", include_str!("fixtures/Table.java")),
    ("table.c", include_str!("fixtures/table.c")),
    ("table.cpp", include_str!("fixtures/table.cpp")),
    ("guide.md", include_str!("fixtures/guide.md")),
];

const EXTENSIONS: [&str; 11] = [
    "rs", "py", "ts", "tsx", "js", "go", "java", "c", "cpp", "md", "txt",
];

const SNIPPETS: [&str; 8] = [
    "}",
    "{",
    "    // a comment",
    "",
    "def f(x):",
    "fn g() { let y = 1; }",
    "# Heading",
    "```",
];

/// A line edit: delete, insert a snippet, or duplicate, at a position (modulo the length).
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Insert(usize, usize),
    Duplicate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), 0..SNIPPETS.len()).prop_map(|(a, b)| Edit::Insert(a, b)),
        any::<usize>().prop_map(Edit::Duplicate),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for e in edits {
        let n = lines.len().max(1);
        match *e {
            Edit::Delete(at) if !lines.is_empty() => {
                lines.remove(at % n);
            }
            Edit::Insert(at, s) => lines.insert(at % (lines.len() + 1), SNIPPETS[s].to_owned()),
            Edit::Duplicate(at) if !lines.is_empty() => {
                let line = lines[at % n].clone();
                lines.insert(at % n, line);
            }
            _ => {}
        }
    }
    lines.join("\n")
}

fn verify(path: &str, text: &[u8], budget: usize) -> Result<(), TestCaseError> {
    let config = ChunkerConfig::for_budget(budget);
    let chunked = chunk_file(path, text, &config);
    if let Err(e) = common::check(&chunked, text) {
        return Err(TestCaseError::fail(format!("{path}: {e}\n{chunked:#?}")));
    }
    prop_assert_eq!(&chunked, &chunk_file(path, text, &config));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..3000),
        ext in 0..EXTENSIONS.len(),
        budget in 1usize..400,
    ) {
        verify(&format!("f.{}", EXTENSIONS[ext]), &bytes, budget)?;
    }

    #[test]
    fn mutated_fixtures(
        which in 0..FIXTURES.len(),
        edits in proptest::collection::vec(edit(), 0..12),
        budget in prop_oneof![Just(256usize), 1usize..400],
    ) {
        let (name, text) = FIXTURES[which];
        let text = apply(text, &edits);
        verify(name, text.as_bytes(), budget)?;
    }

    #[test]
    fn fixtures_of_random_lines(
        lines in proptest::collection::vec(
            prop_oneof![
                proptest::sample::select(SNIPPETS.to_vec()).prop_map(str::to_owned),
                "[ -~]{0,40}",
            ],
            0..80,
        ),
        ext in 0..EXTENSIONS.len(),
        budget in 1usize..300,
    ) {
        let text = lines.join("\n");
        verify(&format!("f.{}", EXTENSIONS[ext]), text.as_bytes(), budget)?;
    }
}
