#!/usr/bin/env bash
# MCP tool-call latency under load (release build, one machine): N memories
# preloaded (benches/recall_load.py), keyword-only config
# (`embedding.provider: none`), then `tools/call memory_search` with
# natural-language questions from 16 concurrent MCP clients
# (`wrk -t2 -c16`, benches/mcp_search.lua), with the recall cache off (every
# call searched) and on (the default); the same questions over
# `POST /api/memory/recall` for comparison.
# usage: benches/mcp_load.sh [N] [clients]   (needs target/release/signet, wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10000}"
C="${2:-16}"
BIN="${BIN:-target/release/signet}"
PORT=39853

start() { # cache-entries
  WS="$(mktemp -d)"
  printf 'embedding:\n  provider: none\nserver:\n  recallCacheEntries: %s\n' "$1" > "$WS/agent.yaml"
  SIGNET_PATH="$WS" SIGNET_PORT=$PORT SIGNET_LOG=warn "$BIN" serve >/dev/null 2>&1 &
  PID=$!
  for _ in $(seq 100); do curl -sf "localhost:$PORT/health" >/dev/null && break; sleep 0.1; done
}

stop() {
  kill -TERM "$PID"; wait "$PID" || true
  rm -rf "$WS"
}

for cache in 0 1024; do
  start $cache
  python3 benches/recall_load.py preload "http://127.0.0.1:$PORT" "$N" >/dev/null
  # One call checked by hand: a tool result with results, not an error.
  curl -sf "localhost:$PORT/mcp" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' \
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"memory_search","arguments":{"query":"When did Caroline visit the garden?"}}}' \
    | python3 -c 'import json,sys; r=json.load(sys.stdin)["result"]; assert not r["isError"] and r["structuredContent"]["results"], r'
  for i in 1 2 3; do
    line="$(wrk -t2 -c"$C" -d12s -s benches/mcp_search.lua "http://127.0.0.1:$PORT" | grep '^JSON')"
    echo "MCP tools/call memory_search, $N memories, recallCacheEntries $cache, $C clients, run $i: ${line#JSON }"
  done
  line="$(wrk -t2 -c"$C" -d12s -s benches/recall_questions.lua "http://127.0.0.1:$PORT" | grep '^JSON')"
  echo "POST /api/memory/recall, same questions, recallCacheEntries $cache, $C clients: ${line#JSON }"
  echo "RSS: $(grep VmRSS /proc/$PID/status)"
  stop
done
