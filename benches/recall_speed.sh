#!/usr/bin/env bash
# Recall speed on natural-language questions (release build, one machine):
#   1. hybrid recall of new questions (the model embeds each one, no cached
#      result), single client, at N memories with real native embeddings;
#   2. keyword-only recall (`embedding.provider: none`) under
#      `wrk -t2 -c32`, with the recall cache off (every request searched)
#      and on (the default).
# usage: benches/recall_speed.sh [N] [hybrid|keyword|both]
#   (needs target/release/signet, wrk, and the model in
#   target/models/all-MiniLM-L6-v2; N defaults to 10000; at 100000 the
#   backfill embeds for ~8 minutes before the questions)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10000}"
WHAT="${2:-both}"
BIN="${BIN:-target/release/signet}"
MODEL="$PWD/target/models/all-MiniLM-L6-v2"
PORT=39852

start() { # provider cache-entries
  WS="$(mktemp -d)"
  printf 'embedding:\n  provider: %s\n  modelPath: %s\nserver:\n  recallCacheEntries: %s\n' \
    "$1" "$MODEL" "$2" > "$WS/agent.yaml"
  SIGNET_PATH="$WS" SIGNET_PORT=$PORT SIGNET_OFFLINE=1 SIGNET_LOG=warn "$BIN" serve >/dev/null 2>&1 &
  PID=$!
  for _ in $(seq 100); do curl -sf "localhost:$PORT/health" >/dev/null && break; sleep 0.1; done
}

stop() {
  kill -TERM "$PID"; wait "$PID" || true
  rm -rf "$WS"
}

if [ "$WHAT" != keyword ]; then
  start native 0
  python3 benches/recall_load.py preload "http://127.0.0.1:$PORT" "$N" --wait-embeddings
  python3 benches/recall_load.py latency "http://127.0.0.1:$PORT" --queries 300
  python3 benches/recall_load.py latency "http://127.0.0.1:$PORT" --queries 300 --project
  echo "RSS: $(grep VmRSS /proc/$PID/status)"
  stop
fi
if [ "$WHAT" != hybrid ]; then
  for cache in 0 1024; do
    start none $cache
    python3 benches/recall_load.py preload "http://127.0.0.1:$PORT" "$N" >/dev/null
    python3 benches/recall_load.py latency "http://127.0.0.1:$PORT" --queries 300
    line="$(wrk -t2 -c32 -d12s -s benches/recall_questions.lua "http://127.0.0.1:$PORT" | grep '^JSON')"
    echo "keyword-only, recallCacheEntries $cache, wrk -t2 -c32: ${line#JSON }"
    stop
  done
fi
