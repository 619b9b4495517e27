//! `tp mcp` driven by a real MCP client: the official Python SDK (`mcp` on PyPI, pinned in
//! scripts/mcp-client-venv.sh, which installs it into a venv of its own) runs
//! tests/mcp_client/test_tp_mcp.py against the `tp` binary, one scenario per test, each on
//! a fresh copy of the poker fixture. Without Python or network the tests skip loudly,
//! unless `TURBOPROP_REQUIRE_MCP=1` (as in CI), where that is a failure.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use common::{Running, Sandbox, TP};

/// The Python with the MCP SDK: `TURBOPROP_MCP_PYTHON`, else the one the setup script
/// installs (once per test binary).
fn python() -> Option<PathBuf> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = PYTHON.get_or_init(|| {
        if let Some(p) = std::env::var_os("TURBOPROP_MCP_PYTHON") {
            return Ok(PathBuf::from(p));
        }
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/mcp-client-venv.sh");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    });
    turboprop_testkit::available(
        turboprop_testkit::Need::new("tp mcp with the Python MCP client", "TURBOPROP_REQUIRE_MCP"),
        found.clone(),
    )
}

fn scenario(name: &str) {
    let Some(python) = python() else { return };
    let sb = Sandbox::indexed_poker();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_client/test_tp_mcp.py");
    let mut cmd = Command::new(python);
    cmd.arg(script).arg(TP).arg(&sb.root).arg(name);
    // The server and the CLI it runs see the sandbox's environment (no installed models).
    sb.isolate(&mut cmd);
    // A server that stops answering fails the test (the harness's timeout), not hangs it.
    let run = Running::run(cmd, format!("MCP scenario {name}"));
    println!("{}", run.stdout);
    run.ok();
}

#[test]
fn a_real_client_initializes_lists_the_tools_and_calls_each() {
    scenario("tools");
}

#[test]
fn edits_adds_and_deletes_show_in_search_without_a_manual_index() {
    scenario("freshness");
}

#[test]
fn paths_leading_out_of_the_repository_are_refused() {
    scenario("escapes");
}

#[test]
fn bad_arguments_are_errors_and_the_server_keeps_serving() {
    scenario("bad_arguments");
}

#[test]
fn bad_lines_get_json_rpc_errors_and_a_hang_up_ends_the_server() {
    scenario("raw_pipe");
}

#[test]
fn cli_search_and_index_work_while_the_server_indexes() {
    scenario("cli_alongside");
}
