#!/usr/bin/env bash
# The dashboard at N memories (default 100k), release build, keyword-only
# store (`embedding.provider: none`), preloaded through remember
# (benches/recall_load.py, fixed seed). Times, single client, the calls the
# Memories view makes: a page of 25 (first, middle, last), each filter with
# its count, and a search; then the bytes of a first load.
# usage: benches/dashboard_list.sh [N]   (needs target/release/signet)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-100000}"
BIN="${BIN:-target/release/signet}"
PORT=39854
WS="$(mktemp -d)"
printf 'embedding:\n  provider: none\n' > "$WS/agent.yaml"
SIGNET_PATH="$WS" SIGNET_PORT=$PORT SIGNET_LOG=warn "$BIN" serve >/dev/null 2>&1 &
PID=$!
trap 'kill -TERM $PID; wait $PID || true; rm -rf "$WS"' EXIT
for _ in $(seq 100); do curl -sf "localhost:$PORT/health" >/dev/null && break; sleep 0.1; done
t0=$(date +%s)
python3 benches/recall_load.py preload "http://127.0.0.1:$PORT" "$N" >/dev/null
echo "preloaded $N memories in $(( $(date +%s) - t0 )) s"
python3 - "$PORT" "$N" <<'PY'
import json, sys, time, urllib.request
port, n = sys.argv[1], int(sys.argv[2])
base = f"http://127.0.0.1:{port}"
def timed(path, body=None, runs=30):
    ms = []
    for _ in range(runs):
        req = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
        t = time.perf_counter()
        with urllib.request.urlopen(req) as r:
            out = json.load(r)
        ms.append((time.perf_counter() - t) * 1000)
    ms.sort()
    return ms[len(ms) // 2], ms[int(len(ms) * 0.95) - 1], out
cases = [
    ("first page", "/api/memories?limit=25&offset=0"),
    ("middle page", f"/api/memories?limit=25&offset={n // 2}"),
    ("last page", f"/api/memories?limit=25&offset={n - 25}"),
    ("filter project", "/api/memories?limit=25&project=conv-3"),
    ("filter who + type", "/api/memories?limit=25&who=Caroline&type=fact"),
    ("filter tags", "/api/memories?limit=25&tags=nothing-has-this"),
    ("filter date range", "/api/memories?limit=25&since=2000-01-01T00:00:00.000Z&until=2999-12-31T23:59:59.999Z"),
    ("filter project, last page", f"/api/memories?limit=25&project=conv-3&offset={n // 10 - 25}"),
]
for name, path in cases:
    p50, p95, out = timed(path)
    print(f"{name:28s} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  (count {out['count']}, rows {len(out['memories'])})")
p50, p95, out = timed("/api/memory/recall", {"query": "When did Caroline paint the old guitar?", "limit": 20})
print(f"{'search (recall, cached)':28s} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  ({len(out['results'])} results)")
total = 0
for f in ["/", "/dashboard/style.css", "/dashboard/favicon.svg", "/dashboard/app.js", "/dashboard/api.js",
          "/dashboard/dom.js", "/dashboard/chart.js", "/dashboard/events.js"] + [
          f"/dashboard/views/{v}.js" for v in ["memories", "detail", "live", "health", "performance", "access"]]:
    with urllib.request.urlopen(base + f) as r:
        total += len(r.read())
print(f"dashboard files (all of them, uncompressed): {total / 1024:.1f} KB")
PY
echo "RSS: $(grep VmRSS /proc/$PID/status)"
