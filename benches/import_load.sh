#!/usr/bin/env bash
# Bulk import rate (release build, keyword-only workspace so nothing is
# queued for embedding): N synthetic memories (benches/recall_load.py's
# generator, fixed seed) as NDJSON, imported (1) directly on a stopped
# workspace, (2) through a running daemon (POST /api/memory/import,
# streamed), then exported again.
# usage: benches/import_load.sh [N]   (needs target/release/signet)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-200000}"
BIN="${BIN:-target/release/signet}"
PORT=39856
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
python3 - "$N" > "$TMP/in.ndjson" <<'PY'
import json, random, sys
sys.path.insert(0, "benches")
from recall_load import memory
rng = random.Random(7)
for i in range(int(sys.argv[1])):
    m = memory(rng, i, 10)
    m["created_at"] = f"2026-01-01T00:00:{i // 1000 % 60:02d}.{i % 1000:03d}Z"
    print(json.dumps(m))
PY
echo "input: $N lines, $(du -h "$TMP/in.ndjson" | cut -f1)"
rate() { python3 -c "import sys; n,s=int(sys.argv[1]),float(sys.argv[3])-float(sys.argv[2]); print(f'{n/s:,.0f} memories/s ({s:.2f} s)')" "$@"; }

mkdir "$TMP/direct"; printf 'embedding:\n  provider: none\n' > "$TMP/direct/agent.yaml"
t0=$(date +%s.%N)
SIGNET_PATH="$TMP/direct" "$BIN" import "$TMP/in.ndjson" > "$TMP/direct.json"
t1=$(date +%s.%N)
echo "direct (no daemon):      $(rate "$N" "$t0" "$t1")  imported $(python3 -c "import json;print(json.load(open('$TMP/direct.json'))['report']['imported'])")"

mkdir "$TMP/daemon"; printf 'embedding:\n  provider: none\n' > "$TMP/daemon/agent.yaml"
SIGNET_PATH="$TMP/daemon" SIGNET_PORT=$PORT SIGNET_LOG=warn "$BIN" serve >/dev/null 2>&1 &
PID=$!
for _ in $(seq 100); do curl -sf "localhost:$PORT/health" >/dev/null && break; sleep 0.1; done
t0=$(date +%s.%N)
SIGNET_PATH="$TMP/daemon" SIGNET_PORT=$PORT "$BIN" import "$TMP/in.ndjson" > "$TMP/daemon.json"
t1=$(date +%s.%N)
echo "through the daemon:      $(rate "$N" "$t0" "$t1")  via $(python3 -c "import json;print(json.load(open('$TMP/daemon.json'))['via'])")"
echo "daemon RSS after import: $(grep VmRSS /proc/$PID/status)"
t0=$(date +%s.%N)
SIGNET_PATH="$TMP/daemon" "$BIN" export --out "$TMP/out.ndjson" 2>/dev/null
t1=$(date +%s.%N)
echo "export (daemon running): $(rate "$N" "$t0" "$t1")"
kill -TERM $PID; wait $PID || true
