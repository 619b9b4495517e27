//! A model folder on disk: which files a BERT-family model needs, its `config.json`, and the
//! typed errors of loading one.
//!
//! A model folder holds at least `model.safetensors` (the weights), `tokenizer.json` (a
//! Hugging Face tokenizer) and `config.json` (the architecture). sentence-transformers folders
//! also hold `1_Pooling/config.json` (mean or CLS pooling) and `sentence_bert_config.json`;
//! both are optional here (mean pooling is the default).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The weights file of a model folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The tokenizer file of a model folder.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The architecture file of a model folder.
pub const CONFIG_FILE: &str = "config.json";
/// The files every model folder must hold.
pub const REQUIRED_FILES: [&str; 3] = [WEIGHTS_FILE, TOKENIZER_FILE, CONFIG_FILE];
/// Files copied along with a model when present (licences, pooling and sentence-transformers
/// settings).
pub const OPTIONAL_FILES: [&str; 8] = [
    "LICENSE",
    "NOTICE",
    "README.md",
    "1_Pooling/config.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "modules.json",
    "special_tokens_map.json",
];

/// Why a model could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A required file is not in the model folder.
    #[error("model folder {dir} has no {file} (a model folder needs model.safetensors, tokenizer.json and config.json)")]
    MissingFile {
        /// The model folder.
        dir: PathBuf,
        /// The missing file's name.
        file: &'static str,
    },
    /// A file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON settings file is malformed.
    #[error("{path} is not a valid model settings file")]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// The tokenizer could not be loaded or configured.
    #[error("cannot load the tokenizer {path}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The weights could not be read or do not fit the config.
    #[error("cannot load the weights {path}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: candle_core::Error,
    },
    /// The model is of a kind this backend does not run.
    #[error("{path} describes a model this build cannot run: {reason}")]
    Unsupported {
        /// The file that says so.
        path: PathBuf,
        /// What is unsupported.
        reason: String,
    },
    /// An option is out of range.
    #[error("invalid model option: {0}")]
    InvalidOption(String),
}

/// The activation of a BERT feed-forward layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum HiddenAct {
    /// Exact GELU (erf), BERT's default.
    #[serde(rename = "gelu")]
    Gelu,
    /// The tanh approximation of GELU.
    #[serde(
        rename = "gelu_new",
        alias = "gelu_pytorch_tanh",
        alias = "gelu_approximate"
    )]
    GeluTanh,
    /// ReLU.
    #[serde(rename = "relu")]
    Relu,
}

/// The parts of a BERT `config.json` the backend uses.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BertConfig {
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// Width of every hidden state; the embedding dimension.
    pub hidden_size: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Feed-forward activation.
    #[serde(default = "default_act")]
    pub hidden_act: HiddenAct,
    /// Longest input the position embeddings cover.
    pub max_position_embeddings: usize,
    /// Token type (segment) embeddings.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// Layer norm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// The model family (`bert` is run; others are refused).
    #[serde(default)]
    pub model_type: Option<String>,
    /// Only `absolute` position embeddings are run.
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

fn default_act() -> HiddenAct {
    HiddenAct::Gelu
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}

impl BertConfig {
    /// Reads and checks `config.json` in `dir`.
    pub fn read(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join(CONFIG_FILE);
        let config: BertConfig = read_json(&path)?;
        config.check(&path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<(), ModelError> {
        let unsupported = |reason: String| ModelError::Unsupported {
            path: path.to_owned(),
            reason,
        };
        if let Some(t) = &self.model_type {
            if t != "bert" {
                return Err(unsupported(format!(
                    "model_type {t:?} (only BERT-family models with model_type \"bert\" are supported)"
                )));
            }
        }
        if let Some(p) = &self.position_embedding_type {
            if p != "absolute" {
                return Err(unsupported(format!("position_embedding_type {p:?}")));
            }
        }
        if self.hidden_size == 0
            || self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(unsupported(format!(
                "hidden_size {} is not a positive multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        if self.vocab_size == 0
            || self.num_hidden_layers == 0
            || self.intermediate_size == 0
            || self.max_position_embeddings < 2
            || self.type_vocab_size == 0
        {
            return Err(unsupported("a size in the config is zero".into()));
        }
        Ok(())
    }
}

/// How token vectors become one text vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The mean of the token vectors under the attention mask (sentence-transformers' default).
    Mean,
    /// The vector of the first (`[CLS]`) token.
    Cls,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

impl Pooling {
    /// The pooling named by `1_Pooling/config.json` in `dir`, mean when there is none.
    pub fn read(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join("1_Pooling").join("config.json");
        if !path.is_file() {
            return Ok(Pooling::Mean);
        }
        let c: PoolingConfig = read_json(&path)?;
        match (
            c.pooling_mode_mean_tokens,
            c.pooling_mode_cls_token,
            c.pooling_mode_max_tokens || c.pooling_mode_mean_sqrt_len_tokens,
        ) {
            (true, false, false) => Ok(Pooling::Mean),
            (false, true, false) => Ok(Pooling::Cls),
            _ => Err(ModelError::Unsupported {
                path,
                reason: "only mean or CLS pooling (one of them) is supported".into(),
            }),
        }
    }
}

/// A checked model folder: the required files exist and `config.json` describes a BERT model
/// this backend runs.
#[derive(Debug, Clone)]
pub struct ModelDir {
    /// The folder.
    pub path: PathBuf,
    /// Its `config.json`.
    pub config: BertConfig,
    /// Its pooling.
    pub pooling: Pooling,
}

impl ModelDir {
    /// Checks the folder at `path` without loading the weights.
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        for file in REQUIRED_FILES {
            if !path.join(file).is_file() {
                return Err(ModelError::MissingFile {
                    dir: path.to_owned(),
                    file,
                });
            }
        }
        Ok(ModelDir {
            path: path.to_owned(),
            config: BertConfig::read(path)?,
            pooling: Pooling::read(path)?,
        })
    }

    /// The embedding dimension (the model's hidden size).
    pub fn dimensions(&self) -> usize {
        self.config.hidden_size
    }

    /// Bytes of the files a model needs plus the optional ones present.
    pub fn size_bytes(&self) -> u64 {
        REQUIRED_FILES
            .iter()
            .chain(OPTIONAL_FILES.iter())
            .filter_map(|f| std::fs::metadata(self.path.join(f)).ok())
            .map(|m| m.len())
            .sum()
    }
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ModelError> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| ModelError::Json {
        path: path.to_owned(),
        source,
    })
}
