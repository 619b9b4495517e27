//! `tp model`: list, inspect, import and download embedding models into the shared cache
//! (see [`crate::model_store`]).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use turboprop_embed::{
    BertEmbedder, BertOptions, BuiltinEmbedder, ModelDir, DEFAULT_MAX_TOKENS, OPTIONAL_FILES,
    REQUIRED_FILES,
};
use turboprop_types::Embedder;

use crate::args::{ModelArgs, ModelCommand, RepoArg};
use crate::model_store::{
    canonical_name, check_name, check_sha256, how_to_install, known, offline_route,
    user_models_dir, ModelStore, Source, KNOWN,
};

/// Runs `tp model`.
pub fn run(args: &ModelArgs) -> Result<()> {
    match &args.command {
        ModelCommand::List(repo) => list(repo),
        ModelCommand::Info { name, repo } => info(name, repo),
        ModelCommand::Import { path, name } => import(path, name.as_deref()).map(|_| ()),
        ModelCommand::Download { name } => download(name),
    }
}

/// The store seen from `--repo` (or the current folder, when it is a repository with a
/// `.turboprop` folder).
fn store(repo: &RepoArg) -> Result<ModelStore> {
    let root = match &repo.repo {
        Some(p) => Some(crate::repo::Repo::locate(Some(p))?.root),
        None => std::env::current_dir().ok(),
    };
    Ok(ModelStore::new(
        root.map(|r| r.join(".turboprop")).as_deref(),
    ))
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

fn list(repo: &RepoArg) -> Result<()> {
    let store = store(repo)?;
    let (installed, broken) = store.list();
    let best = store.best().map(|b| b.name);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<28} {:>5} {:>10}  WHERE", "NAME", "DIMS", "SIZE")?;
    let builtin = BuiltinEmbedder::new();
    let default_mark = |name: &str| {
        if best.as_deref() == Some(name) || (best.is_none() && name == "builtin") {
            " (default)"
        } else {
            ""
        }
    };
    writeln!(
        out,
        "{:<28} {:>5} {:>10}  built in ({}){}",
        "builtin",
        builtin.dimensions(),
        "0 B",
        builtin.model_id(),
        default_mark("builtin")
    )?;
    for m in &installed {
        let mark = match m.source {
            Source::UserCache => default_mark(&m.name).to_owned(),
            Source::Repository => format!(
                " (repository-local: used only with --repo-model {})",
                m.name
            ),
        };
        writeln!(
            out,
            "{:<28} {:>5} {:>10}  {}{}",
            m.name,
            m.dir.dimensions(),
            human(m.dir.size_bytes()),
            m.dir.path.display(),
            mark
        )?;
    }
    for k in KNOWN {
        if !installed
            .iter()
            .any(|m| m.name == k.name && m.source == Source::UserCache)
        {
            writeln!(
                out,
                "{:<28} {:>5} {:>10}  not installed: tp model download {}{}",
                k.name,
                k.dimensions,
                "-",
                k.name,
                if k.offline.is_some() {
                    " (offline: see tp model info)"
                } else {
                    ""
                }
            )?;
        }
    }
    for (path, why) in broken {
        eprintln!("warning: {} is not a usable model: {why}", path.display());
    }
    match store.user_dir {
        Some(d) => eprintln!("model cache: {}", d.display()),
        None => eprintln!("model cache: none (set TURBOPROP_CACHE_DIR or HOME)"),
    }
    Ok(())
}

fn info(name: &str, repo: &RepoArg) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if let Some(b) = BuiltinEmbedder::from_model_id(name) {
        writeln!(out, "name:        {}", b.model_id())?;
        writeln!(
            out,
            "kind:        built-in lexical (code-aware terms, feature hashing)"
        )?;
        writeln!(out, "dimensions:  {}", b.dimensions())?;
        writeln!(out, "installed:   always (no files)")?;
        return Ok(());
    }
    let store = store(repo)?;
    // A repository's model is described (its config only is read), not loaded.
    let allowed = store.repo_has(name).then(|| canonical_name(name));
    let found = match store.find(name)? {
        Some(m) => Some(m),
        None => store.clone().allowing(allowed.as_deref()).find(name)?,
    };
    let Some(m) = found else {
        // An error prints nothing on stdout (DESIGN.md): the one line says it all.
        let Some(k) = known(name) else {
            bail!(
                "model {} is not installed and not one tp knows: {}",
                canonical_name(name),
                how_to_install(name)
            );
        };
        writeln!(out, "name:        {}", canonical_name(name))?;
        writeln!(out, "source:      https://huggingface.co/{}", k.hub_repo)?;
        writeln!(out, "dimensions:  {}", k.dimensions)?;
        writeln!(out, "installed:   no")?;
        writeln!(out, "install:     {}", how_to_install(name))?;
        return Ok(());
    };
    let c = &m.dir.config;
    writeln!(out, "name:        {}", m.name)?;
    writeln!(out, "kind:        BERT-family transformer (pure Rust, CPU)")?;
    if let Some(k) = known(&m.name) {
        writeln!(out, "source:      https://huggingface.co/{}", k.hub_repo)?;
    }
    writeln!(out, "dimensions:  {}", m.dir.dimensions())?;
    writeln!(
        out,
        "layers:      {} ({} heads, feed-forward {})",
        c.num_hidden_layers, c.num_attention_heads, c.intermediate_size
    )?;
    writeln!(out, "vocabulary:  {}", c.vocab_size)?;
    writeln!(
        out,
        "max tokens:  {} per chunk (model limit {})",
        DEFAULT_MAX_TOKENS.min(c.max_position_embeddings),
        c.max_position_embeddings
    )?;
    writeln!(out, "pooling:     {:?}, L2-normalized", m.dir.pooling)?;
    writeln!(out, "path:        {}", m.dir.path.display())?;
    if m.source == Source::Repository {
        writeln!(
            out,
            "trust:       repository-local: used only with --repo-model {}",
            m.name
        )?;
    }
    writeln!(out, "size:        {}", human(m.dir.size_bytes()))?;
    Ok(())
}

/// Checks a model folder by loading it and embedding a sentence; `ours` says whether the
/// folder is turboprop's (a staged copy), where converted weights may be cached, or the
/// user's, which is only read.
fn check_model(path: &Path, name: &str, ours: bool) -> Result<(ModelDir, usize)> {
    let dir = ModelDir::open(path)?;
    let options = BertOptions {
        write_cache: ours,
        ..BertOptions::default()
    };
    let e = BertEmbedder::load(path, name, options)?;
    let v = e
        .embed_documents(&["fn main() { println!(\"hello\"); }"])
        .with_context(|| format!("model at {} loads but cannot embed", path.display()))?;
    if v.first().map(Vec::len) != Some(dir.dimensions()) {
        bail!(
            "model at {} gives vectors of the wrong size",
            path.display()
        );
    }
    Ok((dir, e.dimensions()))
}

fn copy_file(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// Moves a filled staging folder into place as `<cache>/<name>`, replacing an older copy.
fn install(staging: &Path, dest: &Path) -> Result<()> {
    let old = dest.with_file_name(format!(
        ".{}.old-{}",
        dest.file_name().and_then(|n| n.to_str()).unwrap_or("model"),
        std::process::id()
    ));
    let had_old = dest.exists();
    if had_old {
        std::fs::rename(dest, &old)
            .with_context(|| format!("cannot replace {}", dest.display()))?;
    }
    std::fs::rename(staging, dest)
        .with_context(|| format!("cannot install the model into {}", dest.display()))?;
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(())
}

/// A staging folder in the cache, removed on drop unless installed.
struct Staging(PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn staging(cache: &Path, name: &str) -> Result<Staging> {
    std::fs::create_dir_all(cache)
        .with_context(|| format!("cannot create the model cache {}", cache.display()))?;
    let p = cache.join(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).with_context(|| format!("cannot create {}", p.display()))?;
    Ok(Staging(p))
}

/// `tp model import PATH [--name NAME]`; returns where the model went.
pub fn import(path: &Path, name: Option<&str>) -> Result<PathBuf> {
    if !path.is_dir() {
        bail!(
            "{} is not a folder: give the model folder that holds model.safetensors, tokenizer.json and config.json",
            path.display()
        );
    }
    let name = match name {
        Some(n) => n.to_owned(),
        None => {
            let folder = path
                .canonicalize()
                .ok()
                .and_then(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
                .with_context(|| {
                    format!("cannot name the model at {}: use --name", path.display())
                })?;
            canonical_name(&folder)
        }
    };
    check_name(&name)?;
    if BuiltinEmbedder::from_model_id(&name).is_some() {
        bail!("{name} is the built-in model's name: choose another with --name");
    }
    let (_, dims) = check_model(path, &name, false)
        .with_context(|| format!("{} is not a usable model folder", path.display()))?;
    let cache = user_models_dir()?;
    let stage = staging(&cache, &name)?;
    for file in REQUIRED_FILES.iter().chain(OPTIONAL_FILES.iter()) {
        let from = path.join(file);
        // Plain files only: a link among a folder's optional files is not followed.
        if std::fs::symlink_metadata(&from).is_ok_and(|m| m.is_file()) {
            copy_file(&from, &stage.0.join(file))?;
        }
    }
    // The copy is checked again before it replaces anything.
    check_model(&stage.0, &name, true).with_context(|| {
        format!(
            "the copy of {} in {} is not usable",
            path.display(),
            stage.0.display()
        )
    })?;
    let dest = cache.join(&name);
    install(&stage.0, &dest)?;
    eprintln!(
        "imported model {name} ({dims} dims) into {}; use it with tp index --model {name}",
        dest.display()
    );
    Ok(dest)
}

/// `tp model download NAME`: the files of a model `tp` knows with a pinned revision, each
/// checked against its compiled-in sha256 before the model is installed.
fn download(name: &str) -> Result<()> {
    let Some(k) = known(name) else {
        bail!(
            "tp model download fetches only models whose files it can check ({}); for {}, copy a model folder to this machine and run tp model import <folder>",
            KNOWN
                .iter()
                .filter(|k| k.pinned.is_some())
                .map(|k| k.name)
                .collect::<Vec<_>>()
                .join(", "),
            name.trim()
        );
    };
    let model_name = k.name.to_owned();
    let Some(pinned) = k.pinned else {
        bail!(
            "tp has no pinned revision and checksums for {model_name}, so it does not download it: {}",
            offline_route(&model_name)
        );
    };
    let hub_repo = k.hub_repo;
    let endpoint = std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "https://huggingface.co".to_owned());
    let endpoint = endpoint.trim_end_matches('/');
    let offline = |e: &dyn std::fmt::Display| {
        anyhow::anyhow!(
            "cannot download {model_name} from {endpoint} ({e}); without network: {}",
            offline_route(&model_name)
        )
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_body(Some(Duration::from_secs(300)))
        .build()
        .into();
    let cache = user_models_dir()?;
    let stage = staging(&cache, &model_name)?;
    for &(file, sha256) in pinned.files {
        let url = format!("{endpoint}/{hub_repo}/resolve/{}/{file}", pinned.revision);
        eprintln!("downloading {url}");
        let mut resp = agent.get(&url).call().map_err(|e| offline(&e))?;
        let dest = stage.0.join(file);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut f = std::fs::File::create(&dest)
            .with_context(|| format!("cannot write {}", dest.display()))?;
        let mut reader = resp.body_mut().with_config().limit(4 << 30).reader();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = reader.read(&mut buf).map_err(|e| offline(&e))?;
            if n == 0 {
                break;
            }
            f.write_all(&buf[..n])
                .with_context(|| format!("cannot write {}", dest.display()))?;
        }
        f.sync_all()
            .with_context(|| format!("cannot write {}", dest.display()))?;
        check_sha256(&dest, sha256)
            .with_context(|| format!("{url} is not the pinned file (nothing was installed)"))?;
    }
    let (_, dims) = check_model(&stage.0, &model_name, true).with_context(|| {
        format!("the model downloaded from {endpoint}/{hub_repo} is not usable")
    })?;
    let dest = cache.join(&model_name);
    install(&stage.0, &dest)?;
    eprintln!(
        "downloaded model {model_name} ({dims} dims, revision {}, checksums verified) into {}; use it with tp index --model {model_name}",
        pinned.revision,
        dest.display()
    );
    Ok(())
}
