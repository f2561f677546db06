#!/usr/bin/env bash
# One machine at scale (issue 15): builds a store of N memories (default
# 1,000,000) with 384-dim vectors through `signet import`, then measures
#   - import rate, with vectors kept (hybrid workspace) and without
#     (keyword-only workspace: `embedding.provider: none`, nothing queued);
#   - daemon start to /health, and to the whole vector index loaded;
#   - RSS with the vector index loaded, and without (keyword-only);
#   - recall latency of new natural-language questions, single client,
#     recall cache off: hybrid, then keyword-only;
#   - remember throughput (wrk -t2 -c32, 12 s) at N against an empty store.
# Data: benches/scale_data.py (fixed seed; synthetic clustered vectors, the
# real model embeds the questions). Needs target/release/signet, wrk,
# numpy (a venv in target/bench-venv is made if python3 lacks it), the
# model in target/models/all-MiniLM-L6-v2, and ~12 GB of disk.
# usage: benches/scale_load.sh [N]   (KEEP=1 keeps the stores in target/scale,
#   REUSE=1 measures kept stores again without importing)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-1000000}"
BIN="${BIN:-target/release/signet}"
MODEL="$PWD/target/models/all-MiniLM-L6-v2"
PORT=39857
DIR="$PWD/target/scale"
mkdir -p "$DIR"
PY=python3
if ! $PY -c "import numpy" 2>/dev/null; then
  [ -x target/bench-venv/bin/python ] || { python3 -m venv target/bench-venv && target/bench-venv/bin/pip -q install numpy; }
  PY=target/bench-venv/bin/python
fi
DATA="$DIR/data-$N.ndjson"
if [ ! -s "$DATA" ]; then
  t0=$(date +%s.%N)
  $PY benches/scale_data.py "$N" all-MiniLM-L6-v2 384 > "$DATA.part" && mv "$DATA.part" "$DATA"
  echo "generated $N lines in $(python3 -c "print(f'{$(date +%s.%N)-$t0:.0f}')") s: $(du -h "$DATA" | cut -f1)"
fi
secs() { python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.2f}')" "$@"; }
rate() { python3 -c "import sys; n,s=int(sys.argv[1]),float(sys.argv[3])-float(sys.argv[2]); print(f'{n/s:,.0f} memories/s ({s:.1f} s)')" "$@"; }
conf() { # provider
  printf 'embedding:\n  provider: %s\n  modelPath: %s\nserver:\n  recallCacheEntries: 0\n' "$1" "$MODEL"
}

HY="$DIR/hybrid"; KW="$DIR/keyword"
if [ "${REUSE:-0}" = 1 ] && [ -s "$HY/import.json" ] && [ -s "$KW/import.json" ]; then
  echo "reusing the stores in $DIR (REUSE=1)"
  STORES=""
else
  rm -rf "$HY" "$KW"; mkdir -p "$HY" "$KW"
  STORES="$KW $HY"
fi
conf native > "$HY/agent.yaml"; conf none > "$KW/agent.yaml"
for ws in $STORES; do
  t0=$(date +%s.%N)
  SIGNET_PATH="$ws" SIGNET_OFFLINE=1 SIGNET_LOG=warn "$BIN" import "$DATA" > "$ws/import.json"
  t1=$(date +%s.%N)
  echo "import into $(basename "$ws"): $(rate "$N" "$t0" "$t1"), $(python3 -c "import json;r=json.load(open('$ws/import.json'))['report'];print({k:v for k,v in r.items() if k in ('imported','vectors','queued','skipped')})")"
  echo "  file: $(du -h "$ws/memory/memories.db" | cut -f1)"
done

start() { # workspace
  t0=$(date +%s.%N)
  SIGNET_PATH="$1" SIGNET_PORT=$PORT SIGNET_OFFLINE=1 SIGNET_LOG=warn "$BIN" serve >"$1/daemon.log" 2>&1 &
  PID=$!
  until curl -sf "localhost:$PORT/health" >/dev/null; do sleep 0.02; done
  t1=$(date +%s.%N)
  echo "start to /health: $(secs "$t0" "$t1") s"
}
stop() { kill -TERM "$PID"; wait "$PID" || true; }
rss() { awk '/^(VmRSS|RssAnon|RssFile)/ {printf "%s %.0f MB  ", $1, $2/1024}' "/proc/$PID/status"; }

echo "--- hybrid (native model, $N vectors)"
start "$HY"
until curl -sf "localhost:$PORT/api/embeddings/status" | python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if not s['index']['loading'] else 1)"; do sleep 0.1; done
echo "start to full vector index: $(secs "$t0" "$(date +%s.%N)") s; RSS $(rss)"
python3 benches/recall_load.py latency "http://127.0.0.1:$PORT" --queries 300
echo "RSS after the questions: $(rss)"
stop

echo "--- keyword-only (embedding.provider: none)"
start "$KW"
sleep 2; echo "RSS idle: $(rss)"
python3 benches/recall_load.py latency "http://127.0.0.1:$PORT" --queries 300
echo "RSS after the questions: $(rss)"
printf 'remember at %s: ' "$N"
wrk -t2 -c32 -d12s -s benches/remember.lua "http://127.0.0.1:$PORT" | grep JSON
echo "RSS after remember: $(rss)"
stop
EMPTY="$DIR/empty"; rm -rf "$EMPTY"; mkdir -p "$EMPTY"; conf none > "$EMPTY/agent.yaml"
start "$EMPTY"
printf 'remember, empty store: '
wrk -t2 -c32 -d12s -s benches/remember.lua "http://127.0.0.1:$PORT" | grep JSON
stop
[ "${KEEP:-0}" = 1 ] || rm -rf "$HY" "$KW" "$EMPTY"
