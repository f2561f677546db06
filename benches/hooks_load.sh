#!/usr/bin/env bash
# Harness hook latency under load (issue 13; release build, one machine):
# N memories preloaded with their embeddings (benches/recall_load.py, the
# native MiniLM model), identity files in the workspace, then
#  - user-prompt-submit from 50 concurrent sessions in a loop
#    (`wrk -t2 -c50`, benches/hooks_prompt.lua): PROMPTS distinct
#    natural-language prompts in rotation; a warm-up pass first embeds
#    each once, as a harness session repeats its vocabulary;
#  - the same with every prompt new (PROMPTS=4800, no warm-up): each one
#    costs a MiniLM embedding, the figure for prompts never seen before;
#  - session-start of fresh sessions from 50 clients
#    (benches/hooks_start.lua).
# usage: benches/hooks_load.sh [N]   (needs target/release/signet, wrk and
# the model in target/models/all-MiniLM-L6-v2)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10000}"
BIN="${BIN:-target/release/signet}"
MODEL="$PWD/target/models/all-MiniLM-L6-v2"
PORT=39854
URL="http://127.0.0.1:$PORT"

WS="$(mktemp -d)"
printf 'embedding:\n  provider: native\n  modelPath: %s\n' "$MODEL" > "$WS/agent.yaml"
printf 'Run the tests before pushing. Keep answers short.\n' > "$WS/AGENTS.md"
printf 'name: Bench\nrole: load generator\n' > "$WS/IDENTITY.md"
printf 'The user runs a memory server for a team.\n' > "$WS/USER.md"
SIGNET_PATH="$WS" SIGNET_PORT=$PORT SIGNET_OFFLINE=1 SIGNET_LOG=warn "$BIN" serve >/dev/null 2>&1 &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$WS"' EXIT
for _ in $(seq 100); do curl -sf "$URL/health" >/dev/null && break; sleep 0.1; done
for _ in $(seq 300); do
  curl -s "$URL/api/embeddings/status" | grep -q '"state":"ready"' && break; sleep 0.2
done
python3 benches/recall_load.py preload "$URL" "$N" --wait-embeddings

# One prompt checked by hand: it injects memories (by keyword if the model
# takes longer than hooks.userPromptSubmit.vectorWaitMs the first time),
# then, asked again, by both legs.
check() { # session
  curl -sf "$URL/api/hooks/user-prompt-submit" -H 'content-type: application/json' \
    -d '{"harness":"claude-code","sessionKey":"'"$1"'","userPrompt":"When did Caroline visit the garden?"}' \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r["memoryCount"] > 0, r; print("check: %d memories, engine %s" % (r["memoryCount"], r["engine"]))'
}
check first; sleep 0.5
second="$(check second)"; echo "$second"; grep -q 'engine hybrid' <<<"$second"

for i in 1 2; do
  line="$(PROMPTS=400 wrk -t2 -c50 -d10s -s benches/hooks_prompt.lua "$URL" | grep '^JSON')"
  echo "warm-up $i (400 prompts embedded once): ${line#JSON }"
done
for i in 1 2 3; do
  line="$(PROMPTS=400 wrk -t2 -c50 -d15s -s benches/hooks_prompt.lua "$URL" | grep '^JSON')"
  echo "user-prompt-submit, $N memories, 50 sessions, 400 prompts in rotation, run $i: ${line#JSON }"
done
line="$(PROMPTS=4800 wrk -t2 -c50 -d15s -s benches/hooks_prompt.lua "$URL" | grep '^JSON')"
echo "user-prompt-submit, $N memories, 50 sessions, every prompt new (each embedded): ${line#JSON }"
line="$(PROMPTS=4800 wrk -t1 -c1 -d10s -s benches/hooks_prompt.lua "$URL" | grep '^JSON')"
echo "user-prompt-submit, one session, every prompt new: ${line#JSON }"
for i in 1 2 3; do
  line="$(wrk -t2 -c50 -d15s -s benches/hooks_start.lua "$URL" | grep '^JSON')"
  echo "session-start (fresh sessions), $N memories, 50 clients, run $i: ${line#JSON }"
done
echo "RSS: $(grep VmRSS /proc/$PID/status)"
