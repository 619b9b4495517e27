//! Model folders are untrusted input (issue 13, finding 10): a repository's own model is
//! used only with `--repo-model`, never by default nor because an index names it; every size
//! in `config.json` is bounded; `model.safetensors` is read in place with its header checked
//! against the file, so a sparse file costs no heap; model files that are links or FIFOs are
//! refused without being read and errors never quote a file's content; one huge chunk is
//! tokenized with bounded memory; downloads are pinned. Each case runs the real `tp` binary
//! in a temporary folder.

// Tests fail loudly; `unwrap` on a test's own set-up is the clearest way to say so.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod common;

use common::{Run, Running, Sandbox};

/// Runs `cmd` with its data segment (heap and private anonymous memory, not file-backed
/// maps) limited to `bytes`.
fn run_with_data_limit(mut cmd: Command, bytes: u64) -> Run {
    // SAFETY: between fork and exec only setrlimit (async-signal-safe) runs.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes as libc::rlim_t,
                rlim_max: bytes as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_DATA, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Running::run(cmd, "tp under a data-size limit".into())
}

/// A dead process is not a clear error: asserts `tp` exited by itself, and that a failure is
/// one clear line.
fn exited_cleanly(run: &Run) {
    assert!(
        run.code.is_some(),
        "tp was killed by a signal:\n{}",
        run.stderr
    );
    if run.code != Some(0) {
        run.err();
    }
}

#[test]
fn a_repository_model_is_never_the_default_and_loads_only_with_repo_model() {
    let sb = Sandbox::poker();
    let evil = sb.root.join(".turboprop/models/evil");
    turboprop_embed::write_tiny_bert(&evil, 5).unwrap();

    // Listed as the repository's, never as the default.
    let list = sb.tp(&["model", "list"]).ok().stdout;
    let line = list.lines().find(|l| l.starts_with("evil")).unwrap();
    assert!(line.contains("repository-local"), "{line}");
    assert!(line.contains("--repo-model evil"), "{line}");
    assert!(!line.contains("(default)"), "{line}");
    let builtin = list.lines().find(|l| l.starts_with("builtin")).unwrap();
    assert!(builtin.contains("(default)"), "{list}");

    // Not chosen by default, nor by --model alone: the error names the way to opt in.
    let run = sb.tp(&["index"]).ok();
    assert!(!run.stderr.contains("evil"), "{}", run.stderr);
    assert!(sb.status()["model"]
        .as_str()
        .unwrap()
        .starts_with("builtin"));
    let line = sb.tp(&["index", "--model", "evil"]).err();
    assert!(line.contains("--repo-model evil"), "{line}");
    assert!(line.contains(&evil.display().to_string()), "{line}");

    // Named with --repo-model, it is used, and tp says so and from where.
    let run = sb.tp(&["index", "--repo-model", "evil"]).ok();
    assert!(
        run.stderr.contains(&format!(
            "note: using model evil from {} (the repository's own folder",
            evil.display()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(sb.status()["model"], "evil");

    // An index that records the repository's model is not enough to load it.
    let run = sb.tp(&["search", "deal the cards", "--output", "json"]);
    let line = run.err();
    assert!(line.contains("--repo-model evil"), "{line}");
    assert!(run.stdout.is_empty(), "{}", run.stdout);

    // With --repo-model, search loads it, says so on stderr (one line, also in json mode),
    // and stdout is JSON Lines only.
    let run = sb
        .tp(&[
            "search",
            "deal the cards",
            "--output",
            "json",
            "--repo-model",
            "evil",
        ])
        .ok();
    let notes: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("using model evil from"))
        .collect();
    assert_eq!(notes.len(), 1, "{}", run.stderr);
    assert!(!run.stdout.is_empty());
    for l in run.stdout.lines() {
        serde_json::from_str::<Value>(l).unwrap();
    }

    // Nor is it enough for tp index: it uses the trusted default and says why.
    let run = sb.tp(&["index"]).ok();
    assert!(
        run.stderr.contains("--repo-model evil"),
        "tp index says why it does not use the index's model: {}",
        run.stderr
    );
    assert!(sb.status()["model"]
        .as_str()
        .unwrap()
        .starts_with("builtin"));
}

/// The tiny model in the sandbox's cache as `tiny-bert`, with `edit` applied to its config.
fn cached_tiny(sb: &Sandbox, edit: impl FnOnce(&mut Value)) -> std::path::PathBuf {
    let dir = sb.cache.join("models/tiny-bert");
    // Afresh: writing through a link a previous case left would write outside.
    let _ = fs::remove_dir_all(&dir);
    turboprop_embed::write_tiny_bert(&dir, 3).unwrap();
    let path = dir.join("config.json");
    let mut config: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    dir
}

#[test]
fn every_size_in_config_json_is_bounded_and_named_in_a_one_line_error() {
    let sb = Sandbox::poker();
    for (field, value) in [
        ("num_hidden_layers", 1u64 << 62),
        ("num_hidden_layers", 1 << 40),
        ("hidden_size", 1 << 40),
        ("num_attention_heads", 1 << 40),
        ("intermediate_size", 1 << 62),
        ("vocab_size", 1 << 62),
        ("max_position_embeddings", 1 << 62),
        ("type_vocab_size", 1 << 40),
    ] {
        cached_tiny(&sb, |c| c[field] = Value::from(value));
        for args in [
            &["index", "--model", "tiny-bert"][..],
            &["model", "info", "tiny-bert"],
        ] {
            let run = sb.tp_env(args, &[("RUST_BACKTRACE", "1")]);
            let line = run.err();
            assert!(line.contains("config.json"), "{field}: {line}");
            assert!(line.contains(field), "{field}: {line}");
            assert!(line.contains(&value.to_string()), "{field}: {line}");
        }
    }
    // A config whose sizes are each plausible but whose total is not.
    cached_tiny(&sb, |c| {
        c["vocab_size"] = Value::from(1u64 << 20);
        c["hidden_size"] = Value::from(8192);
        c["num_attention_heads"] = Value::from(64);
    });
    let line = sb.tp(&["index", "--model", "tiny-bert"]).err();
    assert!(line.contains("parameters"), "{line}");
}

/// Makes the model folder `dir` (the tiny model's tokenizer) claim `vocab` × `hidden`
/// word embeddings and one layer, with a valid safetensors header and a sparse data
/// section of the size the header names; returns the file's size.
fn sparse_model(dir: &Path, vocab: usize, hidden: usize) -> u64 {
    sparse_model_of(dir, vocab, hidden, "F32")
}

/// [`sparse_model`] with its tensors stored as `dtype` (`F32` or `F16`).
fn sparse_model_of(dir: &Path, vocab: usize, hidden: usize, dtype: &str) -> u64 {
    turboprop_embed::write_tiny_bert(dir, 1).unwrap();
    let (positions, types, inter) = (64usize, 2usize, 64usize);
    let config_path = dir.join("config.json");
    let mut config: Value =
        serde_json::from_str(&fs::read_to_string(&config_path).unwrap()).unwrap();
    config["vocab_size"] = Value::from(vocab);
    config["hidden_size"] = Value::from(hidden);
    config["num_attention_heads"] = Value::from(16);
    config["num_hidden_layers"] = Value::from(1);
    config["intermediate_size"] = Value::from(inter);
    config["max_position_embeddings"] = Value::from(positions);
    fs::write(&config_path, config.to_string()).unwrap();

    let h = hidden;
    let mut tensors: Vec<(String, Vec<usize>)> = vec![
        ("embeddings.word_embeddings.weight".into(), vec![vocab, h]),
        (
            "embeddings.position_embeddings.weight".into(),
            vec![positions, h],
        ),
        (
            "embeddings.token_type_embeddings.weight".into(),
            vec![types, h],
        ),
        ("embeddings.LayerNorm.weight".into(), vec![h]),
        ("embeddings.LayerNorm.bias".into(), vec![h]),
    ];
    let p = "encoder.layer.0.";
    for (name, out, inp) in [
        ("attention.self.query", h, h),
        ("attention.self.key", h, h),
        ("attention.self.value", h, h),
        ("attention.output.dense", h, h),
        ("intermediate.dense", inter, h),
        ("output.dense", h, inter),
    ] {
        tensors.push((format!("{p}{name}.weight"), vec![out, inp]));
        tensors.push((format!("{p}{name}.bias"), vec![out]));
    }
    for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
        tensors.push((format!("{p}{name}.weight"), vec![h]));
        tensors.push((format!("{p}{name}.bias"), vec![h]));
    }
    let mut header = serde_json::Map::new();
    let mut at = 0u64;
    for (name, shape) in tensors {
        let size = if dtype == "F16" { 2 } else { 4 };
        let bytes = size * shape.iter().product::<usize>() as u64;
        header.insert(
            name,
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [at, at + bytes]}),
        );
        at += bytes;
    }
    let mut text = Value::Object(header).to_string();
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let path = dir.join("model.safetensors");
    let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(text.as_bytes());
    fs::write(&path, &bytes).unwrap();
    let len = bytes.len() as u64 + at;
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len)
        .unwrap();
    len
}

#[test]
fn a_sparse_weights_file_costs_no_heap_of_its_own_under_a_memory_limit() {
    const LIMIT: u64 = 512 << 20;
    let sb = Sandbox::poker();
    let dir = sb.cache.join("models/big");
    // 300 MiB: reading the file whole and then copying it needs twice that.
    let len = sparse_model(&dir, 76_800, 1024);
    assert!(len > LIMIT / 2 && len < LIMIT);
    let mut cmd = sb.command(&["index", "--model", "big"]);
    cmd.env("RAYON_NUM_THREADS", "2");
    let run = run_with_data_limit(cmd, LIMIT);
    exited_cleanly(&run);

    // 2 GiB of f32: read in place from the map, it costs no heap either (issue 15): a
    // rebuild embeds every file with it under the limit.
    let len = sparse_model(&dir, 500_000, 1024);
    assert!(len > 3 * LIMIT);
    let mut cmd = sb.command(&["index", "--model", "big", "--rebuild"]);
    cmd.env("RAYON_NUM_THREADS", "2");
    run_with_data_limit(cmd, LIMIT).ok();

    // 1 GiB of f16, which must be converted to 2 GiB of f32: more memory than the limit,
    // a clear error when the model is first needed.
    let len = sparse_model_of(&dir, 500_000, 1024, "F16");
    assert!(len > LIMIT);
    let mut cmd = sb.command(&["index", "--model", "big", "--rebuild"]);
    cmd.env("RAYON_NUM_THREADS", "2");
    let run = run_with_data_limit(cmd, LIMIT);
    let line = run.err();
    assert!(line.contains("model.safetensors"), "{line}");
    assert!(line.contains("not enough memory"), "{line}");
}

#[test]
fn a_weights_file_whose_header_disagrees_with_its_size_is_refused_before_reading() {
    let sb = Sandbox::poker();
    let dir = sb.cache.join("models/big");
    let len = sparse_model(&dir, 100, 32);
    let path = dir.join("model.safetensors");
    // Trailing data the header does not account for (a sparse 2 GiB tail).
    let f = fs::File::options().write(true).open(&path).unwrap();
    f.set_len(len + (2 << 30)).unwrap();
    let mut cmd = sb.command(&["index", "--model", "big"]);
    cmd.env("RAYON_NUM_THREADS", "2");
    let line = run_with_data_limit(cmd, 512 << 20).err();
    assert!(line.contains("model.safetensors"), "{line}");
    assert!(line.contains("header"), "{line}");
    // A header length past the end of the file.
    fs::write(&path, (1u64 << 40).to_le_bytes()).unwrap();
    let line = sb.tp(&["index", "--model", "big"]).err();
    assert!(line.contains("header"), "{line}");
}

/// Runs `tp` with `args`; a hang fails the test (the harness's timeout).
fn run_unless_it_hangs(sb: &Sandbox, args: &[&str]) -> Run {
    Running::run(sb.command(args), format!("tp {}", args.join(" ")))
}

#[test]
fn model_files_that_are_links_or_fifos_are_refused_and_never_quoted() {
    use std::os::unix::fs::symlink;
    let sb = Sandbox::poker();
    let secret = "root:x:0:0:root:/root:/bin/bash";
    let outside = sb.base.join("passwd");
    fs::write(&outside, format!("{secret}\n")).unwrap();
    let index = ["index", "--model", "tiny-bert"];

    for file in ["tokenizer.json", "config.json", "model.safetensors"] {
        let dir = cached_tiny(&sb, |_| {});
        fs::remove_file(dir.join(file)).unwrap();
        symlink(&outside, dir.join(file)).unwrap();
        let line = sb.tp(&index).err();
        assert!(line.contains(file), "{line}");
        assert!(line.contains("symbolic link"), "{line}");
        assert!(!line.contains("root:"), "{line}");
    }

    for file in ["config.json", "tokenizer.json", "1_Pooling/config.json"] {
        let dir = cached_tiny(&sb, |_| {});
        let path = dir.join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let _ = fs::remove_file(&path);
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let line = run_unless_it_hangs(&sb, &index).err();
        assert!(line.contains(file), "{line}");
        assert!(line.contains("FIFO"), "{line}");
        fs::remove_file(&path).unwrap();
    }

    // serde_json's messages quote values: the error describes, never quotes.
    cached_tiny(&sb, |c| c["hidden_size"] = Value::from(secret));
    let line = sb.tp(&index).err();
    assert!(line.contains("config.json"), "{line}");
    assert!(!line.contains("root:"), "{line}");
    let dir = cached_tiny(&sb, |_| {});
    fs::write(
        dir.join("tokenizer.json"),
        format!(r#"{{"version": "1.0", "model": {{"type": "{secret}"}}}}"#),
    )
    .unwrap();
    let line = sb.tp(&index).err();
    assert!(line.contains("tokenizer.json"), "{line}");
    assert!(!line.contains("root:"), "{line}");

    // tokenizer.json has a size cap, checked before it is read.
    let tok = fs::File::options()
        .write(true)
        .open(dir.join("tokenizer.json"))
        .unwrap();
    tok.set_len((64 << 20) + 1).unwrap(); // turboprop_embed::TOKENIZER_CAP + 1
    let mut cmd = sb.command(&index);
    cmd.env("RAYON_NUM_THREADS", "2");
    let line = run_with_data_limit(cmd, 48 << 20).err();
    assert!(line.contains("tokenizer.json"), "{line}");
    assert!(line.contains("more than"), "{line}");
}

#[test]
fn one_huge_chunk_is_tokenized_with_bounded_memory() {
    let sb = Sandbox::poker();
    cached_tiny(&sb, |_| {});
    // One 24 MB line: one chunk of ~12 million tokens if it were tokenized whole.
    fs::write(sb.root.join("huge.txt"), "a ".repeat(12 << 20)).unwrap();
    let mut cmd = sb.command(&["index", "--model", "tiny-bert", "--max-filesize", "64mb"]);
    cmd.env("RAYON_NUM_THREADS", "2");
    let run = run_with_data_limit(cmd, 512 << 20);
    exited_cleanly(&run);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
}

#[test]
fn downloads_are_only_of_pinned_checksummed_models() {
    let sb = Sandbox::poker();
    // A hub repository tp has no checksums for is not fetched at all (no network needed).
    let run = sb.tp_env(
        &["model", "download", "some-org/some-model"],
        &[("HF_ENDPOINT", "http://127.0.0.1:9")],
    );
    let line = run.err();
    assert!(line.contains("tp model import"), "{line}");
    assert!(!run.stderr.contains("downloading"), "{}", run.stderr);
}

#[test]
fn import_copies_no_file_through_a_link() {
    let sb = Sandbox::poker();
    let src = sb.tiny_source();
    let outside = sb.base.join("passwd");
    fs::write(&outside, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    fs::remove_file(src.join("LICENSE")).unwrap();
    std::os::unix::fs::symlink(&outside, src.join("LICENSE")).unwrap();
    sb.tp(&["model", "import", src.to_str().unwrap()]).ok();
    let installed = sb.cache.join("models/tiny-bert");
    assert!(installed.join("model.safetensors").is_file());
    assert!(
        !installed.join("LICENSE").exists(),
        "the link's target was copied"
    );
}
