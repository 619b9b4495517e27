//! Tidy checks (in the spirit of rust-analyzer's `tidy.rs`): the rules of ARCHITECTURE.md
//! that the compiler does not enforce, checked over the workspace's source files.
//!
//! - **All index bytes go through a `Directory`**: in the storage and index crates, `std::fs`
//!   appears only in the files that implement the directory (`ALLOWED_FS`).
//! - **`unsafe` only where named** (`ALLOWED_UNSAFE`): every other file of a crate with unsafe
//!   code has none, and every crate without any says `#![forbid(unsafe_code)]`.
//! - **Only the CLI prints**: no `print!`, `println!`, `eprint!`, `eprintln!` or `dbg!` in the
//!   library crates.
//!
//! Test code (`#[cfg(test)] mod ... { }` blocks, `tests.rs` files, `tests/`, examples and
//! benches) and comments are not checked: tests may read files and print.

// Tests fail loudly; `unwrap` on a test's own set-up is the clearest way to say so.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

/// The library crates (no printing).
const LIBRARIES: [&str; 5] = [
    "turboprop-types",
    "turboprop-chunk",
    "turboprop-storage",
    "turboprop-index",
    "turboprop-embed",
];

/// Files of the storage and index crates that may use `std::fs`: the directory on disk and
/// what it is built from.
const ALLOWED_FS: [&str; 5] = [
    "turboprop-storage/src/directory/disk.rs",
    "turboprop-storage/src/atomic.rs",
    "turboprop-storage/src/lock.rs",
    "turboprop-storage/src/open.rs",
    "turboprop-storage/src/mmap.rs",
];

/// Files (or folders, ending in `/`) that may hold `unsafe` code.
const ALLOWED_UNSAFE: [&str; 6] = [
    "turboprop-storage/src/mmap.rs",
    "turboprop-storage/src/sigbus.rs",
    "turboprop-index/src/kernel.rs",
    "turboprop-index/src/kernel/",
    "turboprop-embed/src/kernels.rs",
    "turboprop-embed/src/int8/",
];

/// Crates with no `unsafe` code at all, which must forbid it: (crate root file).
const SAFE_CRATES: [&str; 6] = [
    "turboprop-types/src/lib.rs",
    "turboprop-chunk/src/lib.rs",
    "turboprop-cli/src/lib.rs",
    "turboprop-testkit/src/lib.rs",
    "src/lib.rs",
    "src/main.rs",
];

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, as `/`-separated paths relative to the workspace.
fn rust_files(dir: &Path, out: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(workspace()).unwrap();
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// The `src/` files of `krate` that are not test code.
fn library_files(krate: &str) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&workspace().join(krate).join("src"), &mut files);
    files.retain(|f| !f.ends_with("/tests.rs"));
    files.sort();
    files
}

/// The lines of `file` that are code: comments and test items (`#[cfg(test)]`,
/// `#[cfg(all(test, ...))]`, with a `mod name { ... }` block) left out. Returns (line number, text).
fn code_lines(file: &str) -> Vec<(usize, String)> {
    let text = fs::read_to_string(workspace().join(file)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_start();
        if line.starts_with("#[cfg(") && has_word(line, "test") && !line.contains("not(test") {
            // Skip the attributes and the item that follows; a `mod name { ... }` block is
            // skipped to its closing brace (counted over code, good enough for test modules).
            let mut j = i + 1;
            while j < lines.len() && lines[j].trim_start().starts_with("#[") {
                j += 1;
            }
            if j < lines.len() && lines[j].contains('{') {
                let mut depth = 0i64;
                while j < lines.len() {
                    depth += lines[j].matches('{').count() as i64;
                    depth -= lines[j].matches('}').count() as i64;
                    j += 1;
                    if depth <= 0 {
                        break;
                    }
                }
            } else {
                j += 1;
            }
            i = j;
            continue;
        }
        if !line.starts_with("//") {
            let code = match line.find("//") {
                // A trailing comment (not inside a string: a `"` before it is left alone).
                Some(at) if !line[..at].contains('"') => &line[..at],
                _ => line,
            };
            out.push((i + 1, code.to_owned()));
        }
        i += 1;
    }
    out
}

fn find(files: &[String], pattern: impl Fn(&str) -> bool) -> Vec<String> {
    let mut hits = Vec::new();
    for file in files {
        for (n, line) in code_lines(file) {
            if pattern(&line) {
                hits.push(format!("{file}:{n}: {}", line.trim()));
            }
        }
    }
    hits
}

/// Whether `word` occurs in `line` not as part of a longer identifier.
fn has_word(line: &str, word: &str) -> bool {
    let part = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let open_end = !part(word.chars().next_back());
    line.match_indices(word).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + word.len()..].chars().next();
        !part(before) && (open_end || !part(after))
    })
}

#[test]
fn only_the_directory_implementation_touches_the_file_system() {
    let files: Vec<String> = ["turboprop-storage", "turboprop-index"]
        .iter()
        .flat_map(|k| library_files(k))
        .filter(|f| !ALLOWED_FS.contains(&f.as_str()))
        .collect();
    assert!(files.len() > 20, "found too few files: {files:?}");
    let hits = find(&files, |l| l.contains("std::fs") || has_word(l, "fs::"));
    assert!(
        hits.is_empty(),
        "std::fs outside the Directory implementation (ARCHITECTURE.md: all bytes go \
         through a Directory):\n{}",
        hits.join("\n")
    );
}

#[test]
fn unsafe_code_is_only_in_the_named_files() {
    let mut files = Vec::new();
    for krate in [
        "turboprop-types",
        "turboprop-chunk",
        "turboprop-storage",
        "turboprop-index",
        "turboprop-embed",
        "turboprop-cli",
        "turboprop-testkit",
    ] {
        files.extend(library_files(krate));
    }
    rust_files(&workspace().join("src"), &mut files);
    let allowed = |f: &str| {
        ALLOWED_UNSAFE
            .iter()
            .any(|a| f == *a || (a.ends_with('/') && f.starts_with(a)))
    };
    files.retain(|f| !allowed(f));
    let hits = find(&files, |l| {
        has_word(l, "unsafe") && !l.contains("forbid(unsafe_code)")
    });
    assert!(
        hits.is_empty(),
        "unsafe code outside the files ARCHITECTURE.md names:\n{}",
        hits.join("\n")
    );
    // The allowed files exist (a rename must update the list and ARCHITECTURE.md).
    for a in ALLOWED_UNSAFE {
        assert!(
            workspace().join(a).exists(),
            "{a} is gone: update ALLOWED_UNSAFE"
        );
    }
}

#[test]
fn crates_without_unsafe_code_forbid_it() {
    for root in SAFE_CRATES {
        let text = fs::read_to_string(workspace().join(root)).unwrap();
        assert!(
            text.lines().any(|l| l.trim() == "#![forbid(unsafe_code)]"),
            "{root} must say #![forbid(unsafe_code)]"
        );
    }
}

#[test]
fn library_crates_do_not_print() {
    let files: Vec<String> = LIBRARIES.iter().flat_map(|k| library_files(k)).collect();
    let hits = find(&files, |l| {
        ["print!", "println!", "eprint!", "eprintln!", "dbg!"]
            .iter()
            .any(|m| has_word(l, m))
    });
    assert!(
        hits.is_empty(),
        "printing in a library crate (ARCHITECTURE.md: only the CLI prints):\n{}",
        hits.join("\n")
    );
}

#[test]
fn the_tidy_scanner_sees_code_and_skips_tests_and_comments() {
    // This file: its test module-free code includes the lists, and the comment lines of its
    // header are skipped.
    let lines = code_lines("tests/tidy.rs");
    assert!(lines.iter().any(|(_, l)| l.contains("const ALLOWED_FS")));
    assert!(
        !lines.iter().any(|(n, _)| *n == 1),
        "line 1 is a //! comment"
    );
    // A storage file with a test module that uses std::fs: the module is skipped, the code
    // before it kept.
    let table = code_lines("turboprop-storage/src/table.rs");
    assert!(!table.iter().any(|(_, l)| l.contains("std::fs::write")));
    assert!(table.iter().any(|(_, l)| l.contains("pub struct")));
    assert!(has_word("let x = fs::read(p);", "fs::"));
    assert!(!has_word("ifs::x", "fs::"));
    assert!(has_word("unsafe { f() }", "unsafe") && !has_word("unsafe_op", "unsafe"));
    assert!(has_word("eprintln!(\"x\")", "eprintln!") && !has_word("eprintln!(", "println!"));
}
