//! A model that is loaded when it is first used, not when it is chosen.
//!
//! Most runs of `tp` that name a model never run it: `tp index` with nothing changed, a
//! lexical search, `tp status`. [`LazyBertEmbedder`] checks the model folder up front (its
//! files are present and `config.json` is valid, which gives the model's dimensions, all a
//! caller needs to check an index against it), and loads the tokenizer and weights on the
//! first call that embeds, or on [`Embedder::prepare`]. A folder whose weights or tokenizer
//! cannot be loaded is an error then, on every call that needs them, and never before.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use turboprop_types::{EmbedError, Embedder, TermStatistics};

use crate::bert::{BertEmbedder, BertOptions};
use crate::model_dir::{ModelDir, ModelError};

/// A [`BertEmbedder`] loaded on first use.
///
/// ```
/// use turboprop_embed::{write_tiny_bert, BertOptions, LazyBertEmbedder, TINY_DIMENSIONS};
/// use turboprop_types::Embedder;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// write_tiny_bert(dir.path(), 7)?;
/// let model = LazyBertEmbedder::new(dir.path(), "tiny-bert", BertOptions::default())?;
/// // Known without loading anything but config.json:
/// assert_eq!(model.dimensions(), TINY_DIMENSIONS);
/// assert!(!model.is_loaded());
/// // Loaded by the first call that embeds:
/// let vectors = model.embed_documents(&["fn split_pot() {}"])?;
/// assert_eq!(vectors[0].len(), TINY_DIMENSIONS);
/// assert!(model.is_loaded());
/// # Ok(())
/// # }
/// ```
pub struct LazyBertEmbedder {
    dir: PathBuf,
    model_id: String,
    dimensions: usize,
    options: BertOptions,
    loaded: OnceLock<Result<BertEmbedder, Arc<ModelError>>>,
}

impl std::fmt::Debug for LazyBertEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyBertEmbedder")
            .field("dir", &self.dir)
            .field("model_id", &self.model_id)
            .field("dimensions", &self.dimensions)
            .field("loaded", &self.is_loaded())
            .finish()
    }
}

impl LazyBertEmbedder {
    /// Checks the model folder at `dir` (its files are present, `config.json` is valid)
    /// without loading the tokenizer or the weights.
    pub fn new(
        dir: &std::path::Path,
        model_id: impl Into<String>,
        options: BertOptions,
    ) -> Result<Self, ModelError> {
        let checked = ModelDir::open(dir)?;
        Ok(Self::from_dir(&checked, model_id, options))
    }

    /// The same, for a folder already checked.
    pub fn from_dir(dir: &ModelDir, model_id: impl Into<String>, options: BertOptions) -> Self {
        LazyBertEmbedder {
            dir: dir.path.clone(),
            model_id: model_id.into(),
            dimensions: dir.dimensions(),
            options,
            loaded: OnceLock::new(),
        }
    }

    /// Whether the tokenizer and weights have been loaded (successfully or not).
    pub fn is_loaded(&self) -> bool {
        self.loaded.get().is_some()
    }

    /// The loaded model, loading it on the first call.
    pub fn get(&self) -> Result<&BertEmbedder, EmbedError> {
        let loaded = self.loaded.get_or_init(|| {
            BertEmbedder::load(&self.dir, self.model_id.clone(), self.options).map_err(Arc::new)
        });
        match loaded {
            Ok(model) => Ok(model),
            Err(e) => Err(EmbedError::Backend {
                model: self.model_id.clone(),
                source: Box::new(Arc::clone(e)),
            }),
        }
    }
}

impl Embedder for LazyBertEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn prepare(&self) -> Result<(), EmbedError> {
        self.get().map(|_| ())
    }

    fn embed_documents(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        self.get()?.embed_documents(texts)
    }

    fn embed_query(&self, query: &str, stats: &dyn TermStatistics) -> Result<Vec<f32>, EmbedError> {
        if query.trim().is_empty() {
            return Err(EmbedError::EmptyQuery);
        }
        self.get()?.embed_query(query, stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny::write_tiny_bert;
    use crate::WEIGHTS_FILE;

    #[test]
    fn a_model_with_damaged_weights_is_checked_without_them_and_fails_only_when_used() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_tiny_bert(dir.path(), 3).expect("tiny model");
        std::fs::write(dir.path().join(WEIGHTS_FILE), b"not safetensors").expect("write");
        let model = LazyBertEmbedder::new(dir.path(), "tiny", BertOptions::default())
            .expect("config.json alone is checked");
        assert!(model
            .embed_documents(&[])
            .expect("nothing to embed")
            .is_empty());
        assert!(!model.is_loaded());
        let err = model
            .embed_documents(&["fn main() {}"])
            .expect_err("damaged");
        assert!(matches!(err, EmbedError::Backend { .. }), "{err:?}");
        // The failure is kept: the second call says the same without reading again.
        assert!(model.prepare().is_err());
    }

    #[test]
    fn a_lazy_model_embeds_as_the_loaded_one_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_tiny_bert(dir.path(), 5).expect("tiny model");
        let lazy = LazyBertEmbedder::new(dir.path(), "tiny", BertOptions::default()).expect("ok");
        let eager = BertEmbedder::load(dir.path(), "tiny", BertOptions::default()).expect("ok");
        let texts = ["fn split_pot() {}", "shuffle the deck"];
        assert_eq!(
            lazy.embed_documents(&texts).expect("lazy"),
            eager.embed_documents(&texts).expect("eager")
        );
    }
}
