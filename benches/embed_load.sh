#!/usr/bin/env bash
# Remember throughput with the native embedding provider on (the backfill
# embedding in the background) against `embedding.provider: none`, with the
# shared remember load script; then the backfill rate the daemon reports.
# usage: benches/embed_load.sh [rounds]   (needs target/release/signet, wrk,
# and the model in target/models/all-MiniLM-L6-v2)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-2}"
BIN=target/release/signet
MODEL="$PWD/target/models/all-MiniLM-L6-v2"
LUA=../shared/bench/remember.lua
PORT=39851

run() { # provider
  local ws; ws="$(mktemp -d)"
  printf 'embedding:\n  provider: %s\n  modelPath: %s\nserver:\n  recallCacheEntries: 0\n' "$1" "$MODEL" > "$ws/agent.yaml"
  SIGNET_PATH="$ws" SIGNET_PORT=$PORT SIGNET_OFFLINE=1 SIGNET_LOG=warn "$BIN" serve >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -sf "localhost:$PORT/health" >/dev/null && break; sleep 0.1; done
  if [ "$1" = native ]; then
    for _ in $(seq 100); do
      curl -s "localhost:$PORT/api/embeddings/status" | grep -q '"state":"ready"' && break; sleep 0.1
    done
  fi
  local line; line="$(wrk -t2 -c32 -d12s -s "$LUA" "http://127.0.0.1:$PORT" | grep '^JSON')"
  echo "$1 remember: ${line#JSON }"
  if [ "$1" = native ]; then
    sleep 10
    curl -s "localhost:$PORT/api/embeddings/status" | python3 -c '
import json,sys; d=json.load(sys.stdin)
print("native backfill: embedded %d of %d" % (d["embedded"], d["memories"]))'
    curl -s "localhost:$PORT/api/pipeline/status" | python3 -c '
import json,sys; d=json.load(sys.stdin)["stats"]
print("native backfill rate: %s memories/s over %d batches" % (d["embedPerSecond"], d["embedBatches"]))'
  fi
  kill -TERM $pid; wait $pid || true
  rm -rf "$ws"
}

for _ in $(seq "$ROUNDS"); do run none; run native; done
