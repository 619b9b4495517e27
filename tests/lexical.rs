//! The exact lexical space as a user of `tp` sees it (issue 16): a word is found exactly
//! where it is and nowhere else, and an index written before the postings gains them on the
//! next `tp index` without its model embedding anything again.

// Tests fail loudly; `unwrap` on a test's own set-up is the clearest way to say so.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

/// The hashed lexical vectors shared 512 slots among every term of the index, so a rare
/// word scored chunks that merely collided with it. Exact terms have no such neighbours: a
/// word in one chunk of a thousand-term repository finds that chunk and no other.
#[test]
fn a_word_in_one_chunk_finds_that_chunk_and_no_other() {
    let sb = Sandbox::empty();
    let words: Vec<String> = (0..400).map(|i| format!("term{i}x")).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    generate_functions(&sb.root, 60, 30, &words, 16);
    sb.write(
        "src/upload.rs",
        "/// Retries a failed zqqsachhwtrkjn upload.\nfn retry_upload() {}\n",
    );
    sb.tp(&["index"]).ok();
    let hits = sb.search("zqqsachhwtrkjn", &["--limit", "10"]);
    assert_eq!(files(&hits), ["src/upload.rs"], "{hits:?}");
    // The same index searched in its hashed vectors (as before the postings existed: the
    // manifest records no lexical rules) finds chunks that only collide with the word.
    rewrite_manifest(&sb, |m| {
        m.as_object_mut().unwrap().remove("lexical");
    });
    let hashed = sb.search("zqqsachhwtrkjn", &["--limit", "10"]);
    assert!(hashed.len() > 1, "{hashed:?}");
}

/// An index whose manifest records no lexical rules (written before them) is searched in its
/// hashed vectors until `tp index` adds the postings to every file: what the files have is
/// kept (the model embeds nothing), and the answers are those of a fresh index.
#[test]
fn an_index_without_postings_gains_them_without_embedding_again() {
    let sb = Sandbox::poker();
    turboprop_embed::write_tiny_bert(&sb.cache.join("models/tiny-bert"), 11).unwrap();
    sb.tp(&["index", "--model", "tiny-bert"]).ok();
    let query = "split the pot between tied winners";
    let fresh = sb.search(query, &["--mode", "lexical"]);
    rewrite_manifest(&sb, |m| {
        m.as_object_mut().unwrap().remove("lexical");
    });
    // Still searchable, in every mode.
    for mode in ["lexical", "hybrid"] {
        assert!(!sb.search(query, &["--mode", mode]).is_empty(), "{mode}");
    }
    let run = sb.tp(&["index"]).ok();
    let files = manifest(&sb.root)["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["files"].as_u64().unwrap())
        .sum::<u64>();
    assert!(
        run.stderr.contains(&format!(
            "adding exact lexical postings (code-bm25-v1) to {files} indexed files (what they have is kept)"
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("({files} only given lexical postings)")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("only by the model"), "{}", run.stderr);
    assert_eq!(manifest(&sb.root)["lexical"], "code-bm25-v1");
    let ranked = |hits: &[serde_json::Value]| -> Vec<String> {
        hits.iter()
            .map(|h| format!("{}:{} {}", h["file"], h["line_start"], h["score"]))
            .collect()
    };
    assert_eq!(
        ranked(&sb.search(query, &["--mode", "lexical"])),
        ranked(&fresh)
    );
    // Nothing left to add.
    let again = sb.tp(&["index"]).ok();
    assert!(again.stderr.contains("up to date"), "{}", again.stderr);
}
