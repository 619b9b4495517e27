//! A model folder on disk: which files a BERT-family model needs, its `config.json`, and the
//! typed errors of loading one.
//!
//! A model folder holds at least `model.safetensors` (the weights), `tokenizer.json` (a
//! Hugging Face tokenizer) and `config.json` (the architecture). sentence-transformers folders
//! also hold `1_Pooling/config.json` (mean or CLS pooling) and `sentence_bert_config.json`;
//! both are optional here (mean pooling is the default).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model_file::{read_json, CONFIG_CAP, POOLING_CAP};

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
    /// A file of the folder is a link, a FIFO, a device or a folder: model files are read
    /// only when they are regular files (a link could lead anywhere, a FIFO would block).
    #[error("{path} is {kind}, not a regular file: a model folder holds plain files (replace it with a copy of the file)")]
    NotRegularFile {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// A file is larger than its format's cap.
    #[error("{path} is {size} bytes, more than the {cap} bytes tp reads for this file: it is not a model file tp can use")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// A JSON settings file is malformed. The message describes the problem by kind and
    /// position; it never quotes the file's content.
    #[error("{path} is not a valid model settings file: {problem}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong, without the file's content.
        problem: String,
    },
    /// A size in `config.json` is outside what any model tp can run has.
    #[error("{path}: {field} is {value}, outside {min}..={max}: not a model tp can run")]
    Implausible {
        /// The config file.
        path: PathBuf,
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// The smallest value accepted.
        min: u64,
        /// The largest value accepted.
        max: u64,
    },
    /// The tokenizer could not be loaded or configured.
    #[error("cannot load the tokenizer {path}: {problem}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What is wrong, without the file's content.
        problem: String,
    },
    /// The weights could not be read or do not fit the config.
    #[error("cannot load the weights {path}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: crate::weights::WeightsError,
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
    /// Reads and checks `config.json` in `dir`: every size within [`BOUNDS`].
    pub fn read(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join(CONFIG_FILE);
        let config: BertConfig = read_json(&path, CONFIG_CAP)?;
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
        for (field, value, (min, max)) in [
            ("vocab_size", self.vocab_size, BOUNDS.vocab_size),
            ("hidden_size", self.hidden_size, BOUNDS.hidden_size),
            (
                "num_hidden_layers",
                self.num_hidden_layers,
                BOUNDS.num_hidden_layers,
            ),
            (
                "num_attention_heads",
                self.num_attention_heads,
                BOUNDS.num_attention_heads,
            ),
            (
                "intermediate_size",
                self.intermediate_size,
                BOUNDS.intermediate_size,
            ),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                BOUNDS.max_position_embeddings,
            ),
            (
                "type_vocab_size",
                self.type_vocab_size,
                BOUNDS.type_vocab_size,
            ),
        ] {
            if !(min..=max).contains(&value) {
                return Err(ModelError::Implausible {
                    path: path.to_owned(),
                    field,
                    value: value as u64,
                    min: min as u64,
                    max: max as u64,
                });
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(unsupported(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        if !(self.layer_norm_eps.is_finite()
            && self.layer_norm_eps > 0.0
            && self.layer_norm_eps < 1.0)
        {
            return Err(unsupported(
                "layer_norm_eps is not a small positive number".into(),
            ));
        }
        let parameters = self.parameters().ok_or_else(|| ModelError::Implausible {
            path: path.to_owned(),
            field: "the total of parameters",
            value: u64::MAX,
            min: 1,
            max: BOUNDS.parameters as u64,
        })?;
        if parameters > BOUNDS.parameters {
            return Err(ModelError::Implausible {
                path: path.to_owned(),
                field: "the total of parameters",
                value: parameters as u64,
                min: 1,
                max: BOUNDS.parameters as u64,
            });
        }
        Ok(())
    }

    /// The parameters the encoder holds (embeddings, layers, norms), or `None` if that
    /// overflows: what loading the weights allocates, in `f32`s.
    pub fn parameters(&self) -> Option<usize> {
        let h = self.hidden_size;
        let i = self.intermediate_size;
        let embeddings = self
            .vocab_size
            .checked_add(self.max_position_embeddings)?
            .checked_add(self.type_vocab_size)?
            .checked_add(2)?
            .checked_mul(h)?;
        // Four h×h products with biases, up and down with biases, two norms.
        let layer = h
            .checked_mul(h)?
            .checked_mul(4)?
            .checked_add(h.checked_mul(4)?)?
            .checked_add(h.checked_mul(i)?.checked_mul(2)?)?
            .checked_add(i)?
            .checked_add(h.checked_mul(5)?)?;
        embeddings.checked_add(layer.checked_mul(self.num_hidden_layers)?)
    }
}

/// The ranges every size in `config.json` must lie in: generous for BERT-family sentence
/// embedders (all-MiniLM-L6-v2: vocabulary 30,522, hidden 384, 6 layers, 12 heads,
/// feed-forward 1,536, 512 positions; the largest, XLM-R large: 250,002, 1,024, 24, 16,
/// 4,096, 514), and small enough that no product of them overflows or allocates without
/// bound. Each pair is (smallest, largest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigBounds {
    /// Tokens in the vocabulary.
    pub vocab_size: (usize, usize),
    /// Hidden size.
    pub hidden_size: (usize, usize),
    /// Layers.
    pub num_hidden_layers: (usize, usize),
    /// Attention heads.
    pub num_attention_heads: (usize, usize),
    /// Feed-forward width.
    pub intermediate_size: (usize, usize),
    /// Positions.
    pub max_position_embeddings: (usize, usize),
    /// Token types.
    pub type_vocab_size: (usize, usize),
    /// The most parameters of a whole model (`f32`s allocated when it loads): 2^30, 4 GiB.
    pub parameters: usize,
}

/// The bounds [`BertConfig`] is checked against.
///
/// ```
/// use turboprop_embed::{write_tiny_bert, ModelDir, ModelError, BOUNDS};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// write_tiny_bert(dir.path(), 1)?;
/// let config = dir.path().join("config.json");
/// let text = std::fs::read_to_string(&config)?;
/// // 2^62 layers would overflow every allocation: refused, naming the file and field.
/// std::fs::write(&config, text.replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 4611686018427387904"))?;
/// let err = ModelDir::open(dir.path()).expect_err("implausible");
/// assert!(matches!(err, ModelError::Implausible { field: "num_hidden_layers", .. }));
/// assert_eq!(BOUNDS.num_hidden_layers.1, 128);
/// # Ok(())
/// # }
/// ```
pub const BOUNDS: ConfigBounds = ConfigBounds {
    vocab_size: (1, 1 << 20),
    hidden_size: (1, 8192),
    num_hidden_layers: (1, 128),
    num_attention_heads: (1, 256),
    intermediate_size: (1, 65_536),
    max_position_embeddings: (2, 65_536),
    type_vocab_size: (1, 1024),
    parameters: 1 << 30,
};

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
        let folder = dir.join("1_Pooling");
        let path = folder.join("config.json");
        // The folder is looked at without following a link; the file is opened so.
        match std::fs::symlink_metadata(&folder) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Pooling::Mean),
            Err(source) => {
                return Err(ModelError::Io {
                    path: folder,
                    source,
                })
            }
            Ok(m) if !m.is_dir() => {
                return Err(ModelError::NotRegularFile {
                    path: folder,
                    kind: if m.file_type().is_symlink() {
                        "a symbolic link"
                    } else {
                        "not a folder"
                    },
                })
            }
            Ok(_) => {}
        }
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Pooling::Mean),
            Err(source) => return Err(ModelError::Io { path, source }),
            Ok(_) => {}
        }
        let c: PoolingConfig = read_json(&path, POOLING_CAP)?;
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
    /// Checks the folder at `path` without loading the weights: the required files are
    /// present, `config.json` (a regular file of at most 1 MiB) is within [`BOUNDS`].
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        for file in REQUIRED_FILES {
            // Present at all (a link or a FIFO is present, and refused when it is opened).
            match std::fs::symlink_metadata(path.join(file)) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ModelError::MissingFile {
                        dir: path.to_owned(),
                        file,
                    })
                }
                Err(source) => {
                    return Err(ModelError::Io {
                        path: path.join(file),
                        source,
                    })
                }
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
            .filter_map(|f| std::fs::symlink_metadata(self.path.join(f)).ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    }
}
