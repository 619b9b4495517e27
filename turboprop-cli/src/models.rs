//! Which embedder to use: resolving `--model`, `--repo-model`, `config.yaml` and the index's
//! recorded model to an [`Embedder`]: the built-in lexical model or an installed transformer
//! model (see [`crate::model_store`] for where models are looked for, and why a repository's
//! own models are used only with `--repo-model`). Whenever a model is chosen, one line on
//! stderr says which and from where; it is loaded on its first use.

use std::path::Path;

use anyhow::{bail, Result};
use turboprop_embed::{BertOptions, BuiltinEmbedder, LazyBertEmbedder, Precision};
use turboprop_types::Embedder;

use crate::model_store::{canonical_name, how_to_install, Installed, ModelStore};

/// The embedder of an installed model (loaded on its first use), and one line on stderr
/// saying which model it is and where it came from.
pub fn load_installed(m: &Installed) -> Result<Box<dyn Embedder>> {
    let e = lazy(m)?;
    eprintln!("note: using model {} {}", m.name, m.whence());
    Ok(e)
}

/// The encoder arithmetic `TURBOPROP_PRECISION` asks for: `f32` (the default) or `int8`
/// (faster where the CPU has VNNI, slightly less exact; see docs/performance.md,
/// "The int8 encoder", for why it is not the default).
pub fn precision() -> Result<Precision> {
    match std::env::var("TURBOPROP_PRECISION").as_deref() {
        Err(_) | Ok("" | "f32") => Ok(Precision::F32),
        Ok("int8") => Ok(Precision::Int8),
        Ok(other) => bail!(
            "TURBOPROP_PRECISION={} is not a precision: use f32 (the default) or int8",
            crate::escape::escape_control(other)
        ),
    }
}

/// The embedder of an installed model. The folder was checked when it was found; the
/// tokenizer and weights load on first use, so a no-op `tp index` or a lexical search never
/// loads them, and a model that cannot load is an error only where it is needed.
fn lazy(m: &Installed) -> Result<Box<dyn Embedder>> {
    Ok(Box::new(LazyBertEmbedder::from_dir(
        &m.dir,
        m.name.clone(),
        BertOptions {
            precision: precision()?,
            ..BertOptions::default()
        },
    )))
}

/// The error for a model `name` that the store does not give: not installed, or only in
/// the repository (then the message names `--repo-model`).
fn not_available(store: &ModelStore, name: &str, what: &str) -> anyhow::Error {
    let name = canonical_name(name);
    if store.repo_has(&name) {
        let at = store
            .repo_dir
            .as_ref()
            .map(|d| d.join(&name).display().to_string())
            .unwrap_or_default();
        anyhow::anyhow!(
            "{what} {name} is only in this repository ({at}), and tp runs a repository's model only when told to: \
             add --repo-model {name} if you trust the repository, or install it in the user cache: {}",
            how_to_install(&name)
        )
    } else {
        anyhow::anyhow!(
            "{what} {name} is not installed: {} (tp model list shows what is installed; --model builtin needs nothing)",
            how_to_install(&name)
        )
    }
}

/// The embedder named `name` (a model id, an installed model's name, or `builtin`), from the
/// user cache, or from `<repo>/.turboprop/models` (`turboprop_dir` is `<repo>/.turboprop`)
/// when `repo_model` (the user's `--repo-model`) is that name.
pub fn by_name(
    name: &str,
    turboprop_dir: &Path,
    repo_model: Option<&str>,
) -> Result<Box<dyn Embedder>> {
    if let Some(e) = BuiltinEmbedder::from_model_id(name) {
        return Ok(Box::new(e));
    }
    let store = ModelStore::new(Some(turboprop_dir)).allowing(repo_model);
    match store.find(name)? {
        Some(m) => load_installed(&m),
        None => Err(not_available(&store, name, "model")),
    }
}

/// The embedder used when neither `--model` nor `config.yaml` names one: the best model in
/// the user cache (never a repository's), else the built-in one. Says on stderr which was
/// chosen, and from where.
pub fn default_embedder(turboprop_dir: &Path) -> Result<Box<dyn Embedder>> {
    let builtin = || -> Box<dyn Embedder> { Box::new(BuiltinEmbedder::new()) };
    match ModelStore::new(Some(turboprop_dir)).best() {
        Some(m) => {
            eprintln!(
                "note: no --model given: using {}, the best installed model, {} (--model builtin for the built-in one)",
                m.name,
                m.whence()
            );
            lazy(&m)
        }
        None => {
            let e = builtin();
            eprintln!(
                "note: no --model given and no model installed: using the built-in {} (tp model list shows how to install one)",
                e.model_id()
            );
            Ok(e)
        }
    }
}

/// The embedder that made an index's vectors, by its recorded model id: from the user
/// cache, or from the repository only when `repo_model` (the user's `--repo-model`) names
/// it. The index naming a model is never enough to run a repository's model.
pub fn for_index(
    model_id: &str,
    index_dir: &Path,
    repo_model: Option<&str>,
) -> Result<Box<dyn Embedder>> {
    if let Some(e) = BuiltinEmbedder::from_model_id(model_id) {
        return Ok(Box::new(e));
    }
    let store = ModelStore::for_index_dir(index_dir).allowing(repo_model);
    match store.find(model_id)? {
        Some(m) => load_installed(&m),
        None if store.repo_has(model_id) => {
            Err(not_available(&store, model_id, "model").context(format!(
                "index at {} was built with model {model_id}",
                index_dir.display()
            )))
        }
        None => bail!(
            "index at {} was built with model {model_id}, which is not installed here: {}; \
             or re-index with another model: tp index --rebuild --model builtin",
            index_dir.display(),
            how_to_install(model_id)
        ),
    }
}
