#!/usr/bin/env bash
# Remember throughput (issue 15, "faster writes"): for each binary given
# (default target/release/signet), a fresh workspace and daemon per run
# (`embedding.provider: none`), `wrk -t2 -c$CONNS -d${SECS}s` with
# benches/remember.lua (contents unique per request and per run). Prints
# per run: wrk's req/s, p50 and p99; the daemon's CPU per request (user +
# system, from /proc); the share of requests the daemon itself took longer
# than 10 / 25 / 50 ms for (its request-duration histogram, from the
# request's routing to its response, so without the client's and the
# kernel's share); the writer's mean batch and the WAL restarts.
# Alternating binaries in one sitting is the only fair A/B on a shared
# host whose speed drifts.
# usage: [ROUNDS=1] [CONNS=32] [SECS=10] [RUNS=1] [STORE=DB] benches/write_load.sh [BIN...]
#   RUNS > 1 runs wrk again on the same daemon (the store grows; the
#   daemon-side shares, batch and restarts are then since its start);
#   STORE=path/to/memories.db starts every daemon on a copy of that store
#   (e.g. the 1M keyword-only store `KEEP=1 benches/scale_load.sh` leaves
#   in target/scale/keyword/memory/) instead of an empty one.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-1}"; CONNS="${CONNS:-32}"; SECS="${SECS:-10}"; RUNS="${RUNS:-1}"
PORT="${PORT:-39858}"
[ $# -gt 0 ] || set -- target/release/signet
LUA="$PWD/benches/remember.lua"
for _ in $(seq "$ROUNDS"); do
  for bin in "$@"; do
    ws=$(mktemp -d)
    printf 'embedding:\n  provider: none\n' > "$ws/agent.yaml"
    # The copy is written out before the daemon starts: its writeback would
    # otherwise compete with the WAL syncs of the run.
    if [ -n "${STORE:-}" ]; then mkdir -p "$ws/memory" && cp "$STORE" "$ws/memory/memories.db" && sync; fi
    SIGNET_PATH="$ws" SIGNET_PORT=$PORT SIGNET_LOG=warn "$bin" serve > "$ws/daemon.log" 2>&1 &
    pid=$!
    for _ in $(seq 600); do curl -sf "localhost:$PORT/health" >/dev/null && break; sleep 0.05; done
    curl -sf "localhost:$PORT/health" >/dev/null || { echo "$bin did not start:"; cat "$ws/daemon.log"; exit 1; }
    for run in $(seq "$RUNS"); do
      read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
      out=$(wrk -t2 -c"$CONNS" -d"${SECS}s" -s "$LUA" "http://127.0.0.1:$PORT" | grep '^JSON')
      read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
      ticks=$(getconf CLK_TCK)
      python3 - "$bin" "$run" "$CONNS" "$SECS" "${out#JSON }" $((u1 - u0 + s1 - s0)) "$ticks" \
        "$(curl -s "localhost:$PORT/metrics")" "$(curl -s "localhost:$PORT/api/status")" <<'PY'
import json, re, sys
bin_, run, conns, secs, out, cpu, ticks, metrics, status = sys.argv[1:]
w = json.loads(out)
reqs = w["rps"] * float(secs)
b = {}
for m in re.finditer(r'route="/api/memory/remember",le="([^"]+)"\} (\d+)', metrics):
    b[m.group(1)] = int(m.group(2))
total = b.get("+Inf", 0) or 1
over = lambda le: 100.0 * (total - b.get(le, total)) / total
wr = json.loads(status)["writer"]
wal = re.search(r"signet_wal_restarts_total (\d+)", metrics)
print(f"{bin_} run {run} -c{conns}: {w['rps']:,.0f} req/s, p50 {w['p50_ms']:.2f} ms, p99 {w['p99_ms']:.2f} ms, "
      f"errors {w['errors'] + w['non2xx']}; daemon CPU {int(cpu) / int(ticks) * 1e6 / max(reqs, 1):.0f} us/req; "
      f"server-side >10 ms {over('0.01'):.2f}%, >25 ms {over('0.025'):.2f}%, >50 ms {over('0.05'):.3f}%; "
      f"batch {wr['meanBatch']:.1f}; WAL restarts {wal.group(1) if wal else '?'}")
PY
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$ws"
  done
done
