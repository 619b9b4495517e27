//! Command-line arguments: the raw flags as clap parses them. Validation into settings the
//! library understands happens in each command (`index_cmd.rs`, `search_cmd.rs`, ...). Every
//! subcommand's arguments are here, so the command modules depend on this one, never the
//! other way round.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// turboprop: fast, offline semantic code search.
#[derive(Debug, Parser)]
#[command(name = "tp", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Index a repository into <repo>/.turboprop/ (only new and changed files are embedded).
    Index(IndexArgs),
    /// Search the index with a natural-language or code query.
    Search(SearchArgs),
    /// Show what the index holds.
    Status(StatusArgs),
    /// Check every byte of the index against its checksums.
    Verify(RepoArg),
    /// List, inspect, import and download embedding models.
    Model(ModelArgs),
    /// Measure search on this machine with a synthetic index built in a temporary folder.
    Benchmark(BenchmarkArgs),
    /// Serve the repository to coding agents over MCP (stdio): search, status, index and
    /// read tools, the model and index kept loaded, the index kept fresh as files change.
    Mcp(ResidentArgs),
    /// Keep the index fresh while files change (one line per commit; Ctrl-C stops).
    Watch(ResidentArgs),
}

/// `tp mcp` and `tp watch`: a process that stays up and keeps the index fresh.
#[derive(Debug, Args)]
pub struct ResidentArgs {
    #[command(flatten)]
    pub repo: RepoArg,
    /// Skip files larger than this (e.g. 500kb, 2mb, 1gb, or bytes).
    #[arg(long, value_name = "SIZE")]
    pub max_filesize: Option<String>,
    /// Use the repository's own model .turboprop/models/NAME (never used otherwise: it
    /// arrives with a clone; only for a repository you trust).
    #[arg(long, value_name = "NAME")]
    pub repo_model: Option<String>,
}

impl ResidentArgs {
    /// The `tp index` settings each update of a resident process uses: never a rebuild,
    /// waiting for the writer lock.
    pub fn index_args(&self) -> IndexArgs {
        IndexArgs {
            repo: RepoArg {
                repo: self.repo.repo.clone(),
            },
            max_filesize: self.max_filesize.clone(),
            model: None,
            repo_model: self.repo_model.clone(),
            rebuild: false,
            no_wait: false,
            watch: false,
            verbose: false,
        }
    }
}

/// `--repo`, shared by every command.
#[derive(Debug, Args)]
pub struct RepoArg {
    /// The repository root (default: the current folder).
    #[arg(long, value_name = "PATH")]
    pub repo: Option<PathBuf>,
}

/// `tp index`.
#[derive(Debug, Args)]
pub struct IndexArgs {
    #[command(flatten)]
    pub repo: RepoArg,
    /// Skip files larger than this (e.g. 500kb, 2mb, 1gb, or bytes).
    #[arg(long, value_name = "SIZE")]
    pub max_filesize: Option<String>,
    /// The embedding model (default: the model in config.yaml, else the built-in one).
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// Use the repository's own model .turboprop/models/NAME (never used otherwise: it
    /// arrives with a clone; only for a repository you trust).
    #[arg(long, value_name = "NAME", conflicts_with = "model")]
    pub repo_model: Option<String>,
    /// Ignore the existing index and build a new one from scratch (recovers from damage;
    /// never touches source files).
    #[arg(long)]
    pub rebuild: bool,
    /// Fail at once if another tp index is writing, instead of waiting.
    #[arg(long)]
    pub no_wait: bool,
    /// After indexing, keep the index fresh while files change (as tp watch does).
    #[arg(long, conflicts_with = "rebuild")]
    pub watch: bool,
    /// Also say which files were cut into line windows although a grammar exists (a parse
    /// error, a file too large to parse, a minified line).
    #[arg(long, short)]
    pub verbose: bool,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// For people.
    Text,
    /// JSON Lines for search (one hit per line), one JSON object for status.
    Json,
}

/// `tp search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// What to look for.
    pub query: String,
    #[command(flatten)]
    pub repo: RepoArg,
    /// Maximum number of results.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub limit: usize,
    /// Minimum score (0.0 to 1.0).
    #[arg(long, value_name = "SCORE")]
    pub threshold: Option<f32>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Only files with this extension (e.g. .rs); repeat or comma-separate for several.
    #[arg(long, value_name = "EXT", value_delimiter = ',')]
    pub filetype: Vec<String>,
    /// Only files matching this glob (e.g. 'src/**/*.py'); repeat for several.
    #[arg(long, value_name = "GLOB")]
    pub filter: Vec<String>,
    /// Score every chunk exactly, even on an index large enough for the fast path
    /// (1-bit codes, then exact re-ranking of the closest candidates).
    #[arg(long)]
    pub exact: bool,
    /// Which vectors rank the results: hybrid (lexical and the model's, fused; the default
    /// when the index has a model), semantic (the model's only) or lexical (the built-in
    /// model's only; the default without a model).
    #[arg(long, value_enum, value_name = "MODE")]
    pub mode: Option<Mode>,
    /// Allow the repository's own model .turboprop/models/NAME when the index was built with
    /// it (never loaded otherwise: it arrives with a clone; only for a repository you trust).
    #[arg(long, value_name = "NAME")]
    pub repo_model: Option<String>,
}

/// How `tp search` ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Lexical and semantic scores fused.
    Hybrid,
    /// The transformer model's vectors only.
    Semantic,
    /// The built-in lexical vectors only.
    Lexical,
}

/// `tp status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub repo: RepoArg,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Parses a size like `2mb`, `500KB`, `1.5m`, `1gb` or `4096` into bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    let bytes = value * mult as f64;
    (bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2mb"), Some(2 << 20));
        assert_eq!(parse_size("500KB"), Some(500 << 10));
        assert_eq!(parse_size("1.5m"), Some(3 << 19));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("0"), None);
        assert_eq!(parse_size("-1mb"), None);
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn clap_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

/// `tp model`.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ModelCommand,
}

/// The `tp model` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// List the built-in model and the installed ones, with dimensions and size.
    List(RepoArg),
    /// Show one model's settings and files.
    Info {
        /// The model's name (e.g. all-MiniLM-L6-v2, or builtin).
        name: String,
        #[command(flatten)]
        repo: RepoArg,
    },
    /// Copy a model folder (model.safetensors, tokenizer.json, config.json) into the cache.
    Import {
        /// The model folder.
        path: PathBuf,
        /// The name to install it under (default: the folder's name).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
    },
    /// Download a model from the Hugging Face hub into the cache.
    Download {
        /// The model's name (e.g. all-MiniLM-L6-v2) or hub repository (org/name).
        name: String,
    },
}

/// `tp benchmark`.
#[derive(Debug, Args)]
pub struct BenchmarkArgs {
    /// Vectors (chunks) in the synthetic index.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub vectors: usize,
    /// Dimensions of each vector.
    #[arg(long, default_value_t = 384, value_name = "D")]
    pub dim: usize,
    /// Queries to time (each runs exact and fast).
    #[arg(long, default_value_t = 200, value_name = "Q")]
    pub queries: usize,
    /// Hits per query.
    #[arg(long, default_value_t = 10, value_name = "K")]
    pub limit: usize,
    /// Chunks per synthetic file (sets how many files the index holds).
    #[arg(long, default_value_t = 12, value_name = "N")]
    pub chunks_per_file: usize,
    /// Seed of the synthetic vectors and queries.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Build the index inside this folder (default: the system's temporary folder).
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
    /// Output format: a report for people, or one JSON object.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}
