-- The natural-language questions of the recall load runs, over the store
-- benches/recall_load.py preloads (names, verbs and things from the same
-- lists; 4,800 distinct questions in rotation). Loaded by
-- recall_questions.lua and mcp_search.lua (run wrk from the repository root).
local names = {"Caroline","Melanie","Jon","Gina","Evan","Sam","Priya","Tomas","Aiko","Lena",
  "Marcus","Nadia","Oscar","Rosa","Felix","Hana","Ivan","Julia","Kofi","Maya"}
local verbs = {"visit","paint","buy","fix","cook","find","plan","sell","watch","build",
  "lose","borrow","clean","photograph","adopt","review","design","record","organize","repair"}
local nouns = {"bicycle","guitar","garden","kitchen","painting","camera","boat","bookshelf",
  "laptop","piano","tent","sofa"}
local forms = {"When did %s %s the %s?", "Where did %s %s a %s?", "Why did %s %s the %s last week?"}

-- The question number `counter` (1, 2, ...).
function question(counter)
  local n = names[(counter % #names) + 1]
  local v = verbs[(math.floor(counter / #names) % #verbs) + 1]
  local o = nouns[(math.floor(counter / (#names * #verbs)) % #nouns) + 1]
  local f = forms[(counter % #forms) + 1]
  return string.format(f, n, v, o)
end

-- One JSON line of the run's figures, read by the load scripts.
function report(summary, latency)
  io.write(string.format("JSON {\"rps\":%.1f,\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"errors\":%d,\"non2xx\":%d}\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.errors.status))
end
