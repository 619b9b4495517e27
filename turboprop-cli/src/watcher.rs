//! Watching a repository for changes, with the same ignore rules as `tp index`.
//!
//! Every folder `tp index` walks ([`crate::discover::walker`]) gets a non-recursive watch
//! (inotify on Linux, through the `notify` crate), so ignored trees such as `target/` or
//! `node_modules/` cost no watches and wake nothing. A file event is checked against the
//! ignore files of its folder and every folder above it ([`IgnoreRules`]); a relevant change
//! marks its path on the [`Live`] index, which indexes it after a short quiet time. A new
//! folder gets its watches and a full pass (files may have landed in it before its watch
//! did); lost events (queue overflow) also ask for a full pass. Where watches cannot be had
//! (no inotify, the watch limit reached), the repository is polled: a full pass, which
//! costs a stat per file, every [`POLL_INTERVAL`].

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;
use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use crate::discover::{walker, TPIGNORE};
use crate::live::{Live, Watching};

/// How often a repository without events is walked.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The ignore files of one folder, in the order they take precedence.
const IGNORE_FILES: [&str; 3] = [TPIGNORE, ".ignore", ".gitignore"];

/// Starts watching `live`'s repository on a thread of its own, for as long as the process
/// lives. Returns how it watches.
pub fn start(live: &Arc<Live>) -> Result<Watching> {
    let root = live.repo().root.clone();
    let (tx, rx) = mpsc::channel::<notify::Result<notify::Event>>();
    let watcher = notify::recommended_watcher(move |event| {
        // The receiver lives as long as the process; a send can fail only at exit.
        let _ = tx.send(event);
    });
    let mut state = match watcher {
        Ok(watcher) => WatchState {
            watcher,
            rules: IgnoreRules::new(&root),
            root: root.clone(),
        },
        Err(e) => return start_polling(live, &format!("{e}")),
    };
    if let Err(e) = state.watch_tree(&root) {
        return start_polling(live, &e.to_string());
    }
    let live = Arc::clone(live);
    std::thread::Builder::new()
        .name("tp-watcher".into())
        .spawn(move || {
            for event in rx {
                state.handle(&live, event);
            }
        })
        .map_err(|e| anyhow!("cannot start the watcher thread: {e}"))?;
    Ok(Watching::Events)
}

fn start_polling(live: &Arc<Live>, why: &str) -> Result<Watching> {
    eprintln!(
        "note: file events are not available ({why}); walking the repository every {}s instead",
        POLL_INTERVAL.as_secs()
    );
    live.set_watching(Watching::Polling);
    let live = Arc::clone(live);
    std::thread::Builder::new()
        .name("tp-poller".into())
        .spawn(move || loop {
            std::thread::sleep(POLL_INTERVAL);
            live.mark_unknown_change();
        })
        .map_err(|e| anyhow!("cannot start the polling thread: {e}"))?;
    Ok(Watching::Polling)
}

struct WatchState {
    watcher: RecommendedWatcher,
    rules: IgnoreRules,
    root: PathBuf,
}

impl WatchState {
    /// Watches `dir` and every folder under it that `tp index` would walk.
    fn watch_tree(&mut self, dir: &Path) -> Result<()> {
        for entry in walker(dir).build() {
            let Ok(entry) = entry else { continue };
            if entry.file_type().is_some_and(|t| t.is_dir()) {
                self.watcher
                    .watch(entry.path(), RecursiveMode::NonRecursive)
                    .map_err(|e| anyhow!("cannot watch {}: {e}", entry.path().display()))?;
            }
        }
        Ok(())
    }

    fn handle(&mut self, live: &Live, event: notify::Result<notify::Event>) {
        let event = match event {
            Ok(e) => e,
            Err(_) => {
                live.mark_unknown_change();
                return;
            }
        };
        if event.need_rescan() {
            live.mark_unknown_change();
            return;
        }
        match event.kind {
            EventKind::Create(_)
            | EventKind::Remove(_)
            | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any)
            | EventKind::Modify(ModifyKind::Other)
            | EventKind::Any
            | EventKind::Other => {}
            EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => return,
        }
        let mut changed = Vec::new();
        for path in &event.paths {
            let Some(rel) = relative(&self.root, path) else {
                continue;
            };
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if IGNORE_FILES.contains(&name) {
                // The rules changed: what is indexed may change anywhere below.
                if let Some(dir) = path.parent() {
                    self.rules.forget(dir);
                }
                live.mark_unknown_change();
                continue;
            }
            if !self.rules.is_relevant(path) {
                continue;
            }
            let is_dir = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
            if is_dir {
                // A new (or renamed-in) folder: watch it; files may be in it already.
                if self.watch_tree(path).is_err() {
                    eprintln!(
                        "warning: cannot watch the new folder {}: changes in it are found by the index tool or the next full pass",
                        crate::escape::escape_control(&rel)
                    );
                }
                live.mark_unknown_change();
                continue;
            }
            changed.push(rel);
        }
        if !changed.is_empty() {
            live.mark_changed(changed);
        }
    }
}

/// `path` relative to `root` with `/` separators, if it is below `root`.
fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Vec<&str> = rel
        .components()
        .map(|c| match c {
            Component::Normal(p) => p.to_str(),
            _ => None,
        })
        .collect::<Option<_>>()?;
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// The ignore rules of `tp index`, asked one path at a time: hidden names, `.git` and
/// `.turboprop`, and the `.tpignore`, `.ignore` and `.gitignore` files of each folder from
/// the root down (a deeper folder's rules and `!` exceptions win), then git's
/// `info/exclude`.
pub struct IgnoreRules {
    root: PathBuf,
    by_dir: HashMap<PathBuf, Vec<Gitignore>>,
    exclude: Option<Gitignore>,
}

impl IgnoreRules {
    /// The rules of the repository at `root` (read lazily, folder by folder).
    pub fn new(root: &Path) -> IgnoreRules {
        let exclude = root.join(".git/info/exclude");
        let exclude = exclude.is_file().then(|| {
            let mut b = GitignoreBuilder::new(root);
            b.add(&exclude);
            b.build().unwrap_or_else(|_| Gitignore::empty())
        });
        IgnoreRules {
            root: root.to_path_buf(),
            by_dir: HashMap::new(),
            exclude,
        }
    }

    /// Forgets what was read of `dir`'s ignore files (one of them changed).
    pub fn forget(&mut self, dir: &Path) {
        self.by_dir.remove(dir);
    }

    /// Whether a change at `path` (below the root) may change what `tp index` indexes.
    pub fn is_relevant(&mut self, path: &Path) -> bool {
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return false;
        };
        // Hidden names (which include .git and .turboprop) are never walked.
        let hidden = rel.components().any(|c| match c {
            Component::Normal(p) => p.to_str().is_none_or(|p| p.starts_with('.')),
            _ => true,
        });
        if hidden || rel.as_os_str().is_empty() {
            return false;
        }
        let is_dir = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
        // From the deepest folder up: the first rule that matches decides.
        let mut dir = path.parent();
        while let Some(d) = dir {
            if !d.starts_with(&self.root) {
                break;
            }
            for rules in self.rules_of(d) {
                match rules.matched_path_or_any_parents(path, is_dir) {
                    Match::Ignore(_) => return false,
                    Match::Whitelist(_) => return true,
                    Match::None => {}
                }
            }
            dir = d.parent();
        }
        match &self.exclude {
            Some(rules) => !rules.matched_path_or_any_parents(path, is_dir).is_ignore(),
            None => true,
        }
    }

    fn rules_of(&mut self, dir: &Path) -> &[Gitignore] {
        self.by_dir.entry(dir.to_path_buf()).or_insert_with(|| {
            IGNORE_FILES
                .iter()
                .map(|name| dir.join(name))
                .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
                .filter_map(|p| {
                    let mut b = GitignoreBuilder::new(dir);
                    b.add(&p);
                    b.build().ok()
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_rules_follow_tp_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("src/gen")).expect("mkdir");
        std::fs::create_dir_all(root.join("target/debug")).expect("mkdir");
        std::fs::write(root.join(".gitignore"), "target/\n*.log\n").expect("write");
        std::fs::write(root.join("src/.gitignore"), "gen/\n!keep.log\n").expect("write");
        std::fs::write(root.join(".tpignore"), "docs/\n").expect("write");
        let mut rules = IgnoreRules::new(root);
        let relevant = |rules: &mut IgnoreRules, p: &str| rules.is_relevant(&root.join(p));
        assert!(relevant(&mut rules, "src/lib.rs"));
        assert!(relevant(&mut rules, "README.md"));
        assert!(!relevant(&mut rules, "target/debug/tp"));
        assert!(!relevant(&mut rules, "build.log"));
        assert!(!relevant(&mut rules, "src/gen/out.rs"));
        assert!(
            relevant(&mut rules, "src/keep.log"),
            "a deeper ! exception wins"
        );
        assert!(!relevant(&mut rules, "docs/guide.md"), ".tpignore applies");
        assert!(!relevant(&mut rules, ".turboprop/index/manifest.json"));
        assert!(!relevant(&mut rules, ".git/index"));
        assert!(!relevant(&mut rules, "src/.hidden.rs"));
    }

    #[test]
    fn paths_are_relative_with_slashes() {
        let root = Path::new("/r");
        assert_eq!(
            relative(root, Path::new("/r/a/b.rs")).as_deref(),
            Some("a/b.rs")
        );
        assert_eq!(relative(root, Path::new("/r")), None);
        assert_eq!(relative(root, Path::new("/elsewhere/x")), None);
    }
}
