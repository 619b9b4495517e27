//! Untrusted input (issue 13): a `.turboprop/` folder and the files of a repository can
//! arrive in a `git clone` from a stranger. Each test here reproduces one finding of the
//! adversarial run with the real `tp` binary in temporary folders, and asserts what a user
//! must be able to rely on: nothing outside the repository is read, written or deleted, no
//! command hangs, memory stays bounded (runs under a data-size limit where the finding was
//! memory), and every refusal is one clear line.
//!
//! Every `tp` run is bounded by [`RUN_TIMEOUT`] (a hang is killed and reported as a failure);
//! no assertion depends on how fast the machine is.

#![cfg(unix)]
// Tests fail loudly; `unwrap` on a test's own set-up is the clearest way to say so.
#![allow(clippy::unwrap_used)]

use std::fs;

use std::os::unix::fs::symlink;

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

mod common;
use common::{only_segment, Run, Running, Sandbox, TP};
use turboprop::storage::{encode_document, Manifest};

/// A data-size limit (`ulimit -d`, heap and anonymous memory, not file mappings) far below
/// what the findings allocated, far above what `tp` needs for these small repositories.
const DATA_LIMIT_KIB: u64 = 512 * 1024;

/// A repository with a few small source files, indexed.
fn indexed() -> Sandbox {
    let sb = Sandbox::empty();
    sb.write(
        "src/pot.py",
        "def split_pot(winners):\n    return share_evenly(winners)\n",
    );
    sb.write(
        "src/deck.py",
        "def shuffle_deck(deck):\n    random.shuffle(deck)\n",
    );
    sb.write("notes.txt", "root user account settings\n");
    tp(&sb, &["index"]).ok();
    sb
}

/// `tp ARGS --repo REPO`.
fn tp(sb: &Sandbox, args: &[&str]) -> Run {
    sb.tp_at(&sb.root, args)
}

/// `tp` under a data-size limit: an allocation the size of a claimed file fails (and aborts
/// the process) instead of succeeding.
fn tp_limited(sb: &Sandbox, args: &[&str]) -> Run {
    let mut cmd = Command::new("sh");
    sb.isolate(&mut cmd);
    cmd.arg("-c")
        .arg(format!(
            "ulimit -d {DATA_LIMIT_KIB} && exec \"$0\" \"$@\" --repo \"$TP_REPO\""
        ))
        .arg(TP)
        .args(args)
        .env("TP_REPO", &sb.root);
    Running::run(
        cmd,
        format!("tp {} (ulimit -d {DATA_LIMIT_KIB})", args.join(" ")),
    )
}

fn mkfifo(path: &Path) {
    let _ = fs::remove_file(path);
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success());
}

/// A sparse file of `len` bytes: costs no disk, claims the size.
fn sparse(path: &Path, len: u64) {
    let _ = fs::remove_file(path);
    fs::File::create(path).unwrap().set_len(len).unwrap();
}

// -------------------------------------------------------------------------------------------
// 1. Writes and deletes outside the repository
// -------------------------------------------------------------------------------------------

#[test]
fn a_linked_index_folder_is_refused_and_its_target_left_alone() {
    for linked in [".turboprop/index", ".turboprop"] {
        let sb = Sandbox::empty();
        sb.write("a.py", "def a():\n    pass\n");
        let victim = sb.outside().join("seg-00000042");
        fs::create_dir_all(&victim).unwrap();
        fs::write(victim.join("data"), "precious").unwrap();
        fs::write(sb.outside().join(".tp-tmp-1"), "precious").unwrap();
        let link = sb.root.join(linked);
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        symlink(sb.outside(), &link).unwrap();

        for args in [
            &["index"][..],
            &["index", "--rebuild"],
            &["search", "a"],
            &["status"],
        ] {
            let line = tp(&sb, args).err();
            assert!(
                line.contains("symbolic link") && line.contains(linked.trim_end_matches("/index")),
                "{linked}: {line}"
            );
        }
        assert_eq!(fs::read_to_string(victim.join("data")).unwrap(), "precious");
        assert_eq!(
            fs::read_to_string(sb.outside().join(".tp-tmp-1")).unwrap(),
            "precious"
        );
        let names: std::collections::BTreeSet<String> = fs::read_dir(sb.outside())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            [".tp-tmp-1", "seg-00000042"].map(String::from).into(),
            "{linked}: something was written into the link's target"
        );
    }
}

#[test]
fn a_linked_segment_folder_is_never_followed() {
    let sb = indexed();
    // Move the live segment out and link it back: a reader would read through the link and
    // a writer would garbage-collect inside its target.
    let seg = only_segment(&sb);
    let moved = sb.outside().join(seg.file_name().unwrap());
    fs::rename(&seg, &moved).unwrap();
    symlink(&moved, &seg).unwrap();
    let line = tp(&sb, &["search", "split pot"]).err();
    assert!(line.contains("symbolic link"), "{line}");
    // The rebuild replaces the link, never touching what it pointed to.
    tp(&sb, &["index", "--rebuild"]).ok();
    assert!(
        moved.join("vectors.bin").is_file(),
        "the link's target was deleted"
    );
    assert!(!fs::symlink_metadata(&seg).is_ok_and(|m| m.file_type().is_symlink()));
    tp(&sb, &["search", "split pot"]).ok();
}

// -------------------------------------------------------------------------------------------
// 2. Reads outside the repository
// -------------------------------------------------------------------------------------------

#[test]
fn search_shows_no_content_through_a_link_or_a_special_file() {
    let sb = indexed();
    let secret = sb.outside().join("passwd");
    fs::write(&secret, "root:x:0:0:root user account:/root:/bin/bash\n").unwrap();

    // The indexed file replaced by a link leading out.
    fs::remove_file(sb.root.join("notes.txt")).unwrap();
    symlink(&secret, sb.root.join("notes.txt")).unwrap();
    let run = sb
        .tp(&["search", "root user account", "--output", "json"])
        .ok();
    assert!(run.stdout.contains("notes.txt"), "{}", run.describe());
    assert!(!run.stdout.contains("root:x"), "{}", run.describe());
    assert!(run.stderr.contains("symbolic link"), "{}", run.describe());

    // A folder on the way replaced by a link leading out.
    fs::create_dir_all(sb.outside().join("src")).unwrap();
    fs::write(
        sb.outside().join("src/pot.py"),
        "def split_pot(winners):\n    SECRET = 'hunter2'\n",
    )
    .unwrap();
    fs::rename(sb.root.join("src"), sb.outside().join("old-src")).unwrap();
    symlink(sb.outside().join("src"), sb.root.join("src")).unwrap();
    let run = sb
        .tp(&["search", "split pot winners", "--output", "json"])
        .ok();
    assert!(run.stdout.contains("src/pot.py"), "{}", run.describe());
    assert!(!run.stdout.contains("hunter2"), "{}", run.describe());

    // A FIFO (would hang) and a link to an endless device (would grow without bound).
    fs::remove_file(sb.root.join("notes.txt")).unwrap();
    mkfifo(&sb.root.join("notes.txt"));
    let run = sb
        .tp(&["search", "root user account", "--output", "json"])
        .ok();
    assert!(run.stderr.contains("FIFO"), "{}", run.describe());
    fs::remove_file(sb.root.join("notes.txt")).unwrap();
    symlink("/dev/zero", sb.root.join("notes.txt")).unwrap();
    tp_limited(&sb, &["search", "root user account", "--output", "json"]).ok();
}

#[test]
fn indexing_never_reads_through_links_or_special_files() {
    let sb = Sandbox::empty();
    sb.write("a.py", "def a():\n    pass\n");
    fs::write(
        sb.outside().join("secret.py"),
        "def leaked_secret():\n    pass\n",
    )
    .unwrap();
    symlink(sb.outside().join("secret.py"), sb.root.join("link.py")).unwrap();
    symlink(sb.outside(), sb.root.join("linked-folder")).unwrap();
    mkfifo(&sb.root.join("pipe.py"));
    tp(&sb, &["index"]).ok();
    let run = tp(&sb, &["search", "leaked secret", "--output", "json"]).ok();
    assert!(!run.stdout.contains("leaked"), "{}", run.describe());
}

// -------------------------------------------------------------------------------------------
// 3. File contents in error messages
// -------------------------------------------------------------------------------------------

#[test]
fn a_linked_config_is_refused_without_quoting_its_target() {
    let sb = indexed();
    let secret = sb.outside().join("passwd");
    fs::write(&secret, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    let config = sb.index_dir().join("config.yaml");
    fs::remove_file(&config).unwrap();
    symlink(&secret, &config).unwrap();
    for args in [&["index"][..], &["verify"], &["status"], &["search", "pot"]] {
        let run = tp(&sb, args);
        assert!(
            !run.stderr.contains("root:x") && !run.stdout.contains("root:x"),
            "{}",
            run.describe()
        );
        if run.code != Some(0) {
            assert!(run.err().contains("config.yaml"), "{}", run.describe());
        }
    }
    // The way out works and leaves the target alone.
    tp(&sb, &["index", "--rebuild"]).ok();
    assert_eq!(
        fs::read_to_string(&secret).unwrap(),
        "root:x:0:0:root:/root:/bin/bash\n"
    );
}

// -------------------------------------------------------------------------------------------
// 4. FIFOs hang nothing, and --rebuild is a way out
// -------------------------------------------------------------------------------------------

#[test]
fn a_fifo_in_place_of_any_index_file_hangs_nothing() {
    for name in [
        "manifest.json",
        "version.txt",
        "config.yaml",
        "SEG/metadata.json",
        "SEG/vectors.bin",
        "SEG/chunks.bin",
        "SEG/files.bin",
    ] {
        let sb = indexed();
        let seg = only_segment(&sb);
        let seg_name = seg.file_name().unwrap().to_str().unwrap();
        let path = sb.index_dir().join(name.replace("SEG", seg_name));
        mkfifo(&path);
        for args in [&["search", "pot"][..], &["status"], &["verify"], &["index"]] {
            let run = tp(&sb, args);
            assert!(run.signal.is_none(), "{name}: {}", run.describe());
            if run.code != Some(0) {
                let line = run.err();
                assert!(line.contains("FIFO"), "{name}: {}", run.describe());
            }
        }
        tp(&sb, &["index", "--rebuild"]).ok();
        let run = tp(&sb, &["search", "split pot", "--output", "json"]).ok();
        assert!(
            run.stdout.contains("src/pot.py"),
            "{name}: {}",
            run.describe()
        );
    }
}

// -------------------------------------------------------------------------------------------
// 5. Memory bounded by what a file can hold, not by what it claims
// -------------------------------------------------------------------------------------------

#[test]
fn huge_sparse_index_files_are_refused_before_allocating() {
    for (name, args) in [
        ("manifest.json", &["status"][..]),
        ("version.txt", &["search", "pot"]),
        ("config.yaml", &["verify"]),
        ("config.yaml", &["index"]),
    ] {
        let sb = indexed();
        sparse(&sb.index_dir().join(name), 4 << 30);
        let run = tp_limited(&sb, args);
        let line = run.err();
        assert!(
            line.contains(name) && line.contains("more than"),
            "{name}: {}",
            run.describe()
        );
    }
}

// -------------------------------------------------------------------------------------------
// 6. A deeply nested config.yaml is refused before parsing
// -------------------------------------------------------------------------------------------

#[test]
fn a_deeply_nested_config_is_refused_at_once() {
    let sb = indexed();
    let config = sb.index_dir().join("config.yaml");
    for text in [
        format!("model: {}x{}\n", "[".repeat(30_000), "]".repeat(30_000)),
        format!("{}x\n", "- ".repeat(30_000)),
    ] {
        fs::write(&config, text).unwrap();
        let run = tp(&sb, &["verify"]);
        let line = run.err();
        assert!(
            line.contains("config.yaml") && line.contains("nested more than"),
            "{}",
            run.describe()
        );
    }
    fs::write(&config, "x".repeat(200_000)).unwrap();
    let line = tp(&sb, &["index"]).err();
    assert!(
        line.contains("config.yaml") && line.contains("more than"),
        "{line}"
    );
}

// -------------------------------------------------------------------------------------------
// 7. A repository's config cannot make tp read huge files; files are sniffed before read
// -------------------------------------------------------------------------------------------

#[test]
fn a_repository_config_cannot_raise_the_file_size_limit_without_bound() {
    let sb = indexed();
    let config = sb.index_dir().join("config.yaml");
    let text = fs::read_to_string(&config).unwrap();
    let raised: String = text
        .lines()
        .map(|l| {
            if l.starts_with("max_filesize:") {
                "max_filesize: 100000000000".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(
        raised,
        text.trim_end(),
        "config.yaml has a max_filesize line"
    );
    fs::write(&config, raised).unwrap();
    // A 1 GiB file (sparse, zeros): over the capped limit, skipped without being read.
    sparse(&sb.root.join("big.txt"), 1 << 30);
    let run = tp_limited(&sb, &["index"]).ok();
    assert!(run.stderr.contains("max_filesize"), "{}", run.describe());
    // The user's own flag may go higher; a binary file is then refused from its first KiB.
    let run = tp_limited(&sb, &["index", "--max-filesize", "2gb"]);
    assert_eq!(run.code, Some(0), "{}", run.describe());
    let status = tp(&sb, &["status", "--output", "json"]).ok();
    assert!(
        status.stdout.contains("\"files\":3"),
        "{}",
        status.describe()
    );
}

// -------------------------------------------------------------------------------------------
// 9. An implausible manifest is refused before mapping anything
// -------------------------------------------------------------------------------------------

#[test]
fn a_manifest_naming_too_many_segments_is_refused_before_mapping() {
    let sb = indexed();
    let path = sb.index_dir().join("manifest.json");
    let text = fs::read_to_string(&path).unwrap();
    let (_, body) = text.split_once('\n').unwrap();
    let mut manifest: Manifest = serde_json::from_str(body).unwrap();
    let seg = manifest.segments[0].clone();
    manifest.segments = vec![seg; 20_000];
    fs::write(
        &path,
        encode_document(&path, "manifest", &manifest).unwrap(),
    )
    .unwrap();
    for args in [&["search", "pot"][..], &["status"], &["verify"]] {
        let run = tp_limited(&sb, args);
        let line = run.err();
        assert!(line.contains("manifest.json"), "{}", run.describe());
    }
    tp(&sb, &["index", "--rebuild"]).ok();
    tp(&sb, &["search", "pot"]).ok();
}

// -------------------------------------------------------------------------------------------
// Disk full: a clean error, the last commit intact, nothing left behind
// -------------------------------------------------------------------------------------------

/// A small tmpfs mounted on a temporary folder, unmounted when dropped.
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    /// `None` (with the reason) where this machine does not let the test mount one.
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_fails_cleanly_and_keeps_the_last_commit() {
    let need = turboprop_testkit::Need::new(
        "a_full_disk_fails_cleanly_and_keeps_the_last_commit",
        "TURBOPROP_REQUIRE_TMPFS",
    );
    let tmpfs = Tmpfs::mount("8m").map_err(|why| format!("cannot mount a tmpfs here ({why})"));
    let Some(fs) = turboprop_testkit::available(need, tmpfs) else {
        return;
    };
    let repo = fs.dir.path().join("repo");
    let sb = Sandbox::with_repo(repo.clone());
    sb.write(
        "pot.py",
        "def split_pot(winners):\n    return share_evenly(winners)\n",
    );
    tp(&sb, &["index"]).ok();
    let before = sb
        .tp(&["search", "split pot winners", "--output", "json"])
        .ok()
        .stdout;

    // Sources that fit, and a filler that leaves too little room for their index.
    for f in 0..40 {
        let text: String = (0..200)
            .map(|l| format!("fn handler_{f}_{l}(request: Request) -> Reply {{ reply_{l}() }}\n"))
            .collect();
        sb.write(
            &format!("src/f{f}.rs"),
            if f == 7 {
                format!("fn retry_zebra_uploads() {{}}\n{text}")
            } else {
                text
            },
        );
    }
    let filler = fs.dir.path().join("filler");
    let free = {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(fs.dir.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    fs::write(&filler, vec![b'x'; (free - 256 * 1024) as usize]).unwrap();

    let line = tp(&sb, &["index"]).err();
    assert!(line.contains("No space left"), "{line}");
    tp(&sb, &["verify"]).ok();
    assert_eq!(
        tp(&sb, &["search", "split pot winners", "--output", "json"])
            .ok()
            .stdout,
        before,
        "the last commit must answer as before"
    );
    // Nothing of the failed commit is left: only what the manifest names.
    let leftovers: Vec<String> = fs::read_dir(sb.index_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".tp-tmp") || n.starts_with("seg-") && n != "seg-00000001")
        .collect();
    assert!(leftovers.is_empty(), "the failed commit left {leftovers:?}");

    fs::remove_file(&filler).unwrap();
    tp(&sb, &["index"]).ok();
    let run = sb
        .tp(&[
            "search",
            "retry zebra uploads",
            "--output",
            "json",
            "--limit",
            "1",
        ])
        .ok();
    assert!(run.stdout.contains("src/f7.rs"), "{}", run.describe());
}
