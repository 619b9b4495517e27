//! Tests of discovery: the walk, the ignore and skip rules, and reading sources.

use super::*;

use std::time::Duration;

/// Writes `content` to `root/rel`, creating parent directories.
fn write(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create parent dirs");
    }
    fs::write(path, content).expect("write file");
}

fn opts() -> DiscoverOptions {
    DiscoverOptions::default()
}

fn run(root: &Path) -> Discovery {
    discover(root, &opts()).expect("discover")
}

fn paths(d: &Discovery) -> Vec<&str> {
    d.files.iter().map(|c| c.rel_path.as_str()).collect()
}

fn reason_of<'a>(d: &'a Discovery, rel: &str) -> Option<&'a SkipReason> {
    d.skipped
        .iter()
        .find(|s| s.rel_path == rel)
        .map(|s| &s.reason)
}

fn candidate(d: &Discovery, rel: &str) -> Candidate {
    d.files
        .iter()
        .find(|c| c.rel_path == rel)
        .cloned()
        .unwrap_or_else(|| panic!("{rel} should be a candidate; got {:?}", paths(d)))
}

#[test]
fn finds_files_sorted_with_slash_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "src/main.rs", "fn main() {}\n");
    write(dir.path(), "src/a/b.rs", "// b\n");
    write(dir.path(), "README.md", "# hi\n");
    write(dir.path(), "a.rs", "// a\n");
    write(dir.path(), "a b/c d.py", "x = 1\n");
    let d = run(dir.path());
    assert_eq!(
        paths(&d),
        [
            "README.md",
            "a b/c d.py",
            "a.rs",
            "src/a/b.rs",
            "src/main.rs"
        ]
    );
    assert!(d.skipped.is_empty(), "{:?}", d.skipped);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    let main = candidate(&d, "src/main.rs");
    assert_eq!(main.size, 13);
    assert!(main.abs_path.is_absolute());
    assert_eq!(
        fs::read(&main.abs_path).expect("read abs_path"),
        b"fn main() {}\n"
    );
    for c in &d.files {
        FileRecord::new(
            c.rel_path.as_str(),
            c.size,
            c.mtime_ns,
            ContentHash::default(),
        )
        .expect("every candidate path is a valid FileRecord path");
    }
}

#[test]
fn discovery_is_deterministic() {
    let dir = tempfile::tempdir().expect("tempdir");
    for i in (0..50).rev() {
        write(
            dir.path(),
            &format!("d{}/f{i}.rs", i % 7),
            format!("// {i}\n"),
        );
    }
    let first = run(dir.path());
    assert_eq!(first.files.len(), 50);
    let mut sorted = paths(&first);
    sorted.sort_unstable();
    assert_eq!(paths(&first), sorted);
    assert_eq!(first, run(dir.path()));
}

#[test]
fn relative_repo_path_gives_absolute_candidates() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "x.rs", "x\n");
    let cwd = std::env::current_dir().expect("cwd");
    // A relative path to the temp dir, without changing the process-wide cwd.
    let rel = pathdiff(dir.path(), &cwd);
    let d = discover(&rel, &opts()).expect("discover");
    assert_eq!(paths(&d), ["x.rs"]);
    assert!(d.files[0].abs_path.is_absolute());
}

/// `target` relative to `base`, using `..` as needed (both absolute).
fn pathdiff(target: &Path, base: &Path) -> PathBuf {
    let t: Vec<_> = target.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    out
}

#[test]
fn respects_gitignore_without_a_git_repo() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    assert!(!root.join(".git").exists());
    write(root, ".gitignore", "*.log\nbuild/\n/top_only.rs\n");
    write(root, "keep.rs", "k\n");
    write(root, "debug.log", "noise\n");
    write(root, "build/out.rs", "generated\n");
    write(root, "top_only.rs", "t\n");
    write(root, "sub/top_only.rs", "kept: anchored pattern\n");
    write(root, "sub/.gitignore", "local.rs\n");
    write(root, "sub/local.rs", "l\n");
    write(root, "sub/other.rs", "o\n");
    let d = run(root);
    assert_eq!(paths(&d), ["keep.rs", "sub/other.rs", "sub/top_only.rs"]);
    // Ignored files are left out silently.
    assert!(d.skipped.is_empty(), "{:?}", d.skipped);
}

#[test]
fn respects_gitignore_in_a_git_repo() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, ".git/HEAD", "ref: refs/heads/main\n");
    write(root, ".git/config", "[core]\n");
    write(root, ".git/info/exclude", "excluded.rs\n");
    write(root, ".gitignore", "target/\n");
    write(root, "target/debug/x.rs", "x\n");
    write(root, "excluded.rs", "e\n");
    write(root, "lib.rs", "l\n");
    let d = run(root);
    assert_eq!(paths(&d), ["lib.rs"]);
}

#[test]
fn respects_ignore_and_tpignore_with_tpignore_winning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, ".gitignore", "*.gen.rs\n");
    write(root, ".ignore", "vendor/\n");
    write(root, TPIGNORE, "fixtures/\n!wanted.gen.rs\n");
    write(root, "a.gen.rs", "ignored by .gitignore\n");
    write(root, "wanted.gen.rs", "re-included by .tpignore\n");
    write(root, "vendor/dep.rs", "ignored by .ignore\n");
    write(root, "fixtures/big.json", "ignored by .tpignore\n");
    write(
        root,
        "src/fixtures/nested.json",
        "also ignored: unanchored dir\n",
    );
    write(root, "src/lib.rs", "kept\n");
    let d = run(root);
    assert_eq!(paths(&d), ["src/lib.rs", "wanted.gen.rs"]);
}

#[test]
fn skips_hidden_git_and_turboprop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, ".turboprop/index/metadata.json", "{}");
    write(root, ".turboprop/index/config.yaml", "a: 1\n");
    write(root, ".git/objects/ab/cdef", "blob");
    write(root, ".env", "SECRET=1\n");
    write(root, ".hidden/inner.rs", "h\n");
    write(root, "nested/.git/config", "[core]\n");
    write(root, "nested/.turboprop/x.rs", "x\n");
    write(root, "nested/code.rs", "c\n");
    let d = run(root);
    assert_eq!(paths(&d), ["nested/code.rs"]);
    assert!(d.skipped.is_empty(), "{:?}", d.skipped);
}

#[test]
fn hidden_repo_root_is_still_walked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join(".dotted-repo");
    write(&root, "src/a.rs", "a\n");
    let d = run(&root);
    assert_eq!(paths(&d), ["src/a.rs"]);
}

#[test]
fn skips_lockfiles_and_binary_extensions_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let locks = [
        "Cargo.lock",
        "package-lock.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "poetry.lock",
        "Pipfile.lock",
        "composer.lock",
        "Gemfile.lock",
        "go.sum",
        "bun.lockb",
        "flake.lock",
        "web/package-lock.json",
    ];
    let binaries = [
        ("logo.png", "png"),
        ("photo.JPG", "jpg"),
        ("doc.pdf", "pdf"),
        ("dist/app.tar.gz", "gz"),
        ("lib.so", "so"),
        ("m.wasm", "wasm"),
        ("font.woff2", "woff2"),
        ("data.sqlite", "sqlite"),
        ("__pycache__/m.pyc", "pyc"),
        ("Main.class", "class"),
    ];
    for l in locks {
        write(root, l, "not read\n");
    }
    for (b, _) in binaries {
        write(root, b, "not read either\n");
    }
    write(root, "lock.rs", "a source file about locks\n");
    write(root, "package.json", "{}\n");
    write(root, "image.svg", "<svg/>\n");
    let d = run(root);
    assert_eq!(paths(&d), ["image.svg", "lock.rs", "package.json"]);
    for l in locks {
        assert_eq!(reason_of(&d, l), Some(&SkipReason::Lockfile), "{l}");
    }
    for (b, ext) in binaries {
        assert_eq!(
            reason_of(&d, b),
            Some(&SkipReason::BinaryExtension(ext.to_owned())),
            "{b}"
        );
    }
    assert!(d.skipped.iter().all(|s| s.reason.is_routine()));
}

#[test]
fn skip_by_name_edge_cases() {
    assert_eq!(skip_by_name("Cargo.lock"), Some(SkipReason::Lockfile));
    assert_eq!(skip_by_name("gradle.lockfile"), Some(SkipReason::Lockfile));
    assert_eq!(skip_by_name("LOCK.LOCK"), Some(SkipReason::Lockfile));
    assert_eq!(skip_by_name("lock"), None);
    assert_eq!(skip_by_name(".lock"), None);
    assert_eq!(skip_by_name("Makefile"), None);
    assert_eq!(skip_by_name("main.rs"), None);
    assert_eq!(skip_by_name("archive."), None);
    assert_eq!(
        skip_by_name("a.b.PNG"),
        Some(SkipReason::BinaryExtension("png".to_owned()))
    );
}

#[test]
fn too_large_files_are_skipped_at_discovery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "small.rs", vec![b'a'; 100]);
    write(root, "exact.rs", vec![b'a'; 101]);
    write(root, "big.rs", vec![b'a'; 102]);
    let o = DiscoverOptions { max_filesize: 101 };
    let d = discover(root, &o).expect("discover");
    assert_eq!(paths(&d), ["exact.rs", "small.rs"]);
    assert_eq!(
        reason_of(&d, "big.rs"),
        Some(&SkipReason::TooLarge {
            size: 102,
            limit: 101
        })
    );
    assert!(!SkipReason::TooLarge { size: 1, limit: 0 }.is_routine());
}

#[test]
fn file_growing_past_the_limit_is_caught_when_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "grow.rs", vec![b'a'; 10]);
    let o = DiscoverOptions { max_filesize: 64 };
    let d = discover(root, &o).expect("discover");
    let c = candidate(&d, "grow.rs");
    write(root, "grow.rs", vec![b'b'; 1000]);
    assert_eq!(
        read_source(&c, &o),
        Err(SkipReason::TooLarge {
            size: 1000,
            limit: 64
        })
    );
}

#[test]
fn reads_and_hashes_with_blake3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let text = "fn rank_hand() -> u8 { 7 }\n";
    write(root, "hand.rs", text);
    let d = run(root);
    let c = candidate(&d, "hand.rs");
    let s = read_source(&c, &opts()).expect("readable");
    assert_eq!(s.bytes, text.as_bytes());
    assert_eq!(s.hash, ContentHash::of(text.as_bytes()));
    assert_eq!(s.size, c.size);
    assert_eq!(s.mtime_ns, c.mtime_ns);
}

#[test]
fn empty_file_is_a_candidate_with_empty_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "empty.rs", "");
    let d = run(dir.path());
    let c = candidate(&d, "empty.rs");
    assert_eq!(c.size, 0);
    let s = read_source(&c, &opts()).expect("empty is fine");
    assert!(s.bytes.is_empty());
    assert_eq!(s.hash, ContentHash::of(b""));
    // Even a zero limit admits an empty file.
    let zero = DiscoverOptions { max_filesize: 0 };
    assert_eq!(read_source(&c, &zero).map(|s| s.size), Ok(0));
}

#[test]
fn nul_byte_in_first_8k_means_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "early.dat2", b"abc\0def");
    let mut late_in_window = vec![b'x'; BINARY_SNIFF_LEN];
    late_in_window[BINARY_SNIFF_LEN - 1] = 0;
    write(root, "edge.txt", &late_in_window);
    let mut past_window = vec![b'x'; BINARY_SNIFF_LEN + 10];
    past_window[BINARY_SNIFF_LEN] = 0;
    write(root, "late.txt", &past_window);
    write(root, "utf16.txt", [0xFF, 0xFE, b'h', 0, b'i', 0]);
    let d = run(root);
    let read = |rel: &str| read_source(&candidate(&d, rel), &opts());
    assert_eq!(read("early.dat2"), Err(SkipReason::Binary));
    assert_eq!(read("edge.txt"), Err(SkipReason::Binary));
    assert_eq!(read("utf16.txt"), Err(SkipReason::Binary));
    assert_eq!(read("late.txt").map(|s| s.bytes), Ok(past_window));
}

#[test]
fn invalid_utf8_content_is_read_not_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = b"let s = \"caf\xe9\"; // latin-1\n\xff\xfe\xfd\n".to_vec();
    write(dir.path(), "latin1.rs", &bytes);
    let d = run(dir.path());
    let s = read_source(&candidate(&d, "latin1.rs"), &opts()).expect("read");
    assert_eq!(s.bytes, bytes);
}

#[test]
fn file_deleted_after_discovery_has_vanished() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "gone.rs", "bye\n");
    let d = run(dir.path());
    let c = candidate(&d, "gone.rs");
    fs::remove_file(&c.abs_path).expect("remove");
    assert_eq!(read_source(&c, &opts()), Err(SkipReason::Vanished));
}

#[test]
fn file_replaced_by_directory_is_unreadable_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "turncoat.rs", "x\n");
    let d = run(dir.path());
    let c = candidate(&d, "turncoat.rs");
    fs::remove_file(&c.abs_path).expect("remove");
    fs::create_dir(&c.abs_path).expect("mkdir");
    assert!(matches!(
        read_source(&c, &opts()),
        Err(SkipReason::Unreadable(_))
    ));
}

#[test]
fn mtime_is_nanoseconds_since_epoch() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "old.rs", "x\n");
    let when = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    fs::File::options()
        .write(true)
        .open(dir.path().join("old.rs"))
        .expect("open")
        .set_modified(when)
        .expect("set mtime");
    let d = run(dir.path());
    assert_eq!(candidate(&d, "old.rs").mtime_ns, 1_700_000_000_000_000_000);
}

#[test]
fn system_time_conversion_handles_pre_1970_and_overflow() {
    assert_eq!(system_time_to_ns(UNIX_EPOCH), 0);
    assert_eq!(
        system_time_to_ns(UNIX_EPOCH + Duration::new(1, 5)),
        1_000_000_005
    );
    assert_eq!(
        system_time_to_ns(UNIX_EPOCH - Duration::from_nanos(1_500)),
        -1_500
    );
    let far_future = UNIX_EPOCH + Duration::from_secs(400 * 365 * 86_400);
    assert_eq!(system_time_to_ns(far_future), i64::MAX);
    if let Some(far_past) = UNIX_EPOCH.checked_sub(Duration::from_secs(400 * 365 * 86_400)) {
        assert_eq!(system_time_to_ns(far_past), i64::MIN);
    }
}

#[test]
fn missing_or_non_directory_repo_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope");
    let err = discover(&missing, &opts()).expect_err("missing repo");
    assert!(err.to_string().contains("nope"), "{err}");
    write(dir.path(), "file.rs", "x\n");
    let err = discover(&dir.path().join("file.rs"), &opts()).expect_err("file as repo");
    assert!(format!("{err:#}").contains("not a directory"), "{err:#}");
}

#[test]
fn bad_ignore_pattern_is_a_warning_not_a_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), ".gitignore", "ok.log\n{unclosed\n");
    write(dir.path(), "ok.log", "ignored\n");
    write(dir.path(), "a.rs", "a\n");
    let d = run(dir.path());
    assert_eq!(paths(&d), ["a.rs"]);
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    assert!(d.warnings[0].contains("unclosed"), "{:?}", d.warnings);
    assert!(!d.warnings[0].contains('\n'));
}

#[test]
fn display_messages_are_one_line() {
    let cases = [
        (
            SkipReason::TooLarge {
                size: 3 * 1024 * 1024 + 512 * 1024,
                limit: 2 * 1024 * 1024,
            },
            "skipped big.rs: file is 3.5 MiB (3670016 bytes), over the limit of 2.0 MiB \
             (2097152 bytes); raise --max-filesize to index it",
        ),
        (
            SkipReason::Binary,
            "skipped big.rs: binary content (NUL byte in the first 8 KiB)",
        ),
        (
            SkipReason::BinaryExtension("png".to_owned()),
            "skipped big.rs: binary file type (.png)",
        ),
        (SkipReason::Lockfile, "skipped big.rs: lockfile"),
        (
            SkipReason::Symlink,
            "skipped big.rs: symbolic link (links are not followed)",
        ),
        (
            SkipReason::NotRegularFile,
            "skipped big.rs: not a regular file (FIFO, socket or device)",
        ),
        (
            SkipReason::Unreadable("Permission denied (os error 13)".to_owned()),
            "skipped big.rs: cannot read: Permission denied (os error 13)",
        ),
        (
            SkipReason::NotUtf8Path,
            "skipped big.rs: path is not valid UTF-8",
        ),
        (
            SkipReason::UnsupportedPath,
            "skipped big.rs: path cannot be stored in the index (it contains '\\')",
        ),
        (
            SkipReason::Vanished,
            "skipped big.rs: deleted while indexing",
        ),
    ];
    for (reason, want) in cases {
        let s = Skipped {
            rel_path: "big.rs".to_owned(),
            reason,
        };
        assert_eq!(s.to_string(), want);
    }
    let weird = Skipped {
        rel_path: "a\nb.rs".to_owned(),
        reason: SkipReason::Vanished,
    };
    assert_eq!(
        weird.to_string(),
        "skipped \"a\\nb.rs\": deleted while indexing"
    );
}

#[test]
fn human_bytes_formats() {
    assert_eq!(human_bytes(0), "0 B");
    assert_eq!(human_bytes(1023), "1023 B");
    assert_eq!(human_bytes(1024), "1.0 KiB");
    assert_eq!(human_bytes(1536), "1.5 KiB");
    assert_eq!(human_bytes(2 * 1024 * 1024), "2.0 MiB");
    assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
}

#[cfg(unix)]
mod unix {
    use super::*;

    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn symlinks_are_not_followed_and_loops_terminate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "real/a.rs", "a\n");
        symlink("..", root.join("real/loop")).expect("symlink loop");
        symlink(root.join("real"), root.join("dirlink")).expect("dir symlink");
        symlink("real/a.rs", root.join("filelink.rs")).expect("file symlink");
        symlink("does/not/exist", root.join("dangling.rs")).expect("dangling symlink");
        symlink("self.rs", root.join("self.rs")).expect("self symlink");
        let d = run(root);
        assert_eq!(paths(&d), ["real/a.rs"]);
        for link in [
            "dangling.rs",
            "dirlink",
            "filelink.rs",
            "real/loop",
            "self.rs",
        ] {
            assert_eq!(reason_of(&d, link), Some(&SkipReason::Symlink), "{link}");
        }
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    }

    #[test]
    fn file_replaced_by_symlink_is_not_followed_on_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "a.rs", "a\n");
        write(dir.path(), "secret.txt", "s\n");
        let d = run(dir.path());
        let c = candidate(&d, "a.rs");
        fs::remove_file(&c.abs_path).expect("remove");
        symlink(dir.path().join("secret.txt"), &c.abs_path).expect("symlink");
        assert_eq!(read_source(&c, &opts()), Err(SkipReason::Symlink));
    }

    #[test]
    fn symlinked_repo_root_is_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "real/src/a.rs", "a\n");
        let link = dir.path().join("link");
        symlink(dir.path().join("real"), &link).expect("symlink");
        let d = run(&link);
        assert_eq!(paths(&d), ["src/a.rs"]);
        let s = read_source(&d.files[0], &opts()).expect("read through root link");
        assert_eq!(s.bytes, b"a\n");
    }

    #[test]
    fn sockets_are_not_regular_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "a.rs", "a\n");
        let sock = dir.path().join("server.sock2");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
        let d = run(dir.path());
        assert_eq!(paths(&d), ["a.rs"]);
        assert_eq!(
            reason_of(&d, "server.sock2"),
            Some(&SkipReason::NotRegularFile)
        );
        // A candidate replaced by a socket after discovery is refused without opening it.
        let mut c = candidate(&d, "a.rs");
        c.abs_path = sock;
        assert_eq!(read_source(&c, &opts()), Err(SkipReason::NotRegularFile));
    }

    #[test]
    fn non_utf8_path_is_skipped_with_a_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let name = OsStr::from_bytes(b"caf\xe9.rs");
        if fs::write(dir.path().join(name), "x\n").is_err() {
            return; // a filesystem that insists on UTF-8 names cannot hold one
        }
        write(dir.path(), "ok.rs", "ok\n");
        let d = run(dir.path());
        assert_eq!(paths(&d), ["ok.rs"]);
        assert_eq!(
            reason_of(&d, "caf\u{FFFD}.rs"),
            Some(&SkipReason::NotUtf8Path),
            "{:?}",
            d.skipped
        );
    }

    #[test]
    fn backslash_in_name_is_an_unsupported_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "odd\\name.rs", "x\n");
        write(dir.path(), "ok.rs", "ok\n");
        let d = run(dir.path());
        assert_eq!(paths(&d), ["ok.rs"]);
        assert_eq!(
            reason_of(&d, "odd\\name.rs"),
            Some(&SkipReason::UnsupportedPath)
        );
    }

    /// Whether permission bits are enforced (not when running as root).
    fn permissions_enforced(probe: &Path) -> bool {
        fs::read(probe).is_err()
    }

    #[test]
    fn unreadable_file_is_skipped_on_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "locked.rs", "secret\n");
        let path = dir.path().join("locked.rs");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).expect("chmod");
        let d = run(dir.path());
        let c = candidate(&d, "locked.rs"); // stat works without read permission
        let got = read_source(&c, &opts());
        if permissions_enforced(&path) {
            match got {
                Err(SkipReason::Unreadable(msg)) => {
                    assert!(msg.to_lowercase().contains("permission"), "{msg}")
                }
                other => panic!("expected Unreadable, got {other:?}"),
            }
        } else {
            assert_eq!(got.map(|s| s.bytes), Ok(b"secret\n".to_vec()));
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod back");
    }

    #[test]
    fn unreadable_directory_is_skipped_not_fatal() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "closed/inner.rs", "x\n");
        write(dir.path(), "open.rs", "y\n");
        let closed = dir.path().join("closed");
        fs::set_permissions(&closed, fs::Permissions::from_mode(0o000)).expect("chmod");
        let enforced = fs::read_dir(&closed).is_err();
        let d = run(dir.path());
        fs::set_permissions(&closed, fs::Permissions::from_mode(0o755)).expect("chmod back");
        if enforced {
            assert_eq!(paths(&d), ["open.rs"]);
            assert!(
                matches!(reason_of(&d, "closed"), Some(SkipReason::Unreadable(_))),
                "{:?}",
                d.skipped
            );
        } else {
            assert_eq!(paths(&d), ["closed/inner.rs", "open.rs"]);
        }
    }
}
