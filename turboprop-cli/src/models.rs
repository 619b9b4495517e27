//! Which embedder to use: resolving `--model`, `config.yaml` and the index's recorded model
//! to an [`Embedder`].

use anyhow::{bail, Result};
use turboprop_embed::BuiltinEmbedder;
use turboprop_types::Embedder;

/// The embedder named `name` (a model id or an alias such as `builtin`).
pub fn by_name(name: &str) -> Result<Box<dyn Embedder>> {
    match BuiltinEmbedder::from_model_id(name) {
        Some(e) => Ok(Box::new(e)),
        None => bail!(
            "unknown model {name:?}: this build knows the built-in lexical model only \
             (use --model builtin or leave --model out)"
        ),
    }
}

/// The embedder used when neither `--model` nor `config.yaml` names one.
pub fn default_embedder() -> Box<dyn Embedder> {
    Box::new(BuiltinEmbedder::new())
}

/// The embedder that made an index's vectors, by its recorded model id.
pub fn for_index(model_id: &str, index_dir: &std::path::Path) -> Result<Box<dyn Embedder>> {
    match BuiltinEmbedder::from_model_id(model_id) {
        Some(e) => Ok(Box::new(e)),
        None => bail!(
            "index at {} was built with model {model_id}, which is not available here: \
             install it, or run tp index --rebuild to re-index with the built-in model",
            index_dir.display()
        ),
    }
}
