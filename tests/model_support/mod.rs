//! The sandbox of the model tests (`tests/models.rs`, `tests/model_trust.rs`): a copy of the
//! poker fixture, an empty `$HOME` and a model cache of its own, and the `tp` binary run in it.

// Each test file uses part of this module.
#![allow(dead_code)]
// Tests fail loudly; `unwrap` on a test's own set-up is the clearest way to say so.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

pub const TP: &str = env!("CARGO_BIN_EXE_tp");

/// A repository copy of the poker fixture, an empty `$HOME` and a model cache of its own.
pub struct Sandbox {
    _tmp: TempDir,
    pub base: PathBuf,
    pub root: PathBuf,
    pub cache: PathBuf,
}

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "should succeed\n{}", self.stderr);
        self
    }
    /// Exit 2 with exactly one `error:` line, the last one; returns it.
    pub fn err(&self) -> String {
        assert_eq!(self.code, Some(2), "should fail\n{}", self.stderr);
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect();
        assert_eq!(errors.len(), 1, "{}", self.stderr);
        assert_eq!(self.stderr.lines().last(), Some(errors[0]));
        errors[0].to_owned()
    }
}

/// Runs `cmd` to the end; a panic is a test failure.
pub fn run(mut cmd: Command) -> Run {
    let out = cmd.output().unwrap();
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    run
}

pub fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for entry in fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            fs::copy(entry.path(), &to).unwrap();
        }
    }
}

impl Sandbox {
    pub fn poker() -> Sandbox {
        let tmp = tempfile::Builder::new()
            .prefix("tp-models-")
            .tempdir()
            .unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let root = base.join("repo");
        let cache = base.join("cache");
        fs::create_dir_all(base.join("home")).unwrap();
        copy_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/poker"),
            &root,
        );
        Sandbox {
            _tmp: tmp,
            base,
            root,
            cache,
        }
    }

    pub fn tp(&self, args: &[&str]) -> Run {
        self.tp_env(args, &[])
    }

    /// The `tp` command with `args`, run in the repository with the sandbox's environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(TP);
        cmd.args(args)
            .current_dir(&self.root)
            .env("HOME", self.base.join("home"))
            .env("XDG_CONFIG_HOME", self.base.join("home/.config"))
            .env_remove("XDG_CACHE_HOME")
            .env("TURBOPROP_CACHE_DIR", &self.cache)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    pub fn tp_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(cmd)
    }

    /// A tiny random model folder named like the wheel's folders.
    pub fn tiny_source(&self) -> PathBuf {
        let dir = self
            .base
            .join("src-models/sentence-transformers__tiny-bert");
        turboprop_embed::write_tiny_bert(&dir, 3).unwrap();
        fs::write(dir.join("LICENSE"), "test licence").unwrap();
        dir
    }

    pub fn status(&self) -> Value {
        serde_json::from_str(&self.tp(&["status", "--output", "json"]).ok().stdout).unwrap()
    }

    pub fn search_files(&self, query: &str, limit: usize) -> Vec<String> {
        let limit = limit.to_string();
        let run = self
            .tp(&["search", query, "--output", "json", "--limit", &limit])
            .ok();
        run.stdout
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["file"].as_str().unwrap().to_owned()
            })
            .collect()
    }
}
