//! The `tp` command line: argument parsing, file discovery, progress, output. Only this crate
//! prints, and only it uses `anyhow`; the binary's `main` is [`main`].
//!
//! Exit codes: 0 on success (also when a search finds nothing), 2 on any error, usage errors
//! included. A closed pipe (`tp search ... | head -1`) is not an error.
//!
//! A program can run `tp` ([`run_from`]) and search the index as `tp search` does
//! ([`Searcher`]):
//!
//! ```
//! use std::process::ExitCode;
//! use turboprop_cli::{run_from, Mode, Searcher};
//! use turboprop_index::SearchOptions;
//!
//! let repo = tempfile::tempdir()?;
//! std::fs::write(repo.path().join("pot.py"), "def split_pot(winners):\n    return winners\n")?;
//! let path = repo.path().to_string_lossy().into_owned();
//! let code = run_from(["tp", "index", "--repo", &path, "--model", "builtin"]);
//! assert_eq!(code, ExitCode::SUCCESS);
//!
//! let searcher = Searcher::open(repo.path())?;
//! let hits = searcher.search("split the pot", Mode::Lexical, &SearchOptions::default())?;
//! assert_eq!(hits[0].chunk.file(), "pot.py");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod args;
mod batching;
mod benchmark_cmd;
mod chunking;
mod discover;
pub mod escape;
mod groups;
mod index_cmd;
mod indexer;
mod live;
mod mcp;
mod model_cmd;
mod model_store;
mod models;
mod output;
mod overlap;
mod repo;
mod search_cmd;
mod snippet;
mod status_cmd;
mod watch_cmd;
mod watcher;

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
pub use crate::chunking::chunk_source;
pub use crate::overlap::Found;
pub use crate::search_cmd::{Mode, Searcher, HYBRID_DEPTH};

/// Runs `tp` with the process's arguments and returns its exit code.
pub fn main() -> ExitCode {
    run_from(std::env::args_os())
}

/// Runs `tp` with the arguments `args` (the first is the program name) in this process,
/// printing what `tp` prints, and returns its exit code.
pub fn run_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with code 0; usage errors to stderr with code 2.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Index(a) => index_cmd::run(&a),
        Command::Search(a) => search_cmd::run(&a),
        Command::Status(a) => status_cmd::status(&a),
        Command::Verify(a) => status_cmd::verify(&a),
        Command::Model(a) => model_cmd::run(&a),
        Command::Benchmark(a) => benchmark_cmd::run(&a),
        Command::Mcp(a) => mcp::run(&a),
        Command::Watch(a) => watch_cmd::run(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let mut err = io::stderr().lock();
            let prefix = if io::stderr().is_terminal() {
                "\x1b[1;31merror:\x1b[0m"
            } else {
                "error:"
            };
            let mut line = one_line(&e);
            // Every error that means damage ends with the way out.
            if let Some(way) = repo::way_out(&e) {
                line.push_str("; ");
                line.push_str(way);
            }
            // Errors name files of the repository: their names may hold control characters.
            let _ = writeln!(err, "{prefix} {}", escape::escape_control(&line));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, without repeating a cause the message already holds.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !line.contains(&c) {
            line.push_str(": ");
            line.push_str(&c);
        }
    }
    line.replace('\n', " ")
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
