#!/usr/bin/env bash
# Remember throughput with and without SSE subscribers, each run on a fresh
# workspace: wrk runs the shared remember script while `examples/sse_load.rs`
# holds N reading subscribers, one that never reads and one that measures
# delivery latency.
# usage: benches/sse_fanout.sh [rounds] [subscribers] [gzip]
#   gzip: the subscribers ask for compressed streams
#   SIGNET_SERVER_YAML='sseCoalesceMs: 30' adds lines to the `server:` section
#   (needs target/release/signet and target/release/examples/sse_load, wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-2}"
SUBS="${2:-200}"
MODE="${3:-}"
BIN=target/release/signet
LOAD=target/release/examples/sse_load
LUA=../shared/bench/remember.lua
PORT=${SIGNET_BENCH_PORT:-39852}

run() { # subscribers
  local ws; ws="$(mktemp -d)"
  printf 'embedding:\n  provider: none\nserver:\n  %s\n' "${SIGNET_SERVER_YAML:-sseRingSize: 1024}" > "$ws/agent.yaml"
  SIGNET_PATH="$ws" SIGNET_PORT=$PORT SIGNET_OFFLINE=1 SIGNET_LOG=warn "$BIN" serve >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -sf "localhost:$PORT/health" >/dev/null && break; sleep 0.1; done
  local sse=""
  if [ "$1" -gt 0 ]; then
    "$LOAD" "127.0.0.1:$PORT" "$1" 15 $MODE > "$ws/sse.out" &
    sse=$!
    sleep 1
  fi
  local line; line="$(wrk -t2 -c32 -d12s -s "$LUA" "http://127.0.0.1:$PORT" | grep '^JSON')"
  echo "subscribers=$1 remember: ${line#JSON }"
  if [ -n "$sse" ]; then wait "$sse" || true; cat "$ws/sse.out"; fi
  kill -TERM $pid; wait $pid || true
  rm -rf "$ws"
}

for _ in $(seq "$ROUNDS"); do run 0; run "$SUBS"; done
