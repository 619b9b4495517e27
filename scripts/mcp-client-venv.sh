#!/usr/bin/env bash
# Installs the official MCP Python SDK, pinned, into a venv of its own (idempotent) and prints
# the venv's python. The MCP integration test (tests/mcp.rs) drives `tp mcp` with it.
set -euo pipefail
MCP_VERSION="2.3.0"
venv="${TURBOPROP_MCP_VENV:-$HOME/.cache/turboprop/mcp-venv}"
py="$venv/bin/python"
if ! "$py" -c "import importlib.metadata as m, sys; sys.exit(m.version('mcp') != '$MCP_VERSION')" 2>/dev/null; then
    python3 -m venv "$venv" >&2
    "$py" -m pip install --quiet "mcp==$MCP_VERSION" >&2
fi
echo "$py"
