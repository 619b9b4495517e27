//! The chunks of one realistic file per language, pinned: symbols, kinds, line ranges,
//! token estimates and contexts, as a reviewer reads them.

// Tests fail loudly; `unwrap` on a test's own set-up is the clearest way to say so.
#![allow(clippy::unwrap_used)]

mod common;

use turboprop_chunk::{chunk_file, ChunkerConfig};

fn snapshot(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read(&path).unwrap();
    let chunked = chunk_file(name, &text, &ChunkerConfig::default());
    common::check(&chunked, &text).unwrap();
    assert_eq!(chunked, chunk_file(name, &text, &ChunkerConfig::default()));
    common::render(&chunked, &text)
}

#[test]
fn rust() {
    insta::assert_snapshot!(snapshot("table.rs"));
}

#[test]
fn python() {
    insta::assert_snapshot!(snapshot("table.py"));
}

#[test]
fn typescript() {
    insta::assert_snapshot!(snapshot("table.ts"));
}

#[test]
fn tsx() {
    insta::assert_snapshot!(snapshot("Table.tsx"));
}

#[test]
fn javascript() {
    insta::assert_snapshot!(snapshot("table.js"));
}

#[test]
fn go() {
    insta::assert_snapshot!(snapshot("table.go"));
}

#[test]
fn java() {
    insta::assert_snapshot!(snapshot("Table.java"));
}

#[test]
fn c() {
    insta::assert_snapshot!(snapshot("table.c"));
}

#[test]
fn cpp() {
    insta::assert_snapshot!(snapshot("table.cpp"));
}

#[test]
fn markdown() {
    insta::assert_snapshot!(snapshot("guide.md"));
}
