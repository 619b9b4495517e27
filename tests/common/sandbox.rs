//! The sandbox of every integration test: a temporary folder with a repository (`repo/`, a
//! copy of the poker fixture or empty), an empty `$HOME` with its own model cache, and room for
//! more folders beside them (`dir`). `tp` runs in it with an environment that no user setting
//! can change: no global git excludes, no installed models, no colour, and one commit per
//! `tp index` however slow the machine is (the ~10 s commit batching would otherwise make what
//! a test sees depend on the machine's speed).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

use super::{copy_dir, fixture_dir, parse_hits, Run, Running, TP};

pub struct Sandbox {
    _tmp: TempDir,
    /// The sandbox folder (canonical, so it matches the paths `tp` prints).
    pub base: PathBuf,
    /// The repository: `base/repo` unless made with [`Sandbox::with_repo`].
    pub root: PathBuf,
    /// The empty `$HOME`: `base/home`.
    pub home: PathBuf,
    /// The user cache of models `tp` sees: `home/.cache/turboprop`.
    pub cache: PathBuf,
}

impl Sandbox {
    /// An empty repository folder.
    pub fn empty() -> Sandbox {
        let sb = Sandbox::bare();
        fs::create_dir_all(&sb.root).unwrap();
        sb
    }

    /// A fresh copy of the poker fixture.
    pub fn poker() -> Sandbox {
        let sb = Sandbox::bare();
        copy_dir(&fixture_dir(), &sb.root);
        sb
    }

    /// A fresh copy of the poker fixture, indexed.
    pub fn indexed_poker() -> Sandbox {
        let sb = Sandbox::poker();
        sb.tp(&["index"]).ok();
        sb
    }

    /// A sandbox whose repository is `root` (created), somewhere else (a small tmpfs).
    pub fn with_repo(root: PathBuf) -> Sandbox {
        let mut sb = Sandbox::bare();
        fs::create_dir_all(&root).unwrap();
        sb.root = root;
        sb
    }

    fn bare() -> Sandbox {
        let tmp = tempfile::Builder::new()
            .prefix("tp-test-")
            .tempdir()
            .unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let home = base.join("home");
        fs::create_dir_all(&home).unwrap();
        Sandbox {
            _tmp: tmp,
            root: base.join("repo"),
            cache: home.join(".cache/turboprop"),
            home,
            base,
        }
    }

    /// A new empty folder `name` in the sandbox, beside the repository.
    pub fn dir(&self, name: &str) -> PathBuf {
        let p = self.base.join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }

    /// A folder beside the repository standing for "anywhere else on the machine".
    pub fn outside(&self) -> PathBuf {
        self.dir("outside")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn index_dir(&self) -> PathBuf {
        self.root.join(".turboprop/index")
    }

    pub fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, bytes).unwrap();
    }

    /// Gives `cmd` the sandbox's environment.
    pub fn isolate(&self, cmd: &mut Command) {
        cmd.env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            // The model cache is the empty $HOME's: `cache`.
            .env_remove("XDG_CACHE_HOME")
            .env_remove("TURBOPROP_CACHE_DIR")
            .env("NO_COLOR", "1")
            // One commit per run, whatever the machine's speed (test build only; see
            // turboprop-cli/src/batching.rs). A test of batching sets its own value.
            .env("TURBOPROP_COMMIT_EVERY_FILES", "1000000000")
            .stdin(Stdio::null());
    }

    /// A `tp` command run in the repository folder.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(TP);
        cmd.args(args).current_dir(&self.root);
        self.isolate(&mut cmd);
        cmd
    }

    /// `tp ARGS --repo REPO`, run in `repo`.
    pub fn command_at(&self, repo: &Path, args: &[&str]) -> Command {
        let mut cmd = self.command(args);
        cmd.arg("--repo").arg(repo).current_dir(repo);
        cmd
    }

    /// Runs `tp ARGS` in the repository folder; asserts the contract's exit codes.
    pub fn tp(&self, args: &[&str]) -> Run {
        Running::run(self.command(args), format!("tp {}", args.join(" "))).contract()
    }

    /// Runs `tp ARGS` with extra environment variables.
    pub fn tp_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(args);
        cmd.envs(env.iter().copied());
        Running::run(cmd, format!("tp {} with {env:?}", args.join(" "))).contract()
    }

    /// Runs `tp ARGS` in `cwd`.
    pub fn tp_in(&self, cwd: &Path, args: &[&str]) -> Run {
        let mut cmd = self.command(args);
        cmd.current_dir(cwd);
        Running::run(cmd, format!("tp {} (in {})", args.join(" "), cwd.display())).contract()
    }

    /// Runs `tp ARGS --repo REPO` in `repo`.
    pub fn tp_at(&self, repo: &Path, args: &[&str]) -> Run {
        Running::run(self.command_at(repo, args), at(repo, args)).contract()
    }

    /// Starts `tp ARGS` in the repository folder.
    pub fn spawn(&self, args: &[&str]) -> Running {
        Running::spawn(self.command(args), format!("tp {}", args.join(" ")))
    }

    /// Starts `tp ARGS --repo REPO` in `repo`.
    pub fn spawn_at(&self, repo: &Path, args: &[&str]) -> Running {
        Running::spawn(self.command_at(repo, args), at(repo, args))
    }

    /// `tp search QUERY --output json EXTRA...`, successful, parsed.
    pub fn search(&self, query: &str, extra: &[&str]) -> Vec<Value> {
        let mut args = vec!["search", query, "--output", "json"];
        args.extend_from_slice(extra);
        parse_hits(&self.tp(&args).ok().stdout)
    }

    /// The files of the hits of `search`.
    pub fn search_files(&self, query: &str, extra: &[&str]) -> Vec<String> {
        super::files(&self.search(query, extra))
    }

    /// `tp status --output json`, parsed.
    pub fn status(&self) -> Value {
        serde_json::from_str(&self.tp(&["status", "--output", "json"]).ok().stdout).unwrap()
    }

    /// A tiny random BERT model folder (seed 3) named like the wheel's folders, with a licence,
    /// to import.
    pub fn tiny_source(&self) -> PathBuf {
        let dir = self
            .base
            .join("src-models/sentence-transformers__tiny-bert");
        turboprop_embed::write_tiny_bert(&dir, 3).unwrap();
        fs::write(dir.join("LICENSE"), "test licence").unwrap();
        dir
    }

    /// Every file of the repository outside `.turboprop/`, with its bytes.
    pub fn sources(&self) -> BTreeMap<String, Vec<u8>> {
        super::sources(&self.root)
    }

    /// Replaces the sandbox's absolute paths in `s` with `[REPO]` / `[HOME]`.
    pub fn redact(&self, s: &str) -> String {
        s.replace(&self.root.display().to_string(), "[REPO]")
            .replace(&self.home.display().to_string(), "[HOME]")
    }
}

fn at(repo: &Path, args: &[&str]) -> String {
    format!("tp {} --repo {}", args.join(" "), repo.display())
}
