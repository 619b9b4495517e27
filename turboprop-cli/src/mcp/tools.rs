//! The tools `tp mcp` offers: `search`, `status`, `index` and `read`. Each checks its
//! arguments (an MCP request is untrusted input), runs on the blocking pool, and answers
//! with JSON (as text, and as structured content). Every answer about the index carries
//! its [`Freshness`](crate::live::Freshness). Errors are tool errors (`isError`), one line
//! each, naming the value and the way out.

use std::path::{Component, Path};
use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{tool, tool_handler, tool_router, ServerHandler};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use turboprop_index::{FileFilter, IndexError, SearchOptions, Strategy};
use turboprop_storage::{open_beneath, read_bounded, StorageError};

use crate::args::Mode;
use crate::live::Live;
use crate::output::Snippet;
use crate::snippet::Snippets;

/// The longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 4096;
/// The most hits one search returns.
pub const MAX_LIMIT: u64 = 100;
/// The most lines one `read` returns.
pub const MAX_READ_LINES: u64 = 2000;
/// The largest file `read` reads.
pub const MAX_READ_BYTES: u64 = 16 * 1024 * 1024;
/// The longest a call waits for the index to catch up.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// How long `search` with `wait_for_index` waits at most.
pub const SEARCH_WAIT: Duration = Duration::from_secs(60);

/// How `search` ranks.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModeParam {
    /// Lexical and semantic scores fused (the default when the index has a model).
    Hybrid,
    /// The transformer model's vectors only: meaning over words.
    Semantic,
    /// Words only (identifiers split, stemmed): the fastest.
    Lexical,
}

/// One value or a list of them.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One value.
    One(String),
    /// Several values.
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// The arguments of `search`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// What to look for, in words or code: "where do we retry failed uploads",
    /// "parse_config error handling". At most 4096 bytes.
    pub query: String,
    /// Maximum number of hits, 1 to 100 (default 10).
    #[serde(default)]
    pub limit: Option<u64>,
    /// hybrid (default when the index has a model), semantic or lexical.
    #[serde(default)]
    pub mode: Option<ModeParam>,
    /// Only files with these extensions, e.g. ".rs" or [".py", ".pyi"].
    #[serde(default)]
    pub filetype: Option<OneOrMany>,
    /// Only files whose repository-relative path matches one of these globs, e.g.
    /// "src/**/*.rs".
    #[serde(default)]
    pub filter: Option<OneOrMany>,
    /// Minimum score, 0.0 to 1.0 (default 0).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Wait (up to 60 s) until every file change made before this call is indexed, then
    /// search. Without it the answer comes at once from the last commit, and says how
    /// fresh it is.
    #[serde(default)]
    pub wait_for_index: Option<bool>,
}

/// The arguments of `index`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexParams {
    /// Wait until the update is committed (up to `timeout_seconds`) instead of returning
    /// at once.
    #[serde(default)]
    pub wait: Option<bool>,
    /// With `wait`: the longest to wait, 1 to 300 seconds (default 300).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// The arguments of `read`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadParams {
    /// The file, relative to the repository root, as search hits name it ("src/lib.rs").
    pub file: String,
    /// First line to return, 1-based (default 1).
    #[serde(default)]
    pub line_start: Option<u64>,
    /// Last line to return, inclusive (default: line_start + 199; at most 2000 lines per
    /// call).
    #[serde(default)]
    pub line_end: Option<u64>,
}

/// The arguments of `status` (none).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusParams {}

#[derive(Serialize)]
struct HitOut {
    file: String,
    line_start: u32,
    line_end: u32,
    score: f64,
    content: String,
    rank: usize,
    /// The symbol the hit defines (`Table::deal`), where its chunker knew it.
    #[serde(skip_serializing_if = "Option::is_none")]
    symbol: Option<String>,
    /// What the symbol is (`method`, `function`, `class`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    /// The file changed since it was indexed: `content` is the same lines as they read now.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    changed_since_indexed: bool,
}

/// The MCP server of one repository.
#[derive(Clone)]
pub struct TpServer {
    live: Arc<Live>,
    tool_router: ToolRouter<TpServer>,
}

type ToolResult = Result<CallToolResult, String>;

/// Runs `f` on the blocking pool (searches, waits and file reads block), turning a panic
/// into a tool error.
async fn blocking(f: impl FnOnce() -> ToolResult + Send + 'static) -> ToolResult {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("internal error in tp: {e}"))?
}

fn answer(value: Value) -> ToolResult {
    Ok(CallToolResult::structured(value))
}

fn one_line(e: &anyhow::Error) -> String {
    let mut line = crate::one_line(e);
    if let Some(way) = crate::repo::way_out(e) {
        line.push_str("; ");
        line.push_str(way);
    }
    line
}

#[tool_router(router = tool_router)]
impl TpServer {
    /// The server of `live`'s repository.
    pub fn new(live: Arc<Live>) -> TpServer {
        TpServer {
            live,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        name = "search",
        description = "Search this repository's code by meaning and by words. Returns ranked hits (file relative to the repository root, line_start..line_end inclusive, score, the lines' content, rank, and where known the `symbol` defined there and its `kind`: a hit is a whole function, method, class or section where the language has a grammar) and `index`: the generation answered from and whether changed files are still waiting to be indexed (`fresh`, `pending_files`). Use plain-language questions (\"where do we retry failed uploads\") or identifiers. Narrow with `filetype` (\".rs\") or `filter` (glob on the path). Set `wait_for_index` after editing files to search their saved content."
    )]
    async fn search(&self, Parameters(p): Parameters<SearchParams>) -> ToolResult {
        let live = Arc::clone(&self.live);
        blocking(move || search(&live, p)).await
    }

    #[tool(
        name = "status",
        description = "What the index holds (files, chunks, models, size, generation, updated_at), how fresh it is, the indexing in progress (files done of total) and the outcome of the last update."
    )]
    async fn status(&self, Parameters(_): Parameters<StatusParams>) -> ToolResult {
        let live = Arc::clone(&self.live);
        blocking(move || status(&live)).await
    }

    #[tool(
        name = "index",
        description = "Bring the index up to date with the repository's files now (incremental: only new and changed files are embedded; deleted ones are removed). The server already does this by itself within about a second of a change; call it after changes the watcher cannot see, or with `wait: true` to block until the update is committed. Returns at once (without `wait`) with the progress; searches meanwhile answer from the last commit and say so."
    )]
    async fn index(&self, Parameters(p): Parameters<IndexParams>) -> ToolResult {
        let live = Arc::clone(&self.live);
        blocking(move || index(&live, p)).await
    }

    #[tool(
        name = "read",
        description = "Read lines of a file of this repository (for example more context around a search hit): `file` as hits name it, `line_start`/`line_end` inclusive, at most 2000 lines per call. Only regular files inside the repository: absolute paths, `..`, symbolic links and .git/.turboprop are refused."
    )]
    async fn read(&self, Parameters(p): Parameters<ReadParams>) -> ToolResult {
        let live = Arc::clone(&self.live);
        blocking(move || read(&live, p)).await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TpServer {
    fn get_info(&self) -> ServerConfig {
        let mut server = Implementation::new("turboprop", env!("CARGO_PKG_VERSION"));
        server.title = Some("turboprop code search".into());
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(server)
            .with_instructions(
                "Semantic and lexical code search over one repository, kept fresh as files change. \
                 Start with `search`; `read` shows more lines around a hit; `status` tells what is indexed.",
            )
    }
}

/// `search`.
pub fn search(live: &Live, p: SearchParams) -> ToolResult {
    let query = p.query.trim();
    if query.is_empty() {
        return Err("the query is empty: give some words to search for".into());
    }
    if query.len() > MAX_QUERY_BYTES {
        return Err(format!(
            "the query is {} bytes long; at most {MAX_QUERY_BYTES} are accepted: ask with fewer words",
            query.len()
        ));
    }
    let limit = p.limit.unwrap_or(10);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(format!(
            "limit {limit} is out of range: ask for 1 to {MAX_LIMIT} hits"
        ));
    }
    let min_score = match p.threshold {
        None => 0.0,
        Some(t) if (0.0..=1.0).contains(&t) => t as f32,
        Some(t) => return Err(format!("threshold {t} is out of range: use 0.0 to 1.0")),
    };
    let filetypes = p.filetype.map(OneOrMany::into_vec).unwrap_or_default();
    let globs = p.filter.map(OneOrMany::into_vec).unwrap_or_default();
    let filter = FileFilter::any()
        .with_extensions(&filetypes)
        .with_globs(&globs)
        .map_err(|e| format!("{e}"))?;
    let mut waited = None;
    if p.wait_for_index == Some(true) {
        let ticket = live.request_full();
        waited = Some(live.wait_fresh(ticket, SEARCH_WAIT));
    }
    let opts = SearchOptions {
        limit: limit as usize,
        min_score,
        filter: Some(&filter),
        strategy: Strategy::Auto,
        ..SearchOptions::default()
    };
    // A reader whose files changed under it (a copy over .turboprop/) is dropped and the
    // index opened again, once.
    let mut attempt = 0;
    let (searcher, mode, hits) = loop {
        let searcher = live.searcher().map_err(|e| one_line(&e))?;
        let mode = match p.mode {
            None => searcher.default_mode(),
            Some(ModeParam::Hybrid) => Mode::Hybrid,
            Some(ModeParam::Semantic) => Mode::Semantic,
            Some(ModeParam::Lexical) => Mode::Lexical,
        };
        match searcher.search(query, mode, &opts) {
            Ok(hits) => break (searcher, mode, hits),
            Err(e) if attempt == 0 && changed_under_reader(&e) => {
                live.drop_reader();
                attempt += 1;
            }
            Err(e) => return Err(one_line(&e)),
        }
    };
    let root = &live.repo().root;
    let mut sources = Snippets::new(root);
    let mut warnings = Vec::new();
    let hits: Vec<HitOut> = hits
        .iter()
        .enumerate()
        .map(|(i, hit)| {
            let Snippet { text, stale } = sources.snippet(hit);
            warnings.extend(
                sources
                    .take_warnings()
                    .into_iter()
                    .map(|w| w.trim_start_matches("warning: ").to_owned()),
            );
            HitOut {
                file: hit.chunk.file().to_owned(),
                line_start: hit.chunk.line_start(),
                line_end: hit.chunk.line_end(),
                score: (f64::from(hit.score) * 10_000.0).round() / 10_000.0,
                content: text,
                rank: i + 1,
                symbol: hit.chunk.symbol().map(str::to_owned),
                kind: hit.chunk.kind().map(str::to_owned),
                changed_since_indexed: stale,
            }
        })
        .collect();
    let index = searcher.index();
    let mut freshness = live.freshness(index.stats().generation);
    if waited == Some(false) {
        freshness.note = Some(format!(
            "the index did not catch up within {} s; {}",
            SEARCH_WAIT.as_secs(),
            freshness.note.unwrap_or_default()
        ));
    }
    if mode != Mode::Lexical {
        let (covered, all) = (index.space_rows(1), index.stats().chunks);
        if searcher.has_model() && covered < all {
            warnings.push(format!(
                "the model's vectors cover {covered} of {all} chunks; the rest rank by words only until the update finishes"
            ));
        }
    }
    let mut out = json!({
        "hits": hits,
        "mode": match mode { Mode::Hybrid => "hybrid", Mode::Semantic => "semantic", Mode::Lexical => "lexical" },
        "index": freshness,
    });
    if !warnings.is_empty() {
        out["warnings"] = json!(warnings);
    }
    answer(out)
}

fn changed_under_reader(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<IndexError>()
            .is_some_and(IndexError::is_changed_under_reader)
    })
}

/// `status`.
pub fn status(live: &Live) -> ToolResult {
    let (running, last) = live.progress();
    let mut out = json!({
        "repository": live.repo().root.display().to_string(),
        "watching": live.watching(),
        "indexing": running,
        "last_update": last,
    });
    match live.searcher() {
        Ok(searcher) => {
            let status = crate::status_cmd::status_of(live.repo(), searcher.index());
            let generation = status.generation;
            if let (Value::Object(o), Ok(Value::Object(s))) =
                (&mut out, serde_json::to_value(&status))
            {
                o.extend(s);
            }
            out["index"] = json!(live.freshness(generation));
        }
        Err(e) => {
            out["index"] = json!(live.freshness(0));
            out["error"] = json!(one_line(&e));
        }
    }
    answer(out)
}

/// `index`.
pub fn index(live: &Live, p: IndexParams) -> ToolResult {
    let ticket = live.request_full();
    let mut out = json!({"started": true});
    if p.wait == Some(true) {
        let secs = p.timeout_seconds.unwrap_or(MAX_WAIT.as_secs());
        if !(1..=MAX_WAIT.as_secs()).contains(&secs) {
            return Err(format!(
                "timeout_seconds {secs} is out of range: use 1 to {}",
                MAX_WAIT.as_secs()
            ));
        }
        let done = live.wait_covered(ticket, Duration::from_secs(secs));
        out["committed"] = json!(done);
    }
    let (running, last) = live.progress();
    out["indexing"] = json!(running);
    out["last_update"] = json!(last);
    let generation = live.searcher().map_or(0, |s| s.index().stats().generation);
    out["index"] = json!(live.freshness(generation));
    answer(out)
}

/// `read`.
pub fn read(live: &Live, p: ReadParams) -> ToolResult {
    let rel = confined(&p.file)?;
    let root = &live.repo().root;
    let shown = crate::escape::escape_control(&p.file);
    let (file, len) = open_beneath(root, &rel).map_err(|e| refusal(&shown, &e))?;
    if len > MAX_READ_BYTES {
        return Err(format!(
            "{shown} is {len} bytes; read reads files of at most {MAX_READ_BYTES} bytes"
        ));
    }
    let bytes =
        read_bounded(file, &root.join(&rel), MAX_READ_BYTES).map_err(|e| refusal(&shown, &e))?;
    if bytes[..bytes.len().min(crate::discover::BINARY_SNIFF_LEN)].contains(&0) {
        return Err(format!("{shown} is a binary file"));
    }
    let text = String::from_utf8_lossy(&bytes);
    let total = text.lines().count() as u64;
    let start = p.line_start.unwrap_or(1);
    if start == 0 {
        return Err("line_start is 1-based: the first line is 1".into());
    }
    let end = p.line_end.unwrap_or(start.saturating_add(199));
    if end < start {
        return Err(format!("line_end {end} is before line_start {start}"));
    }
    let end_capped = end.min(start.saturating_add(MAX_READ_LINES - 1)).min(total);
    let content: Vec<&str> = text
        .lines()
        .skip((start - 1) as usize)
        .take(end_capped.saturating_sub(start - 1) as usize)
        .collect();
    let mut out = json!({
        "file": p.file,
        "line_start": start,
        "line_end": end_capped.max(start.min(total)),
        "total_lines": total,
        "content": content.join("\n"),
    });
    if start > total {
        out["note"] = json!(format!("{shown} has {total} lines"));
    } else if end_capped < end.min(total) {
        out["note"] = json!(format!(
            "at most {MAX_READ_LINES} lines per call: continue with line_start {}",
            end_capped + 1
        ));
    }
    answer(out)
}

/// A path an agent gave, as a plain relative path inside the repository, or why not.
fn confined(file: &str) -> Result<std::path::PathBuf, String> {
    let shown = crate::escape::escape_control(file);
    if file.is_empty() {
        return Err("file is empty: name a file relative to the repository root".into());
    }
    let path = Path::new(file);
    let mut out = std::path::PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "{shown} is outside the repository: give a path relative to its root, without .."
                ))
            }
        }
    }
    let first = out.components().next().map(|c| c.as_os_str().to_owned());
    if first
        .as_deref()
        .is_some_and(|f| f == ".git" || f == ".turboprop")
    {
        return Err(format!("{shown} is tp's or git's own data, not source"));
    }
    if out.as_os_str().is_empty() {
        return Err(format!("{shown} is the repository root, not a file"));
    }
    Ok(out)
}

/// Why a file cannot be read, as one line.
fn refusal(shown: &str, e: &StorageError) -> String {
    match e {
        StorageError::Missing { .. } => format!("{shown} does not exist in the repository"),
        StorageError::NotRegular { found, .. } => format!(
            "{shown} (or a folder on its way) is {found}, not a regular file inside the repository: tp reads no links or special files"
        ),
        StorageError::Outside { .. } => format!("{shown} is outside the repository"),
        other => format!(
            "cannot read {shown}: {}",
            crate::escape::escape_control(&other.to_string())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::ResidentArgs;
    use crate::indexer::Updater;
    use crate::repo::Repo;

    /// A resident index over a small repository, its indexing thread running (no watcher:
    /// changes are announced by hand, so nothing depends on event timing).
    fn live_repo(files: &[(&str, &str)]) -> (tempfile::TempDir, Arc<Live>) {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        let repo = Repo::locate(Some(dir.path())).expect("repo");
        let args = ResidentArgs {
            repo: crate::args::RepoArg { repo: None },
            max_filesize: None,
            repo_model: None,
        };
        let report = crate::index_cmd::StderrReport::new(&repo);
        // The built-in model, whatever the user's cache holds.
        let mut index_args = args.index_args();
        index_args.model = Some("builtin".into());
        let updater = Updater::prepare(repo, &index_args, &report).expect("prepare");
        let live = Live::new(updater, None);
        live.spawn(|_, _| {}).expect("indexing thread");
        (dir, live)
    }

    fn ok(r: ToolResult) -> Value {
        let r = r.expect("a tool answer");
        assert_ne!(r.is_error, Some(true), "{r:?}");
        r.structured_content.expect("structured content")
    }

    fn search_params(query: &str) -> SearchParams {
        SearchParams {
            query: query.into(),
            limit: None,
            mode: None,
            filetype: None,
            filter: None,
            threshold: None,
            wait_for_index: Some(true),
        }
    }

    #[test]
    fn search_sees_a_changed_file_and_says_which_generation_answered() {
        let (dir, live) = live_repo(&[
            ("src/pot.rs", "fn split_pot_between_tied_winners() {}\n"),
            ("src/deck.rs", "fn shuffle_the_deck() {}\n"),
        ]);
        let first = ok(search(&live, search_params("split the pot")));
        assert_eq!(first["hits"][0]["file"], "src/pot.rs", "{first}");
        assert_eq!(first["index"]["fresh"], true, "{first}");
        let generation = first["index"]["generation"].as_u64().expect("generation");
        assert!(generation >= 1);

        std::fs::write(dir.path().join("src/deal.rs"), "fn deal_hole_cards() {}\n").expect("write");
        live.mark_changed(["src/deal.rs".to_owned()]);
        let second = ok(search(&live, search_params("deal hole cards")));
        assert_eq!(second["hits"][0]["file"], "src/deal.rs", "{second}");
        assert!(second["index"]["generation"].as_u64() > Some(generation));
    }

    #[test]
    fn bad_search_arguments_are_tool_errors_naming_the_value() {
        let (_dir, live) = live_repo(&[("a.rs", "fn a() {}\n")]);
        let too_many = SearchParams {
            limit: Some(1_000_000_000_000),
            ..search_params("a")
        };
        let e = search(&live, too_many).expect_err("limit out of range");
        assert!(e.contains("1000000000000"), "{e}");
        let huge = "word ".repeat(200_000);
        let e = search(&live, search_params(&huge)).expect_err("1 MB query");
        assert!(e.contains("4096"), "{e}");
        let e = search(&live, search_params("   ")).expect_err("empty query");
        assert!(e.contains("empty"), "{e}");
        let e = search(
            &live,
            SearchParams {
                threshold: Some(2.0),
                ..search_params("a")
            },
        )
        .expect_err("threshold");
        assert!(e.contains("threshold 2"), "{e}");
    }

    #[test]
    fn read_returns_lines_of_repository_files_only() {
        let (dir, live) = live_repo(&[("src/lib.rs", "one\ntwo\nthree\nfour\n")]);
        let got = ok(read(
            &live,
            ReadParams {
                file: "src/lib.rs".into(),
                line_start: Some(2),
                line_end: Some(3),
            },
        ));
        assert_eq!(got["content"], "two\nthree", "{got}");
        assert_eq!(got["total_lines"], 4);

        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret.txt"), "secret\n").expect("write");
        std::os::unix::fs::symlink(
            outside.path().join("secret.txt"),
            dir.path().join("link.txt"),
        )
        .expect("symlink");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).expect("symlink");
        for file in ["link.txt", "out/secret.txt", "../secret.txt", "/etc/passwd"] {
            let e = read(
                &live,
                ReadParams {
                    file: file.into(),
                    line_start: None,
                    line_end: None,
                },
            )
            .expect_err(file);
            assert!(!e.contains("secret\n"), "{e}");
        }
    }

    #[test]
    fn paths_outside_the_repository_are_refused() {
        assert!(confined("../etc/passwd").is_err());
        assert!(confined("/etc/passwd").is_err());
        assert!(confined("src/../../x").is_err());
        assert!(confined("").is_err());
        assert!(confined(".").is_err());
        assert!(confined(".turboprop/index/manifest.json").is_err());
        assert!(confined(".git/config").is_err());
        assert_eq!(
            confined("./src/lib.rs").ok(),
            Some(std::path::PathBuf::from("src/lib.rs"))
        );
    }
}
