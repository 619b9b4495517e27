//! Which embedder to use: resolving `--model`, `config.yaml` and the index's recorded model
//! to an [`Embedder`]: the built-in lexical model or an installed transformer model (see
//! [`crate::model_store`] for where models are looked for).

use std::path::Path;

use anyhow::{bail, Context, Result};
use turboprop_embed::{BertEmbedder, BertOptions, BuiltinEmbedder};
use turboprop_types::Embedder;

use crate::model_store::{canonical_name, how_to_install, Installed, ModelStore};

/// Loads an installed model.
pub fn load_installed(m: &Installed) -> Result<Box<dyn Embedder>> {
    let e = BertEmbedder::load(&m.dir.path, m.name.clone(), BertOptions::default()).with_context(
        || {
            format!(
                "cannot load model {} from {}: import it again with tp model import",
                m.name,
                m.dir.path.display()
            )
        },
    )?;
    Ok(Box::new(e))
}

/// The embedder named `name` (a model id, an installed model's name, or `builtin`), looked
/// for in `<repo>/.turboprop/models` (`turboprop_dir` is `<repo>/.turboprop`) and then the
/// user cache.
pub fn by_name(name: &str, turboprop_dir: &Path) -> Result<Box<dyn Embedder>> {
    if let Some(e) = BuiltinEmbedder::from_model_id(name) {
        return Ok(Box::new(e));
    }
    match ModelStore::new(Some(turboprop_dir)).find(name)? {
        Some(m) => load_installed(&m),
        None => bail!(
            "model {} is not installed: {} (tp model list shows what is installed; --model builtin needs nothing)",
            canonical_name(name),
            how_to_install(name)
        ),
    }
}

/// The embedder used when neither `--model` nor `config.yaml` names one: the best installed
/// model, else the built-in one. Says on stderr which was chosen.
pub fn default_embedder(turboprop_dir: &Path) -> Box<dyn Embedder> {
    let builtin = || -> Box<dyn Embedder> { Box::new(BuiltinEmbedder::new()) };
    match ModelStore::new(Some(turboprop_dir)).best() {
        Some(m) => match load_installed(&m) {
            Ok(e) => {
                eprintln!(
                    "note: no --model given: using {}, the best installed model (--model builtin for the built-in one)",
                    m.name
                );
                e
            }
            Err(err) => {
                eprintln!(
                    "warning: {}; using the built-in model",
                    crate::one_line(&err)
                );
                builtin()
            }
        },
        None => {
            let e = builtin();
            eprintln!(
                "note: no --model given and no model installed: using the built-in {} (tp model list shows how to install one)",
                e.model_id()
            );
            e
        }
    }
}

/// The embedder that made an index's vectors, by its recorded model id.
pub fn for_index(model_id: &str, index_dir: &Path) -> Result<Box<dyn Embedder>> {
    if let Some(e) = BuiltinEmbedder::from_model_id(model_id) {
        return Ok(Box::new(e));
    }
    match ModelStore::for_index_dir(index_dir).find(model_id)? {
        Some(m) => load_installed(&m),
        None => bail!(
            "index at {} was built with model {model_id}, which is not installed here: {}; \
             or re-index with another model: tp index --rebuild --model builtin",
            index_dir.display(),
            how_to_install(model_id)
        ),
    }
}
