"""A real MCP client (the official Python SDK, `mcp` on PyPI) against a
signet-rs daemon, over Streamable HTTP or through `signet mcp` on stdio.

Run by the integration tests (tests/api/mcp.rs), one scenario per run;
exits non-zero with the failed assertion when the daemon misbehaves.

  python mcp_client.py --transport http --url http://127.0.0.1:PORT/mcp \
      [--token T] [--mode auto|legacy] --scenario basic|scoped|readonly|no-token \
      [--other-id ID] [--bin path/to/signet]
"""

import argparse
import asyncio
import json
import os
import sys

from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

TOOLS = [
    "memory_search",
    "memory_store",
    "memory_get",
    "memory_list",
    "memory_modify",
    "memory_forget",
    "memory_feedback",
]
REQUIRED = {
    "memory_search": ["query"],
    "memory_store": ["content"],
    "memory_get": ["id"],
    "memory_list": [],
    "memory_modify": ["id", "reason"],
    "memory_forget": ["id", "reason"],
    "memory_feedback": ["session_key", "ratings"],
}


def server(args):
    if args.transport == "stdio":
        env = dict(os.environ)
        env["SIGNET_DAEMON_URL"] = args.url
        env.pop("SIGNET_TOKEN", None)
        env.pop("SIGNET_API_KEY", None)
        if args.token:
            env["SIGNET_TOKEN"] = args.token
        return StdioServerParameters(command=args.bin, args=["mcp"], env=env)
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else None
    return streamable_http_client(args.url, http_client=create_mcp_http_client(headers=headers))


def body(result):
    """The tool answer: its text parsed as JSON (Signet's shape) and checked
    against structuredContent."""
    text = result.content[0].text
    if result.is_error:
        return None, text, result.structured_content
    parsed = json.loads(text)
    assert parsed == result.structured_content, (parsed, result.structured_content)
    return parsed, text, result.structured_content


async def call(client, name, arguments):
    return body(await client.call_tool(name, arguments))


def refused(answer, code, verb):
    ok, text, structured = answer
    assert ok is None, f"expected a refusal, got {ok}"
    assert text.startswith(f"{verb} failed: "), text
    assert structured["code"] == code, (structured, code)


async def basic(client):
    listed = await client.list_tools()
    names = [t.name for t in listed.tools]
    assert names == TOOLS, names
    for t in listed.tools:
        assert t.input_schema["type"] == "object", t
        assert sorted(t.input_schema.get("required", [])) == sorted(REQUIRED[t.name]), t

    stored, _, _ = await call(
        client,
        "memory_store",
        {"content": "The staging database lives on host quokka-7", "type": "fact", "tags": "infra,db", "importance": 0.6},
    )
    mid = stored["id"]
    assert stored["type"] == "fact" and stored["tags"] == "infra,db", stored

    found, _, _ = await call(client, "memory_search", {"query": "where is the staging database quokka"})
    assert any(r["id"] == mid for r in found["results"]), found
    assert found["method"] in ("keyword", "hybrid"), found
    none, _, _ = await call(client, "memory_search", {"query": "quokka", "type": "preference"})
    assert all(r["id"] != mid for r in none["results"]), none

    got, _, _ = await call(client, "memory_get", {"id": mid})
    assert got["content"] == "The staging database lives on host quokka-7", got

    listed_mem, _, _ = await call(client, "memory_list", {"limit": 10, "type": "fact"})
    assert any(m["id"] == mid for m in listed_mem["memories"]), listed_mem

    changed, _, _ = await call(
        client, "memory_modify", {"id": mid, "reason": "host moved", "content": "The staging database lives on host wombat-2"}
    )
    assert changed["status"] == "updated" and changed["newVersion"] == 2, changed
    got, _, _ = await call(client, "memory_get", {"id": mid})
    assert "wombat-2" in got["content"], got

    # Bad arguments: an error result with Signet's wording, not a transport failure.
    ok, text, _ = await call(client, "memory_modify", {"id": mid})
    assert ok is None and "Input validation error" in text, text

    rated, _, _ = await call(client, "memory_feedback", {"session_key": "s-1", "ratings": {mid: 1}})
    assert rated == {"ok": True, "recorded": 1}, rated

    gone, _, _ = await call(client, "memory_forget", {"id": mid, "reason": "decommissioned"})
    assert gone["status"] == "deleted", gone
    refused(await call(client, "memory_get", {"id": mid}), 404, "Get")
    refused(await call(client, "memory_forget", {"id": mid, "reason": "again"}), 409, "Forget")


async def scoped(client, other_id):
    # The token is scoped to one project: another project's memory is
    # neither found nor changed.
    refused(await call(client, "memory_get", {"id": other_id}), 403, "Get")
    found, _, _ = await call(client, "memory_search", {"query": "platypus secret launch codes"})
    assert all(r["id"] != other_id for r in found["results"]), found
    listed, _, _ = await call(client, "memory_list", {"limit": 100})
    assert all(m["id"] != other_id for m in listed["memories"]), listed
    refused(await call(client, "memory_modify", {"id": other_id, "reason": "x", "content": "changed"}), 403, "Modify")
    refused(await call(client, "memory_forget", {"id": other_id, "reason": "x"}), 403, "Forget")
    # Its own memories work, and land in its project.
    stored, _, _ = await call(client, "memory_store", {"content": "platypus notes for the scoped agent"})
    got, _, _ = await call(client, "memory_get", {"id": stored["id"]})
    assert got["project"] == "alpha", got


async def readonly(client):
    refused(await call(client, "memory_store", {"content": "a readonly token may not write"}), 403, "Store")
    found, _, _ = await call(client, "memory_search", {"query": "anything at all"})
    assert "results" in found, found


async def run(args):
    async with Client(server(args), mode=args.mode) as client:
        if args.scenario == "basic":
            await basic(client)
        elif args.scenario == "scoped":
            await scoped(client, args.other_id)
        elif args.scenario == "readonly":
            await readonly(client)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--transport", choices=["http", "stdio"], required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--token")
    p.add_argument("--mode", default="auto")
    p.add_argument("--scenario", required=True)
    p.add_argument("--other-id")
    p.add_argument("--bin")
    args = p.parse_args()
    if args.scenario == "no-token":
        try:
            asyncio.run(run(args))
        except BaseException as e:  # the SDK raises a group; any failure to connect counts
            text = repr(e)
            if hasattr(e, "exceptions"):
                text += " " + " ".join(repr(x) for x in e.exceptions)
            # stdio: the bridge words the daemon's 401; HTTP: the SDK turns
            # a 401 without a JSON-RPC body into a generic error response
            # (the Rust test checks the 401 itself on the same daemon).
            assert (
                "401" in text
                or "authentication required" in text
                or "Server returned an error response" in text
            ), text
            print(f"ok: no-token ({args.transport}) refused: {text[:200]}")
            return
        raise AssertionError("connected without a token")
    asyncio.run(run(args))
    print(f"ok: {args.scenario} ({args.transport}, {args.mode})")


if __name__ == "__main__":
    main()
