//! Bad input to the `tp` binary, from DESIGN.md's list: source files (binary, invalid UTF-8,
//! too large, empty, unreadable, link loops), the index folder (missing, a file, foreign,
//! an unknown version, damaged in every file, a broken `config.yaml`) and arguments. Each
//! gets a clear one-line error or a warning, never a panic, and nothing is lost: `tp verify`
//! names damage and `tp index --rebuild` recovers from it.

// Tests fail loudly; `unwrap` on a test's own set-up is the clearest way to say so.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

mod common;
use common::*;

// ---------------------------------------------------------------------------------------------
// Bad input: source files
// ---------------------------------------------------------------------------------------------

#[test]
fn binary_files_are_skipped_with_a_warning() {
    let sb = Sandbox::poker();
    // Source-looking name, binary content: caught by the NUL sniff, not the extension.
    let mut blob = b"fn ostrich_marker() {}\n".to_vec();
    blob.extend_from_slice(&[0, 1, 2, 3, 0xff, 0]);
    blob.extend_from_slice(b"ostrich ostrich ostrich\n");
    sb.write("rust/src/blob.rs", &blob);
    let run = sb.tp(&["index"]).ok();
    assert!(
        run.stderr
            .contains("skipped rust/src/blob.rs: binary content"),
        "{}",
        run.stderr
    );
    assert_eq!(sb.status()["files"].as_u64(), Some(FIXTURE_FILES));
    let hits = sb.search_files("ostrich marker", &["--limit", "1000"]);
    assert!(!hits.iter().any(|f| f == "rust/src/blob.rs"), "{hits:?}");
}

#[test]
fn invalid_utf8_content_is_indexed_without_crashing() {
    let sb = Sandbox::poker();
    // Latin-1 bytes and stray 0xff/0xfe: not UTF-8, but text.
    sb.write(
        "python/poker/legacy.py",
        b"def caf\xe9_zebrafish_payout():\n    return \"gr\xfc\xdfe zebrafish\"\n\xff\xfe\n",
    );
    sb.tp(&["index"]).ok();
    assert_eq!(sb.status()["files"].as_u64(), Some(FIXTURE_FILES + 1));
    let out = sb
        .tp(&[
            "search",
            "zebrafish payout",
            "--output",
            "json",
            "--limit",
            "1",
        ])
        .ok();
    let hits = parse_hits(&out.stdout);
    assert_eq!(files(&hits), ["python/poker/legacy.py"]);
    let content = hits[0]["content"].as_str().unwrap();
    assert!(content.contains("zebrafish"), "{content}");
    // Text output too.
    let text = sb.tp(&["search", "zebrafish payout", "--limit", "1"]).ok();
    assert!(
        text.stdout.contains("python/poker/legacy.py:1-3"),
        "{}",
        text.stdout
    );
}

#[test]
fn files_over_max_filesize_are_skipped_with_a_warning_naming_them() {
    let sb = Sandbox::poker();
    let mut big = String::new();
    while big.len() < 100 * 1024 {
        big.push_str("the albatross ledger records every albatross payout\n");
    }
    sb.write("notes/albatross.txt", &big);
    let run = sb.tp(&["index", "--max-filesize", "64kb"]).ok();
    let warning = run
        .stderr
        .lines()
        .find(|l| l.contains("notes/albatross.txt"))
        .unwrap_or_else(|| panic!("no warning names the file: {}", run.stderr));
    assert!(
        warning.starts_with("warning:") && warning.contains("--max-filesize"),
        "{warning}"
    );
    assert_eq!(sb.status()["files"].as_u64(), Some(FIXTURE_FILES));
    assert!(!sb
        .search_files("albatross ledger", &["--limit", "1000"])
        .iter()
        .any(|f| f == "notes/albatross.txt"));
    // Under a higher limit it is indexed.
    sb.tp(&["index", "--max-filesize", "1mb"]).ok();
    assert_eq!(
        sb.search_files("albatross ledger", &["--limit", "1"]),
        ["notes/albatross.txt"]
    );
}

#[test]
fn empty_files_are_indexed_without_hits() {
    let sb = Sandbox::poker();
    sb.write("rust/src/empty.rs", "");
    sb.write("python/poker/blank.py", "\n\n   \n");
    sb.tp(&["index"]).ok();
    sb.tp(&["verify"]).ok();
    let status = sb.status();
    assert!(
        status["files"].as_u64().unwrap() >= FIXTURE_FILES,
        "{status}"
    );
    let hits = sb.search_files("rank a poker hand", &["--limit", "1000"]);
    assert!(!hits.iter().any(|f| f == "rust/src/empty.rs"));
    // Re-indexing an empty file is a no-op like any other.
    let again = sb.tp(&["index"]).ok();
    assert!(
        again.stderr.contains("nothing re-embedded"),
        "{}",
        again.stderr
    );
}

#[test]
fn empty_repository_indexes_and_searches_to_nothing() {
    let sb = Sandbox::empty();
    sb.tp(&["index"]).ok();
    let status = sb.status();
    assert_eq!(status["files"].as_u64(), Some(0));
    assert_eq!(status["chunks"].as_u64(), Some(0));
    let out = sb
        .tp(&["search", "anything at all", "--output", "json"])
        .ok();
    assert_eq!(out.stdout, "");
    sb.tp(&["verify"]).ok();
}

#[cfg(unix)]
#[test]
fn symlink_loops_are_not_followed() {
    use std::os::unix::fs::symlink;
    let sb = Sandbox::poker();
    fs::create_dir_all(sb.path("links")).unwrap();
    symlink("loop_b", sb.path("links/loop_a")).unwrap();
    symlink("loop_a", sb.path("links/loop_b")).unwrap();
    symlink("..", sb.path("links/parent")).unwrap(); // a directory cycle
    symlink("../rust/src/hand.rs", sb.path("links/hand_alias.rs")).unwrap();
    symlink("missing.rs", sb.path("links/dangling.rs")).unwrap();
    let run = sb.tp(&["index"]).ok();
    assert!(run.stderr.contains("symlinks"), "{}", run.stderr);
    assert_eq!(sb.status()["files"].as_u64(), Some(FIXTURE_FILES));
    let hits = sb.search_files("rank a poker hand", &["--limit", "1000"]);
    assert!(!hits.iter().any(|f| f.starts_with("links/")), "{hits:?}");
}

/// A file and a folder `tp` may not read are skipped with a warning naming them. Root reads
/// mode-000 files (CAP_DAC_OVERRIDE): run as root, as in CI, `tp` is run by `setpriv` without
/// the two capabilities that bypass file permissions, so the test checks the same thing
/// everywhere instead of skipping.
#[cfg(unix)]
#[test]
fn unreadable_files_and_folders_are_skipped_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::poker();
    sb.write("rust/src/locked.rs", "// walrus treasury\n");
    sb.write("secret/inner.rs", "// walrus vault\n");
    let set_mode = |rel: &str, mode: u32| {
        fs::set_permissions(sb.path(rel), fs::Permissions::from_mode(mode)).unwrap();
    };
    set_mode("rust/src/locked.rs", 0o000);
    set_mode("secret", 0o000);
    let privileged = fs::read(sb.path("rust/src/locked.rs")).is_ok();
    let run = if privileged {
        // setpriv(1) (util-linux) runs tp without the two capabilities that bypass permissions.
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--bounding-set",
            "-dac_override,-dac_read_search",
            TP,
            "index",
        ])
        .current_dir(&sb.root);
        sb.isolate(&mut cmd);
        Running::run(
            cmd,
            "setpriv --bounding-set -dac_override,-dac_read_search tp index".into(),
        )
        .contract()
    } else {
        sb.tp(&["index"])
    };
    set_mode("rust/src/locked.rs", 0o644);
    set_mode("secret", 0o755);
    let run = run.ok();
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("warning:") && l.contains("rust/src/locked.rs")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.lines().any(|l| l.contains("secret")),
        "{}",
        run.stderr
    );
    assert_eq!(sb.status()["files"].as_u64(), Some(FIXTURE_FILES));
}

// ---------------------------------------------------------------------------------------------
// Bad input: the index folder
// ---------------------------------------------------------------------------------------------

#[test]
fn search_before_index_says_run_tp_index() {
    let sb = Sandbox::poker();
    for args in [
        &["search", "rank a poker hand"][..],
        &["status"],
        &["verify"],
    ] {
        let line = sb.tp(args).only_err();
        assert!(line.contains("run tp index"), "{line}");
        assert!(line.contains(".turboprop"), "names the folder: {line}");
    }
    assert!(
        !sb.root.join(".turboprop").exists(),
        "reading commands must not create the index folder"
    );
}

#[test]
fn turboprop_path_that_is_a_file_is_a_clear_error() {
    let sb = Sandbox::poker();
    sb.write(".turboprop", "my own notes\n");
    for args in [
        &["index"][..],
        &["search", "rank a poker hand"],
        &["status"],
    ] {
        let line = sb.tp(args).only_err();
        assert!(line.contains(".turboprop"), "{line}");
    }
    assert_eq!(
        fs::read_to_string(sb.path(".turboprop")).unwrap(),
        "my own notes\n",
        "never touched"
    );
}

#[test]
fn foreign_index_folder_is_refused_and_left_alone() {
    let sb = Sandbox::poker();
    sb.write(".turboprop/index/notes.txt", "not an index\n");
    for args in [
        &["index"][..],
        &["index", "--rebuild"],
        &["search", "rank a poker hand"],
        &["status"],
        &["verify"],
    ] {
        let line = sb.tp(args).only_err();
        assert!(line.contains("not a turboprop index"), "{line}");
    }
    assert_eq!(
        fs::read_dir(sb.index_dir()).unwrap().count(),
        1,
        "nothing added or removed"
    );
    assert_eq!(
        fs::read_to_string(sb.path(".turboprop/index/notes.txt")).unwrap(),
        "not an index\n"
    );
}

#[test]
fn index_path_that_is_a_file_is_a_clear_error() {
    let sb = Sandbox::poker();
    sb.write(".turboprop/index", "a file where the index folder goes\n");
    for args in [
        &["index"][..],
        &["search", "rank a poker hand"],
        &["status"],
    ] {
        let line = sb.tp(args).only_err();
        assert!(line.contains(".turboprop/index"), "{line}");
    }
}

#[test]
fn unknown_index_version_is_refused() {
    let sb = Sandbox::indexed_poker();
    fs::write(sb.index_dir().join("version.txt"), "turboprop-index 99\n").unwrap();
    let line = sb.tp(&["search", "rank a poker hand"]).only_err();
    assert!(line.contains("version.txt"), "{line}");
    sb.tp(&["index"]).err();
    sb.tp(&["index", "--rebuild"]).ok();
    sb.tp(&["verify"]).ok();
}

/// Damages one index file, checks the damage is reported everywhere with the file's name and
/// the way out, then checks `tp index --rebuild` recovers without touching any source file.
fn damage_then_rebuild(damage: impl FnOnce(&Sandbox) -> String) {
    let sb = Sandbox::indexed_poker();
    let query = ["search", "rank a poker hand", "--output", "json"];
    let good = sb.tp(&query).ok().stdout;
    let sources = sb.sources();
    let damaged = damage(&sb);

    let search = sb.tp(&query).only_err();
    assert!(
        search.contains(&damaged),
        "search must name {damaged}: {search}"
    );
    assert!(search.contains("tp index --rebuild"), "{search}");
    let verify = sb.tp(&["verify"]).err();
    assert!(
        verify.contains(&damaged),
        "verify must name {damaged}: {verify}"
    );
    let status = sb.tp(&["status"]).only_err();
    assert!(status.contains(&damaged), "{status}");

    let rebuild = sb.tp(&["index", "--rebuild"]).ok();
    assert!(rebuild.stderr.contains("rebuilding"), "{}", rebuild.stderr);
    sb.tp(&["verify"]).ok();
    assert_eq!(
        sb.tp(&query).ok().stdout,
        good,
        "same answers after the rebuild"
    );
    assert!(sb.sources() == sources, "source files must not be touched");
}

#[test]
fn truncated_vectors_file_is_reported_and_rebuilt() {
    damage_then_rebuild(|sb| {
        let path = only_segment(sb).join("vectors.bin");
        let len = fs::metadata(&path).unwrap().len();
        let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len / 2).unwrap();
        "vectors.bin".to_owned()
    });
}

#[test]
fn bit_flipped_manifest_is_reported_and_rebuilt() {
    damage_then_rebuild(|sb| {
        let path = sb.index_dir().join("manifest.json");
        let text = fs::read(&path).unwrap();
        let at = text
            .windows(12)
            .position(|w| w == b"\"generation\"")
            .expect("manifest names its generation");
        flip_byte(&path, at + 3, 0x01);
        "manifest.json".to_owned()
    });
}

#[test]
fn bit_flipped_metadata_is_reported_and_rebuilt() {
    damage_then_rebuild(|sb| {
        let path = only_segment(sb).join("metadata.json");
        let len = fs::metadata(&path).unwrap().len() as usize;
        flip_byte(&path, len / 2, 0x04);
        "metadata.json".to_owned()
    });
}

#[test]
fn emptied_manifest_is_reported_and_rebuilt() {
    damage_then_rebuild(|sb| {
        fs::write(sb.index_dir().join("manifest.json"), "").unwrap();
        "manifest.json".to_owned()
    });
}

#[test]
fn bit_flipped_vector_payload_is_named_by_verify() {
    // Searches read vectors in place without hashing them (docs/format.md); `tp verify` is
    // what checks every payload byte.
    let sb = Sandbox::indexed_poker();
    let sources = sb.sources();
    let path = only_segment(&sb).join("vectors.bin");
    flip_byte(&path, 64 + 3, 0x40); // the exponent of row 0's first component
    let line = sb.tp(&["verify"]).err();
    assert!(line.contains("vectors.bin"), "{line}");
    assert!(line.contains("tp index --rebuild"), "{line}");
    sb.tp(&["index", "--rebuild"]).ok();
    sb.tp(&["verify"]).ok();
    assert!(sb.sources() == sources);
}

/// Damage to a segment's vectors must not survive an ordinary `tp index` under a fresh
/// checksum. `tp index` checks its base before copying rows from it: it says which segment is
/// damaged, re-indexes that segment's files from the sources, and the new generation is intact
/// and answers exactly like the undamaged index. (Copying the damaged row into a new, freshly
/// checksummed segment would hide the damage from `tp verify` for good.)
#[test]
fn index_update_does_not_launder_a_damaged_vector_payload() {
    let sb = Sandbox::indexed_poker();
    // Row 0 is the first chunk of the first file in path order: README.md's opening lines.
    let query = [
        "search",
        "a small no-limit texas hold'em stack split by responsibility",
        "--output",
        "json",
        "--limit",
        "5",
    ];
    let good = sb.tp(&query).ok().stdout;
    assert!(
        parse_hits(&good)
            .iter()
            .any(|h| h["file"] == "README.md" && h["line_start"] == 1),
        "the query must find row 0 for this test to mean something: {good}"
    );
    // Zero row 0 (all zeros is a valid-looking vector: only the checksum can tell).
    let segment = only_segment(&sb);
    let path = segment.join("vectors.bin");
    let mut bytes = fs::read(&path).unwrap();
    let dims = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    bytes[64..64 + 4 * dims].fill(0);
    fs::write(&path, bytes).unwrap();
    assert!(sb.tp(&["verify"]).err().contains("vectors.bin"));
    // Same content, new mtimes everywhere: without the check, tp index would write a new
    // generation copying every row of the old segment, the damaged one included.
    let later = SystemTime::now() + Duration::from_secs(3600);
    for rel in sb.sources().keys() {
        set_mtime(&sb.path(rel), later);
    }
    let run = sb.tp(&["index"]).ok();
    let name = segment.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("warning: dropping the damaged segment") && l.contains(&name)),
        "tp index must say which segment it found damaged\n{}",
        run.describe()
    );
    sb.tp(&["verify"]).ok();
    assert_ne!(only_segment(&sb), segment, "the damaged segment is gone");
    assert_eq!(
        summary(&sb.tp(&query).ok().stdout),
        summary(&good),
        "the repaired index answers like the undamaged one"
    );
}

/// `tp verify`'s way out for a broken `config.yaml` must work.
#[test]
fn verify_advice_for_a_broken_config_yaml_works() {
    let sb = Sandbox::indexed_poker();
    fs::write(sb.index_dir().join("config.yaml"), "model: [\n").unwrap();
    let line = sb.tp(&["verify"]).err();
    assert!(line.contains("config.yaml"), "{line}");
    let index = sb.tp(&["index"]).err();
    assert!(index.contains("config.yaml"), "{index}");
    if line.contains("tp index --rebuild") {
        let rebuild = sb.tp(&["index", "--rebuild"]);
        assert_eq!(
            rebuild.code,
            Some(0),
            "tp verify said {line:?}, but following it fails:\n{}",
            rebuild.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input: arguments
// ---------------------------------------------------------------------------------------------

#[test]
fn empty_query_is_an_error() {
    let sb = Sandbox::indexed_poker();
    for q in ["", "   ", "\t\n"] {
        let line = sb.tp(&["search", q]).only_err();
        assert!(line.contains("query is empty"), "{line}");
    }
}

#[test]
fn limit_zero_prints_nothing_and_succeeds() {
    let sb = Sandbox::indexed_poker();
    let json = sb
        .tp(&[
            "search",
            "rank a poker hand",
            "--limit",
            "0",
            "--output",
            "json",
        ])
        .ok();
    assert_eq!(json.stdout, "");
    let text = sb.tp(&["search", "rank a poker hand", "--limit", "0"]).ok();
    assert_eq!(text.stdout, "");
}

#[test]
fn nonexistent_repo_is_an_error_naming_it() {
    let sb = Sandbox::empty();
    let missing = sb.home.join("no-such-repo");
    let missing = missing.to_str().unwrap();
    for args in [
        &["index", "--repo", missing][..],
        &["search", "x", "--repo", missing],
        &["status", "--repo", missing],
        &["verify", "--repo", missing],
    ] {
        let line = sb.tp(args).only_err();
        assert!(line.contains(missing) && line.contains("--repo"), "{line}");
    }
    assert!(!Path::new(missing).exists(), "nothing created");
    // A file is not a repository either.
    sb.write("file.txt", "x");
    let file = sb.path("file.txt");
    let line = sb
        .tp(&["index", "--repo", file.to_str().unwrap()])
        .only_err();
    assert!(line.contains("file.txt"), "{line}");
}

#[test]
fn invalid_threshold_is_an_error_naming_it() {
    let sb = Sandbox::indexed_poker();
    for t in ["1.5", "-0.5", "NaN", "inf"] {
        let flag = format!("--threshold={t}");
        let line = sb.tp(&["search", "rank a poker hand", &flag]).only_err();
        assert!(line.contains("--threshold"), "{line}");
    }
    for t in ["0", "1", "0.5"] {
        sb.tp(&["search", "rank a poker hand", "--threshold", t])
            .ok();
    }
}

#[test]
fn invalid_max_filesize_is_an_error_naming_it() {
    let sb = Sandbox::poker();
    for size in ["lots", "0", "-1mb", "12 parsecs", ""] {
        let flag = format!("--max-filesize={size}");
        let line = sb.tp(&["index", &flag]).only_err();
        assert!(line.contains("--max-filesize"), "{line}");
        assert!(
            line.contains(&format!("{size:?}")),
            "names the value: {line}"
        );
    }
    assert!(
        !sb.index_dir().join("manifest.json").exists(),
        "nothing indexed on a bad flag"
    );
}

#[test]
fn invalid_glob_filter_is_an_error_naming_it() {
    let sb = Sandbox::indexed_poker();
    for glob in ["[abc", "src/{a,b", "**/[z-a]"] {
        let line = sb
            .tp(&["search", "rank a poker hand", "--filter", glob])
            .only_err();
        assert!(line.contains(glob), "names the glob: {line}");
    }
}

#[test]
fn unknown_model_is_an_error_naming_it() {
    let sb = Sandbox::poker();
    let line = sb.tp(&["index", "--model", "no-such-model-xyz"]).only_err();
    assert!(line.contains("no-such-model-xyz"), "{line}");
}
