//! `tp mcp`: a Model Context Protocol server on stdio for one repository.
//!
//! The model and the index stay loaded; the repository is watched ([`crate::watcher`]) and
//! changed files are indexed by the indexing thread of [`crate::live`], which takes the
//! writer lock only while it updates. The protocol is rmcp's (the official Rust SDK): it
//! negotiates the protocol version and routes the tools of [`tools`]; lines are read by
//! [`transport`], which answers malformed ones. stdout carries only protocol messages;
//! notes and warnings go to stderr. The client closing stdin ends the server.

pub mod tools;
pub mod transport;

use anyhow::{Context, Result};
use rmcp::service::ServerInitializeError;
use rmcp::ServiceExt;

use crate::args::ResidentArgs;
use crate::escape::escape_control;
use crate::index_cmd::StderrReport;
use crate::indexer::Updater;
use crate::live::Live;
use crate::repo::Repo;

/// Runs `tp mcp` until the client hangs up.
pub fn run(args: &ResidentArgs) -> Result<()> {
    let repo = Repo::locate(args.repo.repo.as_deref())?;
    let report = StderrReport::new(&repo);
    let updater = Updater::prepare(repo, &args.index_args(), &report)?;
    // The model loads on first use; a resident server loads it now, beside the handshake, so
    // that the first search does not wait for it.
    if let Some(model) = updater.model().cloned() {
        std::thread::Builder::new()
            .name("tp-model-load".into())
            .spawn(move || {
                if let Err(e) = model.prepare() {
                    eprintln!("warning: {}", crate::one_line(&anyhow::Error::new(e)));
                }
            })
            .context("cannot start the model-loading thread")?;
    }
    let live = Live::new(updater, args.repo_model.clone());
    let how = crate::watcher::start(&live)?;
    eprintln!(
        "tp mcp: serving {} with model {} ({how:?} watching)",
        escape_control(&live.repo().root.display().to_string()),
        live.model_ids().join(" + ")
    );
    live.spawn(|outcome, took| {
        if let Some(line) = crate::watch_cmd::commit_line(outcome, took) {
            eprintln!("tp mcp: {line}");
        }
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .context("cannot start the MCP server's runtime")?;
    let server = tools::TpServer::new(std::sync::Arc::clone(&live));
    runtime.block_on(async move {
        let transport = transport::LineTransport::new(tokio::io::stdin(), tokio::io::stdout());
        let running = match server.serve(transport).await {
            Ok(running) => running,
            // The client hung up before the handshake: nothing to serve, no error.
            Err(
                ServerInitializeError::ConnectionClosed(_)
                | ServerInitializeError::ExpectedInitializeRequest(None),
            ) => return anyhow::Ok(()),
            Err(e) => return Err(anyhow::Error::new(e).context("the MCP session did not start")),
        };
        running.waiting().await.context("the MCP session failed")?;
        anyhow::Ok(())
    })?;
    // The client hung up. An update in flight is left to the crash-safe commit protocol:
    // the last commit stays readable, and the next writer clears what it leaves.
    live.stop();
    Ok(())
}
