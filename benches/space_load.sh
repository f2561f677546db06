#!/usr/bin/env bash
# Space given back (release build, keyword-only workspace): N memories
# imported, half of them as tombstones past the recover window (what
# "forget half, a month passes" leaves), then a retention sweep: the store's
# size before and after, the longest vacuum step, and the size of a fresh
# store holding only the survivors (exported and imported again).
# FORGET=alternate (default: every other memory, the worst case for page
# fill) or FORGET=oldest (the older half).
# usage: [FORGET=oldest] benches/space_load.sh [N]   (needs target/release/signet)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-200000}"
BIN="${BIN:-target/release/signet}"
PORT=39857
TMP="$(mktemp -d)"; echo "workspace: $TMP"
trap '[ -n "${KEEP:-}" ] || rm -rf "$TMP"' EXIT
python3 - "$N" "${FORGET:-alternate}" > "$TMP/in.ndjson" <<'PY'
import json, random, sys
sys.path.insert(0, "benches")
from recall_load import memory
rng = random.Random(11)
for i in range(int(sys.argv[1])):
    m = memory(rng, i, 10)
    n = int(sys.argv[1])
    if (i % 2) if sys.argv[2] == "alternate" else (i < n // 2):
        m["is_deleted"] = True
        m["deleted_at"] = "2020-01-01T00:00:00.000Z"
    print(json.dumps(m))
PY
size() { python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('pragma page_count').fetchone()[0]*c.execute('pragma page_size').fetchone()[0])" "$1"; }
mb() { python3 -c "import sys; print(f'{int(sys.argv[1])/1e6:.1f} MB')" "$1"; }
mkdir "$TMP/ws"; printf 'embedding:\n  provider: none\nretention:\n  intervalSeconds: 86400\n' > "$TMP/ws/agent.yaml"
SIGNET_PATH="$TMP/ws" "$BIN" import "$TMP/in.ndjson" >/dev/null
echo "store with $N memories, half of them old tombstones: $(mb "$(size "$TMP/ws/memory/memories.db")")"
SIGNET_PATH="$TMP/ws" SIGNET_PORT=$PORT SIGNET_LOG=info "$BIN" serve >"$TMP/daemon.log" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -sf "localhost:$PORT/health" >/dev/null && break; sleep 0.1; done
# The sweep at start purges the tombstones; wait for it, then stop (the
# shutdown checkpoint truncates the WAL into the file).
for _ in $(seq 600); do grep -q "retention sweep done" "$TMP/daemon.log" && break; sleep 0.1; done
grep "retention sweep done" "$TMP/daemon.log" | sed 's/^.*retention/retention/'
kill -TERM $PID; wait $PID || true
DB="$TMP/ws/memory/memories.db"
echo "store after the sweep: $(mb "$(size "$DB")") (file $(mb "$(stat -c %s "$DB")"))"
SIGNET_PATH="$TMP/ws" "$BIN" export --out "$TMP/survivors.ndjson" 2>/dev/null
mkdir "$TMP/fresh"; printf 'embedding:\n  provider: none\n' > "$TMP/fresh/agent.yaml"
python3 -c "
import json,sys
with open(sys.argv[1]) as f, open(sys.argv[2],'w') as o:
    for l in f:
        if not json.loads(l)['is_deleted']: o.write(l)
" "$TMP/survivors.ndjson" "$TMP/live.ndjson"
SIGNET_PATH="$TMP/fresh" "$BIN" import "$TMP/live.ndjson" >/dev/null
FRESH="$TMP/fresh/memory/memories.db"
echo "fresh store of the $((N / 2)) survivors: $(mb "$(size "$FRESH")")"
python3 -c "import sys; print(f'ratio: {int(sys.argv[1])/int(sys.argv[2]):.2f}')" "$(size "$DB")" "$(size "$FRESH")"
