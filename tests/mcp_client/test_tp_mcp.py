"""Drives `tp mcp` with the official MCP Python SDK (and, for bad input, a raw pipe).

Usage: python test_tp_mcp.py TP_BINARY REPO SCENARIO

REPO is a scratch copy of a repository (it is edited). Each scenario prints what it checked
and exits non-zero with a message on the first failure. Waits poll with generous limits;
nothing asserts how fast the machine is. Run by tests/mcp.rs.
"""
import json
import os
import subprocess
import sys
import time

import anyio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

TP, REPO, SCENARIO = sys.argv[1], sys.argv[2], sys.argv[3]
# The freshness bound for polling: generous, so only a server that never catches up fails.
FRESH_WITHIN = 60.0


def fail(msg):
    print(f"FAIL [{SCENARIO}]: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def write(rel, text):
    path = os.path.join(REPO, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


class Client:
    def __init__(self, session):
        self.s = session

    async def call(self, tool, args):
        r = await self.s.call_tool(tool, args)
        return r

    async def ok(self, tool, args):
        r = await self.call(tool, args)
        check(not r.is_error, f"{tool} {args} failed: {r.content}")
        check(r.structured_content is not None, f"{tool} gave no structured content")
        return r.structured_content

    async def error(self, tool, args):
        """A call that must fail: a JSON-RPC error or an isError result. Returns the text."""
        try:
            r = await self.s.call_tool(tool, args)
        except Exception as e:  # a JSON-RPC error
            return str(e)
        check(r.is_error, f"{tool} {str(args)[:200]} should fail, got {str(r.structured_content)[:300]}")
        return " ".join(getattr(c, "text", "") for c in r.content)

    async def files_for(self, query, **extra):
        out = await self.ok("search", {"query": query, "limit": 10, **extra})
        return out, [h["file"] for h in out["hits"]]

    async def until(self, what, pred, query, **extra):
        """Polls search (no wait) until pred(answer); returns seconds taken."""
        t = time.monotonic()
        while True:
            out = await self.ok("search", {"query": query, "limit": 10, **extra})
            if pred(out):
                return time.monotonic() - t
            if time.monotonic() - t > FRESH_WITHIN:
                fail(f"{what}: not visible after {FRESH_WITHIN} s; last answer {json.dumps(out)[:600]}")
            await anyio.sleep(0.05)


async def with_client(body):
    params = StdioServerParameters(command=TP, args=["mcp", "--repo", REPO], env=dict(os.environ))
    async with stdio_client(params) as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            init = await session.initialize()
            await body(Client(session), init)


async def tools(c, init):
    check(init.server_info.name == "turboprop", f"server name {init.server_info.name}")
    print("negotiated protocol", init.protocol_version)
    listed = await c.s.list_tools()
    by_name = {t.name: t for t in listed.tools}
    check(set(by_name) == {"search", "status", "index", "read"}, f"tools {sorted(by_name)}")
    for t in listed.tools:
        check(t.description and len(t.description) > 40, f"{t.name} needs a description")
        check(t.input_schema.get("type") == "object", f"{t.name} schema {t.input_schema}")
    check("query" in by_name["search"].input_schema.get("required", []), "search requires query")

    out = await c.ok("search", {"query": "split the pot between tied winners", "limit": 3})
    check(out["hits"], "no hits")
    hit = out["hits"][0]
    for key in ["file", "line_start", "line_end", "score", "content", "rank"]:
        check(key in hit, f"hit lacks {key}: {hit}")
    check(hit["rank"] == 1 and hit["file"] == "python/poker/pot.py", f"first hit {hit['file']}")
    for key in ["generation", "fresh", "pending_files", "indexing"]:
        check(key in out["index"], f"index lacks {key}: {out['index']}")
    check(out["index"]["generation"] >= 1, out["index"])

    st = await c.ok("status", {})
    for key in ["files", "chunks", "model", "dimensions", "bytes_on_disk", "generation", "updated_at", "index"]:
        check(key in st, f"status lacks {key}: {st}")

    ix = await c.ok("index", {})
    check(ix["started"] is True and "index" in ix, ix)
    ix = await c.ok("index", {"wait": True, "timeout_seconds": 120})
    check(ix["committed"] is True, ix)

    rd = await c.ok("read", {"file": hit["file"], "line_start": hit["line_start"], "line_end": hit["line_start"] + 2})
    check(rd["content"] == "\n".join(hit["content"].split("\n")[:3]), f"read {rd} vs hit")
    print("tools ok")


async def freshness(c, init):
    await c.ok("index", {"wait": True})
    lat = {}
    # Add.
    write("src_new/ledger.rs", "fn reconcile_the_quokka_ledger() {}\n")
    lat["add"] = await c.until("an added file", lambda o: any(h["file"] == "src_new/ledger.rs" for h in o["hits"]),
                               "reconcile quokka ledger", filter="src_new/**")
    # Edit.
    with open(os.path.join(REPO, "python/poker/pot.py"), "a") as f:
        f.write("\ndef settle_the_wombat_side_pot():\n    pass\n")
    lat["edit"] = await c.until("an edited file",
                                lambda o: any("settle_the_wombat_side_pot" in h["content"] for h in o["hits"]),
                                "settle wombat side pot", filter="python/poker/pot.py")
    # Delete.
    os.remove(os.path.join(REPO, "src_new/ledger.rs"))
    lat["delete"] = await c.until("a deleted file", lambda o: not o["hits"], "reconcile quokka ledger",
                                  filter="src_new/**")
    # The answer says when it is not fresh, and wait_for_index answers with the change in.
    write("src_new/second.rs", "fn tally_the_narwhal_chips() {}\n")
    out = await c.ok("search", {"query": "tally narwhal chips", "wait_for_index": True, "filter": "src_new/**"})
    check([h["file"] for h in out["hits"]] == ["src_new/second.rs"], out)
    check(out["index"]["fresh"] is True, out["index"])
    print("edit-to-visible seconds:", {k: round(v, 3) for k, v in lat.items()})


async def escapes(c, init):
    outside = os.path.join(os.path.dirname(REPO), "outside")
    os.makedirs(outside, exist_ok=True)
    with open(os.path.join(outside, "secret.txt"), "w") as f:
        f.write("root user account secret\n")
    os.symlink(os.path.join(outside, "secret.txt"), os.path.join(REPO, "leak.txt"))
    os.symlink(outside, os.path.join(REPO, "outdir"))
    for f in ["../outside/secret.txt", "/etc/passwd", os.path.join(outside, "secret.txt"),
              "python/../../outside/secret.txt", "leak.txt", "outdir/secret.txt",
              ".turboprop/index/manifest.json", ".git/config", ""]:
        text = await c.error("read", {"file": f})
        check("secret" not in text.replace("secret.txt", ""), f"read {f} leaked: {text}")
    # The link is seen by the watcher, and never indexed or shown.
    out = await c.ok("search", {"query": "root user account secret", "wait_for_index": True, "limit": 20})
    for h in out["hits"]:
        check(h["file"] not in ("leak.txt",) and not h["file"].startswith("outdir/"), f"hit {h['file']}")
        check("root user account secret" not in h["content"], f"content leaked via {h['file']}")
    print("escapes refused")


async def bad_arguments(c, init):
    await c.error("no_such_tool", {"query": "x"})
    await c.error("search", {"query": 5})
    await c.error("search", {})
    await c.error("search", {"query": "x" * (1 << 20)})
    text = await c.error("search", {"query": "deal", "limit": 10 ** 12})
    check("1000000000000" in text, text)
    await c.error("search", {"query": "deal", "mode": "psychic"})
    await c.error("search", {"query": "deal", "threshold": 7})
    await c.error("read", {"file": "python/poker/pot.py", "line_start": 0})
    await c.error("index", {"timeout_seconds": "soon"})
    out = await c.ok("search", {"query": "split the pot", "limit": 1})
    check(out["hits"], "a normal search after the bad ones")
    print("bad arguments refused; still serving")


def raw_pipe():
    """Bad lines over a raw pipe, then hang up."""
    p = subprocess.Popen([TP, "mcp", "--repo", REPO], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)

    def send(obj_or_line):
        line = obj_or_line if isinstance(obj_or_line, str) else json.dumps(obj_or_line)
        p.stdin.write((line + "\n").encode())
        p.stdin.flush()

    def recv():
        line = p.stdout.readline()
        check(line, "the server closed stdout")
        return json.loads(line)

    send({"jsonrpc": "2.0", "id": 1, "method": "initialize",
          "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}})
    r = recv()
    check(r.get("id") == 1 and r["result"]["protocolVersion"] == "2025-06-18", r)
    send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    send("this is { not json")
    r = recv()
    check(r["error"]["code"] == -32700 and r["id"] is None, r)
    send({"jsonrpc": "2.0", "id": 2, "method": "no/such/method"})
    r = recv()
    check(r["id"] == 2 and r["error"]["code"] == -32601, r)
    send([1, 2, 3])
    r = recv()
    check(r["error"]["code"] == -32600, r)
    send({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
          "params": {"name": "search", "arguments": {"query": "split the pot", "limit": 1}}})
    r = recv()
    check(r["id"] == 3 and not r["result"].get("isError"), r)
    p.stdin.close()
    try:
        code = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        fail("the server did not exit after its client hung up")
    check(code == 0, f"exit code {code} after hang-up")
    print("raw pipe ok; hang-up exits 0")


async def cli_alongside(c, init):
    await c.ok("index", {"wait": True})
    for i in range(300):
        write(f"bulk/m{i:03}.py", f"def bulk_marker_{i}(seat):\n    return seat.stack + {i}\n" * 20)
    # Wait until the server is indexing them, then run the CLI beside it.
    t = time.monotonic()
    while True:
        st = await c.ok("status", {})
        if st["indexing"] or st["index"]["pending_files"] > 0 or st["files"] > 300:
            break
        check(time.monotonic() - t < FRESH_WITHIN, f"the server never noticed 300 new files: {st}")
        await anyio.sleep(0.02)
    env = dict(os.environ)
    s = subprocess.run([TP, "search", "split the pot", "--repo", REPO, "--output", "json", "--limit", "2"],
                       capture_output=True, text=True, env=env)
    check(s.returncode == 0 and s.stdout.strip(), f"CLI search during server indexing: {s.returncode} {s.stderr}")
    i = subprocess.run([TP, "index", "--repo", REPO], capture_output=True, text=True, env=env)
    check(i.returncode == 0, f"CLI index during server indexing: {i.stderr}")
    out = await c.ok("search", {"query": "bulk marker seat stack", "wait_for_index": True, "filter": "bulk/**"})
    check(len(out["hits"]) == 10 and out["index"]["fresh"], out["index"])
    v = subprocess.run([TP, "verify", "--repo", REPO], capture_output=True, text=True)
    check(v.returncode == 0, f"verify after: {v.stderr}")
    print("CLI search and index beside the server ok")


SCENARIOS = {
    "tools": tools,
    "freshness": freshness,
    "escapes": escapes,
    "bad_arguments": bad_arguments,
    "cli_alongside": cli_alongside,
}

if SCENARIO == "raw_pipe":
    raw_pipe()
else:
    anyio.run(with_client, SCENARIOS[SCENARIO])
