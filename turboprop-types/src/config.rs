//! [`IndexConfig`]: the settings an index is built with, stored as `config.yaml`.
//!
//! Every field has a default, so an empty or partial `config.yaml` is valid and new fields can
//! be added without breaking old indexes. [`IndexConfig::validate`] checks the invariants that
//! serde cannot express.

use serde::{Deserialize, Serialize};

/// The version of the `config.yaml` schema written by this build.
pub const CONFIG_FORMAT_VERSION: u32 = 1;

/// How source files are cut into chunks: along their syntax (the default) or into windows
/// of `lines` lines, each starting `lines - overlap` lines after the previous one.
///
/// With [`ChunkMethod::Syntax`], a file in a language with a grammar is cut into its
/// definitions (functions, methods, classes, ...) of at most about `max_tokens` tokens each;
/// Markdown by headings; files without a grammar, or whose parse fails, into the windows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChunkingConfig {
    /// Syntax-aware chunks, or line windows only.
    pub method: ChunkMethod,
    /// Lines per window (at least 1).
    pub lines: u32,
    /// Lines shared by consecutive windows (less than `lines`).
    pub overlap: u32,
    /// The token budget of a syntax-aware chunk (16 to 8192): a definition over it is split
    /// at inner boundaries. 512 keeps most functions whole; a model reading fewer tokens
    /// (all-MiniLM-L6-v2 reads 256) embeds a chunk's first ones, its doc comment and signature.
    pub max_tokens: u32,
    /// Smaller definitions and statements are grouped with their neighbours until a group
    /// has this many tokens (1 to `max_tokens`).
    pub min_tokens: u32,
    /// The version of the chunking rules the rows were cut with, recorded by the program that
    /// cut them (`tp` writes its chunker's version into the index); 0 in `config.yaml`, and
    /// in indexes written before syntax-aware chunking, which were all cut into windows.
    #[serde(skip_serializing_if = "is_zero")]
    pub rules: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How files are cut into chunks (`chunking.method` in `config.yaml`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChunkMethod {
    /// A chunk is a definition of the file's language, or a Markdown section; windows where
    /// no grammar applies.
    #[default]
    Syntax,
    /// Overlapping windows of `lines` lines everywhere.
    Windows,
}

impl ChunkingConfig {
    /// One phrase for messages: `syntax-aware chunks of up to 512 tokens` or `40-line windows`.
    ///
    /// ```
    /// use turboprop_types::{ChunkMethod, ChunkingConfig};
    /// let windows = ChunkingConfig { method: ChunkMethod::Windows, ..ChunkingConfig::default() };
    /// assert_eq!(windows.describe(), "40-line windows");
    /// ```
    pub fn describe(&self) -> String {
        match self.method {
            ChunkMethod::Syntax => {
                format!("syntax-aware chunks of up to {} tokens", self.max_tokens)
            }
            ChunkMethod::Windows => format!("{}-line windows", self.lines),
        }
    }
}

impl Default for ChunkingConfig {
    fn default() -> Self {
        ChunkingConfig {
            method: ChunkMethod::Syntax,
            lines: 40,
            overlap: 10,
            max_tokens: 512,
            min_tokens: 85,
            rules: 0,
        }
    }
}

/// When a commit merges segments: an update writes a new small segment and marks the old rows
/// of changed files deleted; merging keeps searches fast and disk use bounded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactionConfig {
    /// Merge when there are more live segments than this (at least 1).
    pub max_segments: u32,
    /// Rewrite a segment when more than this share of its rows is deleted (0.0 to 1.0).
    pub max_deleted_ratio: f64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            max_segments: 8,
            max_deleted_ratio: 0.25,
        }
    }
}

/// The settings of one index, serialized as `.turboprop/index/config.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexConfig {
    /// Schema version of this file; readers refuse versions newer than
    /// [`CONFIG_FORMAT_VERSION`].
    pub format_version: u32,
    /// How files are cut into chunks.
    pub chunking: ChunkingConfig,
    /// Files larger than this many bytes are skipped with a warning.
    pub max_filesize: u64,
    /// The embedding model to index with; `None` means "the best one available".
    pub model: Option<String>,
    /// When segments are merged.
    pub compaction: CompactionConfig,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            format_version: CONFIG_FORMAT_VERSION,
            chunking: ChunkingConfig::default(),
            max_filesize: 2 * 1024 * 1024,
            model: None,
            compaction: CompactionConfig::default(),
        }
    }
}

/// A configuration value that breaks an invariant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `chunking.lines` is zero.
    #[error("chunking.lines must be at least 1")]
    ZeroChunkLines,
    /// `chunking.overlap` is not smaller than `chunking.lines`.
    #[error("chunking.overlap ({overlap}) must be smaller than chunking.lines ({lines})")]
    OverlapTooLarge {
        /// The configured overlap.
        overlap: u32,
        /// The configured window size.
        lines: u32,
    },
    /// `chunking.lines` is absurdly large.
    #[error("chunking.lines ({0}) is larger than the maximum of 10000")]
    ChunkTooLarge(u32),
    /// `chunking.max_tokens` is out of range.
    #[error("chunking.max_tokens ({0}) must be within 16..=8192")]
    BadMaxTokens(u32),
    /// `chunking.min_tokens` is zero or over `chunking.max_tokens`.
    #[error("chunking.min_tokens ({min}) must be within 1..=chunking.max_tokens ({max})")]
    BadMinTokens {
        /// The configured minimum.
        min: u32,
        /// The configured budget.
        max: u32,
    },
    /// `max_filesize` is zero.
    #[error("max_filesize must be at least 1 byte")]
    ZeroMaxFilesize,
    /// A compaction threshold is out of range.
    #[error("compaction.max_segments must be at least 1 and compaction.max_deleted_ratio within 0.0..=1.0")]
    BadCompaction,
    /// The file was written by a newer turboprop.
    #[error(
        "config format_version {found} is newer than this turboprop understands ({supported})"
    )]
    UnsupportedVersion {
        /// The version found in the file.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
}

impl IndexConfig {
    /// Checks the invariants between fields.
    ///
    /// ```
    /// let mut config = turboprop_types::IndexConfig::default();
    /// config.chunking.overlap = config.chunking.lines;
    /// assert!(config.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.format_version > CONFIG_FORMAT_VERSION {
            return Err(ConfigError::UnsupportedVersion {
                found: self.format_version,
                supported: CONFIG_FORMAT_VERSION,
            });
        }
        let ChunkingConfig {
            lines,
            overlap,
            max_tokens,
            min_tokens,
            ..
        } = self.chunking;
        if !(16..=8192).contains(&max_tokens) {
            return Err(ConfigError::BadMaxTokens(max_tokens));
        }
        if min_tokens == 0 || min_tokens > max_tokens {
            return Err(ConfigError::BadMinTokens {
                min: min_tokens,
                max: max_tokens,
            });
        }
        if lines == 0 {
            return Err(ConfigError::ZeroChunkLines);
        }
        if lines > 10_000 {
            return Err(ConfigError::ChunkTooLarge(lines));
        }
        if overlap >= lines {
            return Err(ConfigError::OverlapTooLarge { overlap, lines });
        }
        if self.max_filesize == 0 {
            return Err(ConfigError::ZeroMaxFilesize);
        }
        let c = &self.compaction;
        if c.max_segments == 0 || !(0.0..=1.0).contains(&c.max_deleted_ratio) {
            return Err(ConfigError::BadCompaction);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        IndexConfig::default().validate().expect("default config");
    }

    #[test]
    fn yaml_form_is_pinned() {
        let yaml = serde_yaml::to_string(&IndexConfig::default()).expect("serializes");
        insta::assert_snapshot!(yaml);
    }

    #[test]
    fn partial_yaml_fills_defaults() {
        let config: IndexConfig =
            serde_yaml::from_str("chunking:\n  lines: 20\n").expect("partial config parses");
        assert_eq!(config.chunking.lines, 20);
        assert_eq!(config.chunking.overlap, ChunkingConfig::default().overlap);
        assert_eq!(config.max_filesize, IndexConfig::default().max_filesize);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = serde_yaml::from_str::<IndexConfig>("chunk_lines: 20\n");
        assert!(err.is_err());
    }

    #[test]
    fn invalid_values_are_named() {
        let mut config = IndexConfig::default();
        config.chunking.lines = 0;
        assert_eq!(config.validate(), Err(ConfigError::ZeroChunkLines));
        config.chunking = ChunkingConfig {
            lines: 5,
            overlap: 5,
            ..ChunkingConfig::default()
        };
        assert!(config.validate().is_err());
        config = IndexConfig {
            format_version: 99,
            ..IndexConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::UnsupportedVersion { found: 99, .. })
        ));
    }
}
